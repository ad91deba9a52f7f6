// The body of the two service fuzzers' LLVMFuzzerTestOneInput: one fresh harness per input,
// fed every record, then checked.
#pragma once

#include <cstddef>
#include <cstdint>

#include "fuzz_records.h"
#include "google/protobuf/stubs/logging.h"

namespace kvpool::fuzz {

/// Runs each record of `data` through a new `Harness` (`Run(const Record&)`), then calls
/// `check(harness)`. Protobuf's log is silenced first: mutated strings are often not UTF-8,
/// and protobuf would log each refused parse.
template <typename Harness, typename Check>
int RunRecordInput(const uint8_t* data, size_t size, Check check) {
  static const bool quiet = [] {
    google::protobuf::SetLogHandler(nullptr);
    return true;
  }();
  (void)quiet;
  Harness harness;
  RecordReader reader(data, size);
  Record record;
  while (reader.Next(&record)) harness.Run(record);
  check(harness);
  return 0;
}

}  // namespace kvpool::fuzz
