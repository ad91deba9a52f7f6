#include "bench/dd_reference.h"

#include <signal.h>
#include <sys/wait.h>

#include <charconv>
#include <cstdlib>
#include <memory>

#include "bench/child_output.h"
#include "common/subprocess.h"

namespace kvpool::bench {

Result<DdResult> ParseDdSummary(std::string_view output) {
  constexpr std::string_view kCopied = " copied, ";
  size_t pos = 0;
  while (pos < output.size()) {
    size_t end = output.find('\n', pos);
    if (end == std::string_view::npos) end = output.size();
    const std::string_view line = Trim(output.substr(pos, end - pos));
    pos = end + 1;
    const size_t copied = line.find(kCopied);
    if (copied == std::string_view::npos) continue;
    DdResult r;
    const auto [bytes_end, bytes_ec] =
        std::from_chars(line.data(), line.data() + line.size(), r.bytes);
    if (bytes_ec != std::errc() || *bytes_end != ' ') break;
    // strtod needs a terminated string; the seconds field is short.
    const std::string rest(line.substr(copied + kCopied.size()));
    char* seconds_end = nullptr;
    r.seconds = std::strtod(rest.c_str(), &seconds_end);
    if (seconds_end == rest.c_str() || std::string_view(seconds_end).substr(0, 2) != " s" ||
        r.seconds < 0) {
      break;
    }
    return r;
  }
  return InvalidArgumentError("no dd summary ('N bytes ... copied, S s, ...') in '" +
                              LastLine(output) + "'");
}

Result<DdResult> RunDd(const std::vector<std::string>& operands, const std::string& log_path,
                       int timeout_ms) {
  std::vector<std::string> argv = {"/usr/bin/env", "LC_ALL=C", "dd"};
  argv.insert(argv.end(), operands.begin(), operands.end());
  const std::string command = JoinCommand(argv);
  const std::string before = ReadFile(log_path);
  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> dd, Subprocess::Start(argv, log_path));
  Result<int> status = dd->Wait(timeout_ms);
  if (!status.ok()) {
    dd->Signal(SIGKILL);
    dd->Wait(2'000).status().IgnoreError();
    return DeadlineExceededError("'" + command + "' ran past " + std::to_string(timeout_ms) +
                                 " ms");
  }
  const std::string output = ReadFile(log_path).substr(before.size());
  if (!WIFEXITED(*status) || WEXITSTATUS(*status) != 0) {
    return InternalError("'" + command + "' failed: '" + LastLine(output) + "'");
  }
  KVPOOL_ASSIGN_OR_RETURN(DdResult r, ParseDdSummary(output));
  r.command = command;
  return r;
}

}  // namespace kvpool::bench
