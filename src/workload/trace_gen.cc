#include "workload/trace_gen.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <queue>
#include <span>
#include <string>
#include <utility>

#include "workload/random_internal.h"

namespace kvpool::workload {
namespace {

using internal::Rng;

Status CheckRange(const char* min_name, uint64_t min, const char* max_name, uint64_t max) {
  if (min > max) {
    return InvalidArgumentError(std::string(min_name) + " (" + std::to_string(min) +
                                ") exceeds " + max_name + " (" + std::to_string(max) + ")");
  }
  return Status::Ok();
}

Status CheckPositive(const char* name, uint64_t value) {
  if (value == 0) return InvalidArgumentError(std::string(name) + " must be positive (0)");
  return Status::Ok();
}

Status CheckSeconds(const char* name, double value, bool allow_zero) {
  if (!std::isfinite(value) || value < 0 || (!allow_zero && value == 0)) {
    return InvalidArgumentError(std::string(name) + " must be " +
                                (allow_zero ? "a non-negative" : "a positive") +
                                " finite number (" + std::to_string(value) + ")");
  }
  return Status::Ok();
}

// A prompt prefix that later requests extend: `ids` covers exactly the full 512-token blocks
// of its `tokens` (the partial tail, if any, is never shared).
struct Prefix {
  std::vector<uint64_t> ids;
  uint64_t tokens = 0;
};

struct Conversation {
  uint32_t tenant = 0;
  std::vector<uint64_t> prompt_ids;  // the last turn's prompt
  uint64_t prompt_tokens = 0;
  uint32_t last_output_tokens = 0;
  uint32_t turns_left = 0;
};

struct Document {
  Prefix prefix;  // system prompt + document
  uint32_t questions_left = 0;
};

// Conversations waiting for their next turn, ordered by the time they become ready, then by
// creation order, so equal ready times resolve the same way everywhere.
struct Waiting {
  double ready_s = 0;
  uint64_t order = 0;
  size_t slot = 0;  // index into the conversation store
  friend bool operator>(const Waiting& a, const Waiting& b) {
    return a.ready_s != b.ready_s ? a.ready_s > b.ready_s : a.order > b.order;
  }
};

class Generator {
 public:
  Generator(const TraceGenOptions& options, TraceGenStats* stats)
      : opt_(options), stats_(stats), rng_(options.seed) {}

  std::vector<TraceRequest> Run() {
    MakeTenants();
    std::vector<TraceRequest> trace;
    trace.reserve(opt_.requests);
    double now_s = 0;
    StartArrivals();
    for (uint32_t i = 0; i < opt_.requests; ++i) {
      if (i > 0) now_s = NextArrival(now_s);
      TraceRequest r = rng_.Bernoulli(opt_.document_fraction) ? DocumentQuestion()
                                                               : ConversationTurn(now_s);
      // Floor, so timestamps never run ahead of the arrival process and stay non-decreasing.
      r.timestamp_ms = static_cast<uint64_t>(std::floor(now_s * 1000.0));
      trace.push_back(std::move(r));
    }
    return trace;
  }

 private:
  uint32_t Draw(uint32_t min, uint32_t max) {
    return static_cast<uint32_t>(rng_.Uniform(min, max));
  }

  // Ids for a prompt of `total_tokens` that starts with `shared`'s full blocks.
  std::vector<uint64_t> Extend(std::span<const uint64_t> shared, uint64_t total_tokens) {
    std::vector<uint64_t> ids(shared.begin(), shared.end());
    const uint64_t blocks = TraceBlockCount(total_tokens);
    while (ids.size() < blocks) ids.push_back(next_id_++);
    return ids;
  }

