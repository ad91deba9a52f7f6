// Everything a node keeps for one namespace: its blocks, their states, its prompt tree.
#pragma once

#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "index/prompt_tree.h"
#include "kvpool/block_hash.h"
#include "kvpool/status.h"
#include "kvpool/types.h"
#include "memory/block_allocator.h"
#include "memory/host_arena.h"

namespace kvpool::node {

/// Life cycle of a block slot:
///   kFree --AllocMem--> kAllocated --Insert--> kCached --evict/delete--> kFree
///   kAllocated --FreeMem/lease end--> kFree;  kCached --delete while pinned--> kDetached
///   kDetached --last pin released--> kFree
enum class BlockState : uint8_t { kFree, kAllocated, kCached, kDetached };

/// Where a HOST block stands with the write-behind (MemPool::WriteBehind).
enum class WriteBehindState : uint8_t {
  kNone = 0,
  kWriting = 1,         ///< its bytes are being written to the SSD tier: the slot stays allocated
  kWritingDemoted = 2,  ///< as kWriting, and host eviction took it meanwhile, counting it as DISK
};

struct BlockMeta {
  BlockHash hash;              ///< valid in kCached and kDetached
  BlockHash parent;            ///< the hash before `hash` in its prompt, when has_parent
  uint64_t owner_lease = 0;    ///< the AllocMem lease, in kAllocated
  uint32_t pins = 0;           ///< read pins held by leases (keeps the bytes alive)
  uint16_t generation = 0;     ///< bumped on every free; part of the handle
  BlockState state = BlockState::kFree;
  bool has_parent = false;     ///< kCached: `parent` is known (false for a prompt's first block)
  WriteBehindState write_behind = WriteBehindState::kNone;
  uint32_t seen_epoch = 0;     ///< ResolveAll's duplicate detector (see request_epoch_)
};

/// One namespace of a node. Not thread-safe; owned by MemPool and used under its lock.
class NamespaceState {
 public:
  /// Slots of GPU-tier blocks have this bit set; the rest are HOST slots. Both kinds index
  /// their own allocator and metadata, and share the prompt tree (`tree()`).
  static constexpr memory::Slot kGpuSlotBit = 1u << 31;
  static bool IsGpuSlot(memory::Slot slot) { return (slot & kGpuSlotBit) != 0; }

  /// Creates the namespace's allocator on `arena` (which must outlive it).
  static Result<std::unique_ptr<NamespaceState>> Create(uint32_t id, const NamespaceSpec& spec,
                                                        memory::HostArena* arena,
                                                        uint64_t slab_bytes);
  /// Adds the GPU tier: an allocator on `device_arena` (an arena over device memory, which must
  /// outlive this). Call at most once.
  Status EnableGpu(memory::HostArena* device_arena, uint64_t slab_bytes);
  bool has_gpu() const { return gpu_allocator_ != nullptr; }

  uint32_t id() const { return id_; }
  const NamespaceSpec& spec() const { return spec_; }
  const BlockHasher& hasher() const { return hasher_; }
  /// The memory tiers: blocks in pool memory, HOST or GPU (refs are block handles; the slot
  /// says which tier).
  index::PromptTree& tree() { return tree_; }
  const index::PromptTree& tree() const { return tree_; }
  /// The DISK tier: exactly the blocks the SSD tier stores (refs unused, 0). A block may be in
  /// both trees (promoted, or written durably); its tier is then HOST.
  index::PromptTree& disk_tree() { return disk_tree_; }
  const index::PromptTree& disk_tree() const { return disk_tree_; }
  /// GPU or HOST if the block is in pool memory, else DISK if the SSD tier has it, else kNone.
  Tier TierOf(const BlockHash& hash) const;
  /// The tier of a block in pool memory, by its slot.
  static Tier TierOfSlot(memory::Slot slot) { return IsGpuSlot(slot) ? Tier::kGpu : Tier::kHost; }
  /// The HOST tier's allocator.
  memory::BlockAllocator& allocator() { return *allocator_; }
  const memory::BlockAllocator& allocator() const { return *allocator_; }
  /// The allocator of `tier` (kGpu or kHost); null for kGpu without a GPU tier.
  memory::BlockAllocator* allocator(Tier tier) {
    return tier == Tier::kGpu ? gpu_allocator_.get() : allocator_.get();
  }
  /// Offset of a slot's first byte from its tier's arena base.
  uint64_t ArenaOffset(memory::Slot slot) const;
  NamespaceStats& counters() { return counters_; }

