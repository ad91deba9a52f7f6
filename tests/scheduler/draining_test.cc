// Draining nodes (kvpoolctl drain): the registry's flag, Place skipping them, Route skipping the
// instances on them.
#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "common/clock.h"
#include "scheduler/placement.h"
#include "scheduler/registry.h"
#include "scheduler/router.h"
#include "scheduler_test_util.h"

namespace kvpool::scheduler {
namespace {

using testing::Join;
using testing::Range;

struct DrainCluster {
  DrainCluster()
      : registry(RegistryOptions{1000, 1000}, &clock),
        router(RouterOptions{}, &index, &registry, &models),
        placer(&registry, &index, &models) {
    for (const std::string node : {"a", "b"}) {
      REQUIRE(registry.RegisterNode({node, node + ":1", "", TierBytes{0, 1ull << 40, 0}}).ok());
      Join(index, node);
      REQUIRE(registry.RegisterInstance({"i-" + node, InstanceRole::kColocated, node, 0}).ok());
    }
  }
  Result<RouteResult> Route(std::vector<std::string> candidates = {}) {
    candidates_ = std::move(candidates);
    hashes_ = Range(0, 4);
    RouteRequest request;
    request.ns = "m";
    request.hashes = hashes_;
    request.candidates = candidates_;
    return router.Route(request);
  }
  Result<PlacementDecision> Place(std::vector<std::string> allowed = {}) {
    allowed_ = std::move(allowed);
    return placer.PlaceBlocks(PlacementRequest{"m", 1, allowed_, Tier::kHost});
  }

  ManualClock clock;
  GlobalIndex index;
  Registry registry;
  NamespaceModels models;
  Router router;
  Placer placer;
  std::vector<std::string> candidates_, allowed_;
  std::vector<BlockHash> hashes_;
};

TEST_CASE("Registry: draining comes with registrations and heartbeats and is counted",
          "[scheduler]") {
  ManualClock clock;
  Registry registry(RegistryOptions{1000, 1000}, &clock);
  NodeRegistration reg{"a", "a:1", "", {}};
  reg.draining = true;
  REQUIRE(registry.RegisterNode(reg).ok());
  REQUIRE(registry.RegisterNode({"b", "b:1", "", {}}).ok());
  CHECK(registry.draining_nodes() == 1);
  CHECK(registry.IsDraining("a"));
  CHECK_FALSE(registry.IsDraining("b"));
  CHECK_FALSE(registry.IsDraining("unknown"));
  // Set twice counts once; a re-registration without the flag clears it.
  REQUIRE(registry.SetNodeDraining("b", true).ok());
  REQUIRE(registry.SetNodeDraining("b", true).ok());
  CHECK(registry.draining_nodes() == 2);
  REQUIRE(registry.RegisterNode({"b", "b:1", "", {}}).ok());
  CHECK(registry.draining_nodes() == 1);
  CHECK(registry.SetNodeDraining("c", true).code() == StatusCode::kNotFound);
  // Leaving, or dying, uncounts.
  REQUIRE(registry.RemoveNode("a").ok());
  CHECK(registry.draining_nodes() == 0);
  REQUIRE(registry.SetNodeDraining("b", true).ok());
  clock.AdvanceMs(2000);
  CHECK(registry.ExpireDead().nodes.size() == 1);
  CHECK(registry.draining_nodes() == 0);
}

TEST_CASE("Placement and Route skip a draining node until it stops draining", "[scheduler]") {
  DrainCluster c;
  REQUIRE(c.Route().ok());
  CHECK(c.Route()->ranked.size() == 2);
  const Result<PlacementDecision> first = c.Place({"a"});
  INFO(first.status().ToString());
  REQUIRE(first.ok());

  REQUIRE(c.registry.SetNodeDraining("a", true).ok());
  const Result<RouteResult> routed = c.Route();
  REQUIRE(routed.ok());
  REQUIRE(routed->ranked.size() == 1);
  CHECK(routed->ranked[0].instance_id == "i-b");
  const Result<RouteResult> only_a = c.Route({"i-a"});
  CHECK(only_a.status().code() == StatusCode::kUnavailable);
  CHECK_THAT(std::string(only_a.status().message()), Catch::Contains("1 on draining nodes"));
  CHECK(c.Place()->node_id == "b");
  const Result<PlacementDecision> placed_a = c.Place({"a"});
  CHECK(placed_a.status().code() == StatusCode::kUnavailable);
  CHECK_THAT(std::string(placed_a.status().message()), Catch::Contains("1 draining"));

  REQUIRE(c.registry.SetNodeDraining("a", false).ok());
  CHECK(c.Route()->ranked.size() == 2);
  CHECK(c.Place({"a"})->node_id == "a");
}

}  // namespace
}  // namespace kvpool::scheduler
