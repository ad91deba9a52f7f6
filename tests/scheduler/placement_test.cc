#include "scheduler/placement.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/clock.h"
#include "scheduler_test_util.h"

namespace kvpool::scheduler {
namespace {

using testing::Join;
using testing::Range;
using testing::Store;

constexpr uint64_t kBlockBytes = 1000;

struct Pool {
  Pool() : registry(RegistryOptions{1000, 1000}, &clock), placer(&registry, &index, &models) {
    NamespaceModel model;
    model.block_bytes = kBlockBytes;
    REQUIRE(models.Set("m", model).ok());
  }
  void AddNode(const std::string& id, uint64_t host_bytes, uint64_t disk_bytes = 0) {
    REQUIRE(registry.RegisterNode({id, id + ":1", "", TierBytes{0, host_bytes, disk_bytes}}).ok());
    Join(index, id);
  }
  Result<PlacementDecision> Place(uint64_t n_blocks, std::vector<std::string> allowed = {},
                                  Tier tier = Tier::kHost) {
    allowed_ = std::move(allowed);
    return placer.PlaceBlocks(PlacementRequest{"m", n_blocks, allowed_, tier});
  }

  ManualClock clock;
  Registry registry;
  GlobalIndex index;
  NamespaceModels models;
  Placer placer;
  std::vector<std::string> allowed_;
};

TEST_CASE("Placement: the node with the most free capacity takes new blocks", "[scheduler]") {
  Pool pool;
  pool.AddNode("a", 100 * kBlockBytes);
  pool.AddNode("b", 100 * kBlockBytes);
  pool.AddNode("c", 50 * kBlockBytes);
  // The index shows a holding 30 blocks (no usage reported yet).
  Store(pool.index, "a", 1, "m", Range(0, 30));
  Result<PlacementDecision> d = pool.Place(10);
  REQUIRE(d.ok());
  REQUIRE(d->node_id == "b");
  REQUIRE(d->free_bytes == 100 * kBlockBytes);
  REQUIRE(d->needed_bytes == 10 * kBlockBytes);
  REQUIRE_THAT(d->reason, Catch::Contains("3 live node(s)"));

  // A heartbeat's usage counts when it exceeds what the index shows.
  REQUIRE(pool.registry.NodeHeartbeat("b", TierBytes{0, 90 * kBlockBytes, 0}).ok());
  REQUIRE(pool.Place(10)->node_id == "a");
  REQUIRE(pool.placer.FreeBytes(*pool.registry.FindNode("a"), Tier::kHost) == 70 * kBlockBytes);
}

TEST_CASE("Placement: allowed nodes, tiers and liveness", "[scheduler]") {
  Pool pool;
  pool.AddNode("a", 100 * kBlockBytes, 10 * kBlockBytes);
  pool.AddNode("b", 10 * kBlockBytes, 500 * kBlockBytes);
  REQUIRE(pool.Place(5, {"b"})->node_id == "b");
  REQUIRE(pool.Place(5, {}, Tier::kDisk)->node_id == "b");
  REQUIRE(pool.Place(5, {"nope"}).status().code() == StatusCode::kNotFound);

  pool.clock.AdvanceMs(800);
  REQUIRE(pool.registry.NodeHeartbeat("b").ok());
  pool.clock.AdvanceMs(300);  // a is dead (not yet expired): never chosen.
  REQUIRE(pool.Place(5)->node_id == "b");
  REQUIRE(pool.Place(5, {"a"}).status().code() == StatusCode::kUnavailable);
}

TEST_CASE("Placement: refuses what no node can hold, and bad requests", "[scheduler]") {
  Pool pool;
  pool.AddNode("a", 10 * kBlockBytes);
  Result<PlacementDecision> full = pool.Place(11);
  REQUIRE(full.status().code() == StatusCode::kResourceExhausted);
  REQUIRE_THAT(full.status().message(), Catch::Contains("on node 'a'"));
  REQUIRE(pool.Place(0).status().code() == StatusCode::kInvalidArgument);
  REQUIRE(pool.Place(1, {}, Tier::kNone).status().code() == StatusCode::kInvalidArgument);
  REQUIRE(pool.Place(UINT64_MAX).status().code() == StatusCode::kInvalidArgument);
  REQUIRE(pool.placer.PlaceBlocks(PlacementRequest{"", 1, {}, Tier::kHost}).status().code() ==
          StatusCode::kInvalidArgument);
  Pool empty;
  REQUIRE(empty.Place(1).status().code() == StatusCode::kUnavailable);
}

}  // namespace
}  // namespace kvpool::scheduler
