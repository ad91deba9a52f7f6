#include "client/lib/async_runner.h"

#include <optional>
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
  Job job{std::move(work), {}};
  std::shared_future<Status> done = job.done.get_future().share();
  absl::MutexLock lock(&mu_);
  queue_.push_back(std::move(job));
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
  std::optional<std::promise<Status>> finished;  // the last job's, answered once idle again
  Status result;
  for (;;) {
    Job job;
    {
      absl::MutexLock lock(&mu_);
      ++idle_;
      // Idle again before the caller sees the result (see the class comment): otherwise, under
      // load, a thread could still be between its work and its wait when the next Run looks.
      if (finished.has_value()) {
        finished->set_value(std::move(result));
        finished.reset();
      }
      while (queue_.empty() && !stopping_) work_ready_.Wait(&mu_);
      --idle_;
      if (queue_.empty()) return;  // stopping, and nothing left to run
      job = std::move(queue_.front());
      queue_.pop_front();
    }
    result = job.work();
    finished.emplace(std::move(job.done));
  }
}

}  // namespace kvpool::client_internal
