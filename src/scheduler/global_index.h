// The scheduler's global prompt tree: for every namespace, which (node, tier) pairs hold each
// block, kept exact by the nodes' KV event streams (DESIGN.md "Global scheduler").
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "kvpool/block_hash.h"
#include "kvpool/status.h"
#include "kvpool/types.h"
#include "scheduler/block_table.h"
#include "scheduler/holder_set.h"
#include "scheduler/kv_event.h"

namespace kvpool::scheduler {

/// Blocks per tier.
struct TierCounts {
  uint64_t gpu = 0;
  uint64_t host = 0;
  uint64_t disk = 0;

  uint64_t total() const { return gpu + host + disk; }
  /// The count of `tier` (0 for kNone).
  uint64_t at(Tier tier) const;
  uint64_t& mutable_at(Tier tier);

  friend bool operator==(const TierCounts&, const TierCounts&) = default;
};

/// What Apply did with a batch.
enum class ApplyOutcome : uint8_t {
  /// The batch was the next one expected and is now in the index.
  kApplied = 0,
  /// seq <= the last seq applied (a replay, e.g. of events already covered by a snapshot):
  /// ignored.
  kStale = 1,
  /// The node must send a full snapshot (ReplaceNode) before its events apply again: it was
  /// never synced (or was dropped), it restarted (new epoch), or a batch went missing (gap).
  /// The batch was not applied; the node's previous blocks stay in the index until the resync.
  kResyncNeeded = 2,
};
/// "applied", "stale" or "resync_needed".
std::string_view ApplyOutcomeName(ApplyOutcome outcome);

struct ApplyResult {
  ApplyOutcome outcome = ApplyOutcome::kApplied;
  /// Block changes applied (kApplied only).
  uint64_t applied_blocks = 0;
  /// Events that did not match the index: removal or tier change of a block the node was not
  /// known to hold (ignored). Non-zero means the stream and the index disagreed somewhere; the
  /// caller may ask for a resync.
  uint64_t mismatched_blocks = 0;
  /// Why a resync is needed, e.g. "sequence gap: expected 8, got 10". Empty otherwise.
  std::string reason;
};

/// The event stream state of one node.
struct NodeStreamState {
  uint64_t epoch = 0;
  uint64_t last_seq = 0;
  bool needs_resync = false;
};

/// The index of one namespace: block hash -> holders. Read-only access for the lookup and
/// routing code; GlobalIndex mutates it.
///
/// Not thread-safe; owned by GlobalIndex.
class NamespaceIndex {
 public:
  /// The holders of `hash`, or nullptr when no node holds it. Valid until the next mutation.
  const HolderSet* Find(const BlockHash& hash) const { return blocks_.Find(hash); }
  /// Starts loading the memory Find(hash) will read (software prefetch; no effect on results).
  /// Always inlined (see BlockTable::Prefetch).
  [[gnu::always_inline]] void Prefetch(const BlockHash& hash) const { blocks_.Prefetch(hash); }
  /// The overflow lists the sets of this namespace point into (for HolderSet::ForEach).
  const HolderOverflowPool& pool() const { return pool_; }
  /// Distinct blocks held by at least one node.
  size_t size() const { return blocks_.size(); }
  /// Blocks per tier that node `node` holds in this namespace.
  TierCounts NodeCounts(NodeIndex node) const {
    return node < counts_.size() ? counts_[node] : TierCounts{};
  }
  /// Heap bytes of this namespace's structures.
  size_t MemoryBytes() const;

 private:
  friend class GlobalIndex;

  // Adds or moves `node`'s copy of `hash`; returns the previous tier (kNone if added).
  Tier Set(const BlockHash& hash, NodeIndex node, Tier tier);
  // Removes `node`'s copy; returns the tier it had (kNone if it had none).
  Tier Erase(const BlockHash& hash, NodeIndex node);
  // Moves `node`'s copy to `tier` if it has one; returns the previous tier (kNone: no copy).
  Tier Move(const BlockHash& hash, NodeIndex node, Tier tier);
  // Removes every copy held by `node`; returns how many.
  uint64_t EraseNode(NodeIndex node);
  void CountChange(NodeIndex node, Tier old_tier, Tier new_tier);

