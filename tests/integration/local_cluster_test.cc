// launch::LocalCluster: a real kvpool-scheduler and kvpoold nodes on loopback, started, shown
// and stopped, attached to the test process or detached from it (kvpool-bench cluster up/down).
#include <filesystem>
#include <memory>
#include <string>

#include "launch/local_cluster.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

launch::LocalClusterOptions ClusterOptions(const TempDir& dir, bool detach) {
  launch::LocalClusterOptions o;
  o.kvpoold_binary = kKvpooldPath;
  o.scheduler_binary = kSchedulerPath;
  o.work_dir = dir.File("cluster");
  o.nodes = 2;
  o.node_capacity = "32MiB";
  o.detach = detach;
  return o;
}

// Polls until the scheduler lists `n` live, synced nodes.
void RequireReady(const std::string& scheduler, size_t n) {
  auto sched = KVPOOL_IT_VALUE(SchedulerClient::Connect(scheduler));
  const bool ready = PollUntil(15'000, [&] {
    Result<std::vector<PoolNode>> nodes = sched->ListNodes();
    if (!nodes.ok()) return false;
    size_t synced = 0;
    for (const PoolNode& node : *nodes) synced += node.alive && node.synced ? 1 : 0;
    return synced == n;
  });
  REQUIRE(ready);
}

TEST_CASE("LocalCluster: starts a scheduler and nodes that register, and stops them all",
          "[cluster]") {
  TempDir dir;
  launch::ClusterState state;
  {
    auto cluster = KVPOOL_IT_VALUE(launch::LocalCluster::Start(ClusterOptions(dir, false)));
    state = cluster->state();
    REQUIRE(state.nodes.size() == 2);
    CHECK(state.nodes[1].id == "node-1");
    RequireReady(cluster->scheduler_address(), 2);
    // The state file names every member, and each one runs.
    const launch::ClusterState recorded = KVPOOL_IT_VALUE(launch::ReadClusterState(state.work_dir));
    CHECK(recorded.scheduler.address == state.scheduler.address);
    REQUIRE(recorded.nodes.size() == 2);
    CHECK(recorded.nodes[0].pid == state.nodes[0].pid);
    CHECK(launch::MemberRunning(recorded.scheduler));
    CHECK(launch::MemberRunning(recorded.nodes[1]));
    // A second cluster in the same directory is refused while this one runs.
    KVPOOL_IT_CHECK_ERROR(launch::LocalCluster::Start(ClusterOptions(dir, false)),
                          StatusCode::kFailedPrecondition, "already runs");
  }
  // Destroyed: every process is gone and the state file removed.
  CHECK_FALSE(launch::MemberRunning(state.scheduler));
  CHECK_FALSE(launch::MemberRunning(state.nodes[0]));
  CHECK_FALSE(launch::MemberRunning(state.nodes[1]));
  CHECK(launch::ReadClusterState(state.work_dir).status().code() == StatusCode::kNotFound);
}

TEST_CASE("LocalCluster: a detached cluster outlives its launcher until StopCluster",
          "[cluster]") {
  TempDir dir;
  launch::ClusterState state;
  {
    auto cluster = KVPOOL_IT_VALUE(launch::LocalCluster::Start(ClusterOptions(dir, true)));
    state = cluster->state();
    RequireReady(cluster->scheduler_address(), 2);
  }
  CHECK(launch::MemberRunning(state.scheduler));
  CHECK(launch::MemberRunning(state.nodes[0]));
  auto client = KVPOOL_IT_VALUE(Client::Connect(state.nodes[0].address));
  CHECK(KVPOOL_IT_VALUE(client->Health()));
  client.reset();
  CHECK(KVPOOL_IT_VALUE(launch::StopCluster(state.work_dir)) == 3);
  CHECK_FALSE(launch::MemberRunning(state.scheduler));
  CHECK_FALSE(launch::MemberRunning(state.nodes[1]));
  CHECK(launch::StopCluster(state.work_dir).status().code() == StatusCode::kNotFound);
  // Bad options are named.
  launch::LocalClusterOptions bad = ClusterOptions(dir, false);
  bad.nodes = 0;
  KVPOOL_IT_CHECK_ERROR(launch::LocalCluster::Start(bad), StatusCode::kInvalidArgument,
                        "at least one node");
}

}  // namespace
}  // namespace kvpool::itest
