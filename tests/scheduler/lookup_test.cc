#include "scheduler/lookup.h"

#include <catch2/catch.hpp>

#include <string>
#include <vector>

#include "scheduler_test_util.h"

namespace kvpool::scheduler {
namespace {

using testing::H;
using testing::Join;
using testing::Range;
using testing::Store;

const NodeLookup* FindNode(const LookupResult& r, const std::string& id) {
  for (const NodeLookup& n : r.nodes) {
    if (n.node_id == id) return &n;
  }
  return nullptr;
}

// a: blocks 0-11 (host); b: 8-15 and 17-18 (host); c: 12-19 (disk).
GlobalIndex ThreeNodes() {
  GlobalIndex index;
  for (const char* n : {"a", "b", "c"}) Join(index, n);
  Store(index, "a", 1, "m", Range(0, 12));
  Store(index, "b", 1, "m", Range(8, 8));
  Store(index, "b", 2, "m", Range(17, 2));
  Store(index, "c", 1, "m", Range(12, 8), Tier::kDisk);
  return index;
}

TEST_CASE("Lookup: per node, the leading blocks and the runs further in", "[scheduler]") {
  GlobalIndex index = ThreeNodes();
  LookupResult r = Lookup(index, "m", Range(0, 20));
  REQUIRE(r.prompt_blocks == 20);
  REQUIRE(r.held_blocks == 20);
  REQUIRE(r.nodes.size() == 3);
  // Ordered by leading blocks, then blocks held.
  REQUIRE(r.nodes[0].node_id == "a");
  REQUIRE(r.nodes[1].node_id == "b");
  REQUIRE(r.nodes[2].node_id == "c");

  const NodeLookup* a = FindNode(r, "a");
  REQUIRE(a->leading_blocks == 12);
  REQUIRE(a->runs.empty());
  REQUIRE(a->held == TierCounts{0, 12, 0});
  const NodeLookup* b = FindNode(r, "b");
  REQUIRE(b->leading_blocks == 0);
  REQUIRE(b->runs == std::vector<BlockRun>{{8, 8}, {17, 2}});
  const NodeLookup* c = FindNode(r, "c");
  REQUIRE(c->runs == std::vector<BlockRun>{{12, 8}});
  REQUIRE(c->held == TierCounts{0, 0, 8});
}

TEST_CASE("Lookup: the pooled prefix takes the fewest segments first, then faster tiers",
          "[scheduler]") {
  GlobalIndex index = ThreeNodes();
  LookupResult r = Lookup(index, "m", Range(0, 20));
  REQUIRE(r.pooled_prefix_blocks == 20);
  // a then c (2 segments) beats any plan through b's host copies (3 or more segments).
  REQUIRE(r.segments == std::vector<PullSegment>{{0, 12, "a", Tier::kHost},
                                                 {12, 8, "c", Tier::kDisk}});

  SECTION("equal segment counts prefer the faster tier") {
    Join(index, "d");
    Store(index, "d", 1, "m", Range(12, 8), Tier::kGpu);
    LookupResult r2 = Lookup(index, "m", Range(0, 20));
    REQUIRE(r2.segments == std::vector<PullSegment>{{0, 12, "a", Tier::kHost},
                                                    {12, 8, "d", Tier::kGpu}});
  }
}

TEST_CASE("Lookup: a hole ends the pooled prefix but not the per-node runs", "[scheduler]") {
  GlobalIndex index;
  Join(index, "a");
  Join(index, "b");
  Store(index, "a", 1, "m", Range(0, 2));
  Store(index, "b", 1, "m", Range(4, 2));
  LookupResult r = Lookup(index, "m", Range(0, 6));
  REQUIRE(r.pooled_prefix_blocks == 2);
  REQUIRE(r.held_blocks == 4);
  REQUIRE(r.segments == std::vector<PullSegment>{{0, 2, "a", Tier::kHost}});
  REQUIRE(FindNode(r, "b")->runs == std::vector<BlockRun>{{4, 2}});
  REQUIRE(FindNode(r, "b")->leading_blocks == 0);
}

TEST_CASE("Lookup: a node whose blocks switch tier mid-run gives one segment per tier",
          "[scheduler]") {
  GlobalIndex index;
  Join(index, "a");
  Store(index, "a", 1, "m", Range(0, 3), Tier::kHost);
  Store(index, "a", 2, "m", Range(3, 2), Tier::kDisk);
  LookupResult r = Lookup(index, "m", Range(0, 5));
  REQUIRE(r.nodes.size() == 1);
  REQUIRE(r.nodes[0].leading_blocks == 5);
  REQUIRE(r.segments == std::vector<PullSegment>{{0, 3, "a", Tier::kHost},
                                                 {3, 2, "a", Tier::kDisk}});
}

TEST_CASE("Lookup: an unknown namespace or empty prompt holds nothing", "[scheduler]") {
  GlobalIndex index = ThreeNodes();
  LookupResult r = Lookup(index, "other", Range(0, 20));
  REQUIRE(r.prompt_blocks == 20);
  REQUIRE(r.pooled_prefix_blocks == 0);
  REQUIRE(r.nodes.empty());
  REQUIRE(r.segments.empty());
  REQUIRE(Lookup(index, "m", {}).nodes.empty());
}

TEST_CASE("PrefixScanner: per-node counts over the pooled prefix", "[scheduler]") {
  GlobalIndex index = ThreeNodes();
  PrefixScanner scanner;
  std::vector<BlockHash> prompt = Range(0, 20);
  prompt.push_back(H(999));  // Not held: ends the prefix.
  prompt.push_back(H(19));   // Held, but after the hole.
  scanner.Scan(index, "m", prompt);
  REQUIRE(scanner.pooled_prefix_blocks() == 20);
  // Blocks with a gpu/host copy: 0-15 and 17-18.
  REQUIRE(scanner.fast_blocks() == 18);
  const NodePrefixStats& a = scanner.node(*index.FindNode("a"));
  REQUIRE(a.leading_blocks == 12);
  REQUIRE(a.fast_blocks == 12);
  REQUIRE(a.held_with_fast_copy == 12);
  const NodePrefixStats& c = scanner.node(*index.FindNode("c"));
  REQUIRE(c.leading_blocks == 0);
  REQUIRE(c.disk_blocks == 8);
  REQUIRE(c.held_with_fast_copy == 6);  // 12-15 and 17-18 also sit on b.

  // A second scan starts from zero.
  scanner.Scan(index, "m", Range(12, 4));
  REQUIRE(scanner.pooled_prefix_blocks() == 4);
  REQUIRE(scanner.node(*index.FindNode("a")).fast_blocks == 0);
  REQUIRE(scanner.node(*index.FindNode("c")).leading_blocks == 4);
  REQUIRE(scanner.node(*index.FindNode("c")).leading_disk_blocks == 4);
}

}  // namespace
}  // namespace kvpool::scheduler