  BlockTable blocks_;
  HolderOverflowPool pool_;
  std::vector<TierCounts> counts_;  // Indexed by NodeIndex.
};

/// The global prompt tree: per namespace, block hash -> set of (node, tier) holding the block.
///
/// Nodes are interned: each node id gets a small NodeIndex while the index knows it (from its
/// first ReplaceNode until DropNode), so a block costs one 24-byte slot (16-byte hash, 8-byte
/// holder set) in an open-addressing table at most 3/4 full (BlockTable). MemoryBytes() reports the total (target: <= 96 bytes per indexed
/// block).
///
/// Exactness protocol. A node's first contact is a full snapshot (ReplaceNode); after it, the
/// node's event batches apply in sequence (seq = last + 1). A batch from an unknown node, from a
/// new epoch (the node restarted) or after a gap is not applied and answers kResyncNeeded; the
/// node then sends a new snapshot, which replaces everything it held. After the snapshots, the
/// index equals the union of the nodes' indexes exactly.
///
/// Not thread-safe; owned by the scheduler service, which serialises access.
class GlobalIndex {
 public:
  GlobalIndex();
  ~GlobalIndex();
  GlobalIndex(const GlobalIndex&) = delete;
  GlobalIndex& operator=(const GlobalIndex&) = delete;
  GlobalIndex(GlobalIndex&&);
  GlobalIndex& operator=(GlobalIndex&&);

  /// Applies one batch of a node's events, all or nothing.
  /// Returns INVALID_ARGUMENT (nothing applied, stream position unchanged, so the next batch
  /// reads as a gap) for an empty node id, an event with an empty namespace, a kStored or
  /// kTierChanged event whose tier is not gpu/host/disk, or an unknown event kind. Otherwise
  /// returns the outcome; see ApplyOutcome.
  Result<ApplyResult> Apply(const KvEventBatch& batch);

  /// Replaces everything `snapshot.node_id` holds with the snapshot's blocks (full resync),
  /// and sets the node's stream to (snapshot.epoch, snapshot.seq). A block listed twice keeps
  /// the last tier. Interns the node if it is new.
  /// Returns INVALID_ARGUMENT (index unchanged) for an empty node id or namespace, or a tier
  /// other than gpu/host/disk; RESOURCE_EXHAUSTED when kMaxIndexedNodes nodes are known already.
  Status ReplaceNode(const NodeSnapshot& snapshot);

  /// Removes every block `node_id` holds and forgets its stream (its next batch needs a
  /// snapshot). Returns how many block copies were removed; 0 for an unknown node.
  uint64_t DropNode(std::string_view node_id);

  /// The stream state of a known node; nullopt when the index does not know it (never synced,
  /// or dropped).
  std::optional<NodeStreamState> StreamState(std::string_view node_id) const;
  /// Ids of known nodes whose last batch asked for a resync.
  std::vector<std::string> NodesNeedingResync() const;
  /// Ids of every known node, sorted.
  std::vector<std::string> NodeIds() const;

  /// The namespace's index, or nullptr when no node holds a block of it.
  /// Valid until the next mutating call.
  const NamespaceIndex* FindNamespace(std::string_view ns) const;
  /// The NodeIndex of a known node.
  std::optional<NodeIndex> FindNode(std::string_view node_id) const;
  /// The id of a NodeIndex handed out by this index (an index seen in a HolderSet).
  const std::string& node_id(NodeIndex node) const { return nodes_[node].id; }
  /// One past the largest NodeIndex in use (size scratch arrays indexed by NodeIndex with it).
  size_t node_slots() const { return nodes_.size(); }

  /// Blocks per tier `node_id` holds in `ns` (zeros when unknown).
  TierCounts NodeBlocks(std::string_view ns, std::string_view node_id) const;
  /// Blocks per tier `node_id` holds across all namespaces.
  TierCounts NodeBlocks(std::string_view node_id) const;

  /// Distinct (namespace, hash) blocks held by at least one node.
  uint64_t blocks() const;
  /// Block copies: the sum over blocks of their holder counts.
  uint64_t copies() const { return copies_; }
  /// Namespace names with at least one block, sorted.
  std::vector<std::string> Namespaces() const;

  /// Heap bytes of the whole index (hash tables, overflow lists, node and namespace tables).
  size_t MemoryBytes() const;

  /// Calls `fn(ns, hash, holders)` for every block, in no particular order (for snapshots of
  /// the scheduler's view, tools and tests). `holders` is only valid during the call.
  void ForEach(const std::function<void(std::string_view ns, const BlockHash& hash,
                                        std::span<const Holder> holders)>& fn) const;

 private:
  struct NodeState {
    std::string id;
    bool in_use = false;
    NodeStreamState stream;
  };

  Status ValidateBatch(const KvEventBatch& batch) const;
  NamespaceIndex& MutableNamespace(std::string_view ns);
  uint64_t EraseNodeEverywhere(NodeIndex node);

  absl::flat_hash_map<std::string, NamespaceIndex> namespaces_;
  absl::flat_hash_map<std::string, NodeIndex> node_ids_;
  std::vector<NodeState> nodes_;  // Indexed by NodeIndex.
  std::vector<NodeIndex> free_nodes_;
  uint64_t copies_ = 0;
};

}  // namespace kvpool::scheduler
