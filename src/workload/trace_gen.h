// kvpool's own generator of Mooncake-format traces (see trace.h), so that demos and tests need
// no external trace file.
//
// The generated workload mixes two kinds of requests, each under one of a few tenants:
//
//  - Multi-turn conversations. Every conversation of a tenant starts with the tenant's system
//    prompt; turn k+1's prompt is turn k's prompt, then turn k's answer (output_length
//    tokens), then a new user message. Its hash ids are turn k's ids for the full 512-token
//    blocks of turn k's prompt, then new ids: the partially filled last block of turn k now
//    holds more tokens, so its content (and its id) changes, exactly as in Mooncake's traces.
//  - Long-document Q&A. A document (of one tenant) gets many questions; each prompt is the
//    system prompt, the document, then a short question.
//
// Only full blocks of a shared prefix are shared: the block where a system prompt or a document
// ends and a request's own text begins gets a new id in every request. Ids are handed out by
// one counter from 0, so unrelated content never shares an id.
//
// Arrivals are Poisson or bursty (on/off: Poisson during on periods, silence during off
// periods, both of exponential length). Each arrival is a document question with probability
// `document_fraction`, else a conversation turn: the next turn of the conversation that has
// waited longest since its think time ended, or the first turn of a new conversation when
// none is ready. Documents are asked about while open: `concurrent_documents` are open at a
// time, each gets a number of questions and is then replaced by a new one; every question picks
// one open document uniformly.
//
// The same options (seed included) give the same trace on every platform: all draws come from
// a portable SplitMix64 with hand-written distributions. Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <string_view>
#include <vector>

#include "kvpool/status.h"
#include "workload/trace.h"

namespace kvpool::workload {

/// How arrival times are drawn.
enum class ArrivalProcess {
  /// Exponential gaps with mean 1 / requests_per_s.
  kPoisson,
  /// On/off: Poisson at requests_per_s * (burst_on_s + burst_off_s) / burst_on_s during on
  /// periods, nothing during off periods, so the long-run mean rate is still requests_per_s.
  kBursty,
};

/// "poisson" or "bursty".
std::string_view ArrivalProcessName(ArrivalProcess arrival);

/// Parses ArrivalProcessName()'s names. INVALID_ARGUMENT names the text and the known names.
Result<ArrivalProcess> ParseArrivalProcess(std::string_view name);

/// Options of GenerateTrace. Token ranges are inclusive and drawn uniformly. A value type.
struct TraceGenOptions {
  /// Seed of the generator; equal options give identical traces. Default: 1.
  uint64_t seed = 1;
  /// Requests in the trace. Default: 1000.
  uint32_t requests = 1000;

  // ---- Arrivals ----
  /// Arrival process. Default: kPoisson.
  ArrivalProcess arrival = ArrivalProcess::kPoisson;
  /// Mean arrival rate, requests per second (long-run mean for kBursty). Default: 4 (about
  /// the rate of Mooncake's synthetic trace: 3,993 requests in ~1,022 s).
  double requests_per_s = 4.0;
  /// Mean length of an on period (kBursty only), seconds. Default: 10.
  double burst_on_s = 10.0;
  /// Mean length of an off period (kBursty only), seconds; 0 makes kBursty Poisson. Default: 20.
  double burst_off_s = 20.0;

  // ---- Mix ----
  /// Fraction of requests that are document questions, in [0, 1]; the rest are conversation
  /// turns. Default: 0.3.
  double document_fraction = 0.3;

  // ---- Tenants ----
  /// Tenants, each with its own system prompt; every conversation and document belongs to
  /// one, uniformly. Default: 4.
  uint32_t tenants = 4;
  /// Shortest system prompt of a tenant, tokens (0 = none). Default: 1000.
  uint32_t system_prompt_min_tokens = 1000;
  /// Longest system prompt of a tenant, tokens. Default: 4000.
  uint32_t system_prompt_max_tokens = 4000;

