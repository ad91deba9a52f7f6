// Reusable threads for the data plane's blocking batches (node-driven pulls and pushes, staged
// device copies), so that a Put or Get stays asynchronous without starting a thread per call:
// starting and joining one cost ~30 us on the development VM, a tenth of a one-block Put over
// TCP.
#pragma once

#include <cstddef>
#include <deque>
#include <functional>
#include <future>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kvpool/status.h"

namespace kvpool::client_internal {

/// Runs each piece of work on an idle thread of its own, starting a new thread when none is
/// idle: as many batches run at once as are submitted, and threads are kept for the next ones.
/// A thread counts as idle again before its work's future becomes ready, so a caller that
/// waits for each piece before submitting the next never makes it start another thread.
/// Thread-safe. The destructor lets queued and running work finish, then joins every thread.
class AsyncRunner {
 public:
  AsyncRunner() = default;
  ~AsyncRunner();
  AsyncRunner(const AsyncRunner&) = delete;
  AsyncRunner& operator=(const AsyncRunner&) = delete;

  /// Queues `work`; the future becomes ready with its status once it ran.
  std::shared_future<Status> Run(std::function<Status()> work);
  /// Threads started so far, and of those the ones waiting for work (for tests).
  size_t threads() const;
  size_t idle_threads() const;

 private:
  struct Job {
    std::function<Status()> work;
    std::promise<Status> done;
  };
  void Loop();

  mutable absl::Mutex mu_;
  absl::CondVar work_ready_;
  std::deque<Job> queue_ ABSL_GUARDED_BY(mu_);
  size_t idle_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvpool::client_internal
