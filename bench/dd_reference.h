// `dd` as the reference for the SSD tier's throughput: a plain sequential write or read of the
// same bytes on the same disk, run as a child process in the same benchmark run.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/status.h"

namespace kvpool::bench {

/// One dd copy as dd itself reported it.
struct DdResult {
  uint64_t bytes = 0;
  double seconds = 0;
  std::string command;  ///< The command line, for the report.
};

/// Parses dd's summary line ("N bytes (...) copied, S s, R MB/s", as GNU dd prints it under
/// LC_ALL=C) out of its stderr. INVALID_ARGUMENT naming the text when there is none.
Result<DdResult> ParseDdSummary(std::string_view output);

/// Runs `dd` with `operands` (e.g. {"if=a", "of=b", "bs=1048576", "count=256",
/// "conv=fsync"}) under LC_ALL=C, its output appended to `log_path`, and returns its summary.
/// An error names the command and dd's last line when dd fails or runs past `timeout_ms`.
Result<DdResult> RunDd(const std::vector<std::string>& operands, const std::string& log_path,
                       int timeout_ms);

}  // namespace kvpool::bench
