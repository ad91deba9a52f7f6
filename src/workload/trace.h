// Mooncake-format request traces: reading, writing, and expanding hash ids into pseudo-tokens.
//
// A trace is one JSON object per line (the format of kvcache-ai/Mooncake's FAST'25 traces):
//
//   {"timestamp": 0, "input_length": 40160, "output_length": 6, "hash_ids": [0, 1, ..., 78]}
//
// `hash_ids` holds one id per 512-token block of the prompt, the last block possibly partial.
// Equal ids at equal positions mean an identical prefix up to and including that block, so
// the KV cache of those blocks can be reused. Raw tokens are not part of the format:
// ExpandTokens() turns ids into deterministic pseudo-token ids so that a system hashing real
// tokens at any block size sees exactly the prefixes the trace describes.
//
// Everything here is a pure function of its arguments. Thread-safe (no shared state).
#pragma once

#include <cstdint>
#include <istream>
#include <ostream>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/status.h"

namespace kvpool::workload {

/// Tokens per hash id in Mooncake traces.
inline constexpr uint32_t kTraceBlockTokens = 512;

/// Pseudo-token ids from ExpandTokens() lie in [0, kPseudoTokenVocab), a plausible vocabulary
/// size (Llama 3 has 128,256 tokens), so they are valid input for a real tokenizer's id space.
inline constexpr uint32_t kPseudoTokenVocab = 128000;

/// One request of a trace. A value type.
struct TraceRequest {
  /// Arrival time in ms, relative to the first request (Mooncake's files start at 0; the value
  /// is kept as read, never rebased). Non-decreasing along a trace.
  uint64_t timestamp_ms = 0;
  /// Prompt tokens; positive.
  uint32_t input_length = 0;
  /// Generated tokens; may be 0 (a prefill-only request).
  uint32_t output_length = 0;
  /// One id per 512-token block of the prompt (the last block may be partial):
  /// `hash_ids.size() == ceil(input_length / 512)`.
  std::vector<uint64_t> hash_ids;

  friend bool operator==(const TraceRequest&, const TraceRequest&) = default;
};

/// Number of blocks a prompt of `input_length` tokens has: ceil(input_length / 512).
inline uint64_t TraceBlockCount(uint64_t input_length) {
  return (input_length + kTraceBlockTokens - 1) / kTraceBlockTokens;
}

/// Tokens of block `block` (0-based) of a prompt of `input_length` tokens: 512 for every block
/// but the last, which holds the rest; 0 past the end.
inline uint32_t TraceBlockTokens(uint64_t input_length, uint64_t block) {
  const uint64_t start = block * kTraceBlockTokens;
  if (start >= input_length) return 0;
  const uint64_t rest = input_length - start;
  return rest < kTraceBlockTokens ? static_cast<uint32_t>(rest) : kTraceBlockTokens;
}

/// Parses a Mooncake-format trace from `in`, one JSON object per line, with the fields
/// `timestamp`, `input_length`, `output_length` (non-negative integers) and `hash_ids` (an
/// array of non-negative integers). Fields may come in any order; other fields are ignored.
///
/// Parsing is strict: malformed JSON, a missing or wrongly typed field, a negative or
/// out-of-range number (input and output lengths must fit 32 bits), `input_length` 0, a
/// `hash_ids` count other than ceil(input_length / 512), a timestamp smaller than the previous
/// line's, or an empty line followed by a non-empty one all fail. Empty lines (whitespace only)
/// at the end are allowed; a trailing '\r' on a line is ignored. An input with no requests gives
/// an empty vector.
///
/// `source_name` names the input in messages ("trace.jsonl"). Returns INVALID_ARGUMENT
/// "source:LINE: what was wrong (value)", LINE 1-based; DATA_LOSS if reading `in` fails.
Result<std::vector<TraceRequest>> ParseTrace(std::istream& in, std::string_view source_name);

/// Opens `path` and parses it with ParseTrace (messages name `path`). Returns NOT_FOUND or
/// PERMISSION_DENIED when the file cannot be opened, UNAVAILABLE when it is a directory or
/// cannot be opened for another reason, and ParseTrace's errors.
Result<std::vector<TraceRequest>> ReadTrace(const std::string& path);

/// Checks that `requests` form a valid trace (the rules of ParseTrace: positive input_length,
/// hash_ids count, non-decreasing timestamps). Returns INVALID_ARGUMENT naming the first bad
/// request by index ("requests[12]: ...").
Status ValidateTrace(std::span<const TraceRequest> requests);

/// Writes `requests` to `out` as JSON lines with the Mooncake file's field names, order and
/// spacing, so ReadTrace(WriteTrace(x)) == x. Validates first (ValidateTrace's errors; nothing
/// is written then); DATA_LOSS if writing fails.
Status WriteTrace(std::span<const TraceRequest> requests, std::ostream& out);

/// Writes `requests` to the file `path` (replaced if it exists) as WriteTrace(requests, out)
/// does. The file is written under a temporary name next to `path` and renamed into place, so
/// a failed write never leaves a half trace at `path`. Returns ValidateTrace's errors,
/// PERMISSION_DENIED / NOT_FOUND when the file cannot be created, DATA_LOSS when writing fails.
Status WriteTrace(std::span<const TraceRequest> requests, const std::string& path);

/// The pseudo-tokens of one block: `count` (<= 512) ids in [0, kPseudoTokenVocab), the first
/// `count` of the 512 drawn from a PRNG seeded by `hash_id` only.
std::vector<uint32_t> ExpandBlockTokens(uint64_t hash_id, uint32_t count);

/// The prompt as input_length pseudo-token ids: block i is 512 ids drawn from a PRNG seeded by
/// hash_ids[i] only (so equal hash-id prefixes give equal token prefixes at any pool block
/// size), the last block cut to input_length. If hash_ids has fewer than ceil(input_length /
/// 512) ids (an unvalidated request) the result stops where the ids end.
std::vector<uint32_t> ExpandTokens(const TraceRequest& request);

}  // namespace kvpool::workload
