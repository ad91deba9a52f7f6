#include "launch/local_kvpoold.h"

#include <unistd.h>

#include <filesystem>

namespace kvpool::launch {

Result<std::unique_ptr<LocalKvpoold>> LocalKvpoold::Start(const LocalKvpooldOptions& options) {
  if (options.binary.empty() || options.work_dir.empty()) {
    return InvalidArgumentError("LocalKvpoold needs a binary and a work_dir");
  }
  std::error_code ec;
  std::filesystem::create_directories(options.work_dir, ec);
  if (ec) return InternalError("cannot create '" + options.work_dir + "': " + ec.message());
  const std::string port_file = options.work_dir + "/kvpoold.port";
  std::filesystem::remove(port_file, ec);

  auto daemon = std::unique_ptr<LocalKvpoold>(new LocalKvpoold());
  daemon->log_path_ = options.work_dir + "/kvpoold.log";
  std::vector<std::string> argv = {options.binary,
                                   "--listen=127.0.0.1:0",
                                   "--port-file=" + port_file,
                                   "--data-dir=" + options.work_dir + "/data",
                                   "--capacity=" + options.capacity,
                                   "--node-id=local-" + std::to_string(::getpid())};
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  KVPOOL_ASSIGN_OR_RETURN(daemon->process_, Subprocess::Start(argv, daemon->log_path_));
  Result<int> port = WaitForPortFile(port_file, options.start_timeout_ms, daemon->process_.get());
  if (!port.ok()) return port.status().WithContext("kvpoold did not start (log: " + daemon->log_path_ + ")");
  daemon->port_ = *port;
  daemon->address_ = "127.0.0.1:" + std::to_string(*port);
  return daemon;
}

}  // namespace kvpool::launch
