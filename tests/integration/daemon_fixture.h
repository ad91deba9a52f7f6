// Shared helpers of the integration tests: temporary directories, a kvpoold per test with a
// connected Client, child processes with captured output, and assertions on kvpool::Status.
//
// Everything here is RAII: a failing REQUIRE unwinds through the destructors, which stop the
// daemon (SIGTERM, then SIGKILL), kill leftover children and remove the temporary directory.
#pragma once

#include <sys/types.h>

#include <catch2/catch.hpp>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <ostream>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvpool/client.h"
#include "kvpool/scheduler_client.h"
#include "kvpool/status.h"
#include "kvpool/types.h"
#include "launch/local_kvpoold.h"

namespace kvpool::itest {

/// Paths of the binaries under test (set by CMake).
inline constexpr const char* kKvpooldPath = KVPOOLD_PATH;
inline constexpr const char* kKvpoolctlPath = KVPOOLCTL_PATH;
inline constexpr const char* kSchedulerPath = KVPOOL_SCHEDULER_PATH;

/// A fresh directory under $TMPDIR (default /tmp), removed with its contents when destroyed.
/// Not thread-safe.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  /// `path() + "/" + name`.
  std::string File(std::string_view name) const;

 private:
  std::string path_;
};

/// Reads a whole file; empty if it cannot be read.
std::string ReadFile(const std::string& path);
/// Writes `text` to `path` (truncating); REQUIREs success.
void WriteFile(const std::string& path, std::string_view text);

/// How a test daemon is started.
struct DaemonConfig {
  /// --capacity. Default: 64 MiB (small: the tests fill it on purpose).
  std::string capacity = "64MiB";
  /// Extra kvpoold flags, e.g. "--lease-ttl-ms=300".
  std::vector<std::string> extra_args;
};

/// A kvpoold on 127.0.0.1 (port 0) in its own temporary directory, and a Client connected to it.
/// Construction REQUIREs that both work. Destruction drops the client, stops the daemon (if it
/// still runs) and removes the directory. Not thread-safe.
class TestDaemon {
 public:
  explicit TestDaemon(DaemonConfig config = {});
  ~TestDaemon();
  TestDaemon(const TestDaemon&) = delete;
  TestDaemon& operator=(const TestDaemon&) = delete;

  Client& client() { return *client_; }
  launch::LocalKvpoold& daemon() { return *daemon_; }
  const std::string& address() const { return daemon_->address(); }
  const TempDir& dir() const { return dir_; }
  /// The daemon's log (stdout and stderr) so far.
  std::string Log() const { return ReadFile(daemon_->log_path()); }
  /// A second, independent connection to the daemon.
  std::unique_ptr<Client> Connect(const ClientOptions& options = {}) const;
  /// Drops the test's own client (e.g. before stopping the daemon).
  void DropClient() { client_.reset(); }

 private:
  TempDir dir_;  // first member: removed last
  std::unique_ptr<launch::LocalKvpoold> daemon_;
  std::unique_ptr<Client> client_;
};

/// A child process started with posix_spawn (safe in a process that already runs gRPC threads),
/// stdout and stderr redirected to files. Killed with SIGKILL and reaped when destroyed if it
/// still runs. Not thread-safe.
class ChildProcess {
 public:
  /// Starts argv[0] (a path). `extra_env` entries ("NAME=value") are added to this process's
  /// environment. REQUIREs that the spawn succeeds.
  ChildProcess(const std::vector<std::string>& argv, const std::string& stdout_path,
               const std::string& stderr_path, const std::vector<std::string>& extra_env = {});
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  /// Waits up to `timeout_ms`; the waitpid status, or nullopt if it still runs.
  std::optional<int> Wait(int timeout_ms);
  void Kill(int signal_number);

 private:
  pid_t pid_ = -1;
  bool reaped_ = false;
  int status_ = 0;
};

/// The scheduler's --heartbeat-timeout-ms in tests: short, so that a dead node leaves the index
/// quickly (test nodes heartbeat every 200 ms, NodeConfig).
inline constexpr int kHeartbeatTimeoutMs = 1500;

/// A kvpool-scheduler child process on 127.0.0.1 writing its files into `dir` under `tag`.
/// `port` 0 picks a free one; a restart passes the previous port so that the nodes find it
/// again. Construction REQUIREs that it comes up and a SchedulerClient connects. Not
/// thread-safe.
class TestScheduler {
 public:
  TestScheduler(const TempDir& dir, int port, const std::string& tag);
  ~TestScheduler();
  TestScheduler(const TestScheduler&) = delete;
  TestScheduler& operator=(const TestScheduler&) = delete;

  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }
  int port() const { return port_; }
  SchedulerClient& client() { return *client_; }
  std::string Log() const { return ReadFile(log_path_); }
  /// SIGKILLs the scheduler and waits for it.
  void Kill();

 private:
  std::unique_ptr<ChildProcess> child_;
  std::unique_ptr<SchedulerClient> client_;
  std::string log_path_;
  int port_ = 0;
};

/// Flags of a kvpoold that registers with `scheduler` as `node_id` and heartbeats every 200 ms.
DaemonConfig NodeConfig(const std::string& scheduler, const std::string& node_id);

