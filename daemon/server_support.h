// What kvpool's server mains share: the port file, address formatting, option checks and a
// periodic background task.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <mutex>
#include <string>
#include <thread>

#include "kvpool/status.h"

namespace kvpool::daemon {

/// Writes `port` to `path` via a temporary file and rename, so a reader never sees a partial
/// number. INTERNAL naming the file on failure.
Status WritePortFile(const std::string& path, int port);

/// `listen` ("host:0") with its port replaced by `port`.
std::string WithPort(const std::string& listen, int port);

/// INVALID_ARGUMENT unless `listen` is host:port.
Status ValidateListenAddress(const std::string& listen);
/// INVALID_ARGUMENT unless 4 KiB <= bytes < 2 GiB (gRPC's message size limit is an int).
Status ValidateMaxMessageBytes(uint64_t bytes);

/// Runs `tick` every `interval_ms` on its own thread until destroyed (the destructor wakes the
/// thread and joins it). Thread-safe to destroy from the owning thread.
class PeriodicTask {
 public:
  PeriodicTask(uint32_t interval_ms, std::function<void()> tick);
  ~PeriodicTask();
  PeriodicTask(const PeriodicTask&) = delete;
  PeriodicTask& operator=(const PeriodicTask&) = delete;

 private:
  std::mutex mu_;
  std::condition_variable cv_;
  bool stop_ = false;
  std::thread thread_;
};

}  // namespace kvpool::daemon
