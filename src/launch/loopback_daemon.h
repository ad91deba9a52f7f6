// The part every local daemon launcher shares: start a kvpool server binary on 127.0.0.1 with
// a kernel-chosen port and wait until it reports that port.
#pragma once

#include <memory>
#include <string>
#include <vector>

#include "common/subprocess.h"
#include "kvpool/status.h"

namespace kvpool::launch {

/// A started server: its process (stopped with SIGTERM, then SIGKILL, when destroyed), port and
/// log file.
struct LoopbackDaemon {
  std::unique_ptr<Subprocess> process;
  int port = 0;
  std::string address;
  std::string log_path;
};

/// Creates `work_dir`, runs `argv` plus `--listen=127.0.0.1:0 --port-file=<work_dir>/<name>.port`
/// with stdout/stderr appended to `<work_dir>/<name>.log`, and waits up to `timeout_ms` for the
/// port. UNAVAILABLE (naming the log) if the process exits first; DEADLINE_EXCEEDED if it is slow.
/// `die_with_parent`: see Subprocess::Start.
Result<LoopbackDaemon> StartOnLoopback(const std::string& name, std::vector<std::string> argv,
                                       const std::string& work_dir, int timeout_ms,
                                       bool die_with_parent = true);

}  // namespace kvpool::launch
