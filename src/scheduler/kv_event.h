// KV events and snapshots: what each kvpoold tells the scheduler about the blocks it holds
// (DESIGN.md "Global scheduler"). Plain value types: thread-compatible, cheap to move.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/types.h"

namespace kvpool::scheduler {

enum class KvEventKind : uint8_t {
  kStored = 0,       ///< the node now holds `hashes` in `tier`
  kRemoved = 1,      ///< the node no longer holds `hashes` (evicted or deleted)
  kTierChanged = 2,  ///< the node moved `hashes` to `tier` (swap out / promote)
};
/// "stored", "removed" or "tier_changed".
std::string_view KvEventKindName(KvEventKind kind);

/// One change to the blocks of one namespace on one node.
struct KvEvent {
  KvEventKind kind = KvEventKind::kStored;
  /// Namespace name; must not be empty.
  std::string ns;
  /// kStored only: the hash before hashes[0] in the prompt, nullopt when hashes[0] is the
  /// prompt's first block (or unknown). Carried for the stream format and for tools; the global
  /// index needs no parent links, because a chained hash already names its whole prefix.
  std::optional<BlockHash> parent;
  /// The blocks concerned, in prompt order for kStored.
  std::vector<BlockHash> hashes;
  /// kStored and kTierChanged: kGpu, kHost or kDisk. Ignored for kRemoved.
  Tier tier = Tier::kNone;

  static KvEvent Stored(std::string ns, std::optional<BlockHash> parent,
                        std::vector<BlockHash> hashes, Tier tier) {
    return KvEvent{KvEventKind::kStored, std::move(ns), parent, std::move(hashes), tier};
  }
  static KvEvent Removed(std::string ns, std::vector<BlockHash> hashes) {
    return KvEvent{KvEventKind::kRemoved, std::move(ns), std::nullopt, std::move(hashes),
                   Tier::kNone};
  }
  static KvEvent TierChanged(std::string ns, std::vector<BlockHash> hashes, Tier tier) {
    return KvEvent{KvEventKind::kTierChanged, std::move(ns), std::nullopt, std::move(hashes),
                   tier};
  }
};

/// A batch of events from one node, applied all or nothing. A node numbers its batches 1, 2,
/// 3, ... within one `epoch` (one run of the daemon); a snapshot taken after batch S carries
/// seq S, so the batch after it is S + 1.
struct KvEventBatch {
  std::string node_id;
  /// Identifies one run of the node's daemon (e.g. a random value drawn at start). A new epoch
  /// means the node restarted and its stream starts over.
  uint64_t epoch = 0;
  uint64_t seq = 0;
  std::vector<KvEvent> events;
};

/// One block of a node snapshot.
struct SnapshotBlock {
  BlockHash hash;
  /// kGpu, kHost or kDisk.
  Tier tier = Tier::kHost;

  friend bool operator==(const SnapshotBlock&, const SnapshotBlock&) = default;
};

/// The blocks of one namespace on one node.
struct NamespaceSnapshot {
  std::string ns;
  std::vector<SnapshotBlock> blocks;
};

/// Everything a node holds, as of batch `seq` of `epoch` (full resync).
struct NodeSnapshot {
  std::string node_id;
  uint64_t epoch = 0;
  /// The last batch the snapshot reflects (0 when the node has sent none); events continue at
  /// seq + 1.
  uint64_t seq = 0;
  std::vector<NamespaceSnapshot> namespaces;
};

}  // namespace kvpool::scheduler