  // Ids for a shared prefix of `tokens`: `shared` then new ids for its remaining full blocks
  // (its partial tail is never shared, so it gets no id here).
  std::vector<uint64_t> ExtendFull(std::span<const uint64_t> shared, uint64_t tokens) {
    std::vector<uint64_t> ids(shared.begin(), shared.end());
    const uint64_t blocks = tokens / kTraceBlockTokens;
    while (ids.size() < blocks) ids.push_back(next_id_++);
    return ids;
  }

  std::span<const uint64_t> FullBlocks(std::span<const uint64_t> ids, uint64_t tokens) {
    return ids.first(std::min<uint64_t>(ids.size(), tokens / kTraceBlockTokens));
  }

  void MakeTenants() {
    tenants_.resize(opt_.tenants);
    for (Prefix& t : tenants_) {
      t.tokens = Draw(opt_.system_prompt_min_tokens, opt_.system_prompt_max_tokens);
      t.ids = ExtendFull({}, t.tokens);
    }
  }

  // ---- Arrivals ----

  void StartArrivals() {
    if (opt_.arrival == ArrivalProcess::kBursty) on_until_s_ = rng_.Exponential(opt_.burst_on_s);
  }

  double NextArrival(double now_s) {
    if (opt_.arrival == ArrivalProcess::kPoisson || opt_.burst_off_s == 0) {
      return now_s + rng_.Exponential(1.0 / opt_.requests_per_s);
    }
    const double on_rate =
        opt_.requests_per_s * (opt_.burst_on_s + opt_.burst_off_s) / opt_.burst_on_s;
    double t = now_s;
    for (;;) {
      // Gaps are memoryless, so a gap that overruns the on period is simply redrawn in the
      // next one.
      const double next = t + rng_.Exponential(1.0 / on_rate);
      if (next <= on_until_s_) return next;
      t = on_until_s_ + rng_.Exponential(opt_.burst_off_s);
      on_until_s_ = t + rng_.Exponential(opt_.burst_on_s);
    }
  }

  // ---- Documents ----

  TraceRequest DocumentQuestion() {
    while (documents_.size() < opt_.concurrent_documents) {
      Document d;
      const Prefix& system = tenants_[Draw(0, opt_.tenants - 1)];
      d.prefix.tokens = system.tokens + Draw(opt_.document_min_tokens, opt_.document_max_tokens);
      d.prefix.ids = ExtendFull(system.ids, d.prefix.tokens);
      d.questions_left = Draw(opt_.questions_min, opt_.questions_max);
      ++stats_->documents;
      documents_.push_back(std::move(d));
    }
    const size_t pick = Draw(0, static_cast<uint32_t>(documents_.size() - 1));
    Document& d = documents_[pick];
    TraceRequest r;
    const uint64_t total = d.prefix.tokens + Draw(opt_.question_min_tokens,
                                                  opt_.question_max_tokens);
    r.input_length = static_cast<uint32_t>(total);
    r.output_length = Draw(opt_.output_min_tokens, opt_.output_max_tokens);
    r.hash_ids = Extend(d.prefix.ids, total);
    ++stats_->document_questions;
    if (--d.questions_left == 0) {
      // Keep the order of the others: the next pick depends on positions.
      documents_.erase(documents_.begin() + static_cast<std::ptrdiff_t>(pick));
    }
    return r;
  }

  // ---- Conversations ----

