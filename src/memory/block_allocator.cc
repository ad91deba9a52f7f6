#include "memory/block_allocator.h"

#include <cassert>
#include <limits>
#include <set>
#include <string>

namespace kvpool::memory {
namespace {

// Marks the end of a slab's free chain.
constexpr uint32_t kNoBlock = std::numeric_limits<uint32_t>::max();

}  // namespace

// The allocator's state. Not thread-safe; owned by its BlockAllocator.
//
// Each slab hands out blocks first from an intrusive chain of freed blocks (`next_free`, indexed
// by slot, holding in-slab indices) and then by bumping `bump` through blocks never handed out
// since the slab was last empty. When a slab empties, its chain and bump are reset in O(1), so a
// fresh or recycled slab costs nothing to set up and hands out its blocks in address order.
struct BlockAllocator::Impl {
  struct Slab {
    Extent extent;
    bool live = false;
    uint32_t used = 0;
    uint32_t bump = 0;
    uint32_t free_head = kNoBlock;
  };

  Impl(HostArena* arena_in, uint64_t block_bytes_in, uint32_t blocks_per_slab_in,
       uint64_t slab_extent_bytes_in, uint32_t spare_slabs_in)
      : arena(arena_in),
        block_bytes(block_bytes_in),
        blocks_per_slab(blocks_per_slab_in),
        slab_extent_bytes(slab_extent_bytes_in),
        max_slabs(std::numeric_limits<uint32_t>::max() / blocks_per_slab_in),
        spare_slabs(spare_slabs_in) {}
  uint64_t owner = 0;

  uint32_t slot_limit() const { return static_cast<uint32_t>(slabs.size()) * blocks_per_slab; }
  uint64_t reserved_blocks() const { return uint64_t{live_slabs} * blocks_per_slab; }

  // `arena_error`: why the arena gave no slab, when it had room for one.
  Status ExhaustedError(size_t n, const Status& arena_error = Status::Ok()) const {
    std::string message =
        "cannot allocate " + std::to_string(n) + " blocks of " + std::to_string(block_bytes) +
        " bytes: " + std::to_string(reserved_blocks() - used_blocks) +
        " free in slabs, arena has " + std::to_string(arena->free_bytes()) +
        " free bytes in extents of at most " + std::to_string(arena->largest_free_extent_bytes()) +
        " (a slab needs " + std::to_string(slab_extent_bytes) + ")";
    if (!arena_error.ok() && arena->largest_free_extent_bytes() >= slab_extent_bytes) {
      message += "; the arena could not back a slab: " + std::string(arena_error.message());
    }
    return ResourceExhaustedError(message);
  }

  // Makes `extent` a live, empty slab, preferring the lowest released slab index so that slot
  // ids stay dense.
  void InstallSlab(const Extent& extent) {
    uint32_t index;
    if (!released_indices.empty()) {
      index = *released_indices.begin();
      released_indices.erase(released_indices.begin());
    } else {
      index = static_cast<uint32_t>(slabs.size());
      slabs.emplace_back();
      next_free.resize(slot_limit());
      allocated.resize(slot_limit());
    }
    Slab& slab = slabs[index];
    slab.extent = extent;
    slab.live = true;
    slab.used = 0;
    slab.bump = 0;
    slab.free_head = kNoBlock;
    ++live_slabs;
    with_free.insert(index);
    empty.insert(index);
  }

  void ReleaseSlab(uint32_t index) {
    Slab& slab = slabs[index];
    assert(slab.live && slab.used == 0);
    arena->Free(slab.extent);
    slab.live = false;
    --live_slabs;
    with_free.erase(index);
    empty.erase(index);
    released_indices.insert(index);
  }

  // Hands out `k` free blocks of slab `index`; the caller has checked that it has k free.
  void TakeFromSlab(uint32_t index, uint32_t k, std::vector<Slot>* slots) {
    Slab& slab = slabs[index];
    if (slab.used == 0) empty.erase(index);
    const Slot first = index * blocks_per_slab;
    for (uint32_t j = 0; j < k; ++j) {
      uint32_t block;
      if (slab.free_head != kNoBlock) {
        block = slab.free_head;
        slab.free_head = next_free[first + block];
      } else {
        block = slab.bump++;
      }
      allocated[first + block] = 1;
      slots->push_back(first + block);
    }
    slab.used += k;
    used_blocks += k;
    if (slab.used == blocks_per_slab) with_free.erase(index);
  }

