// libFuzzer target: the scheduler's KV event stream applier. Random sequences of snapshots
// (ReplaceNode), event batches (Apply, with in-order, stale, gapped and wrong-epoch sequence
// numbers, and invalid events) and DropNode, checked after every step against a reference
// model built from std::map: stream states, outcomes, counts per node and tier, and the whole
// index content.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "fuzz_check.h"
#include "scheduler/global_index.h"

namespace kvpool::scheduler {
namespace {

// Six nodes so a block can have more holders than a HolderSet keeps inline (four).
const char* const kNodes[] = {"n0", "n1", "n2", "n3", "n4", "n5", ""};
const char* const kNamespaces[] = {"a", "b", ""};
constexpr uint64_t kHashes = 8;

bool IsStorageTier(Tier t) { return t == Tier::kGpu || t == Tier::kHost || t == Tier::kDisk; }

struct ModelNode {
  uint64_t epoch = 0;
  uint64_t last_seq = 0;
  bool needs_resync = false;
};

using BlockKey = std::pair<std::string, BlockHash>;

struct Model {
  std::map<std::string, ModelNode> nodes;
  std::map<BlockKey, std::map<std::string, Tier>> blocks;

  uint64_t EraseNode(const std::string& node) {
    uint64_t n = 0;
    for (auto it = blocks.begin(); it != blocks.end();) {
      n += it->second.erase(node);
      it = it->second.empty() ? blocks.erase(it) : std::next(it);
    }
    return n;
  }
};

std::string DrawNode(FuzzedDataProvider& in) {
  return kNodes[in.ConsumeIntegralInRange<size_t>(0, std::size(kNodes) - 1)];
}
std::string DrawNamespace(FuzzedDataProvider& in) {
  return kNamespaces[in.ConsumeIntegralInRange<size_t>(0, std::size(kNamespaces) - 1)];
}
BlockHash DrawHash(FuzzedDataProvider& in) {
  const uint64_t id = in.ConsumeIntegralInRange<uint64_t>(0, kHashes - 1);
  return BlockHash{id * 0x9e3779b97f4a7c15ull, ~id};
}
Tier DrawTier(FuzzedDataProvider& in) {
  // Mostly valid tiers; 0 (none) and 4 (out of the enum) test validation.
  return static_cast<Tier>(in.ConsumeIntegralInRange<uint8_t>(0, 4));
}
std::vector<BlockHash> DrawHashes(FuzzedDataProvider& in) {
  std::vector<BlockHash> out(in.ConsumeIntegralInRange<size_t>(0, 5));
  for (BlockHash& h : out) h = DrawHash(in);
  return out;
}

void DoReplace(FuzzedDataProvider& in, GlobalIndex& index, Model& model) {
  NodeSnapshot snap;
  snap.node_id = DrawNode(in);
  snap.epoch = in.ConsumeIntegralInRange<uint64_t>(0, 2);
  snap.seq = in.ConsumeIntegralInRange<uint64_t>(0, 4);
  bool valid = !snap.node_id.empty();
  snap.namespaces.resize(in.ConsumeIntegralInRange<size_t>(0, 3));
  for (NamespaceSnapshot& ns : snap.namespaces) {
    ns.ns = DrawNamespace(in);
    valid = valid && !ns.ns.empty();
    ns.blocks.resize(in.ConsumeIntegralInRange<size_t>(0, 6));
    for (SnapshotBlock& b : ns.blocks) {
      b.hash = DrawHash(in);
      b.tier = DrawTier(in);
      valid = valid && IsStorageTier(b.tier);
    }
  }
  const Status status = index.ReplaceNode(snap);
  if (!valid) {
    KVPOOL_FUZZ_CHECK(status.code() == StatusCode::kInvalidArgument);
    return;
  }
  KVPOOL_FUZZ_CHECK(status.ok());
  model.EraseNode(snap.node_id);
  model.nodes[snap.node_id] = ModelNode{snap.epoch, snap.seq, false};
  for (const NamespaceSnapshot& ns : snap.namespaces) {
    for (const SnapshotBlock& b : ns.blocks) model.blocks[{ns.ns, b.hash}][snap.node_id] = b.tier;
  }
}

void DoApply(FuzzedDataProvider& in, GlobalIndex& index, Model& model) {
  KvEventBatch batch;
  batch.node_id = DrawNode(in);
  auto known = model.nodes.find(batch.node_id);
  // Sequence numbers near the expected one, so in-order batches are common.
  const ModelNode cur = known == model.nodes.end() ? ModelNode{} : known->second;
  batch.epoch = in.ConsumeBool() ? cur.epoch : in.ConsumeIntegralInRange<uint64_t>(0, 2);
  const uint8_t seq_kind = in.ConsumeIntegralInRange<uint8_t>(0, 3);
  batch.seq = seq_kind == 0   ? cur.last_seq
              : seq_kind == 1 ? cur.last_seq + 2
                              : cur.last_seq + 1;
  bool valid = !batch.node_id.empty();
  batch.events.resize(in.ConsumeIntegralInRange<size_t>(0, 4));
  for (KvEvent& e : batch.events) {
    e.kind = static_cast<KvEventKind>(in.ConsumeIntegralInRange<uint8_t>(0, 3));
    e.ns = DrawNamespace(in);
    e.hashes = DrawHashes(in);
    e.tier = DrawTier(in);
    valid = valid && !e.ns.empty() && static_cast<uint8_t>(e.kind) <= 2;
    if (e.kind == KvEventKind::kStored || e.kind == KvEventKind::kTierChanged) {
      valid = valid && IsStorageTier(e.tier);
    }
  }
  auto result = index.Apply(batch);
  if (!valid) {
    KVPOOL_FUZZ_CHECK(!result.ok());
    KVPOOL_FUZZ_CHECK(result.status().code() == StatusCode::kInvalidArgument);
    return;
  }
  KVPOOL_FUZZ_CHECK(result.ok());
  if (known == model.nodes.end()) {
    KVPOOL_FUZZ_CHECK(result->outcome == ApplyOutcome::kResyncNeeded);
    return;
  }
  ModelNode& node = known->second;
  if (batch.epoch != node.epoch) {
    node.needs_resync = true;
    KVPOOL_FUZZ_CHECK(result->outcome == ApplyOutcome::kResyncNeeded);
    return;
  }
  if (node.needs_resync) {
    KVPOOL_FUZZ_CHECK(result->outcome == ApplyOutcome::kResyncNeeded);
    return;
  }
  if (batch.seq <= node.last_seq) {
    KVPOOL_FUZZ_CHECK(result->outcome == ApplyOutcome::kStale);
    return;
  }
  if (batch.seq != node.last_seq + 1) {
    node.needs_resync = true;
    KVPOOL_FUZZ_CHECK(result->outcome == ApplyOutcome::kResyncNeeded);
    KVPOOL_FUZZ_CHECK(!result->reason.empty());
    return;
  }
  KVPOOL_FUZZ_CHECK(result->outcome == ApplyOutcome::kApplied);
  uint64_t applied = 0, mismatched = 0;
  for (const KvEvent& e : batch.events) {
    for (const BlockHash& h : e.hashes) {
      const BlockKey key{e.ns, h};
      auto block = model.blocks.find(key);
      const bool held = block != model.blocks.end() && block->second.contains(batch.node_id);
      switch (e.kind) {
        case KvEventKind::kStored:
          model.blocks[key][batch.node_id] = e.tier;
          ++applied;
          break;
        case KvEventKind::kRemoved:
          if (!held) {
            ++mismatched;
            break;
          }
          block->second.erase(batch.node_id);
          if (block->second.empty()) model.blocks.erase(block);
          ++applied;
          break;
        case KvEventKind::kTierChanged:
          if (!held) {
            ++mismatched;
            break;
          }
          block->second[batch.node_id] = e.tier;
          ++applied;
          break;
      }
    }
  }
  node.last_seq = batch.seq;
  KVPOOL_FUZZ_CHECK(result->applied_blocks == applied);
  KVPOOL_FUZZ_CHECK(result->mismatched_blocks == mismatched);
}

void DoDrop(FuzzedDataProvider& in, GlobalIndex& index, Model& model) {
  const std::string node = DrawNode(in);
  const uint64_t dropped = index.DropNode(node);
  const uint64_t expected = model.nodes.erase(node) ? model.EraseNode(node) : 0;
  KVPOOL_FUZZ_CHECK(dropped == expected);
}

void CheckEqual(const GlobalIndex& index, const Model& model) {
  uint64_t copies = 0;
  std::set<std::string> namespaces;
  std::map<std::pair<std::string, std::string>, TierCounts> counts;  // (ns, node)
  for (const auto& [key, holders] : model.blocks) {
    copies += holders.size();
    namespaces.insert(key.first);
    for (const auto& [node, tier] : holders) ++counts[{key.first, node}].mutable_at(tier);
  }
  KVPOOL_FUZZ_CHECK(index.blocks() == model.blocks.size());
  KVPOOL_FUZZ_CHECK(index.copies() == copies);
  const std::vector<std::string> ns_list = index.Namespaces();
  KVPOOL_FUZZ_CHECK(std::set<std::string>(ns_list.begin(), ns_list.end()) == namespaces);

  std::vector<std::string> ids, resync;
  for (const auto& [id, node] : model.nodes) {
    ids.push_back(id);
    if (node.needs_resync) resync.push_back(id);
    const std::optional<NodeStreamState> state = index.StreamState(id);
    KVPOOL_FUZZ_CHECK(state.has_value());
    KVPOOL_FUZZ_CHECK(state->epoch == node.epoch && state->last_seq == node.last_seq &&
                      state->needs_resync == node.needs_resync);
    TierCounts total;
    for (const char* ns : kNamespaces) {
      auto it = counts.find({ns, id});
      const TierCounts want = it == counts.end() ? TierCounts{} : it->second;
      KVPOOL_FUZZ_CHECK(index.NodeBlocks(ns, id) == want);
      total.gpu += want.gpu;
      total.host += want.host;
      total.disk += want.disk;
    }
    KVPOOL_FUZZ_CHECK(index.NodeBlocks(id) == total);
  }
  KVPOOL_FUZZ_CHECK(index.NodeIds() == ids);
  KVPOOL_FUZZ_CHECK(index.NodesNeedingResync() == resync);

  size_t seen = 0;
  index.ForEach([&](std::string_view ns, const BlockHash& hash, std::span<const Holder> holders) {
    auto it = model.blocks.find({std::string(ns), hash});
    KVPOOL_FUZZ_CHECK(it != model.blocks.end());
    std::map<std::string, Tier> got;
    for (const Holder& h : holders) {
      KVPOOL_FUZZ_CHECK(got.emplace(index.node_id(h.node), h.tier).second);
    }
    KVPOOL_FUZZ_CHECK(got == it->second);
    ++seen;
  });
  KVPOOL_FUZZ_CHECK(seen == model.blocks.size());
}

void Run(FuzzedDataProvider& in) {
  GlobalIndex index;
  Model model;
  while (in.remaining_bytes() > 0) {
    switch (in.ConsumeIntegralInRange<uint8_t>(0, 4)) {
      case 0: DoReplace(in, index, model); break;
      case 1: DoDrop(in, index, model); break;
      default: DoApply(in, index, model); break;
    }
    CheckEqual(index, model);
  }
}

}  // namespace
}  // namespace kvpool::scheduler

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  kvpool::scheduler::Run(in);
  return 0;
}
