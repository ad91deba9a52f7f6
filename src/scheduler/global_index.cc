#include "scheduler/global_index.h"

#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"

namespace kvpool::scheduler {
namespace {

// Debian's absl::string_view is not std::string_view; build one for heterogeneous lookups so
// no std::string is allocated per call.
absl::string_view AbslView(std::string_view s) { return absl::string_view(s.data(), s.size()); }

bool IsStorageTier(Tier tier) {
  return tier == Tier::kGpu || tier == Tier::kHost || tier == Tier::kDisk;
}

// Heap bytes of an absl flat table: one control byte per slot plus the cloned group, then the
// slots (raw_hash_set's allocation, rounded up for alignment).
template <typename Table>
size_t FlatTableBytes(const Table& table) {
  if (table.capacity() == 0) return 0;
  constexpr size_t kClonedControlBytes = 16;
  return table.capacity() * (sizeof(typename Table::value_type) + 1) + kClonedControlBytes +
         alignof(uint64_t);
}

}  // namespace

std::string_view KvEventKindName(KvEventKind kind) {
  switch (kind) {
    case KvEventKind::kStored: return "stored";
    case KvEventKind::kRemoved: return "removed";
    case KvEventKind::kTierChanged: return "tier_changed";
  }
  return "unknown";
}

std::string_view ApplyOutcomeName(ApplyOutcome outcome) {
  switch (outcome) {
    case ApplyOutcome::kApplied: return "applied";
    case ApplyOutcome::kStale: return "stale";
    case ApplyOutcome::kResyncNeeded: return "resync_needed";
  }
  return "unknown";
}

uint64_t TierCounts::at(Tier tier) const {
  switch (tier) {
    case Tier::kGpu: return gpu;
    case Tier::kHost: return host;
    case Tier::kDisk: return disk;
    case Tier::kNone: break;
  }
  return 0;
}

uint64_t& TierCounts::mutable_at(Tier tier) {
  switch (tier) {
    case Tier::kGpu: return gpu;
    case Tier::kDisk: return disk;
    case Tier::kHost:
    case Tier::kNone: break;
  }
  return host;
}

// ---- NamespaceIndex ----------------------------------------------------------------------------

size_t NamespaceIndex::MemoryBytes() const {
  return blocks_.MemoryBytes() + pool_.MemoryBytes() + counts_.capacity() * sizeof(TierCounts);
}

void NamespaceIndex::CountChange(NodeIndex node, Tier old_tier, Tier new_tier) {
  if (node >= counts_.size()) counts_.resize(size_t{node} + 1);
  if (old_tier != Tier::kNone) --counts_[node].mutable_at(old_tier);
  if (new_tier != Tier::kNone) ++counts_[node].mutable_at(new_tier);
}

Tier NamespaceIndex::Set(const BlockHash& hash, NodeIndex node, Tier tier) {
  Tier old = blocks_.Set(hash, node, tier, pool_);
  CountChange(node, old, tier);
  return old;
}

Tier NamespaceIndex::Erase(const BlockHash& hash, NodeIndex node) {
  Tier old = blocks_.Erase(hash, node, pool_);
  if (old != Tier::kNone) CountChange(node, old, Tier::kNone);
  return old;
}

Tier NamespaceIndex::Move(const BlockHash& hash, NodeIndex node, Tier tier) {
  Tier old = blocks_.Move(hash, node, tier, pool_);
  if (old != Tier::kNone) CountChange(node, old, tier);
  return old;
}

uint64_t NamespaceIndex::EraseNode(NodeIndex node) {
  if (NodeCounts(node).total() == 0) return 0;
  uint64_t erased = blocks_.EraseNode(node, pool_);
  counts_[node] = TierCounts{};
  return erased;
}

// ---- GlobalIndex -------------------------------------------------------------------------------

GlobalIndex::GlobalIndex() = default;
GlobalIndex::~GlobalIndex() = default;
GlobalIndex::GlobalIndex(GlobalIndex&&) = default;
GlobalIndex& GlobalIndex::operator=(GlobalIndex&&) = default;

Status GlobalIndex::ValidateBatch(const KvEventBatch& batch) const {
  if (batch.node_id.empty()) return InvalidArgumentError("event batch has an empty node id");
  for (size_t i = 0; i < batch.events.size(); ++i) {
    const KvEvent& e = batch.events[i];
    auto where = [&] {
      return "event " + std::to_string(i) + " of batch " + std::to_string(batch.seq) +
             " from node '" + batch.node_id + "'";
    };
    if (e.ns.empty()) return InvalidArgumentError(where() + " has an empty namespace");
    switch (e.kind) {
      case KvEventKind::kStored:
      case KvEventKind::kTierChanged:
        if (!IsStorageTier(e.tier)) {
          return InvalidArgumentError(where() + " (" + std::string(KvEventKindName(e.kind)) +
                                      ") has tier " + std::string(TierName(e.tier)) +
                                      "; expected gpu, host or disk");
        }
        break;
      case KvEventKind::kRemoved:
        break;
      default:
        return InvalidArgumentError(where() + " has unknown kind " +
                                    std::to_string(static_cast<int>(e.kind)));
    }
  }
  return Status::Ok();
}

NamespaceIndex& GlobalIndex::MutableNamespace(std::string_view ns) {
  auto it = namespaces_.find(AbslView(ns));
  if (it != namespaces_.end()) return it->second;
  return namespaces_.try_emplace(std::string(ns)).first->second;
}

Result<ApplyResult> GlobalIndex::Apply(const KvEventBatch& batch) {
  KVPOOL_RETURN_IF_ERROR(ValidateBatch(batch));
  ApplyResult result;
  auto resync = [&](std::string reason) {
    result.outcome = ApplyOutcome::kResyncNeeded;
    result.reason = std::move(reason);
    return result;
  };

  std::optional<NodeIndex> node = FindNode(batch.node_id);
  if (!node) return resync("node '" + batch.node_id + "' has not sent a snapshot");
  NodeStreamState& stream = nodes_[*node].stream;
  if (batch.epoch != stream.epoch) {
    stream.needs_resync = true;
    return resync("node '" + batch.node_id + "' restarted: epoch " + std::to_string(batch.epoch) +
                  ", index has epoch " + std::to_string(stream.epoch));
  }
  if (stream.needs_resync) {
    return resync("node '" + batch.node_id + "' is waiting for a snapshot");
  }
  if (batch.seq <= stream.last_seq) {
    result.outcome = ApplyOutcome::kStale;
    return result;
  }
  if (batch.seq != stream.last_seq + 1) {
    stream.needs_resync = true;
    return resync("sequence gap from node '" + batch.node_id + "': expected " +
                  std::to_string(stream.last_seq + 1) + ", got " + std::to_string(batch.seq));
  }

  for (const KvEvent& e : batch.events) {
    if (e.hashes.empty()) continue;
    NamespaceIndex& ns = MutableNamespace(e.ns);
    for (const BlockHash& h : e.hashes) {
      switch (e.kind) {
        case KvEventKind::kStored:
          if (ns.Set(h, *node, e.tier) == Tier::kNone) ++copies_;
          ++result.applied_blocks;
          break;
        case KvEventKind::kRemoved:
          if (ns.Erase(h, *node) == Tier::kNone) {
            ++result.mismatched_blocks;
          } else {
            --copies_;
            ++result.applied_blocks;
          }
          break;
        case KvEventKind::kTierChanged:
          if (ns.Move(h, *node, e.tier) == Tier::kNone) {
            ++result.mismatched_blocks;
          } else {
            ++result.applied_blocks;
          }
          break;
      }
    }
  }
  stream.last_seq = batch.seq;
  return result;
}

uint64_t GlobalIndex::EraseNodeEverywhere(NodeIndex node) {
  uint64_t erased = 0;
  for (auto& [name, ns] : namespaces_) erased += ns.EraseNode(node);
  copies_ -= erased;
  return erased;
}

Status GlobalIndex::ReplaceNode(const NodeSnapshot& snapshot) {
  if (snapshot.node_id.empty()) return InvalidArgumentError("snapshot has an empty node id");
  for (const NamespaceSnapshot& ns : snapshot.namespaces) {
    if (ns.ns.empty()) {
      return InvalidArgumentError("snapshot of node '" + snapshot.node_id +
                                  "' has a namespace with an empty name");
    }
    for (const SnapshotBlock& b : ns.blocks) {
      if (!IsStorageTier(b.tier)) {
        return InvalidArgumentError("snapshot of node '" + snapshot.node_id + "', namespace '" +
                                    ns.ns + "': block " + b.hash.ToHex() + " has tier " +
                                    std::string(TierName(b.tier)) +
                                    "; expected gpu, host or disk");
      }
    }
  }

  NodeIndex node;
  if (std::optional<NodeIndex> known = FindNode(snapshot.node_id)) {
    node = *known;
    EraseNodeEverywhere(node);
  } else {
    if (!free_nodes_.empty()) {
      node = free_nodes_.back();
      free_nodes_.pop_back();
    } else {
      if (nodes_.size() >= kMaxIndexedNodes) {
        return ResourceExhaustedError("the global index already knows " +
                                      std::to_string(kMaxIndexedNodes) +
                                      " nodes; cannot add node '" + snapshot.node_id + "'");
      }
      node = static_cast<NodeIndex>(nodes_.size());
      nodes_.emplace_back();
    }
    nodes_[node].id = snapshot.node_id;
    nodes_[node].in_use = true;
    node_ids_.emplace(snapshot.node_id, node);
  }
  nodes_[node].stream = NodeStreamState{snapshot.epoch, snapshot.seq, false};

  for (const NamespaceSnapshot& snap : snapshot.namespaces) {
    if (snap.blocks.empty()) continue;
    NamespaceIndex& ns = MutableNamespace(snap.ns);
    for (const SnapshotBlock& b : snap.blocks) {
      if (ns.Set(b.hash, node, b.tier) == Tier::kNone) ++copies_;
    }
  }
  return Status::Ok();
}

uint64_t GlobalIndex::DropNode(std::string_view node_id) {
  std::optional<NodeIndex> node = FindNode(node_id);
  if (!node) return 0;
  uint64_t erased = EraseNodeEverywhere(*node);
  node_ids_.erase(AbslView(node_id));
  nodes_[*node] = NodeState{};
  // Safe to reuse: no holder set refers to this index any more.
  free_nodes_.push_back(*node);
  return erased;
}

std::optional<NodeStreamState> GlobalIndex::StreamState(std::string_view node_id) const {
  std::optional<NodeIndex> node = FindNode(node_id);
  if (!node) return std::nullopt;
  return nodes_[*node].stream;
}

std::vector<std::string> GlobalIndex::NodesNeedingResync() const {
  std::vector<std::string> out;
  for (const NodeState& n : nodes_) {
    if (n.in_use && n.stream.needs_resync) out.push_back(n.id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<std::string> GlobalIndex::NodeIds() const {
  std::vector<std::string> out;
  for (const NodeState& n : nodes_) {
    if (n.in_use) out.push_back(n.id);
  }
  std::sort(out.begin(), out.end());
  return out;
}

const NamespaceIndex* GlobalIndex::FindNamespace(std::string_view ns) const {
  auto it = namespaces_.find(AbslView(ns));
  return it == namespaces_.end() ? nullptr : &it->second;
}

std::optional<NodeIndex> GlobalIndex::FindNode(std::string_view node_id) const {
  auto it = node_ids_.find(AbslView(node_id));
  if (it == node_ids_.end()) return std::nullopt;
  return it->second;
}

TierCounts GlobalIndex::NodeBlocks(std::string_view ns, std::string_view node_id) const {
  std::optional<NodeIndex> node = FindNode(node_id);
  const NamespaceIndex* index = FindNamespace(ns);
  if (!node || index == nullptr) return TierCounts{};
  return index->NodeCounts(*node);
}

TierCounts GlobalIndex::NodeBlocks(std::string_view node_id) const {
  TierCounts total;
  std::optional<NodeIndex> node = FindNode(node_id);
  if (!node) return total;
  for (const auto& [name, ns] : namespaces_) {
    TierCounts c = ns.NodeCounts(*node);
    total.gpu += c.gpu;
    total.host += c.host;
    total.disk += c.disk;
  }
  return total;
}

uint64_t GlobalIndex::blocks() const {
  uint64_t n = 0;
  for (const auto& [name, ns] : namespaces_) n += ns.size();
  return n;
}

std::vector<std::string> GlobalIndex::Namespaces() const {
  std::vector<std::string> out;
  for (const auto& [name, ns] : namespaces_) {
    if (ns.size() > 0) out.push_back(name);
  }
  std::sort(out.begin(), out.end());
  return out;
}

size_t GlobalIndex::MemoryBytes() const {
  size_t bytes = FlatTableBytes(namespaces_) + FlatTableBytes(node_ids_) +
                 nodes_.capacity() * sizeof(NodeState) + free_nodes_.capacity() * sizeof(NodeIndex);
  for (const auto& [name, ns] : namespaces_) {
    bytes += ns.MemoryBytes();
    if (name.capacity() > 15) bytes += name.capacity() + 1;
  }
  for (const NodeState& n : nodes_) {
    if (n.id.capacity() > 15) bytes += n.id.capacity() + 1;
  }
  return bytes;
}

void GlobalIndex::ForEach(const std::function<void(std::string_view ns, const BlockHash& hash,
                                                   std::span<const Holder> holders)>& fn) const {
  std::vector<Holder> holders;
  // Named references, not structured bindings: clang 14 cannot capture bindings in lambdas.
  for (const auto& entry : namespaces_) {
    const std::string& name = entry.first;
    const NamespaceIndex& ns = entry.second;
    ns.blocks_.ForEach([&](const BlockHash& hash, const HolderSet& set) {
      holders.clear();
      set.ForEach(ns.pool(), [&](Holder h) { holders.push_back(h); });
      fn(name, hash, holders);
    });
  }
}

}  // namespace kvpool::scheduler
