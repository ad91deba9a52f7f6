// Fixed-size KV blocks of one namespace, carved from the host arena in slabs.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <vector>

#include "kvpool/status.h"
#include "memory/host_arena.h"

namespace kvpool::memory {

/// Identifies one block of a BlockAllocator: a dense index, < slot_limit().
using Slot = uint32_t;

struct BlockAllocatorOptions {
  /// Bytes of one block (all layers, K and V). Must be > 0. Default: 0 (the caller chooses).
  uint64_t block_bytes = 0;
  /// Target bytes of one slab (one arena extent); rounded to a whole number of blocks, at least
  /// one. Default: 32 MiB.
  uint64_t slab_bytes = 32ull << 20;
  /// Empty slabs kept for reuse instead of being returned to the arena. Default: 1.
  uint32_t spare_slabs = 1;
  /// Who claims the slabs from the arena (HostArena::Allocate's owner: kvpoold passes the
  /// namespace id, so a slab's memory is reused only by the namespace that had it). Default: 0.
  uint64_t owner = 0;
};

/// Hands out fixed-size blocks of one namespace. Grows by claiming slabs (extents of many blocks)
/// from the arena and returns a slab to the arena when all of its blocks are free (keeping up to
/// `spare_slabs` empty slabs). Every slab holds the same number of blocks, so slot ids are
/// `slab_index * blocks_per_slab + i`; the ids of a returned slab are reused by the next slab.
///
/// Allocation prefers the lowest-numbered slab with free blocks so that the others can empty
/// and go back to the arena. Allocate/Free cost O(1) per block (plus O(log slabs) per slab
/// switch).
///
/// Not thread-safe; owned by the node's namespace state. The arena must outlive it.
class BlockAllocator {
 public:
  /// INVALID_ARGUMENT for block_bytes == 0.
  static Result<std::unique_ptr<BlockAllocator>> Create(HostArena* arena,
                                                        const BlockAllocatorOptions& options);
  /// Returns every slab to the arena (allocated blocks included).
  ~BlockAllocator();
  BlockAllocator(const BlockAllocator&) = delete;
  BlockAllocator& operator=(const BlockAllocator&) = delete;

  /// Allocates `n` blocks, all or nothing, appending their slots to `*slots`.
  /// RESOURCE_EXHAUSTED (message names n and what was free) when the arena cannot supply the
  /// slabs needed; nothing is allocated then. n == 0 is OK and does nothing.
  Status Allocate(size_t n, std::vector<Slot>* slots);

  /// Frees one allocated slot. Freeing a slot that is not allocated is a programming error
  /// (the owner validates handles first); it is ignored and counted in double_frees().
  void Free(Slot slot);
  void Free(std::span<const Slot> slots);

  /// Returns all empty slabs (including spares) to the arena; returns how many.
  size_t ReleaseEmptySlabs();

  bool IsAllocated(Slot slot) const;
  /// Address of a slot's first byte; the slot must be in a live slab.
  uint8_t* Address(Slot slot) const;
  /// Offset of a slot's first byte from the arena's base().
  uint64_t ArenaOffset(Slot slot) const;

  uint64_t block_bytes() const;
  uint32_t blocks_per_slab() const;
  /// Every slot id ever handed out is < slot_limit().
  uint32_t slot_limit() const;
  /// Blocks currently allocated.
  uint64_t used_blocks() const;
  /// Blocks in live slabs (allocated + free within slabs).
  uint64_t reserved_blocks() const;
  /// Live slabs, empty spares included.
  size_t slabs() const;
  /// Frees of slots that were not allocated (should stay 0).
  uint64_t double_frees() const;

 private:
  struct Impl;
  explicit BlockAllocator(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvpool::memory
