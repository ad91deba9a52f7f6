#include "client/lib/async_runner.h"

#include <utility>

namespace kvpool::client_internal {

AsyncRunner::~AsyncRunner() {
  std::vector<std::thread> threads;
  {
    absl::MutexLock lock(&mu_);
    stopping_ = true;
    work_ready_.SignalAll();
    threads.swap(threads_);
  }
  for (std::thread& t : threads) t.join();
}

std::shared_future<Status> AsyncRunner::Run(std::function<Status()> work) {
  std::packaged_task<Status()> task(std::move(work));
  std::shared_future<Status> done = task.get_future().share();
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
  // Every queued task gets a thread: an idle one, or a new one.
  if (queue_.size() > idle_) {
    threads_.emplace_back([this] { Loop(); });
  } else {
    work_ready_.Signal();
  }
  return done;
}

size_t AsyncRunner::threads() const {
  absl::MutexLock lock(&mu_);
  return threads_.size();
}

size_t AsyncRunner::idle_threads() const {
  absl::MutexLock lock(&mu_);
  return idle_;
}

void AsyncRunner::Loop() {
  for (;;) {
    std::packaged_task<Status()> task;
    {
      absl::MutexLock lock(&mu_);
      ++idle_;
      while (queue_.empty() && !stopping_) work_ready_.Wait(&mu_);
      --idle_;
      if (queue_.empty()) return;  // stopping, and nothing left to run
      task = std::move(queue_.front());
      queue_.pop_front();
    }
    task();
  }
}

}  // namespace kvpool::client_internal
