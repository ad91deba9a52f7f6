#include "transport/pool_memory.h"

#include <algorithm>
#include <fstream>
#include <iterator>
#include <utility>

#include "common/logging.h"

namespace kvpool::transport {
namespace {

// True when the kernel has huge pages reserved (vm.nr_hugepages > 0), so UCX may back a slab
// with them.
bool HugePagesReserved() {
  std::ifstream in("/proc/sys/vm/nr_hugepages");
  uint64_t pages = 0;
  return (in >> pages) && pages > 0;
}

// The first range of `ranges` (keyed by offset, disjoint) that ends after `offset`.
template <typename Ranges, typename BytesOf>
auto FirstEndingAfter(Ranges& ranges, uint64_t offset, BytesOf bytes_of) {
  auto it = ranges.lower_bound(offset);
  if (it != ranges.begin()) {
    auto prev = std::prev(it);
    if (prev->first + bytes_of(prev->second) > offset) it = prev;
  }
  return it;
}

}  // namespace

Result<std::unique_ptr<PoolMemory>> PoolMemory::Create(TransferEngine* engine,
                                                       uint64_t capacity_bytes) {
  if (engine == nullptr) return InvalidArgumentError("PoolMemory needs a transfer engine");
  if (capacity_bytes == 0) return InvalidArgumentError("the pool needs a capacity above 0");
  const uint64_t alignment = HugePagesReserved() ? (2ull << 20) : 4096;
  const uint64_t rounded = (capacity_bytes + alignment - 1) / alignment * alignment;
  // 64 GiB of free address space above the pool (no memory): the process's later mappings go
  // there, not into the hole an unmapped slab leaves for a moment (ClearIdle).
  constexpr uint64_t kGuardGapBytes = 64ull << 30;
  KVPOOL_ASSIGN_OR_RETURN(memory::AddressReservation reservation,
                          memory::AddressReservation::Create(rounded, alignment, kGuardGapBytes));
  std::unique_ptr<PoolMemory> memory(new PoolMemory(engine, std::move(reservation), alignment));
  KVPOOL_ASSIGN_OR_RETURN(memory->probe_, engine->AllocateMemory(4096));
  return memory;
}

PoolMemory::~PoolMemory() {
  std::map<uint64_t, Slab> left;
  Counts counts;
  {
    absl::MutexLock lock(&mu_);
    left.swap(slabs_);
    counts = counts_;
  }
  KVPOOL_LOG(INFO) << "pool memory: " << counts.maps << " slabs mapped, " << counts.reuses
                   << " reused by their namespace, " << counts.unmaps << " unmapped; "
                   << left.size() << " in use and " << idle_.size() << " idle at exit";
  left.merge(idle_);
  for (auto& [offset, slab] : left) engine_->Deregister(slab.region).IgnoreError();
  if (probe_.data != nullptr) engine_->Deregister(probe_.id).IgnoreError();
}

Result<std::unique_ptr<memory::HostArena>> PoolMemory::Arena() {
  return memory::HostArena::Adopt(reservation_.base(), reservation_.size_bytes(), this,
                                  alignment_);
}

std::optional<uint64_t> PoolMemory::Preferred(uint64_t bytes, uint64_t owner) {
  for (const auto& [offset, slab] : idle_) {
    if (slab.owner == owner && slab.bytes == bytes) return offset;
  }
  // Else the space above every slab mapped so far, never mapped: claiming it unmaps no other
  // namespace's idle slab, and opens no hole another mmap could take. (Slabs are mapped there
  // in rising order, so below it nothing was left unmapped but rare failed claims.)
  if (capacity_bytes() - mapped_end_ >= bytes) return mapped_end_;
  return std::nullopt;
}

Status PoolMemory::Back(const memory::Extent& extent, uint64_t owner) {
  if (auto idle = idle_.find(extent.offset);
      idle != idle_.end() && idle->second.owner == owner && idle->second.bytes == extent.bytes) {
    // The namespace's own slab again: same memory, same key.
    Slab slab = std::move(idle->second);
    idle_.erase(idle);
    absl::MutexLock lock(&mu_);
    ++counts_.reuses;
    --counts_.idle_slabs;
    slabs_.emplace(extent.offset, std::move(slab));
    return Status::Ok();
  }
  KVPOOL_RETURN_IF_ERROR(ReclaimLost(extent.offset, extent.bytes));
  // Another owner's memory may not reach this one: unmap whatever idle slab is in the way.
  KVPOOL_RETURN_IF_ERROR(ClearIdle(extent.offset, extent.bytes));
  Result<LocalRegion> region =
      engine_->AllocateMemoryAt(reservation_.base() + extent.offset, extent.bytes);
  if (!region.ok()) {
    Status error = region.status().WithContext(
        "mapping a pool slab of " + std::to_string(extent.bytes) + " bytes at offset " +
        std::to_string(extent.offset));
    KVPOOL_LOG(WARNING) << error.ToString();
    return error;
  }
  mapped_end_ = std::max(mapped_end_, extent.offset + extent.bytes);
  absl::MutexLock lock(&mu_);
  ++counts_.maps;
  slabs_[extent.offset] = Slab{extent.bytes, region->id, std::move(region->rkey), owner};
  return Status::Ok();
}

void PoolMemory::Release(const memory::Extent& extent) {
  absl::MutexLock lock(&mu_);
  auto it = slabs_.find(extent.offset);
  if (it == slabs_.end()) {
    KVPOOL_LOG(ERROR) << "pool slab at offset " << extent.offset << " released but not mapped";
    return;
  }
  // From now on its key is handed to no one; its memory waits for its owner's next claim.
  idle_.emplace(it->first, std::move(it->second));
  slabs_.erase(it);
  ++counts_.idle_slabs;
}

Status PoolMemory::ReclaimLost(uint64_t offset, uint64_t bytes) {
  auto it = FirstEndingAfter(lost_, offset, [](uint64_t lost_bytes) { return lost_bytes; });
  while (it != lost_.end() && it->first < offset + bytes) {
    // Usually a transient mapping (a large malloc) took the hole; once it is gone the range is
    // the pool's again.
    if (!reservation_.Restore(it->first, it->second)) {
      return ResourceExhaustedError("pool range at offset " + std::to_string(it->first) +
                                    " is still taken by another mapping of this process");
    }
    KVPOOL_LOG(INFO) << "pool range at offset " << it->first << " (" << it->second
                     << " bytes) is reserved again";
    absl::MutexLock lock(&mu_);
    counts_.lost_bytes -= it->second;
    it = lost_.erase(it);
  }
  return Status::Ok();
}

Status PoolMemory::ClearIdle(uint64_t offset, uint64_t bytes) {
  auto it = FirstEndingAfter(idle_, offset, [](const Slab& slab) { return slab.bytes; });
  while (it != idle_.end() && it->first < offset + bytes) {
    const uint64_t at = it->first;
    const uint64_t slab_bytes = it->second.bytes;
    // Reserved again on the engine's thread right after the unmap: the hole is open for
    // microseconds, yet an mmap of another thread may still take it (then the range is lost
    // until that mapping goes: ReclaimLost).
    bool restored = false;
    if (Status st = engine_->Deregister(
            it->second.region,
            [&] {
              if (unmap_hook_) unmap_hook_(reservation_.base() + at, slab_bytes);
              restored = reservation_.Restore(at, slab_bytes);
            });
        !st.ok()) {
      // FAILED_PRECONDITION: a transfer of this node still runs on it (bounded by its lease);
      // the arena tries another extent, and this one once the transfer ended.
      Status error(st.code() == StatusCode::kFailedPrecondition ? StatusCode::kResourceExhausted
                                                                : st.code(),
                   "idle pool slab at offset " + std::to_string(at) +
                       " cannot be unmapped yet: " + std::string(st.message()));
      KVPOOL_LOG(WARNING) << error.ToString();
      return error;
    }
    it = idle_.erase(it);
    absl::MutexLock lock(&mu_);
    ++counts_.unmaps;
    --counts_.idle_slabs;
    if (!restored) {
      KVPOOL_LOG(WARNING) << "another mapping of this process took the pool's range at offset "
                          << at << " while a slab was unmapped; its " << slab_bytes
                          << " bytes are out of use until that mapping is gone";
      counts_.lost_bytes += slab_bytes;
      lost_.emplace(at, slab_bytes);
      return ResourceExhaustedError("pool range at offset " + std::to_string(at) +
                                    " was taken by another mapping of this process");
    }
  }
  return Status::Ok();
}

std::vector<SlabKey> PoolMemory::KeysFor(std::span<const uint64_t> offsets,
                                         uint64_t block_bytes) const {
  std::vector<SlabKey> keys;
  absl::MutexLock lock(&mu_);
  for (const uint64_t offset : offsets) {
    auto it = slabs_.upper_bound(offset);
    if (it == slabs_.begin()) continue;
    it = std::prev(it);
    if (offset + block_bytes > it->first + it->second.bytes) continue;
    // A response names a few slabs: a scan beats a set.
    bool known = false;
    for (const SlabKey& key : keys) known = known || key.offset == it->first;
    if (!known) keys.push_back(SlabKey{it->first, it->second.bytes, it->second.rkey});
  }
  std::sort(keys.begin(), keys.end(),
            [](const SlabKey& a, const SlabKey& b) { return a.offset < b.offset; });
  return keys;
}

size_t PoolMemory::mapped_slabs() const {
  absl::MutexLock lock(&mu_);
  return slabs_.size();
}

PoolMemory::Counts PoolMemory::counts() const {
  absl::MutexLock lock(&mu_);
  return counts_;
}

}  // namespace kvpool::transport
