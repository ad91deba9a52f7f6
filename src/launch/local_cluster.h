// A whole kvpool cluster on loopback: one kvpool-scheduler and N kvpoold nodes, each with its own
// port, data dir and log, for benchmarks, trace replays, tests and the README's main job.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "kvpool/status.h"
#include "launch/loopback_daemon.h"

namespace kvpool::launch {

struct LocalClusterOptions {
  /// Paths of the binaries. Required.
  std::string kvpoold_binary;
  std::string scheduler_binary;
  /// Directory for logs, data dirs and the state file (created if missing). Required.
  std::string work_dir;
  /// kvpoold nodes, named node-0, node-1, ... Must be >= 1. Default: 4.
  uint32_t nodes = 4;
  /// Pool capacity of each node (kvpoold --capacity). Default: "256MiB".
  std::string node_capacity = "256MiB";
  /// kvpoold --ucx-tls ("" : UCX's choice). Default: "".
  std::string ucx_tls;
  /// Node heartbeat interval (kvpoold --scheduler-heartbeat-ms), in ms. Default: 200.
  uint32_t heartbeat_ms = 200;
  /// Extra flags for every kvpoold / for the scheduler. Default: none.
  std::vector<std::string> kvpoold_args;
  std::vector<std::string> scheduler_args;
  /// True: the processes outlive this one (kvpool-bench cluster up) and are stopped with
  /// StopCluster; false: they die with this process, even if it crashes. Default: false.
  bool detach = false;
  /// How long each process may take to report its port, in ms. Default: 20000.
  int start_timeout_ms = 20'000;
};

/// One process of a cluster.
struct ClusterMember {
  std::string id;        ///< "scheduler" or the node id
  std::string binary;    ///< the executable it runs
  std::string address;   ///< 127.0.0.1:PORT
  int pid = 0;
  std::string log_path;
};

/// What `<work_dir>/cluster.json` records: enough to find, show and stop a cluster later.
struct ClusterState {
  std::string work_dir;
  ClusterMember scheduler;
  std::vector<ClusterMember> nodes;
};

/// The state file of a cluster started in `work_dir`. NOT_FOUND when there is none;
/// DATA_LOSS when it cannot be parsed.
Result<ClusterState> ReadClusterState(const std::string& work_dir);

/// True while `member`'s pid runs the binary recorded for it (a reused pid does not count).
bool MemberRunning(const ClusterMember& member);

/// Stops the cluster recorded in `work_dir` (nodes first, so they deregister, then the
/// scheduler): SIGTERM, then SIGKILL after `timeout_ms`; removes the state file. Returns how
/// many processes were still running. NOT_FOUND when there is no state file.
Result<size_t> StopCluster(const std::string& work_dir, int timeout_ms = 5000);

/// A running cluster. Started processes are recorded in the state file as they come up, so
/// StopCluster can clean up even after the launcher died half-way. Not thread-safe.
class LocalCluster {
 public:
  /// Starts the scheduler, then the nodes (each registering with it), and waits for each
  /// process's port. That a node has registered and synced is for the caller to wait for
  /// (SchedulerClient::ListNodes): launch knows no gRPC. INVALID_ARGUMENT for bad options;
  /// FAILED_PRECONDITION when `work_dir` holds a cluster that still runs; the start errors of
  /// StartOnLoopback (naming the log) otherwise, after stopping what was started.
  static Result<std::unique_ptr<LocalCluster>> Start(const LocalClusterOptions& options);
  /// Stops every process (SIGTERM, nodes first), unless the cluster is detached.
  ~LocalCluster();
  LocalCluster(const LocalCluster&) = delete;
  LocalCluster& operator=(const LocalCluster&) = delete;

  const ClusterState& state() const { return state_; }
  const std::string& scheduler_address() const { return state_.scheduler.address; }
  /// SIGKILLs node `index` (fault tests); it stays in the state as not running.
  Status KillNode(size_t index);

 private:
  LocalCluster() = default;
  Status WriteState() const;

  LocalClusterOptions options_;
  ClusterState state_;
  std::unique_ptr<Subprocess> scheduler_;
  std::vector<std::unique_ptr<Subprocess>> nodes_;
  bool detached_ = false;
};

}  // namespace kvpool::launch
