// libFuzzer target: ParseTrace (Mooncake JSON-lines traces) on arbitrary bytes. Whatever parses
// must also pass ValidateTrace and survive a WriteTrace -> ParseTrace round trip unchanged.
#include <cstddef>
#include <cstdint>
#include <sstream>
#include <string>

#include "fuzz_check.h"
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
  return 0;
}
