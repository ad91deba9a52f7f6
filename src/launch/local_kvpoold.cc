#include "launch/local_kvpoold.h"

#include <unistd.h>

#include "launch/loopback_daemon.h"

namespace kvpool::launch {

Result<std::unique_ptr<LocalKvpoold>> LocalKvpoold::Start(const LocalKvpooldOptions& options) {
  std::vector<std::string> argv = {options.binary,
                                   "--data-dir=" + options.work_dir + "/data",
                                   "--capacity=" + options.capacity,
                                   "--node-id=local-" + std::to_string(::getpid())};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  KVPOOL_ASSIGN_OR_RETURN(LoopbackDaemon started,
                          StartOnLoopback("kvpoold", std::move(argv), options.work_dir,
                                          options.start_timeout_ms));
  auto daemon = std::unique_ptr<LocalKvpoold>(new LocalKvpoold());
  daemon->process_ = std::move(started.process);
  daemon->port_ = started.port;
  daemon->address_ = std::move(started.address);
  daemon->log_path_ = std::move(started.log_path);
  return daemon;
}

}  // namespace kvpool::launch
