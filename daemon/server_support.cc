#include "daemon/server_support.h"

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <fstream>

namespace kvpool::daemon {

Status WritePortFile(const std::string& path, int port) {
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp, std::ios::trunc);
    out << port << '\n';
    if (!out) return InternalError("cannot write port-file '" + tmp + "'");
  }
  if (std::rename(tmp.c_str(), path.c_str()) != 0) {
    return InternalError("cannot rename '" + tmp + "' to '" + path + "': " + std::strerror(errno));
  }
  return Status::Ok();
}

std::string WithPort(const std::string& listen, int port) {
  return listen.substr(0, listen.rfind(':') + 1) + std::to_string(port);
}

Status ValidateListenAddress(const std::string& listen) {
  const auto colon = listen.rfind(':');
  if (listen.empty() || colon == std::string::npos || colon + 1 == listen.size()) {
    return InvalidArgumentError("listen must be host:port, got '" + listen + "'");
  }
  return Status::Ok();
}

Status ValidateMaxMessageBytes(uint64_t bytes) {
  if (bytes < 4096 || bytes > (1ull << 31) - 1) {
    return InvalidArgumentError("max-message must be in 4 KiB..2 GiB, got " + std::to_string(bytes));
  }
  return Status::Ok();
}

PeriodicTask::PeriodicTask(uint32_t interval_ms, std::function<void()> tick)
    : thread_([this, interval_ms, tick = std::move(tick)] {
        std::unique_lock<std::mutex> lock(mu_);
        while (!cv_.wait_for(lock, std::chrono::milliseconds(interval_ms),
                             [this] { return stop_; })) {
          lock.unlock();
          tick();
          lock.lock();
        }
      }) {}

PeriodicTask::~PeriodicTask() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

}  // namespace kvpool::daemon
