#include "node/namespace_state.h"

#include <string>

#include "node/block_handle.h"

namespace kvpool::node {

Result<std::unique_ptr<NamespaceState>> NamespaceState::Create(uint32_t id,
                                                               const NamespaceSpec& spec,
                                                               memory::HostArena* arena,
                                                               uint64_t slab_bytes) {
  memory::BlockAllocatorOptions options;
  options.block_bytes = spec.block_bytes;
  options.slab_bytes = slab_bytes;
  // A slab's memory (and remote key) is reused only by the namespace that had it.
  options.owner = id;
  KVPOOL_ASSIGN_OR_RETURN(auto allocator, memory::BlockAllocator::Create(arena, options));
  return std::unique_ptr<NamespaceState>(new NamespaceState(id, spec, std::move(allocator)));
}

Status NamespaceState::EnableGpu(memory::HostArena* device_arena, uint64_t slab_bytes) {
  if (gpu_allocator_ != nullptr) {
    return FailedPreconditionError("namespace '" + spec_.name + "' already has a GPU tier");
  }
  memory::BlockAllocatorOptions options;
  options.block_bytes = spec_.block_bytes;
  options.slab_bytes = slab_bytes;
  KVPOOL_ASSIGN_OR_RETURN(gpu_allocator_, memory::BlockAllocator::Create(device_arena, options));
  return Status::Ok();
}

NamespaceState::NamespaceState(uint32_t id, NamespaceSpec spec,
                               std::unique_ptr<memory::BlockAllocator> alloc)
    : id_(id),
      spec_(std::move(spec)),
      hasher_(spec_.name, spec_.salt, spec_.block_tokens),
      allocator_(std::move(alloc)) {}

Tier NamespaceState::TierOf(const BlockHash& hash) const {
  if (std::optional<index::BlockRef> ref = tree_.Find(hash)) {
    return TierOfSlot(DecodeHandle(*ref).slot);
  }
  return disk_tree_.Contains(hash) ? Tier::kDisk : Tier::kNone;
}

uint64_t NamespaceState::ArenaOffset(memory::Slot slot) const {
  return IsGpuSlot(slot) ? gpu_allocator_->ArenaOffset(slot & ~kGpuSlotBit)
                         : allocator_->ArenaOffset(slot);
}

BlockHandle NamespaceState::HandleOf(memory::Slot slot) const {
  return EncodeHandle(id_, meta(slot).generation, slot);
}

// True when `slot` names a slot that was ever handed out (in either tier).
static bool SlotExists(memory::Slot slot, size_t host_slots, size_t gpu_slots) {
  return NamespaceState::IsGpuSlot(slot) ? (slot & ~NamespaceState::kGpuSlotBit) < gpu_slots
                                         : slot < host_slots;
}

std::optional<memory::Slot> NamespaceState::Lookup(BlockHandle handle) const {
  const DecodedHandle decoded = DecodeHandle(handle);
  if (decoded.namespace_id != id_ || !SlotExists(decoded.slot, meta_.size(), gpu_meta_.size())) {
    return std::nullopt;
  }
  const BlockMeta& m = meta(decoded.slot);
  if (m.generation != decoded.generation || m.state == BlockState::kFree) return std::nullopt;
  return decoded.slot;
}

Status NamespaceState::ResolveAll(std::span<const BlockHandle> handles,
                                  std::vector<memory::Slot>* slots) {
  slots->clear();
  slots->reserve(handles.size());
  if (++request_epoch_ == 0) {  // wrapped: forget every old stamp
    for (BlockMeta& m : meta_) m.seen_epoch = 0;
    for (BlockMeta& m : gpu_meta_) m.seen_epoch = 0;
    request_epoch_ = 1;
  }
  for (BlockHandle handle : handles) {
    KVPOOL_ASSIGN_OR_RETURN(memory::Slot slot, Resolve(handle));
    BlockMeta& m = meta(slot);
    if (m.seen_epoch == request_epoch_) {
      return InvalidArgumentError("block handle " + std::to_string(handle) +
                                  " appears more than once in the request");
    }
    m.seen_epoch = request_epoch_;
    slots->push_back(slot);
  }
  return Status::Ok();
}

Result<memory::Slot> NamespaceState::Resolve(BlockHandle handle) const {
  if (std::optional<memory::Slot> slot = Lookup(handle)) return *slot;
  const DecodedHandle decoded = DecodeHandle(handle);
  if (decoded.namespace_id != id_) {
    return InvalidArgumentError("block handle " + std::to_string(handle) +
                                " does not belong to namespace '" + spec_.name + "'");
  }
  if (!SlotExists(decoded.slot, meta_.size(), gpu_meta_.size())) {
    return InvalidArgumentError("block handle " + std::to_string(handle) +
                                " names no block of namespace '" + spec_.name + "'");
  }
  return NotFoundError("block handle " + std::to_string(handle) +
                       " is stale: the block was freed or evicted");
}

BlockLocation NamespaceState::LocationOf(memory::Slot slot) const {
  return BlockLocation{HandleOf(slot), TierOfSlot(slot), ArenaOffset(slot), spec_.block_bytes};
}

Status NamespaceState::AllocateBlocks(size_t n, uint64_t lease_id,
                                      std::vector<memory::Slot>* slots, Tier tier) {
  const size_t first = slots->size();
  const bool gpu = tier == Tier::kGpu;
  if (gpu && gpu_allocator_ == nullptr) {
    return FailedPreconditionError("namespace '" + spec_.name + "' has no GPU tier");
  }
  memory::BlockAllocator& alloc = gpu ? *gpu_allocator_ : *allocator_;
  KVPOOL_RETURN_IF_ERROR(alloc.Allocate(n, slots));
  std::vector<BlockMeta>& metas = gpu ? gpu_meta_ : meta_;
  if (metas.size() < alloc.slot_limit()) metas.resize(alloc.slot_limit());
  for (size_t i = first; i < slots->size(); ++i) {
    if (gpu) (*slots)[i] |= kGpuSlotBit;
    BlockMeta& m = meta((*slots)[i]);
    m.state = BlockState::kAllocated;
    m.owner_lease = lease_id;
    m.pins = 0;
  }
  allocated_blocks += n;
  return Status::Ok();
}

void NamespaceState::FreeBlock(memory::Slot slot) {
  BlockMeta& m = meta(slot);
  if (m.state == BlockState::kAllocated) --allocated_blocks;
  if (m.state == BlockState::kDetached) --detached_blocks;
  m.state = BlockState::kFree;
  m.owner_lease = 0;
  m.pins = 0;
  m.write_behind = WriteBehindState::kNone;
  ++m.generation;
  if (IsGpuSlot(slot)) {
    gpu_allocator_->Free(slot & ~kGpuSlotBit);
  } else {
    allocator_->Free(slot);
  }
}

void NamespaceState::OnRemovedFromTree(memory::Slot slot) {
  BlockMeta& m = meta(slot);
  if (m.pins == 0 && m.write_behind == WriteBehindState::kNone) {
    FreeBlock(slot);
    return;
  }
  // Someone still reads it under a lease, or writes it to the SSD tier: keep the bytes until
  // the last pin goes and the write ended.
  if (m.pins > 0) --pinned_blocks;
  m.state = BlockState::kDetached;
  ++detached_blocks;
}

void NamespaceState::MarkCached(memory::Slot slot, const BlockHash& hash,
                                std::optional<BlockHash> parent) {
  BlockMeta& m = meta(slot);
  m.state = BlockState::kCached;
  m.owner_lease = 0;
  m.hash = hash;
  m.has_parent = parent.has_value();
  m.parent = parent.value_or(BlockHash{});
  --allocated_blocks;
}

void NamespaceState::AddToDiskTree(const BlockHash& hash, std::optional<BlockHash> parent) {
  const index::BlockRef none = 0;
  std::vector<index::InsertOutcome> outcome;
  disk_tree_.Insert(parent, std::span(&hash, 1), std::span(&none, 1), &outcome);
}

void NamespaceState::BeginWriteBehind(memory::Slot slot) {
  meta(slot).write_behind = WriteBehindState::kWriting;
}

void NamespaceState::EndWriteBehind(memory::Slot slot) {
  BlockMeta& m = meta(slot);
  m.write_behind = WriteBehindState::kNone;
  if (m.state == BlockState::kDetached && m.pins == 0) FreeBlock(slot);
}

void NamespaceState::Pin(memory::Slot slot) {
  BlockMeta& m = meta(slot);
  if (m.pins++ == 0) ++pinned_blocks;
  tree_.Pin(m.hash);
}

void NamespaceState::Unpin(memory::Slot slot) {
  BlockMeta& m = meta(slot);
  if (m.pins == 0) return;
  --m.pins;
  if (m.state == BlockState::kCached) {
    if (m.pins == 0) --pinned_blocks;
    tree_.Unpin(m.hash);
  } else if (m.state == BlockState::kDetached && m.pins == 0 &&
             m.write_behind == WriteBehindState::kNone) {
    FreeBlock(slot);
  }
}

NamespaceStats NamespaceState::Snapshot() const {
  NamespaceStats s = counters_;
  s.allocated_blocks = allocated_blocks;
  s.cached_blocks = tree_.size();
  s.pinned_blocks = pinned_blocks;
  s.reserved_bytes = allocator_->reserved_blocks() * spec_.block_bytes;
  s.used_bytes = allocator_->used_blocks() * spec_.block_bytes;
  s.index_bytes = tree_.MemoryBytes() + disk_tree_.MemoryBytes();
  s.disk_blocks = disk_tree_.size();
  if (gpu_allocator_ != nullptr) s.gpu_used_bytes = gpu_allocator_->used_blocks() * spec_.block_bytes;
  return s;
}

}  // namespace kvpool::node