  TraceRequest ConversationTurn(double now_s) {
    while (!waiting_.empty() && waiting_.top().ready_s <= now_s) {
      const size_t slot = waiting_.top().slot;
      waiting_.pop();
      Conversation& c = conversations_[slot];
      const uint64_t total = c.prompt_tokens + c.last_output_tokens +
                             Draw(opt_.followup_message_min_tokens,
                                  opt_.followup_message_max_tokens);
      if (total > opt_.max_input_tokens) {
        Retire(slot);  // the conversation outgrew the context: it ends here
        ++stats_->conversations_cut_at_max_input;
        continue;
      }
      return Turn(slot, FullBlocks(c.prompt_ids, c.prompt_tokens), total, now_s);
    }
    // Nobody is ready: a new conversation starts.
    size_t slot;
    if (!free_slots_.empty()) {
      slot = free_slots_.back();
      free_slots_.pop_back();
    } else {
      slot = conversations_.size();
      conversations_.emplace_back();
    }
    Conversation& c = conversations_[slot];
    c = Conversation{};
    c.tenant = Draw(0, opt_.tenants - 1);
    c.turns_left = Draw(opt_.turns_min, opt_.turns_max);
    ++stats_->conversations;
    const Prefix& system = tenants_[c.tenant];
    const uint64_t total =
        system.tokens + Draw(opt_.first_message_min_tokens, opt_.first_message_max_tokens);
    return Turn(slot, system.ids, total, now_s);
  }

  // Emits the next turn of conversations_[slot]: a prompt of `total` tokens starting with the
  // full blocks `shared`.
  TraceRequest Turn(size_t slot, std::span<const uint64_t> shared, uint64_t total,
                    double now_s) {
    Conversation& c = conversations_[slot];
    TraceRequest r;
    r.input_length = static_cast<uint32_t>(total);
    r.output_length = Draw(opt_.output_min_tokens, opt_.output_max_tokens);
    r.hash_ids = Extend(shared, total);
    c.prompt_ids = r.hash_ids;
    c.prompt_tokens = total;
    c.last_output_tokens = r.output_length;
    ++stats_->conversation_turns;
    if (--c.turns_left == 0) {
      Retire(slot);
    } else {
      const double think_s = opt_.think_time_min_s +
                             (opt_.think_time_mean_s > opt_.think_time_min_s
                                  ? rng_.Exponential(opt_.think_time_mean_s -
                                                     opt_.think_time_min_s)
                                  : 0.0);
      waiting_.push(Waiting{now_s + think_s, next_order_++, slot});
    }
    return r;
  }

  void Retire(size_t slot) {
    conversations_[slot] = Conversation{};
    free_slots_.push_back(slot);
  }

