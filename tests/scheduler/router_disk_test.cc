// The cost policy prices DISK blocks with each node's measured SSD-tier read bandwidth
// (docs/scheduler.md "Cost model").
#include <catch2/catch.hpp>

#include <cmath>
#include <limits>
#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "scheduler/router.h"
#include "scheduler_test_util.h"

namespace kvpool::scheduler {
namespace {

using testing::Range;
using testing::Store;

// 1 MB blocks; compute dominates, so every plan pulls the whole pooled prefix.
struct DiskCluster {
  DiskCluster()
      : registry(RegistryOptions{1000, 1000}, &clock),
        models(Model()),
        router(Options(), &index, &registry, &models) {}

  static RouterOptions Options() {
    RouterOptions o;
    o.local_bandwidth_bytes_per_s = 1e9;   // 1 ms per block
    o.remote_bandwidth_bytes_per_s = 1e8;  // 10 ms per block
    o.disk_bandwidth_bytes_per_s = 5e7;    // 20 ms per block: nodes that report no figure
    return o;
  }
  static NamespaceModel Model() {
    NamespaceModel m;
    m.block_bytes = 1'000'000;
    m.token_s = 1;
    return m;
  }
  void AddNode(const std::string& node) {
    REQUIRE(registry.RegisterNode({node, node + ":1", "", {}}).ok());
    testing::Join(index, node);
    REQUIRE(registry.RegisterInstance({"i-" + node, InstanceRole::kColocated, node, 0}).ok());
  }
  void StoreOn(const std::string& node, std::vector<BlockHash> hashes, Tier tier) {
    Store(index, node, ++seq[node], "m", std::move(hashes), tier);
  }
  RouteResult Route(std::span<const BlockHash> hashes) {
    RouteRequest request;
    request.ns = "m";
    request.hashes = hashes;
    request.policy = RoutePolicy::kCost;
    Result<RouteResult> r = router.Route(request);
    REQUIRE(r.ok());
    return *r;
  }

  ManualClock clock;
  GlobalIndex index;
  Registry registry;
  NamespaceModels models;
  Router router;
  std::map<std::string, uint64_t> seq;
};

const RouteCandidate& CandidateOf(const RouteResult& r, const std::string& id) {
  for (const RouteCandidate& c : r.ranked) {
    if (c.instance_id == id) return c;
  }
  FAIL("no candidate " << id);
  return r.ranked.front();
}

TEST_CASE("Router: each node's DISK blocks are priced with its own measured read bandwidth",
          "[scheduler]") {
  DiskCluster c;
  c.AddNode("a");
  c.AddNode("b");
  c.StoreOn("a", Range(0, 2), Tier::kDisk);
  c.StoreOn("b", Range(0, 2), Tier::kDisk);
  REQUIRE(c.registry.SetNodeDiskBandwidth("a", 1e8).ok());    // 10 ms per block
  REQUIRE(c.registry.SetNodeDiskBandwidth("b", 2.5e7).ok());  // 40 ms per block
  const std::vector<BlockHash> prompt = Range(0, 2);

  RouteResult r = c.Route(prompt);
  CHECK(CandidateOf(r, "i-a").cost.transfer_s == Approx(2 * 0.01));
  CHECK(CandidateOf(r, "i-b").cost.transfer_s == Approx(2 * 0.04));
  CHECK(CandidateOf(r, "i-a").disk_read_bytes_per_s == 1e8);
  CHECK(CandidateOf(r, "i-b").disk_read_bytes_per_s == 2.5e7);
  CHECK(r.ranked.front().instance_id == "i-a");

  // b's disk got faster (its next heartbeat says so): now b's copy is the cheaper one.
  REQUIRE(c.registry.SetNodeDiskBandwidth("b", 4e8).ok());  // 2.5 ms per block
  r = c.Route(prompt);
  CHECK(CandidateOf(r, "i-b").cost.transfer_s == Approx(2 * 0.0025));
  CHECK(r.ranked.front().instance_id == "i-b");
}

TEST_CASE("Router: a DISK-only block of other nodes is read on the fastest SSD tier holding it",
          "[scheduler]") {
  DiskCluster c;
  c.AddNode("a");
  c.AddNode("b");
  c.AddNode("c");
  REQUIRE(c.registry.SetNodeDiskBandwidth("a", 1e8).ok());    // 10 ms per block
  REQUIRE(c.registry.SetNodeDiskBandwidth("b", 2.5e7).ok());  // 40 ms per block
  c.StoreOn("a", Range(0, 1), Tier::kDisk);
  c.StoreOn("b", Range(0, 2), Tier::kDisk);
  const std::vector<BlockHash> prompt = Range(0, 2);

  const RouteResult r = c.Route(prompt);
  // c holds nothing: block 0 is read on a (10 ms), block 1 only b has (40 ms), both cross the
  // link (10 ms each).
  CHECK(CandidateOf(r, "i-c").cost.transfer_s == Approx(0.01 + 0.04 + 2 * 0.01));
  // a reads block 0 itself and pulls block 1 from b's disk.
  CHECK(CandidateOf(r, "i-a").cost.transfer_s == Approx(0.01 + 0.04 + 0.01));
  // b reads both from its own (slow) disk.
  CHECK(CandidateOf(r, "i-b").cost.transfer_s == Approx(2 * 0.04));
  // A block some node holds in memory is pulled from there, whatever the disks.
  c.StoreOn("c", Range(1, 1), Tier::kHost);
  const RouteResult r2 = c.Route(prompt);
  CHECK(CandidateOf(r2, "i-a").cost.transfer_s == Approx(0.01 + 0.01));
}

TEST_CASE("Router: a node without a measured figure is priced with the configured bandwidth",
          "[scheduler]") {
  DiskCluster c;
  c.AddNode("a");
  c.StoreOn("a", Range(0, 2), Tier::kDisk);
  const std::vector<BlockHash> prompt = Range(0, 2);
  RouteResult r = c.Route(prompt);
  CHECK(CandidateOf(r, "i-a").cost.transfer_s == Approx(2 * 0.02));
  CHECK(CandidateOf(r, "i-a").disk_read_bytes_per_s == 5e7);

  REQUIRE(c.registry.SetNodeDiskBandwidth("a", 1e8).ok());
  // 0 (a heartbeat of a node that measured nothing since) keeps the last figure.
  REQUIRE(c.registry.SetNodeDiskBandwidth("a", 0).ok());
  CHECK(c.registry.FindNode("a")->disk_read_bytes_per_s == 1e8);
  r = c.Route(prompt);
  CHECK(CandidateOf(r, "i-a").cost.transfer_s == Approx(2 * 0.01));
}

TEST_CASE("Registry: a bad disk bandwidth is refused and changes nothing", "[scheduler]") {
  ManualClock clock;
  Registry registry(RegistryOptions{}, &clock);
  REQUIRE(registry.RegisterNode({"a", "a:1", "", {}}).ok());
  REQUIRE(registry.SetNodeDiskBandwidth("a", 3e9).ok());
  for (double bad : {-1.0, std::numeric_limits<double>::infinity(),
                     std::numeric_limits<double>::quiet_NaN()}) {
    const Status s = registry.SetNodeDiskBandwidth("a", bad);
    CHECK(s.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(s.message(), Catch::Contains("disk_read_bytes_per_s"));
  }
  CHECK(registry.FindNode("a")->disk_read_bytes_per_s == 3e9);
  CHECK(registry.SetNodeDiskBandwidth("nope", 1e9).code() == StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvpool::scheduler
