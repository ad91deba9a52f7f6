// libFuzzer target: the command-line and config-file parsers of kvpoold and kvpool-scheduler.
//
// Input: byte 0 picks the daemon (even: kvpoold, odd: kvpool-scheduler); the bytes up to the
// first NUL are a config file (TOML, read through --config); the rest are extra argv entries
// separated by NULs. Whatever the input, the parser must return (no exception, no crash): OK
// with options that pass Validate(), nullopt (--help / --version), or INVALID_ARGUMENT.
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <string>
#include <string_view>
#include <vector>

#include "daemon/kvpool_scheduler_options.h"
#include "daemon/kvpoold_options.h"
#include "fuzz_check.h"

namespace {

// One config file per fuzzing process, rewritten for every input.
const std::string& ConfigPath() {
  static const std::string path = [] {
    char name[] = "/tmp/kvpool-options-fuzz-XXXXXX";
    const int fd = mkstemp(name);
    KVPOOL_FUZZ_CHECK(fd >= 0);
    close(fd);
    return std::string(name);
  }();
  return path;
}

template <typename Result>
void CheckOutcome(const Result& parsed) {
  if (!parsed.ok()) {
    KVPOOL_FUZZ_CHECK(parsed.status().code() == kvpool::StatusCode::kInvalidArgument);
    KVPOOL_FUZZ_CHECK(!parsed.status().message().empty());
    return;
  }
  if (parsed->has_value()) KVPOOL_FUZZ_CHECK((*parsed)->Validate().ok());
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size == 0) return 0;
  const bool scheduler = (data[0] & 1) != 0;
  std::string_view rest(reinterpret_cast<const char*>(data) + 1, size - 1);
  const size_t nul = rest.find('\0');
  const std::string_view config = rest.substr(0, nul);

  FILE* file = std::fopen(ConfigPath().c_str(), "wb");
  KVPOOL_FUZZ_CHECK(file != nullptr);
  KVPOOL_FUZZ_CHECK(std::fwrite(config.data(), 1, config.size(), file) == config.size());
  std::fclose(file);

  std::vector<std::string> args = {scheduler ? "kvpool-scheduler" : "kvpoold", "--config",
                                   ConfigPath()};
  if (nul != std::string_view::npos) {
    std::string_view tail = rest.substr(nul + 1);
    while (!tail.empty()) {
      const size_t end = tail.find('\0');
      std::string arg(tail.substr(0, end));
      // A second --config could name any file (/dev/zero never ends): not the parser's fault.
      if (arg.find("config") == std::string::npos) args.push_back(std::move(arg));
      if (end == std::string_view::npos) break;
      tail.remove_prefix(end + 1);
    }
  }
  std::vector<const char*> argv;
  for (const std::string& a : args) argv.push_back(a.c_str());

  if (scheduler) {
    CheckOutcome(kvpool::daemon::ParseKvpoolSchedulerArgs(static_cast<int>(argv.size()),
                                                          argv.data()));
  } else {
    CheckOutcome(kvpool::daemon::ParseKvpooldArgs(static_cast<int>(argv.size()), argv.data()));
  }
  return 0;
}