/// A loopback port that is bound but not listening: connecting to it is refused at once, and no
/// other process can take it while this object lives. Not thread-safe.
class RefusingPort {
 public:
  RefusingPort();
  ~RefusingPort();
  RefusingPort(const RefusingPort&) = delete;
  RefusingPort& operator=(const RefusingPort&) = delete;
  /// "127.0.0.1:PORT".
  std::string address() const { return "127.0.0.1:" + std::to_string(port_); }

 private:
  int fd_ = -1;
  int port_ = 0;
};

/// Outcome of a finished command.
struct CommandResult {
  /// Exit code, or -1 when killed by a signal or by the timeout.
  int exit_code = -1;
  bool timed_out = false;
  std::string out;
  std::string err;
  double wall_ms = 0;
};

/// Runs a command to completion (SIGKILL after `timeout_ms`), capturing stdout and stderr.
CommandResult RunCommand(const std::vector<std::string>& argv, int timeout_ms = 20'000);

/// Runs kvpoolctl with `args`, after `-a address --timeout-ms 5000`.
CommandResult RunKvpoolctl(const std::string& address, const std::vector<std::string>& args);

/// Polls `done` every few ms until it returns true or `timeout_ms` passes; returns its last value.
bool PollUntil(int timeout_ms, const std::function<bool()>& done);

/// A loopback TCP port that was free a moment ago (for a daemon's --metrics-listen).
int FreePort();

/// All samples of one scrape of a /metrics endpoint (`kvpoolctl metrics --target TARGET
/// --json`), as (name, labels) -> value. REQUIREs that the scrape works.
using MetricSamples =
    std::map<std::pair<std::string, std::map<std::string, std::string>>, double>;
MetricSamples Scrape(const std::string& target);
/// The value of one sample, or -1 when the scrape has none of that name and labels.
double Value(const MetricSamples& samples, const std::string& name,
             const std::map<std::string, std::string>& labels = {});

/// `n` pseudo-random bytes, deterministic in `seed` (KV contents for byte-exact checks).
std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed);
/// `n` token ids, deterministic in `seed`; different seeds give different prompts.
std::vector<uint32_t> MakeTokens(size_t n, uint32_t seed);
/// `a` followed by `b`.
std::vector<uint32_t> Concat(std::vector<uint32_t> a, const std::vector<uint32_t>& b);
/// The first `n` elements of `v`.
std::vector<uint32_t> Head(const std::vector<uint32_t>& v, size_t n);
/// Handles of an allocation's blocks.
std::vector<BlockHandle> HandlesOf(const Allocation& alloc);
std::vector<BlockHandle> HandlesOf(const std::vector<BlockLocation>& blocks);

/// What a namespace holds, and the node's leases: compared before and after a bad request to
/// show that the request changed nothing.
struct Usage {
  uint64_t node_used_bytes = 0;
  uint64_t active_leases = 0;
  uint64_t allocated_blocks = 0;
  uint64_t cached_blocks = 0;
  uint64_t pinned_blocks = 0;
  uint64_t used_bytes = 0;

  friend bool operator==(const Usage&, const Usage&) = default;
};
std::ostream& operator<<(std::ostream& os, const Usage& u);

/// The NamespaceInfo of `ns` from GetStats; REQUIREs that it is there.
NamespaceInfo NamespaceFromStats(Client& client, std::string_view ns);
/// Usage of `ns` (empty: only node-wide fields) from GetStats.
Usage UsageOf(Client& client, std::string_view ns);

/// The value of `result`, after REQUIRE-ing that it is OK (the message names `what`).
template <typename T>
T ValueOf(Result<T> result, const char* what, const char* file, int line) {
  if (!result.ok()) {
    FAIL_CHECK(file << ":" << line << ": " << what << " failed: " << result.status().ToString());
    REQUIRE(result.ok());
  }
  return std::move(result).value();
}

}  // namespace kvpool::itest

namespace Catch {
template <>
struct StringMaker<kvpool::Status> {
  static std::string convert(const kvpool::Status& s) { return s.ToString(); }
};
template <>
struct StringMaker<kvpool::StatusCode> {
  static std::string convert(kvpool::StatusCode c) {
    return std::string(kvpool::StatusCodeName(c));
  }
};
}  // namespace Catch

/// The value of a Result-returning expression; fails the test (with the status) if it is an error.
#define KVPOOL_IT_VALUE(expr) ::kvpool::itest::ValueOf((expr), #expr, __FILE__, __LINE__)

/// REQUIREs that a Status- or Result-returning expression is OK, printing the status otherwise.
#define KVPOOL_IT_REQUIRE_OK(expr)                                                   \
  do {                                                                               \
    const ::kvpool::Status kvpool_it_status_ = ::kvpool::internal::AsStatus((expr)); \
    INFO(#expr << " -> " << kvpool_it_status_.ToString());                           \
    REQUIRE(kvpool_it_status_.ok());                                                 \
  } while (false)

/// CHECKs that a Status- or Result-returning expression fails with `expected_code` and that the
/// message contains `substring` (may be "").
#define KVPOOL_IT_CHECK_ERROR(expr, expected_code, substring)                        \
  do {                                                                               \
    const ::kvpool::Status kvpool_it_status_ = ::kvpool::internal::AsStatus((expr)); \
    INFO(#expr << " -> " << kvpool_it_status_.ToString());                           \
    CHECK(kvpool_it_status_.code() == (expected_code));                              \
    CHECK_THAT(kvpool_it_status_.message(), Catch::Contains(substring));             \
  } while (false)
