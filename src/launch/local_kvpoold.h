// Starting a kvpoold on loopback for benchmarks, tests and local clusters.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "kvpool/status.h"

namespace kvpool::launch {

struct LocalKvpooldOptions {
  /// Path of the kvpoold binary. Required.
  std::string binary;
  /// Working directory for the port file, log and data dir; created if missing. Required.
  std::string work_dir;
  /// Pool capacity flag value. Default: "256MiB".
  std::string capacity = "256MiB";
  /// Extra flags passed through verbatim (e.g. "--lease-ttl-ms=500").
  std::vector<std::string> extra_args;
  /// How long to wait for the port file, in ms. Default: 15000.
  int start_timeout_ms = 15'000;
};

/// A kvpoold child process listening on 127.0.0.1 with a port the kernel picked. Stopped with
/// SIGTERM (then SIGKILL) when destroyed. Not thread-safe.
class LocalKvpoold {
 public:
  /// Starts the daemon and waits for its port file. UNAVAILABLE (with the log's path) if it
  /// exits early; DEADLINE_EXCEEDED if it does not come up in time.
  static Result<std::unique_ptr<LocalKvpoold>> Start(const LocalKvpooldOptions& options);

  const std::string& address() const { return address_; }
  int port() const { return port_; }
  const std::string& log_path() const { return log_path_; }
  Subprocess& process() { return *process_; }

 private:
  LocalKvpoold() = default;
  std::unique_ptr<Subprocess> process_;
  std::string address_;
  std::string log_path_;
  int port_ = 0;
};

}  // namespace kvpool::launch