  HostArena* arena;
  const uint64_t block_bytes;
  const uint32_t blocks_per_slab;
  // What one slab occupies in the arena: blocks_per_slab blocks rounded up to its alignment.
  const uint64_t slab_extent_bytes;
  // Slab indices above this would give slot ids that overflow Slot.
  const uint32_t max_slabs;
  const uint32_t spare_slabs;

  // Indexed by slab index; released slabs stay as tombstones (live == false) until reused.
  std::vector<Slab> slabs;
  // Indexed by slot.
  std::vector<uint32_t> next_free;
  std::vector<uint8_t> allocated;
  // Live slabs with at least one free block; Allocate takes from the lowest.
  std::set<uint32_t> with_free;
  // Live slabs with no allocated block (a subset of with_free).
  std::set<uint32_t> empty;
  // Slab indices whose slab went back to the arena.
  std::set<uint32_t> released_indices;

  size_t live_slabs = 0;
  uint64_t used_blocks = 0;
  uint64_t double_frees = 0;
};

Result<std::unique_ptr<BlockAllocator>> BlockAllocator::Create(
    HostArena* arena, const BlockAllocatorOptions& options) {
  if (arena == nullptr) {
    return InvalidArgumentError("block allocator needs a host arena, got null");
  }
  if (options.block_bytes == 0) {
    return InvalidArgumentError("block allocator block_bytes must be > 0, got 0");
  }
  const uint64_t per_slab = options.slab_bytes / options.block_bytes;
  if (per_slab > std::numeric_limits<uint32_t>::max()) {
    return InvalidArgumentError("slab_bytes " + std::to_string(options.slab_bytes) +
                                " holds " + std::to_string(per_slab) + " blocks of " +
                                std::to_string(options.block_bytes) +
                                " bytes, more than a slot id can number");
  }
  const uint32_t blocks_per_slab = per_slab == 0 ? 1 : static_cast<uint32_t>(per_slab);
  // Cannot overflow: it is at most max(slab_bytes, block_bytes).
  const uint64_t payload_bytes = uint64_t{blocks_per_slab} * options.block_bytes;
  const uint64_t alignment = arena->alignment_bytes();
  if (payload_bytes > arena->capacity_bytes()) {
    return InvalidArgumentError("a slab of " + std::to_string(blocks_per_slab) + " blocks of " +
                                std::to_string(options.block_bytes) + " bytes needs " +
                                std::to_string(payload_bytes) +
                                " bytes, more than the arena's capacity of " +
                                std::to_string(arena->capacity_bytes()));
  }
  // Cannot overflow: payload_bytes <= capacity, and capacity is a multiple of alignment.
  const uint64_t slab_extent_bytes = (payload_bytes + alignment - 1) / alignment * alignment;
  auto impl = std::make_unique<Impl>(arena, options.block_bytes, blocks_per_slab,
                                     slab_extent_bytes, options.spare_slabs);
  impl->owner = options.owner;
  return std::unique_ptr<BlockAllocator>(new BlockAllocator(std::move(impl)));
}

BlockAllocator::BlockAllocator(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}

BlockAllocator::~BlockAllocator() {
  for (const Impl::Slab& slab : impl_->slabs) {
    if (slab.live) impl_->arena->Free(slab.extent);
  }
}

Status BlockAllocator::Allocate(size_t n, std::vector<Slot>* slots) {
  if (n == 0) return Status::Ok();
  if (slots == nullptr) {
    return InvalidArgumentError("BlockAllocator::Allocate needs an output vector, got null");
  }
  Impl& s = *impl_;
  const uint64_t free_in_slabs = s.reserved_blocks() - s.used_blocks;
  uint64_t new_slabs = 0;
  if (n > free_in_slabs) {
    const uint64_t missing = n - free_in_slabs;
    new_slabs = missing / s.blocks_per_slab + (missing % s.blocks_per_slab != 0 ? 1 : 0);
  }

  if (new_slabs > 0) {
    const uint64_t spare_indices =
        s.released_indices.size() + (s.max_slabs - static_cast<uint32_t>(s.slabs.size()));
    if (new_slabs > spare_indices) {
      return ResourceExhaustedError(
          "cannot allocate " + std::to_string(n) + " blocks of " + std::to_string(s.block_bytes) +
          " bytes: " + std::to_string(free_in_slabs) + " free in slabs and room for only " +
          std::to_string(spare_indices) + " more slabs of " + std::to_string(s.blocks_per_slab) +
          " blocks before slot ids overflow");
    }
    // A cheap necessary condition first, so a hopeless request claims nothing.
    if (new_slabs > s.arena->free_bytes() / s.slab_extent_bytes) return s.ExhaustedError(n);

    // Claim every slab before touching any state, so a failure leaves nothing behind.
    std::vector<Extent> claimed;
    claimed.reserve(new_slabs);
    for (uint64_t i = 0; i < new_slabs; ++i) {
      Result<Extent> extent = s.arena->Allocate(s.slab_extent_bytes, s.owner);
      if (!extent.ok()) {
        for (const Extent& e : claimed) s.arena->Free(e);
        return s.ExhaustedError(n, extent.status());
      }
      claimed.push_back(*extent);
    }
    for (const Extent& e : claimed) s.InstallSlab(e);
  }

  slots->reserve(slots->size() + n);
  size_t remaining = n;
  while (remaining > 0) {
    assert(!s.with_free.empty());
    const uint32_t index = *s.with_free.begin();
    const uint32_t available = s.blocks_per_slab - s.slabs[index].used;
    const uint32_t k = remaining < available ? static_cast<uint32_t>(remaining) : available;
    s.TakeFromSlab(index, k, slots);
    remaining -= k;
  }
  return Status::Ok();
}

void BlockAllocator::Free(Slot slot) {
  Impl& s = *impl_;
  // Out-of-range slots and slots of released slabs read as not allocated.
  if (slot >= s.allocated.size() || !s.allocated[slot]) {
    ++s.double_frees;
    return;
  }
  const uint32_t index = slot / s.blocks_per_slab;
  Impl::Slab& slab = s.slabs[index];
  s.allocated[slot] = 0;
  if (slab.used == s.blocks_per_slab) s.with_free.insert(index);
  s.next_free[slot] = slab.free_head;
  slab.free_head = slot - index * s.blocks_per_slab;
  --slab.used;
  --s.used_blocks;
  if (slab.used > 0) return;

  // All blocks are free again: forget the chain so the slab restarts in address order.
  slab.free_head = kNoBlock;
  slab.bump = 0;
  s.empty.insert(index);
  if (s.empty.size() > s.spare_slabs) {
    // Give back the highest empty slab, not necessarily this one: low slabs are the ones
    // Allocate prefers, so keeping them as spares keeps live slot ids low and dense.
    s.ReleaseSlab(*s.empty.rbegin());
  }
}

void BlockAllocator::Free(std::span<const Slot> slots) {
  for (const Slot slot : slots) Free(slot);
}

size_t BlockAllocator::ReleaseEmptySlabs() {
  Impl& s = *impl_;
  const size_t released = s.empty.size();
  while (!s.empty.empty()) s.ReleaseSlab(*s.empty.begin());
  return released;
}

bool BlockAllocator::IsAllocated(Slot slot) const {
  return slot < impl_->allocated.size() && impl_->allocated[slot] != 0;
}

uint8_t* BlockAllocator::Address(Slot slot) const {
  return impl_->arena->base() + ArenaOffset(slot);
}

uint64_t BlockAllocator::ArenaOffset(Slot slot) const {
  const Impl& s = *impl_;
  const uint32_t index = slot / s.blocks_per_slab;
  assert(index < s.slabs.size() && s.slabs[index].live && "slot is not in a live slab");
  return s.slabs[index].extent.offset +
         uint64_t{slot - index * s.blocks_per_slab} * s.block_bytes;
}

uint64_t BlockAllocator::block_bytes() const { return impl_->block_bytes; }
uint32_t BlockAllocator::blocks_per_slab() const { return impl_->blocks_per_slab; }
uint32_t BlockAllocator::slot_limit() const { return impl_->slot_limit(); }
uint64_t BlockAllocator::used_blocks() const { return impl_->used_blocks; }
uint64_t BlockAllocator::reserved_blocks() const { return impl_->reserved_blocks(); }
size_t BlockAllocator::slabs() const { return impl_->live_slabs; }
uint64_t BlockAllocator::double_frees() const { return impl_->double_frees; }

}  // namespace kvpool::memory
