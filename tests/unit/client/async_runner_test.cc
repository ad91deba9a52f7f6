#include "client/lib/async_runner.h"

#include <atomic>
#include <catch2/catch.hpp>
#include <chrono>
#include <vector>

#include "absl/synchronization/notification.h"

namespace kvpool::client_internal {
namespace {

TEST_CASE("AsyncRunner: work runs concurrently, threads are reused, statuses come back",
          "[client]") {
  AsyncRunner runner;
  // Three pieces of work that can only finish together: each needs a thread of its own.
  absl::Notification release;
  std::atomic<int> started{0};
  std::vector<std::shared_future<Status>> blocked;
  for (int i = 0; i < 3; ++i) {
    blocked.push_back(runner.Run([&] {
      ++started;
      release.WaitForNotification();
      return Status::Ok();
    }));
  }
  while (started.load() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  CHECK(runner.threads() == 3);
  release.Notify();
  for (auto& f : blocked) CHECK(f.get().ok());
  while (runner.idle_threads() < 3) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  // One at a time afterwards: the idle threads take it, no new one starts.
  for (int i = 0; i < 20; ++i) {
    const Status st =
        runner.Run([i] { return i % 2 == 0 ? Status::Ok() : NotFoundError("odd"); }).get();
    CHECK(st.code() == (i % 2 == 0 ? StatusCode::kOk : StatusCode::kNotFound));
  }
  CHECK(runner.threads() == 3);
}

TEST_CASE("AsyncRunner: the destructor lets queued work finish", "[client]") {
  std::atomic<int> ran{0};
  std::vector<std::shared_future<Status>> futures;
  {
    AsyncRunner runner;
    for (int i = 0; i < 8; ++i) {
      futures.push_back(runner.Run([&] {
        std::this_thread::sleep_for(std::chrono::milliseconds(2));
        ++ran;
        return Status::Ok();
      }));
    }
  }
  CHECK(ran.load() == 8);
  for (auto& f : futures) CHECK(f.get().ok());
}

}  // namespace
}  // namespace kvpool::client_internal
