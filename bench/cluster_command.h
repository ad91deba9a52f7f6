// `kvpool-bench cluster up|down|status`: a local kvpool cluster (one kvpool-scheduler, N
// kvpoold) on loopback that outlives the command, for trying kvpool by hand and for replays.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "kvpool/status.h"
#include "launch/local_cluster.h"

namespace kvpool::bench {

/// Waits until the scheduler at `scheduler_address` lists `nodes` live nodes whose event streams
/// are synced (so routes and lookups see their blocks). DEADLINE_EXCEEDED naming the nodes that
/// are missing; the scheduler's status when it cannot be reached.
Status WaitClusterReady(const std::string& scheduler_address, uint32_t nodes, int timeout_ms);

/// `up`: starts a detached cluster in options.work_dir, waits until it is ready, prints its
/// members (or JSON). `down`: stops the cluster recorded in `work_dir`. `status`: the recorded
/// members, whether each runs, and what the scheduler shows for each node.
Result<nlohmann::json> ClusterUp(const launch::LocalClusterOptions& options, bool quiet);
Result<nlohmann::json> ClusterDown(const std::string& work_dir, bool quiet);
Result<nlohmann::json> ClusterStatus(const std::string& work_dir, bool quiet);

/// The default work dir: $TMPDIR (or /tmp) + "/kvpool-cluster-" + user name.
std::string DefaultClusterDir();

}  // namespace kvpool::bench