  // ---- Conversations ----
  /// Fewest turns of a conversation (fewer when a prompt would exceed max_input_tokens, or
  /// the trace ends). Default: 1.
  uint32_t turns_min = 1;
  /// Most turns of a conversation. Default: 8.
  uint32_t turns_max = 8;
  /// Shortest first user message of a conversation (often pasted context), tokens.
  /// Default: 1000.
  uint32_t first_message_min_tokens = 1000;
  /// Longest first user message, tokens. Default: 12000.
  uint32_t first_message_max_tokens = 12000;
  /// Shortest later user message, tokens. Default: 20.
  uint32_t followup_message_min_tokens = 20;
  /// Longest later user message, tokens. Default: 1000.
  uint32_t followup_message_max_tokens = 1000;
  /// Shortest time from a turn's arrival to the next turn's, seconds (reading the answer).
  /// Default: 5.
  double think_time_min_s = 5.0;
  /// Mean time from a turn's arrival to the next turn's, seconds: think_time_min_s plus an
  /// exponential with mean (think_time_mean_s - think_time_min_s). A turn arrives with the
  /// first conversation arrival after that. Default: 30.
  double think_time_mean_s = 30.0;

  // ---- Documents ----
  /// Documents open for questions at a time. Default: 4.
  uint32_t concurrent_documents = 4;
  /// Shortest document, tokens. Default: 8000.
  uint32_t document_min_tokens = 8000;
  /// Longest document, tokens. Default: 40000.
  uint32_t document_max_tokens = 40000;
  /// Fewest questions asked about one document before it is replaced. Default: 2.
  uint32_t questions_min = 2;
  /// Most questions asked about one document. Default: 10.
  uint32_t questions_max = 10;
  /// Shortest question, tokens. Default: 20.
  uint32_t question_min_tokens = 20;
  /// Longest question, tokens. Default: 300.
  uint32_t question_max_tokens = 300;

  // ---- Outputs and limits ----
  /// Fewest generated tokens of a request. Default: 50.
  uint32_t output_min_tokens = 50;
  /// Most generated tokens of a request. Default: 500.
  uint32_t output_max_tokens = 500;
  /// Longest prompt, tokens; a conversation whose next turn would be longer ends there.
  /// Must hold the longest first turn and the longest document question. Default: 131072.
  uint32_t max_input_tokens = 131072;

  /// OK when the options are usable; INVALID_ARGUMENT naming the first bad field and its value
  /// (zero requests, a non-positive or non-finite rate, a fraction outside [0, 1], a range
  /// whose min exceeds its max, zero tenants/turns/questions/documents/message lengths, a
  /// max_input_tokens too small for a first turn or a document question).
  Status Validate() const;
};

/// What a generated trace is made of. A value type.
struct TraceGenStats {
  /// Conversations started.
  uint64_t conversations = 0;
  /// Conversation turns (requests), first turns included.
  uint64_t conversation_turns = 0;
  /// Conversations that ended early because their next turn would exceed max_input_tokens.
  uint64_t conversations_cut_at_max_input = 0;
  /// Documents opened.
  uint64_t documents = 0;
  /// Document questions (requests).
  uint64_t document_questions = 0;
};

/// Generates a trace as described at the top of this file: `options.requests` requests, the
/// first at timestamp 0, timestamps non-decreasing, every request valid for ValidateTrace.
/// Deterministic: equal options give identical output. Returns an empty vector when
/// `options.Validate()` fails. With the defaults: ~250 s, mean input ~15K tokens, mean output
/// ~275 tokens, ~80% of prompt tokens reusable with an unlimited cache.
std::vector<TraceRequest> GenerateTrace(const TraceGenOptions& options);

/// As GenerateTrace(options), and fills `*stats` (if not null) with what the trace holds.
std::vector<TraceRequest> GenerateTrace(const TraceGenOptions& options, TraceGenStats* stats);

}  // namespace kvpool::workload
