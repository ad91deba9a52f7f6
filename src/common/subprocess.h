// Child processes for launchers, benchmarks and integration tests.
#pragma once

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "kvpool/status.h"

namespace kvpool {

/// A child process started with fork/exec. The destructor sends SIGTERM, waits up to 5 s, then
/// SIGKILLs, so a child never outlives its owner's scope (also when a test fails).
/// Not thread-safe.
class Subprocess {
 public:
  /// Starts `argv[0]` (a path) with `argv`. stdout/stderr go to `log_path` when given (appended),
  /// else are inherited. With `die_with_parent` (the default) the child gets
  /// PR_SET_PDEATHSIG(SIGKILL), so it dies with its parent; without it the child starts its own
  /// session and outlives this process (local clusters started by `kvpool-bench cluster up`;
  /// call Detach before destruction).
  static Result<std::unique_ptr<Subprocess>> Start(const std::vector<std::string>& argv,
                                                   const std::string& log_path = "",
                                                   bool die_with_parent = true);
  ~Subprocess();
  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  /// Forgets the child: destruction then neither signals nor waits for it.
  void Detach() { reaped_ = true; }
  /// True while the child has not exited.
  bool Running();
  /// Sends `signal_number` (e.g. SIGTERM or SIGKILL).
  void Signal(int signal_number);
  /// Waits up to `timeout_ms` for the child to exit. Returns its exit status as from waitpid
  /// (use WIFEXITED/WEXITSTATUS), or DEADLINE_EXCEEDED.
  Result<int> Wait(int timeout_ms);

 private:
  explicit Subprocess(pid_t pid) : pid_(pid) {}
  pid_t pid_;
  bool reaped_ = false;
  int wait_status_ = 0;
};

/// Polls `path` until it holds a whole line with a positive integer (a port written by
/// kvpoold --port-file) or `timeout_ms` passes. `child`, if given, is checked for an early exit.
Result<int> WaitForPortFile(const std::string& path, int timeout_ms, Subprocess* child = nullptr);

}  // namespace kvpool