  /// The current handle of a slot.
  BlockHandle HandleOf(memory::Slot slot) const;
  /// The slot of a live handle of this namespace. INVALID_ARGUMENT for another namespace's
  /// handle or a slot that never existed; NOT_FOUND for a handle of a freed (or reused) block.
  Result<memory::Slot> Resolve(BlockHandle handle) const;
  /// Resolve without an error message: the slot of a live handle, or nullopt. For hot paths
  /// that skip stale handles (a lease ending) rather than report them.
  std::optional<memory::Slot> Lookup(BlockHandle handle) const;
  /// Resolves every handle (as Resolve) into `*slots` (cleared first); INVALID_ARGUMENT if one
  /// block is named twice. O(1) per handle: duplicates are found with a per-call epoch stamp.
  Status ResolveAll(std::span<const BlockHandle> handles, std::vector<memory::Slot>* slots);
  BlockMeta& meta(memory::Slot slot) {
    return IsGpuSlot(slot) ? gpu_meta_[slot & ~kGpuSlotBit] : meta_[slot];
  }
  const BlockMeta& meta(memory::Slot slot) const {
    return IsGpuSlot(slot) ? gpu_meta_[slot & ~kGpuSlotBit] : meta_[slot];
  }
  BlockLocation LocationOf(memory::Slot slot) const;

  /// Allocates `n` blocks of `tier` (kHost or kGpu; kGpu needs EnableGpu) owned by `lease_id`
  /// (all or nothing).
  Status AllocateBlocks(size_t n, uint64_t lease_id, std::vector<memory::Slot>* slots,
                        Tier tier = Tier::kHost);
  /// Returns a block to the allocator; its handle goes stale.
  void FreeBlock(memory::Slot slot);
  /// A block left the tree (evicted or deleted): freed now, or detached while pinned.
  void OnRemovedFromTree(memory::Slot slot);
  /// Adds one read pin to a cached block (it cannot be evicted while pinned).
  void Pin(memory::Slot slot);
  /// Drops one read pin; frees a detached block whose last pin went.
  void Unpin(memory::Slot slot);
  /// An allocated (unleased) slot whose bytes are complete becomes the cached block `hash`
  /// under `parent` (the caller inserts it into the tree).
  void MarkCached(memory::Slot slot, const BlockHash& hash, std::optional<BlockHash> parent);
  /// Records that the SSD tier stores `hash` (under `parent`) in the DISK tree.
  void AddToDiskTree(const BlockHash& hash, std::optional<BlockHash> parent);
  /// Write-behind: keeps a cached HOST block's bytes alive while they are written to the SSD
  /// tier, without pinning it in the tree (eviction may still take it: it then stays detached).
  void BeginWriteBehind(memory::Slot slot);
  /// Ends BeginWriteBehind; frees the block if it left the tree meanwhile and has no pins.
  void EndWriteBehind(memory::Slot slot);

  /// Leases (of any kind) that refer to this namespace.
  uint64_t active_leases = 0;
  /// Blocks in kAllocated / kDetached state, and cached blocks with pins.
  uint64_t allocated_blocks = 0;
  uint64_t detached_blocks = 0;
  uint64_t pinned_blocks = 0;
  /// True when a GPU block may have only HOST children (some went down from the GPU tier under
  /// it): such a block is no leaf, so GPU pressure looks for it apart (MemPool's
  /// EvictGpuInteriorLocked), only while this is set.
  bool gpu_blocks_over_host = false;

  /// Current counters with the gauges filled in.
  NamespaceStats Snapshot() const;

 private:
  NamespaceState(uint32_t id, NamespaceSpec spec, std::unique_ptr<memory::BlockAllocator> alloc);

  uint32_t id_;
  NamespaceSpec spec_;
  BlockHasher hasher_;
  std::unique_ptr<memory::BlockAllocator> allocator_;
  std::unique_ptr<memory::BlockAllocator> gpu_allocator_;  // null without a GPU tier
  index::PromptTree tree_;
  index::PromptTree disk_tree_;
  std::vector<BlockMeta> meta_;      // HOST slots
  std::vector<BlockMeta> gpu_meta_;  // GPU slots, indexed without kGpuSlotBit
  // Bumped by every ResolveAll; a slot whose seen_epoch equals it was already named in the call.
  uint32_t request_epoch_ = 0;
  NamespaceStats counters_;
};

}  // namespace kvpool::node
