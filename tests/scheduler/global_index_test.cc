#include "scheduler/global_index.h"

#include <catch2/catch.hpp>

#include <map>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <vector>

#include "scheduler/block_table.h"
#include "scheduler/holder_set.h"
#include "scheduler_test_util.h"

namespace kvpool::scheduler {
namespace {

using testing::H;
using testing::Hs;
using testing::Join;
using testing::Range;
using testing::Store;

// (node id, tier) holders of a block, sorted, as GlobalIndex reports them.
using HolderList = std::vector<std::pair<std::string, Tier>>;

HolderList HoldersOf(const GlobalIndex& index, std::string_view ns, const BlockHash& hash) {
  HolderList out;
  const NamespaceIndex* nsi = index.FindNamespace(ns);
  if (nsi == nullptr) return out;
  const HolderSet* set = nsi->Find(hash);
  if (set == nullptr) return out;
  set->ForEach(nsi->pool(), [&](Holder h) { out.emplace_back(index.node_id(h.node), h.tier); });
  std::sort(out.begin(), out.end());
  return out;
}

// The whole index as (ns, hash, node) -> tier.
using Dump = std::map<std::tuple<std::string, BlockHash, std::string>, Tier>;

Dump DumpIndex(const GlobalIndex& index) {
  Dump dump;
  index.ForEach([&](std::string_view ns, const BlockHash& hash, std::span<const Holder> holders) {
    for (const Holder& h : holders) {
      auto [it, inserted] =
          dump.emplace(std::make_tuple(std::string(ns), hash, index.node_id(h.node)), h.tier);
      REQUIRE(inserted);  // A node appears once per block.
    }
  });
  return dump;
}

TEST_CASE("HolderSet: keeps one tier per node and overflows past four holders", "[scheduler]") {
  HolderOverflowPool pool;
  HolderSet set;
  REQUIRE(set.empty());
  for (NodeIndex n = 0; n < 9; ++n) {
    REQUIRE(set.Set(n, n % 2 ? Tier::kHost : Tier::kDisk, pool) == Tier::kNone);
    REQUIRE(set.size(pool) == n + 1u);
  }
  REQUIRE(pool.live() == 1);
  REQUIRE(set.Set(3, Tier::kGpu, pool) == Tier::kHost);  // A move, not a second copy.
  REQUIRE(set.size(pool) == 9);
  REQUIRE(set.Find(3, pool) == Tier::kGpu);
  REQUIRE(set.Find(42, pool) == Tier::kNone);
  for (NodeIndex n = 0; n < 5; ++n) REQUIRE(set.Erase(n, pool) != Tier::kNone);
  REQUIRE(set.size(pool) == 4);
  REQUIRE(pool.live() == 0);  // Back inline.
  std::set<NodeIndex> seen;
  set.ForEach(pool, [&](Holder h) { seen.insert(h.node); });
  REQUIRE(seen == std::set<NodeIndex>{5, 6, 7, 8});
  REQUIRE(set.Erase(5, pool) == Tier::kHost);
  REQUIRE(set.Erase(5, pool) == Tier::kNone);
  set.Clear(pool);
  REQUIRE(set.empty());
}

TEST_CASE("HolderSet: an overflow list whose id has zero low bits is not empty", "[scheduler]") {
  HolderOverflowPool pool;
  // Burn list ids until the next one is 0x10000, whose low 16 bits are zero.
  std::vector<uint32_t> ids;
  while (ids.size() < 0x10000) ids.push_back(pool.Allocate());
  HolderSet set;
  for (NodeIndex n = 0; n < 5; ++n) set.Set(n, Tier::kHost, pool);
  REQUIRE_FALSE(set.empty());
  REQUIRE(set.size(pool) == 5);
}

TEST_CASE("BlockTable: matches a reference map through inserts, erases and node drops",
          "[scheduler]") {
  std::mt19937_64 rng(7);
  BlockTable table;
  HolderOverflowPool pool;
  std::map<std::pair<BlockHash, NodeIndex>, Tier> ref;
  auto tier_of = [&](uint64_t r) { return static_cast<Tier>(1 + r % 3); };
  for (int step = 0; step < 60000; ++step) {
    const BlockHash h = H(rng() % 3000);
    const NodeIndex node = static_cast<NodeIndex>(rng() % 7);
    const uint64_t op = rng() % 10;
    if (op < 5) {
      const Tier t = tier_of(rng());
      auto it = ref.find({h, node});
      REQUIRE(table.Set(h, node, t, pool) == (it == ref.end() ? Tier::kNone : it->second));
      ref[{h, node}] = t;
    } else if (op < 9) {
      auto it = ref.find({h, node});
      REQUIRE(table.Erase(h, node, pool) == (it == ref.end() ? Tier::kNone : it->second));
      if (it != ref.end()) ref.erase(it);
    } else if (step % 97 == 0) {
      uint64_t expected = 0;
      for (auto it = ref.begin(); it != ref.end();) {
        if (it->first.second == node) {
          it = ref.erase(it);
          ++expected;
        } else {
          ++it;
        }
      }
      REQUIRE(table.EraseNode(node, pool) == expected);
    }
  }
  std::map<std::pair<BlockHash, NodeIndex>, Tier> got;
  table.ForEach([&](const BlockHash& hash, const HolderSet& set) {
    set.ForEach(pool, [&](Holder h) { got[{hash, h.node}] = h.tier; });
  });
  REQUIRE(got == ref);
  std::set<BlockHash> blocks;
  for (const auto& [key, tier] : ref) blocks.insert(key.first);
  REQUIRE(table.size() == blocks.size());
  for (const BlockHash& b : blocks) REQUIRE(table.Find(b) != nullptr);
  REQUIRE(table.Find(H(999999)) == nullptr);
}

TEST_CASE("BlockTable: shrinks after mass removal and still finds survivors", "[scheduler]") {
  BlockTable table;
  HolderOverflowPool pool;
  for (uint64_t i = 0; i < 20000; ++i) table.Set(H(i), static_cast<NodeIndex>(i % 2), Tier::kHost, pool);
  const size_t full_capacity = table.capacity();
  REQUIRE(table.EraseNode(0, pool) == 10000);
  for (uint64_t i = 1; i < 20000; i += 2) {
    if (i % 100 != 1) table.Erase(H(i), 1, pool);
  }
  REQUIRE(table.size() == 200);  // i = 1, 101, 201, ...: one in 100 of 20000.
  REQUIRE(table.capacity() < full_capacity);
  for (uint64_t i = 1; i < 20000; i += 2) REQUIRE((table.Find(H(i)) != nullptr) == (i % 100 == 1));
}

TEST_CASE("GlobalIndex: stored, tier-changed and removed events update holders", "[scheduler]") {
  GlobalIndex index;
  Join(index, "a");
  Join(index, "b");
  REQUIRE(Store(index, "a", 1, "m", Hs({1, 2, 3})).outcome == ApplyOutcome::kApplied);
  REQUIRE(Store(index, "b", 1, "m", Hs({2, 3}), Tier::kDisk).applied_blocks == 2);
  REQUIRE(HoldersOf(index, "m", H(2)) == HolderList{{"a", Tier::kHost}, {"b", Tier::kDisk}});
  REQUIRE(index.blocks() == 3);
  REQUIRE(index.copies() == 5);

  KvEventBatch batch{"a", 1, 2, {}};
  batch.events.push_back(KvEvent::TierChanged("m", Hs({1, 2}), Tier::kGpu));
  batch.events.push_back(KvEvent::Removed("m", Hs({3})));
  Result<ApplyResult> r = index.Apply(batch);
  REQUIRE(r.ok());
  REQUIRE(r->outcome == ApplyOutcome::kApplied);
  REQUIRE(r->applied_blocks == 3);
  REQUIRE(r->mismatched_blocks == 0);
  REQUIRE(HoldersOf(index, "m", H(1)) == HolderList{{"a", Tier::kGpu}});
  REQUIRE(HoldersOf(index, "m", H(3)) == HolderList{{"b", Tier::kDisk}});
  REQUIRE(index.NodeBlocks("m", "a") == TierCounts{2, 0, 0});
  REQUIRE(index.NodeBlocks("b") == TierCounts{0, 0, 2});

  // The last holder leaving removes the block.
  KvEventBatch remove{"b", 1, 2, {KvEvent::Removed("m", Hs({3}))}};
  REQUIRE(index.Apply(remove).ok());
  REQUIRE(index.FindNamespace("m")->Find(H(3)) == nullptr);
  REQUIRE(index.blocks() == 2);
  REQUIRE(index.copies() == 3);
}

TEST_CASE("GlobalIndex: namespaces never mix", "[scheduler]") {
  GlobalIndex index;
  Join(index, "a");
  Store(index, "a", 1, "m1", Hs({1}));
  REQUIRE(HoldersOf(index, "m1", H(1)).size() == 1);
  REQUIRE(HoldersOf(index, "m2", H(1)).empty());
  REQUIRE(index.FindNamespace("m2") == nullptr);
  REQUIRE(index.Namespaces() == std::vector<std::string>{"m1"});
}

TEST_CASE("GlobalIndex: removal or move of an unheld block is counted as a mismatch",
          "[scheduler]") {
  GlobalIndex index;
  Join(index, "a");
  Join(index, "b");
  Store(index, "b", 1, "m", Hs({1}));
  KvEventBatch batch{"a", 1, 1, {}};
  batch.events.push_back(KvEvent::Removed("m", Hs({1, 2})));
  batch.events.push_back(KvEvent::TierChanged("m", Hs({1}), Tier::kDisk));
  Result<ApplyResult> r = index.Apply(batch);
  REQUIRE(r.ok());
  REQUIRE(r->outcome == ApplyOutcome::kApplied);
  REQUIRE(r->mismatched_blocks == 3);
  REQUIRE(HoldersOf(index, "m", H(1)) == HolderList{{"b", Tier::kHost}});
}

TEST_CASE("GlobalIndex: a sequence gap asks for a resync and applies nothing until a snapshot",
          "[scheduler]") {
  GlobalIndex index;
  Join(index, "a");
  Store(index, "a", 1, "m", Hs({1}));
  ApplyResult gap = Store(index, "a", 3, "m", Hs({2}));  // Batch 2 was lost.
  REQUIRE(gap.outcome == ApplyOutcome::kResyncNeeded);
  REQUIRE_THAT(gap.reason, Catch::Contains("expected 2, got 3"));
  REQUIRE(index.StreamState("a")->needs_resync);
  REQUIRE(index.NodesNeedingResync() == std::vector<std::string>{"a"});
  // The node's previous blocks stay; nothing from the gap batch or later ones is applied.
  REQUIRE(HoldersOf(index, "m", H(1)).size() == 1);
  REQUIRE(HoldersOf(index, "m", H(2)).empty());
  REQUIRE(Store(index, "a", 4, "m", Hs({3})).outcome == ApplyOutcome::kResyncNeeded);
  REQUIRE(HoldersOf(index, "m", H(3)).empty());

  // The snapshot (as of batch 4) replaces everything; events continue at 5.
  NodeSnapshot snap{"a", 1, 4, {{"m", {{H(2), Tier::kHost}, {H(3), Tier::kDisk}}}}};
  REQUIRE(index.ReplaceNode(snap).ok());
  REQUIRE(index.NodesNeedingResync().empty());
  REQUIRE(HoldersOf(index, "m", H(1)).empty());
  REQUIRE(HoldersOf(index, "m", H(3)) == HolderList{{"a", Tier::kDisk}});
  REQUIRE(Store(index, "a", 4, "m", Hs({9})).outcome == ApplyOutcome::kStale);
  REQUIRE(HoldersOf(index, "m", H(9)).empty());
  REQUIRE(Store(index, "a", 5, "m", Hs({9})).outcome == ApplyOutcome::kApplied);
  REQUIRE(HoldersOf(index, "m", H(9)).size() == 1);
}

TEST_CASE("GlobalIndex: an unknown node or a new epoch asks for a resync", "[scheduler]") {
  GlobalIndex index;
  ApplyResult unknown = Store(index, "ghost", 1, "m", Hs({1}));
  REQUIRE(unknown.outcome == ApplyOutcome::kResyncNeeded);
  REQUIRE(index.blocks() == 0);
  REQUIRE_FALSE(index.StreamState("ghost").has_value());

  Join(index, "a", /*epoch=*/7);
  Store(index, "a", 1, "m", Hs({1}), Tier::kHost, 7);
  ApplyResult restarted = Store(index, "a", 1, "m", Hs({2}), Tier::kHost, /*epoch=*/8);
  REQUIRE(restarted.outcome == ApplyOutcome::kResyncNeeded);
  REQUIRE_THAT(restarted.reason, Catch::Contains("restarted"));
  REQUIRE(HoldersOf(index, "m", H(2)).empty());
  // Even the old epoch's next batch waits for the snapshot now.
  REQUIRE(Store(index, "a", 2, "m", Hs({3}), Tier::kHost, 7).outcome ==
          ApplyOutcome::kResyncNeeded);
  REQUIRE(index.ReplaceNode(NodeSnapshot{"a", 8, 1, {{"m", {{H(2), Tier::kHost}}}}}).ok());
  REQUIRE(index.StreamState("a")->epoch == 8);
  REQUIRE(Store(index, "a", 2, "m", Hs({4}), Tier::kHost, 8).outcome == ApplyOutcome::kApplied);
}

TEST_CASE("GlobalIndex: a malformed batch is refused whole and reads as a gap later",
          "[scheduler]") {
  GlobalIndex index;
  Join(index, "a");
  KvEventBatch batch{"a", 1, 1, {}};
  batch.events.push_back(KvEvent::Stored("m", std::nullopt, Hs({1}), Tier::kHost));
  batch.events.push_back(KvEvent::Stored("m", std::nullopt, Hs({2}), Tier::kNone));
  Result<ApplyResult> r = index.Apply(batch);
  REQUIRE(r.status().code() == StatusCode::kInvalidArgument);
  REQUIRE_THAT(r.status().message(), Catch::Contains("event 1"));
  REQUIRE(index.blocks() == 0);  // Event 0 was not applied either.
  REQUIRE(Store(index, "a", 2, "m", Hs({3})).outcome == ApplyOutcome::kResyncNeeded);

  KvEventBatch empty_ns{"a", 1, 1, {KvEvent::Removed("", Hs({1}))}};
  REQUIRE(index.Apply(empty_ns).status().code() == StatusCode::kInvalidArgument);
  KvEventBatch no_node{"", 1, 1, {}};
  REQUIRE(index.Apply(no_node).status().code() == StatusCode::kInvalidArgument);
  KvEventBatch bad_kind{"a", 1, 1, {KvEvent::Removed("m", Hs({1}))}};
  bad_kind.events[0].kind = static_cast<KvEventKind>(9);
  REQUIRE(index.Apply(bad_kind).status().code() == StatusCode::kInvalidArgument);

  NodeSnapshot bad_snapshot{"a", 1, 0, {{"m", {{H(1), Tier::kNone}}}}};
  REQUIRE(index.ReplaceNode(bad_snapshot).code() == StatusCode::kInvalidArgument);
  REQUIRE(index.ReplaceNode(NodeSnapshot{"", 1, 0, {}}).code() == StatusCode::kInvalidArgument);
  REQUIRE(index.ReplaceNode(NodeSnapshot{"a", 1, 0, {{"", {}}}}).code() ==
          StatusCode::kInvalidArgument);
}

TEST_CASE("GlobalIndex: DropNode removes all of a node's blocks at once", "[scheduler]") {
  GlobalIndex index;
  Join(index, "a");
  Join(index, "b");
  Store(index, "a", 1, "m1", Range(0, 100));
  Store(index, "a", 2, "m2", Range(0, 10), Tier::kDisk);
  Store(index, "b", 1, "m1", Range(50, 100));
  REQUIRE(index.DropNode("a") == 110);
  REQUIRE(index.DropNode("a") == 0);
  REQUIRE_FALSE(index.StreamState("a").has_value());
  REQUIRE(index.NodeIds() == std::vector<std::string>{"b"});
  REQUIRE(index.blocks() == 100);
  REQUIRE(index.copies() == 100);
  REQUIRE(HoldersOf(index, "m1", H(0)).empty());
  REQUIRE(HoldersOf(index, "m1", H(60)) == HolderList{{"b", Tier::kHost}});
  REQUIRE(index.NodeBlocks("a") == TierCounts{});
  // Its events need a snapshot now; a new node may reuse its index.
  REQUIRE(Store(index, "a", 3, "m1", Hs({1})).outcome == ApplyOutcome::kResyncNeeded);
  Join(index, "c");
  Store(index, "c", 1, "m1", Hs({60}));
  REQUIRE(HoldersOf(index, "m1", H(60)) == HolderList{{"b", Tier::kHost}, {"c", Tier::kHost}});
}

// A node's own view of what it holds, as its kvpoold would send in a snapshot.
struct FakeNode {
  std::string id;
  uint64_t epoch = 1;
  uint64_t seq = 0;
  std::map<std::pair<std::string, BlockHash>, Tier> blocks;

