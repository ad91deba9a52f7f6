// libFuzzer target: ParseTrace (Mooncake JSON-lines traces) on arbitrary bytes. Whatever parses
// must also pass ValidateTrace and survive a WriteTrace -> ParseTrace round trip unchanged, and
// its decoded blocks and reference hit rates must stay within the trace's limits.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "fuzz_check.h"
#include "workload/cache_bounds.h"
#include "workload/decoded_blocks.h"
#include "workload/trace.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  using kvpool::workload::ParseTrace;
  std::istringstream in(std::string(reinterpret_cast<const char*>(data), size));
  auto parsed = ParseTrace(in, "fuzz.jsonl");
  if (!parsed.ok()) {
    KVPOOL_FUZZ_CHECK(parsed.status().code() == kvpool::StatusCode::kInvalidArgument);
    KVPOOL_FUZZ_CHECK(!parsed.status().message().empty());
    return 0;
  }
  KVPOOL_FUZZ_CHECK(kvpool::workload::ValidateTrace(*parsed).ok());
  std::ostringstream out;
  KVPOOL_FUZZ_CHECK(kvpool::workload::WriteTrace(*parsed, out).ok());
  std::istringstream again(out.str());
  auto reparsed = ParseTrace(again, "fuzz-roundtrip.jsonl");
  KVPOOL_FUZZ_CHECK(reparsed.ok());
  KVPOOL_FUZZ_CHECK(*reparsed == *parsed);

  // A request's decoded blocks are the ids a later request holds right after its full blocks.
  const auto decoded = kvpool::workload::DecodedBlockIds(*parsed);
  KVPOOL_FUZZ_CHECK(decoded.size() == parsed->size());
  for (size_t r = 0; r < decoded.size(); ++r) {
    const auto& req = (*parsed)[r];
    const uint64_t history = (uint64_t{req.input_length} + req.output_length) / 512;
    KVPOOL_FUZZ_CHECK(decoded[r].size() <= history);
  }
  const auto bounds = kvpool::workload::ComputeCacheBounds(*parsed, 4, decoded);
  KVPOOL_FUZZ_CHECK(bounds.infinite_hit_tokens <= bounds.prompt_tokens);
  KVPOOL_FUZZ_CHECK(bounds.lru_hit_tokens <= bounds.infinite_hit_tokens);
  KVPOOL_FUZZ_CHECK(bounds.belady_hit_tokens <= bounds.infinite_hit_tokens);
  return 0;
}
