// The hash table behind the global index: block hash -> HolderSet, 24 bytes a slot, laid out so
// that a lookup costs one memory round trip. Internal to kvpool_scheduler.
#pragma once

#include <cstddef>
#include <cstdint>
#include <memory>

#include "kvpool/block_hash.h"
#include "kvpool/types.h"
#include "scheduler/holder_set.h"

namespace kvpool::scheduler {

/// Open addressing with linear probing over an array of {hash, holders} slots.
///
/// Why not absl::flat_hash_map: its probe reads a control byte group and then a slot elsewhere
/// (two dependent cache misses, and its prefetch() covers only the first slot line); here the
/// slot is found next to its home position, so prefetching the home line (and the next one)
/// makes a lookup of a prefetched key one round trip to memory. That is most of Route's time.
///
/// A slot is free exactly when its HolderSet is empty (an indexed block has a holder), so no
/// control bytes are needed. Deletion shifts the following slots back (no tombstones), so
/// lookups stay short after any amount of churn. The table doubles past a load of 3/4 (and halves
/// under 1/8 after removals), so it uses 32 to 64 bytes per block while growing. Home positions come from a seeded mix of both hash words, so
/// chosen hashes cannot pile onto one probe run.
///
/// Not thread-safe; owned by NamespaceIndex.
class BlockTable {
 public:
  struct Slot {
    BlockHash hash;
    HolderSet holders;
  };
  static_assert(sizeof(Slot) == 24, "Slot grew; re-check the 96 bytes/block budget");

  BlockTable();
  BlockTable(BlockTable&&) noexcept;
  BlockTable& operator=(BlockTable&&) noexcept;
  BlockTable(const BlockTable&) = delete;
  BlockTable& operator=(const BlockTable&) = delete;
  ~BlockTable();

  /// The holders of `hash`, or nullptr. Valid until the next mutation.
  const HolderSet* Find(const BlockHash& hash) const {
    if (capacity_ == 0) return nullptr;
    for (size_t i = Home(hash);; i = (i + 1) & mask_) {
      const Slot& s = slots_[i];
      if (s.holders.empty()) return nullptr;
      if (s.hash == hash) return &s.holders;
    }
  }
  /// Starts loading the memory Find(hash) reads first.
  /// Always inlined: GCC's IPA pass otherwise finds an out-of-line Prefetch "const" (it treats
  /// prefetches as free of side effects) and deletes every call to it.
  [[gnu::always_inline]] void Prefetch(const BlockHash& hash) const {
    // An empty table has mask 0 and a null array: this prefetches address 0 + 0, which is
    // harmless (prefetches never fault).
    const char* p = reinterpret_cast<const char*>(slots_.get() + Home(hash));
    __builtin_prefetch(p);
    __builtin_prefetch(p + 64);
  }

  /// Adds `node` at `tier` to the holders of `hash` (inserting the block) or moves it to
  /// `tier`; returns its previous tier (kNone when added).
  Tier Set(const BlockHash& hash, NodeIndex node, Tier tier, HolderOverflowPool& pool);
  /// Removes `node` from the holders of `hash` (the block goes with its last holder); returns
  /// the tier it had (kNone when it held nothing).
  Tier Erase(const BlockHash& hash, NodeIndex node, HolderOverflowPool& pool);
  /// Moves `node`'s copy of `hash` to `tier` if it has one; returns the previous tier (kNone:
  /// no copy, nothing changed).
  Tier Move(const BlockHash& hash, NodeIndex node, Tier tier, HolderOverflowPool& pool);
  /// Removes `node` from every block in one pass; returns how many copies it had.
  uint64_t EraseNode(NodeIndex node, HolderOverflowPool& pool);

  /// Makes room for `blocks` blocks in total without further growth.
  void Reserve(size_t blocks);

  size_t size() const { return size_; }
  size_t capacity() const { return capacity_; }
  /// Heap bytes of the slot array.
  size_t MemoryBytes() const { return capacity_ * sizeof(Slot); }

  /// Calls `fn(hash, holders)` for every block, in slot order.
  template <typename Fn>
  void ForEach(Fn&& fn) const {
    for (size_t i = 0; i < capacity_; ++i) {
      if (!slots_[i].holders.empty()) fn(slots_[i].hash, slots_[i].holders);
    }
  }

 private:
  size_t Home(const BlockHash& hash) const {
    uint64_t x = (hash.lo ^ seed_) + hash.hi * 0x9E3779B97F4A7C15ull;
    x ^= x >> 32;
    x *= 0xD6E8FEB86659FD93ull;
    x ^= x >> 32;
    return static_cast<size_t>(x) & mask_;
  }
  // The slot of `hash`, or of the free slot where it would go.
  size_t Probe(const BlockHash& hash) const;
  // Empties slot `i` and shifts the rest of its probe run back over it.
  void EraseSlot(size_t i);
  void Rehash(size_t new_capacity);
  // Halves the table while it is under 1/8 full (so it ends 1/8 to 1/4 full).
  void MaybeShrink();

  struct FreeSlots {
    void operator()(Slot* slots) const;
  };
  // Allocates `capacity` free slots; large arrays are 2 MiB aligned and marked for transparent
  // huge pages.
  static std::unique_ptr<Slot[], FreeSlots> AllocateSlots(size_t capacity);

  std::unique_ptr<Slot[], FreeSlots> slots_;
  size_t capacity_ = 0;  // 0 or a power of two.
  size_t mask_ = 0;
  size_t size_ = 0;
  uint64_t seed_;
};

}  // namespace kvpool::scheduler