  const TraceGenOptions& opt_;
  TraceGenStats* stats_;
  Rng rng_;
  uint64_t next_id_ = 0;
  double on_until_s_ = 0;
  std::vector<Prefix> tenants_;
  std::vector<Document> documents_;
  std::vector<Conversation> conversations_;
  std::vector<size_t> free_slots_;
  std::priority_queue<Waiting, std::vector<Waiting>, std::greater<Waiting>> waiting_;
  uint64_t next_order_ = 0;
};

}  // namespace

std::string_view ArrivalProcessName(ArrivalProcess arrival) {
  switch (arrival) {
    case ArrivalProcess::kPoisson:
      return "poisson";
    case ArrivalProcess::kBursty:
      return "bursty";
  }
  return "unknown";
}

Result<ArrivalProcess> ParseArrivalProcess(std::string_view name) {
  if (name == "poisson") return ArrivalProcess::kPoisson;
  if (name == "bursty") return ArrivalProcess::kBursty;
  return InvalidArgumentError("unknown arrival process '" + std::string(name) +
                              "' (known: poisson, bursty)");
}

Status TraceGenOptions::Validate() const {
  KVPOOL_RETURN_IF_ERROR(CheckPositive("requests", requests));
  KVPOOL_RETURN_IF_ERROR(CheckSeconds("requests_per_s", requests_per_s, false));
  KVPOOL_RETURN_IF_ERROR(CheckSeconds("burst_on_s", burst_on_s, false));
  KVPOOL_RETURN_IF_ERROR(CheckSeconds("burst_off_s", burst_off_s, true));
  if (!(document_fraction >= 0 && document_fraction <= 1)) {
    return InvalidArgumentError("document_fraction must be in [0, 1] (" +
                                std::to_string(document_fraction) + ")");
  }
  KVPOOL_RETURN_IF_ERROR(CheckPositive("tenants", tenants));
  KVPOOL_RETURN_IF_ERROR(CheckRange("system_prompt_min_tokens", system_prompt_min_tokens,
                                    "system_prompt_max_tokens", system_prompt_max_tokens));
  KVPOOL_RETURN_IF_ERROR(CheckPositive("turns_min", turns_min));
  KVPOOL_RETURN_IF_ERROR(CheckRange("turns_min", turns_min, "turns_max", turns_max));
  KVPOOL_RETURN_IF_ERROR(CheckPositive("first_message_min_tokens", first_message_min_tokens));
  KVPOOL_RETURN_IF_ERROR(CheckRange("first_message_min_tokens", first_message_min_tokens,
                                    "first_message_max_tokens", first_message_max_tokens));
  KVPOOL_RETURN_IF_ERROR(
      CheckPositive("followup_message_min_tokens", followup_message_min_tokens));
  KVPOOL_RETURN_IF_ERROR(CheckRange("followup_message_min_tokens", followup_message_min_tokens,
                                    "followup_message_max_tokens",
                                    followup_message_max_tokens));
  KVPOOL_RETURN_IF_ERROR(CheckSeconds("think_time_min_s", think_time_min_s, true));
  KVPOOL_RETURN_IF_ERROR(CheckSeconds("think_time_mean_s", think_time_mean_s, true));
  if (think_time_mean_s < think_time_min_s) {
    return InvalidArgumentError("think_time_mean_s (" + std::to_string(think_time_mean_s) +
                                ") is below think_time_min_s (" +
                                std::to_string(think_time_min_s) + ")");
  }
  KVPOOL_RETURN_IF_ERROR(CheckPositive("concurrent_documents", concurrent_documents));
  KVPOOL_RETURN_IF_ERROR(CheckPositive("document_min_tokens", document_min_tokens));
  KVPOOL_RETURN_IF_ERROR(CheckRange("document_min_tokens", document_min_tokens,
                                    "document_max_tokens", document_max_tokens));
  KVPOOL_RETURN_IF_ERROR(CheckPositive("questions_min", questions_min));
  KVPOOL_RETURN_IF_ERROR(CheckRange("questions_min", questions_min, "questions_max",
                                    questions_max));
  KVPOOL_RETURN_IF_ERROR(CheckPositive("question_min_tokens", question_min_tokens));
  KVPOOL_RETURN_IF_ERROR(CheckRange("question_min_tokens", question_min_tokens,
                                    "question_max_tokens", question_max_tokens));
  KVPOOL_RETURN_IF_ERROR(CheckRange("output_min_tokens", output_min_tokens, "output_max_tokens",
                                    output_max_tokens));
  const uint64_t longest_first_turn =
      uint64_t{system_prompt_max_tokens} + first_message_max_tokens;
  const uint64_t longest_question =
      uint64_t{system_prompt_max_tokens} + document_max_tokens + question_max_tokens;
  const uint64_t needed = std::max(longest_first_turn, longest_question);
  if (max_input_tokens < needed) {
    return InvalidArgumentError(
        "max_input_tokens (" + std::to_string(max_input_tokens) +
        ") is below the longest first turn or document question the options allow (" +
        std::to_string(needed) + " = system_prompt_max_tokens + " +
        (longest_question >= longest_first_turn
             ? "document_max_tokens + question_max_tokens"
             : "first_message_max_tokens") +
        ")");
  }
  return Status::Ok();
}

std::vector<TraceRequest> GenerateTrace(const TraceGenOptions& options) {
  return GenerateTrace(options, nullptr);
}

std::vector<TraceRequest> GenerateTrace(const TraceGenOptions& options, TraceGenStats* stats) {
  TraceGenStats local;
  if (stats == nullptr) stats = &local;
  *stats = TraceGenStats{};
  if (!options.Validate().ok()) return {};
  return Generator(options, stats).Run();
}

}  // namespace kvpool::workload
