#include "workload/trace_gen.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <set>
#include <utility>
#include <vector>

#include "workload/trace.h"

namespace kvpool::workload {
namespace {

size_t CommonPrefix(const std::vector<uint64_t>& a, const std::vector<uint64_t>& b) {
  size_t n = 0;
  while (n < a.size() && n < b.size() && a[n] == b[n]) ++n;
  return n;
}

double MaxGapS(const std::vector<TraceRequest>& trace) {
  uint64_t gap = 0;
  for (size_t i = 1; i < trace.size(); ++i) {
    gap = std::max(gap, trace[i].timestamp_ms - trace[i - 1].timestamp_ms);
  }
  return static_cast<double>(gap) / 1000.0;
}

TEST_CASE("GenerateTrace: the same options give the same trace, another seed another",
          "[workload]") {
  TraceGenOptions opt;
  opt.requests = 300;
  const auto a = GenerateTrace(opt);
  const auto b = GenerateTrace(opt);
  REQUIRE(a.size() == 300);
  CHECK(a == b);
  opt.seed = 2;
  CHECK(GenerateTrace(opt) != a);
  opt.seed = 1;
  opt.arrival = ArrivalProcess::kBursty;
  CHECK(GenerateTrace(opt) == GenerateTrace(opt));
}

TEST_CASE("GenerateTrace: a valid trace from timestamp 0 with non-decreasing timestamps",
          "[workload]") {
  for (const ArrivalProcess arrival : {ArrivalProcess::kPoisson, ArrivalProcess::kBursty}) {
    INFO(ArrivalProcessName(arrival));
    TraceGenOptions opt;
    opt.arrival = arrival;
    const auto trace = GenerateTrace(opt);
    REQUIRE(trace.size() == opt.requests);
    CHECK(ValidateTrace(trace).ok());
    CHECK(trace.front().timestamp_ms == 0);
    for (const TraceRequest& r : trace) {
      REQUIRE(r.input_length <= opt.max_input_tokens);
      REQUIRE(r.output_length >= opt.output_min_tokens);
      REQUIRE(r.output_length <= opt.output_max_tokens);
    }
    // The mean rate is about requests_per_s in both processes (1,000 arrivals: within 20%).
    const double duration_s = static_cast<double>(trace.back().timestamp_ms) / 1000.0;
    CHECK(duration_s == Approx(opt.requests / opt.requests_per_s).epsilon(0.2));
  }
}

TEST_CASE("GenerateTrace: bursty arrivals leave off periods that Poisson ones do not",
          "[workload]") {
  TraceGenOptions opt;
  opt.requests = 2000;
  opt.requests_per_s = 10;
  opt.burst_on_s = 2;
  opt.burst_off_s = 20;
  const double poisson_gap_s = MaxGapS(GenerateTrace(opt));
  opt.arrival = ArrivalProcess::kBursty;
  const double bursty_gap_s = MaxGapS(GenerateTrace(opt));
  // Poisson at 10/s: the longest of 2,000 gaps is about 0.1 s * ln 2000 = 0.8 s. Off periods
  // average 20 s.
  CHECK(poisson_gap_s < 3.0);
  CHECK(bursty_gap_s > 10.0);
}

TEST_CASE("GenerateTrace: document_fraction sets the mix of questions and turns",
          "[workload]") {
  for (const double fraction : {0.0, 0.3, 0.7, 1.0}) {
    INFO("document_fraction " << fraction);
    TraceGenOptions opt;
    opt.requests = 2000;
    opt.document_fraction = fraction;
    TraceGenStats stats;
    const auto trace = GenerateTrace(opt, &stats);
    REQUIRE(trace.size() == 2000);
    CHECK(stats.document_questions + stats.conversation_turns == 2000);
    // Binomial(2000, p): the standard deviation of the share is at most 0.011.
    CHECK(static_cast<double>(stats.document_questions) / 2000.0 ==
          Approx(fraction).margin(0.05));
    if (fraction > 0) CHECK(stats.documents >= 1);
    if (fraction < 1) CHECK(stats.conversations >= 1);
  }
}

TEST_CASE("GenerateTrace: every request starts with one of the tenants' system prompts",
          "[workload]") {
  TraceGenOptions opt;
  opt.tenants = 3;
  opt.system_prompt_min_tokens = 1024;  // at least two full, shareable blocks
  const auto trace = GenerateTrace(opt);
  std::map<std::pair<uint64_t, uint64_t>, int> heads;
  for (const TraceRequest& r : trace) ++heads[{r.hash_ids[0], r.hash_ids[1]}];
  CHECK(heads.size() == 3);
  for (const auto& [head, count] : heads) CHECK(count > 100);
}

TEST_CASE("GenerateTrace: a later turn extends the previous turn's full blocks with new ids",
          "[workload]") {
  TraceGenOptions opt;
  opt.requests = 600;
  opt.document_fraction = 0;
  opt.turns_min = 3;
  opt.turns_max = 3;
  TraceGenStats stats;
  const auto trace = GenerateTrace(opt, &stats);
  REQUIRE(stats.conversation_turns == 600);

  std::set<uint64_t> seen;
  uint64_t extensions = 0;
  for (size_t i = 0; i < trace.size(); ++i) {
    const TraceRequest& r = trace[i];
    // The latest earlier request sharing the longest prefix (a turn that added no full block
    // shares as much with the turn before it as with the one before that).
    size_t best = 0, parent = i;
    for (size_t j = 0; j < i; ++j) {
      const size_t common = CommonPrefix(r.hash_ids, trace[j].hash_ids);
      if (common > 0 && common >= best) best = common, parent = j;
    }
    if (parent != i && best == trace[parent].input_length / kTraceBlockTokens) {
      // A later turn: the previous prompt's full blocks, then the answer and a new message.
      const TraceRequest& p = trace[parent];
      CHECK(r.input_length >=
            p.input_length + p.output_length + opt.followup_message_min_tokens);
      CHECK(r.input_length <=
            p.input_length + p.output_length + opt.followup_message_max_tokens);
      // 1 ms of slack for the floor of both timestamps.
      CHECK(r.timestamp_ms + 1 >= p.timestamp_ms + 1000 * opt.think_time_min_s);
      ++extensions;
    }
    // Ids after the shared prefix are new.
    for (size_t k = best; k < r.hash_ids.size(); ++k) CHECK(seen.count(r.hash_ids[k]) == 0);
    seen.insert(r.hash_ids.begin(), r.hash_ids.end());
  }
  CHECK(extensions == stats.conversation_turns - stats.conversations);
  CHECK(extensions > 300);
}

TEST_CASE("GenerateTrace: questions about one document share its full blocks", "[workload]") {
  TraceGenOptions opt;
  opt.requests = 50;
  opt.document_fraction = 1;
  opt.concurrent_documents = 1;
  opt.questions_min = 5;
  opt.questions_max = 5;
  opt.tenants = 1;
  TraceGenStats stats;
  const auto trace = GenerateTrace(opt, &stats);
  CHECK(stats.documents == 10);
  for (size_t doc = 0; doc < 10; ++doc) {
    const TraceRequest& first = trace[doc * 5];
    for (size_t q = 1; q < 5; ++q) {
      const TraceRequest& r = trace[doc * 5 + q];
      const size_t common = CommonPrefix(first.hash_ids, r.hash_ids);
      // System prompt + document: at least 8,000 tokens; the question's block is its own.
      CHECK(common * kTraceBlockTokens >= opt.document_min_tokens);
      CHECK(common < r.hash_ids.size());
      CHECK(r.input_length - common * kTraceBlockTokens <=
            kTraceBlockTokens + opt.question_max_tokens);
    }
    if (doc > 0) {
      // Another document: only the tenant's system prompt is shared.
      const size_t common = CommonPrefix(first.hash_ids, trace[0].hash_ids);
      CHECK(common * kTraceBlockTokens <= opt.system_prompt_max_tokens);
    }
  }
}

TEST_CASE("GenerateTrace: an id always sits at the same position after the same parent",
          "[workload]") {
  // The chained-prefix rule of Mooncake traces: equal ids mean equal prefixes, so unrelated
  // content never shares an id.
  const auto trace = GenerateTrace(TraceGenOptions{});
  std::map<uint64_t, std::pair<size_t, uint64_t>> where;  // id -> (position, parent id)
  constexpr uint64_t kRoot = ~uint64_t{0};
  for (const TraceRequest& r : trace) {
    for (size_t k = 0; k < r.hash_ids.size(); ++k) {
      const std::pair<size_t, uint64_t> here{k, k == 0 ? kRoot : r.hash_ids[k - 1]};
      const auto [it, inserted] = where.try_emplace(r.hash_ids[k], here);
      if (!inserted) REQUIRE(it->second == here);
    }
  }
}

TEST_CASE("GenerateTrace: a conversation that would outgrow max_input_tokens ends",
          "[workload]") {
  TraceGenOptions opt;
  opt.requests = 400;
  opt.document_fraction = 0;
  opt.turns_min = 50;
  opt.turns_max = 50;
  opt.think_time_min_s = 0;
  opt.think_time_mean_s = 1;
  opt.max_input_tokens = 20000;
  opt.document_max_tokens = 10000;  // so that a document question still fits
  REQUIRE(opt.Validate().ok());
  TraceGenStats stats;
  const auto trace = GenerateTrace(opt, &stats);
  REQUIRE(trace.size() == 400);
  CHECK(stats.conversations_cut_at_max_input > 0);
  for (const TraceRequest& r : trace) REQUIRE(r.input_length <= 20000);
}

TEST_CASE("TraceGenOptions::Validate names the bad field and value", "[workload]") {
  struct Case {
    void (*mutate)(TraceGenOptions*);
    std::string expected;
  };
  const std::vector<Case> cases = {
      {[](TraceGenOptions* o) { o->requests = 0; }, "requests must be positive (0)"},
      {[](TraceGenOptions* o) { o->requests_per_s = -1; }, "requests_per_s must be a positive"},
      {[](TraceGenOptions* o) { o->burst_on_s = 0; }, "burst_on_s must be a positive"},
      {[](TraceGenOptions* o) { o->document_fraction = 1.5; },
       "document_fraction must be in [0, 1] (1.5"},
      {[](TraceGenOptions* o) { o->tenants = 0; }, "tenants must be positive (0)"},
      {[](TraceGenOptions* o) { o->turns_min = 5, o->turns_max = 3; },
       "turns_min (5) exceeds turns_max (3)"},
      {[](TraceGenOptions* o) { o->document_min_tokens = 50000; },
       "document_min_tokens (50000) exceeds document_max_tokens (40000)"},
      {[](TraceGenOptions* o) { o->question_min_tokens = 0; },
       "question_min_tokens must be positive (0)"},
      {[](TraceGenOptions* o) { o->think_time_mean_s = 1; },
       "think_time_mean_s (1.000000) is below think_time_min_s (5.000000)"},
      {[](TraceGenOptions* o) { o->max_input_tokens = 30000; },
       "max_input_tokens (30000) is below the longest first turn or document question"},
  };
  CHECK(TraceGenOptions{}.Validate().ok());
  for (const Case& c : cases) {
    TraceGenOptions opt;
    c.mutate(&opt);
    const Status status = opt.Validate();
    INFO(status);
    CHECK(status.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(status.message(), Catch::StartsWith(c.expected));
    CHECK(GenerateTrace(opt).empty());
  }
}

TEST_CASE("ParseArrivalProcess: knows poisson and bursty, rejects others", "[workload]") {
  CHECK(ParseArrivalProcess("poisson").value() == ArrivalProcess::kPoisson);
  CHECK(ParseArrivalProcess("bursty").value() == ArrivalProcess::kBursty);
  CHECK(ArrivalProcessName(ArrivalProcess::kBursty) == "bursty");
  const auto bad = ParseArrivalProcess("gamma");
  REQUIRE_FALSE(bad.ok());
  CHECK(bad.status().message() == "unknown arrival process 'gamma' (known: poisson, bursty)");
}

}  // namespace
}  // namespace kvpool::workload
