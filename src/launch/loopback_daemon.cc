#include "launch/loopback_daemon.h"

#include <filesystem>

namespace kvpool::launch {

Result<LoopbackDaemon> StartOnLoopback(const std::string& name, std::vector<std::string> argv,
                                       const std::string& work_dir, int timeout_ms,
                                       bool die_with_parent) {
  if (argv.empty() || argv.front().empty() || work_dir.empty()) {
    return InvalidArgumentError("starting " + name + " needs a binary and a work_dir");
  }
  std::error_code ec;
  std::filesystem::create_directories(work_dir, ec);
  if (ec) return InternalError("cannot create '" + work_dir + "': " + ec.message());
  const std::string port_file = work_dir + "/" + name + ".port";
  std::filesystem::remove(port_file, ec);

  LoopbackDaemon d;
  d.log_path = work_dir + "/" + name + ".log";
  argv.push_back("--listen=127.0.0.1:0");
  argv.push_back("--port-file=" + port_file);
  KVPOOL_ASSIGN_OR_RETURN(d.process, Subprocess::Start(argv, d.log_path, die_with_parent));
  Result<int> port = WaitForPortFile(port_file, timeout_ms, d.process.get());
  if (!port.ok()) {
    return port.status().WithContext(name + " did not start (log: " + d.log_path + ")");
  }
  d.port = *port;
  d.address = "127.0.0.1:" + std::to_string(*port);
  return d;
}

}  // namespace kvpool::launch
