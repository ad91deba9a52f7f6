// The set of (node, tier) pairs that hold one block in the global index, packed into 8 bytes.
// Internal to kvpool_scheduler: GlobalIndex owns every HolderSet and its overflow pool.
#pragma once

#include <array>
#include <cstddef>
#include <cstdint>
#include <vector>

#include "kvpool/types.h"

namespace kvpool::scheduler {

/// A node as the index numbers it: a small dense integer interned from the node id string.
using NodeIndex = uint16_t;

/// Largest number of distinct nodes the index can number at once (node indices are 14 bits).
inline constexpr size_t kMaxIndexedNodes = 0x3FFF;

/// One holder of a block: a node and the tier the block lives in there.
struct Holder {
  NodeIndex node = 0;
  Tier tier = Tier::kNone;

  friend bool operator==(const Holder&, const Holder&) = default;
};

/// Sets of holders that outgrew a HolderSet's inline slots, with a free list. One pool per
/// namespace; sets point into it by index.
///
/// Not thread-safe; owned by the namespace of GlobalIndex that owns the sets.
class HolderOverflowPool {
 public:
  /// A fresh (empty) list; returns its id.
  uint32_t Allocate();
  /// Returns list `id` to the free list.
  void Release(uint32_t id);
  /// List `id` (a live id from Allocate).
  std::vector<uint16_t>& at(uint32_t id) { return lists_[id]; }
  const std::vector<uint16_t>& at(uint32_t id) const { return lists_[id]; }
  /// Lists in use.
  size_t live() const { return lists_.size() - free_.size(); }
  /// Heap bytes of the pool (list headers, their elements, the free list).
  size_t MemoryBytes() const;

 private:
  std::vector<std::vector<uint16_t>> lists_;
  std::vector<uint32_t> free_;
};

/// A compact, unordered set of holders of one block: at most one tier per node (a node keeps
/// one copy of a block, in one tier).
///
/// Encoding: each holder is 16 bits, `node << 2 | tier` (tier 1..3, so 0 never encodes a
/// holder). Up to four holders sit inline, packed at the front, zero-filled behind. A fifth
/// moves them all to a list in the HolderOverflowPool: `slots_[3]` becomes kOverflowTag and
/// `slots_[0..1]` hold the list id. Dropping back to four moves them inline again.
///
/// A value type of 8 bytes; every mutating call takes the pool the set may overflow into.
/// Not thread-safe; owned by GlobalIndex.
class HolderSet {
 public:
  static constexpr size_t kInlineHolders = 4;

  /// The tier `node` holds the block in, or Tier::kNone.
  Tier Find(NodeIndex node, const HolderOverflowPool& pool) const;
  /// Adds `node` at `tier` or moves it to `tier`; returns its previous tier (kNone if added).
  /// `tier` must be kGpu, kHost or kDisk.
  Tier Set(NodeIndex node, Tier tier, HolderOverflowPool& pool);
  /// Removes `node`; returns the tier it held (kNone if it held nothing).
  Tier Erase(NodeIndex node, HolderOverflowPool& pool);
  /// Frees any overflow list (call before the set is discarded).
  void Clear(HolderOverflowPool& pool);

  bool empty() const { return !overflowed() && slots_[0] == 0; }
  size_t size(const HolderOverflowPool& pool) const;

  /// Calls `fn(Holder)` for every holder, in no particular order.
  template <typename Fn>
  void ForEach(const HolderOverflowPool& pool, Fn&& fn) const {
    if (overflowed()) {
      for (uint16_t code : pool.at(overflow_id())) fn(Decode(code));
      return;
    }
    for (uint16_t code : slots_) {
      if (code == 0) return;
      fn(Decode(code));
    }
  }

  /// The 16-bit code of a holder (`node` < kMaxIndexedNodes, `tier` gpu/host/disk); codes
  /// order by node first.
  static uint16_t Encode(NodeIndex node, Tier tier) {
    return static_cast<uint16_t>((node << 2) | static_cast<uint16_t>(tier));
  }
  /// The holder of a code made by Encode.
  static Holder Decode(uint16_t code) {
    return Holder{static_cast<NodeIndex>(code >> 2), static_cast<Tier>(code & 3)};
  }

 private:
  // (0x3FFF << 2) | 3: node index kMaxIndexedNodes is never handed out, so no holder encodes
  // to it.
  static constexpr uint16_t kOverflowTag = 0xFFFF;

  bool overflowed() const { return slots_[3] == kOverflowTag; }
  uint32_t overflow_id() const { return uint32_t{slots_[0]} | (uint32_t{slots_[1]} << 16); }

  std::array<uint16_t, kInlineHolders> slots_{};
};

static_assert(sizeof(HolderSet) == 8, "HolderSet must stay 8 bytes (scheduler memory budget)");

}  // namespace kvpool::scheduler
