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
  KVPOOL_ASSIGN_OR_RETURN(auto allocator, memory::BlockAllocator::Create(arena, options));
  return std::unique_ptr<NamespaceState>(new NamespaceState(id, spec, std::move(allocator)));
}

NamespaceState::NamespaceState(uint32_t id, NamespaceSpec spec,
                               std::unique_ptr<memory::BlockAllocator> alloc)
    : id_(id),
      spec_(std::move(spec)),
      hasher_(spec_.name, spec_.salt, spec_.block_tokens),
      allocator_(std::move(alloc)) {}

BlockHandle NamespaceState::HandleOf(memory::Slot slot) const {
  return EncodeHandle(id_, meta_[slot].generation, slot);
}

std::optional<memory::Slot> NamespaceState::Lookup(BlockHandle handle) const {
  const DecodedHandle decoded = DecodeHandle(handle);
  if (decoded.namespace_id != id_ || decoded.slot >= meta_.size()) return std::nullopt;
  const BlockMeta& m = meta_[decoded.slot];
  if (m.generation != decoded.generation || m.state == BlockState::kFree) return std::nullopt;
  return decoded.slot;
}

Status NamespaceState::ResolveAll(std::span<const BlockHandle> handles,
                                  std::vector<memory::Slot>* slots) {
  slots->clear();
  slots->reserve(handles.size());
  if (++request_epoch_ == 0) {  // wrapped: forget every old stamp
    for (BlockMeta& m : meta_) m.seen_epoch = 0;
    request_epoch_ = 1;
  }
  for (BlockHandle handle : handles) {
    KVPOOL_ASSIGN_OR_RETURN(memory::Slot slot, Resolve(handle));
    BlockMeta& m = meta_[slot];
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
  if (decoded.slot >= meta_.size()) {
    return InvalidArgumentError("block handle " + std::to_string(handle) +
                                " names no block of namespace '" + spec_.name + "'");
  }
  return NotFoundError("block handle " + std::to_string(handle) +
                       " is stale: the block was freed or evicted");
}

BlockLocation NamespaceState::LocationOf(memory::Slot slot) const {
  return BlockLocation{HandleOf(slot), Tier::kHost, allocator_->ArenaOffset(slot),
                       spec_.block_bytes};
}

Status NamespaceState::AllocateBlocks(size_t n, uint64_t lease_id,
                                      std::vector<memory::Slot>* slots) {
  const size_t first = slots->size();
  KVPOOL_RETURN_IF_ERROR(allocator_->Allocate(n, slots));
  if (meta_.size() < allocator_->slot_limit()) meta_.resize(allocator_->slot_limit());
  for (size_t i = first; i < slots->size(); ++i) {
    BlockMeta& m = meta_[(*slots)[i]];
    m.state = BlockState::kAllocated;
    m.owner_lease = lease_id;
    m.pins = 0;
  }
  allocated_blocks += n;
  return Status::Ok();
}

void NamespaceState::FreeBlock(memory::Slot slot) {
  BlockMeta& m = meta_[slot];
  if (m.state == BlockState::kAllocated) --allocated_blocks;
  if (m.state == BlockState::kDetached) --detached_blocks;
  m.state = BlockState::kFree;
  m.owner_lease = 0;
  m.pins = 0;
  ++m.generation;
  allocator_->Free(slot);
}

void NamespaceState::OnRemovedFromTree(memory::Slot slot) {
  BlockMeta& m = meta_[slot];
  if (m.pins == 0) {
    FreeBlock(slot);
    return;
  }
  // Someone still reads it under a lease: keep the bytes until the last pin goes.
  --pinned_blocks;
  m.state = BlockState::kDetached;
  ++detached_blocks;
}

void NamespaceState::Pin(memory::Slot slot) {
  BlockMeta& m = meta_[slot];
  if (m.pins++ == 0) ++pinned_blocks;
  tree_.Pin(m.hash);
}

void NamespaceState::Unpin(memory::Slot slot) {
  BlockMeta& m = meta_[slot];
  if (m.pins == 0) return;
  --m.pins;
  if (m.state == BlockState::kCached) {
    if (m.pins == 0) --pinned_blocks;
    tree_.Unpin(m.hash);
  } else if (m.state == BlockState::kDetached && m.pins == 0) {
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
  return s;
}

}  // namespace kvpool::node