  NodeSnapshot Snapshot() const {
    NodeSnapshot snap{id, epoch, seq, {}};
    std::map<std::string, NamespaceSnapshot> by_ns;
    for (const auto& [key, tier] : blocks) {
      by_ns[key.first].ns = key.first;
      by_ns[key.first].blocks.push_back({key.second, tier});
    }
    for (auto& [name, ns] : by_ns) snap.namespaces.push_back(std::move(ns));
    return snap;
  }
};

TEST_CASE("GlobalIndex: after resyncs the index equals the union of the nodes exactly",
          "[scheduler]") {
  std::mt19937_64 rng(GENERATE(1, 2, 3));
  const std::vector<std::string> namespaces = {"m1", "m2"};
  std::vector<FakeNode> nodes(8);
  for (size_t n = 0; n < nodes.size(); ++n) nodes[n].id = "node-" + std::to_string(n);
  std::vector<bool> joined(nodes.size(), false);
  GlobalIndex index;

  auto resync = [&](FakeNode& node) {
    REQUIRE(index.ReplaceNode(node.Snapshot()).ok());
  };
  auto expected_dump = [&] {
    Dump dump;
    for (size_t n = 0; n < nodes.size(); ++n) {
      if (!joined[n]) continue;
      for (const auto& [key, tier] : nodes[n].blocks) {
        dump[{key.first, key.second, nodes[n].id}] = tier;
      }
    }
    return dump;
  };

  for (int step = 0; step < 3000; ++step) {
    const size_t n = rng() % nodes.size();
    FakeNode& node = nodes[n];
    const uint64_t action = rng() % 100;
    if (!joined[n] || action < 2) {
      // Join, or rejoin after a crash with only the disk tier surviving.
      if (joined[n]) {
        index.DropNode(node.id);  // The node died (missed heartbeats).
        for (auto it = node.blocks.begin(); it != node.blocks.end();) {
          it = it->second == Tier::kDisk ? std::next(it) : node.blocks.erase(it);
        }
        ++node.epoch;
        node.seq = 0;
      }
      joined[n] = true;
      resync(node);
      continue;
    }
    if (action < 4) {
      // A restart the scheduler learns of from the new epoch.
      ++node.epoch;
      node.seq = 0;
      for (auto it = node.blocks.begin(); it != node.blocks.end();) {
        it = it->second == Tier::kDisk ? std::next(it) : node.blocks.erase(it);
      }
      KvEventBatch hello{node.id, node.epoch, ++node.seq, {}};
      REQUIRE(index.Apply(hello)->outcome == ApplyOutcome::kResyncNeeded);
      resync(node);
      continue;
    }
    // A batch of 1-3 events over a small universe, so blocks are shared by many nodes.
    KvEventBatch batch{node.id, node.epoch, ++node.seq, {}};
    const size_t events = 1 + rng() % 3;
    for (size_t e = 0; e < events; ++e) {
      const std::string& ns = namespaces[rng() % namespaces.size()];
      std::vector<BlockHash> hashes;
      const size_t count = 1 + rng() % 6;
      const uint64_t first = rng() % 400;
      for (size_t i = 0; i < count; ++i) hashes.push_back(H(first + i));
      const uint64_t kind = rng() % 10;
      if (kind < 5) {
        const Tier tier = static_cast<Tier>(1 + rng() % 3);
        for (const BlockHash& h : hashes) node.blocks[{ns, h}] = tier;
        batch.events.push_back(KvEvent::Stored(ns, std::nullopt, hashes, tier));
      } else if (kind < 8) {
        for (const BlockHash& h : hashes) node.blocks.erase({ns, h});
        batch.events.push_back(KvEvent::Removed(ns, hashes));
      } else {
        const Tier tier = static_cast<Tier>(1 + rng() % 3);
        for (const BlockHash& h : hashes) {
          auto it = node.blocks.find({ns, h});
          if (it != node.blocks.end()) it->second = tier;
        }
        batch.events.push_back(KvEvent::TierChanged(ns, hashes, tier));
      }
    }
    if (action < 8) continue;  // Lost in transit: the next batch reveals the gap.
    Result<ApplyResult> r = index.Apply(batch);
    REQUIRE(r.ok());
    if (r->outcome == ApplyOutcome::kResyncNeeded) resync(node);
    if (action < 10) {
      // A duplicate delivery is ignored.
      REQUIRE(index.Apply(batch)->outcome != ApplyOutcome::kApplied);
    }
  }
  for (size_t n = 0; n < nodes.size(); ++n) {
    if (joined[n]) resync(nodes[n]);  // Converge the nodes whose last batch was lost.
  }

  const Dump expected = expected_dump();
  REQUIRE(DumpIndex(index) == expected);
  uint64_t copies = 0;
  std::set<std::pair<std::string, BlockHash>> distinct;
  for (const auto& [key, tier] : expected) {
    ++copies;
    distinct.insert({std::get<0>(key), std::get<1>(key)});
  }
  REQUIRE(index.copies() == copies);
  REQUIRE(index.blocks() == distinct.size());
  for (size_t n = 0; n < nodes.size(); ++n) {
    for (const std::string& ns : namespaces) {
      TierCounts want;
      for (const auto& [key, tier] : nodes[n].blocks) {
        if (key.first == ns) ++want.mutable_at(tier);
      }
      REQUIRE(index.NodeBlocks(ns, nodes[n].id) == want);
    }
  }
}

TEST_CASE("GlobalIndex: memory stays under 96 bytes per indexed block", "[scheduler]") {
  GlobalIndex index;
  for (int n = 0; n < 16; ++n) Join(index, "node-" + std::to_string(n));
  std::vector<uint64_t> seq(16, 0);
  // 200k distinct blocks in prompts of 64, a third of them also held by a second node.
  for (uint64_t p = 0; p < 200'000 / 64; ++p) {
    const int n = static_cast<int>(p % 16);
    Store(index, "node-" + std::to_string(n), ++seq[n], "m", Range(p * 64, 64));
    if (p % 3 == 0) {
      const int m = (n + 5) % 16;
      Store(index, "node-" + std::to_string(m), ++seq[m], "m", Range(p * 64, 64), Tier::kDisk);
    }
  }
  const double per_block = static_cast<double>(index.MemoryBytes()) / index.blocks();
  INFO("bytes per block: " << per_block);
  REQUIRE(per_block <= 96.0);
  REQUIRE(per_block >= 24.0);  // A slot is 24 bytes: the measure counts the table.
}

}  // namespace
}  // namespace kvpool::scheduler
