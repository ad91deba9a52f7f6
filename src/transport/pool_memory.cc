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

}  // namespace

Result<std::unique_ptr<PoolMemory>> PoolMemory::Create(TransferEngine* engine,
                                                       uint64_t capacity_bytes) {
  if (engine == nullptr) return InvalidArgumentError("PoolMemory needs a transfer engine");
  if (capacity_bytes == 0) return InvalidArgumentError("the pool needs a capacity above 0");
  const uint64_t alignment = HugePagesReserved() ? (2ull << 20) : 4096;
  const uint64_t rounded = (capacity_bytes + alignment - 1) / alignment * alignment;
  KVPOOL_ASSIGN_OR_RETURN(memory::AddressReservation reservation,
                          memory::AddressReservation::Create(rounded, alignment));
  std::unique_ptr<PoolMemory> memory(new PoolMemory(engine, std::move(reservation), alignment));
  KVPOOL_ASSIGN_OR_RETURN(memory->probe_, engine->AllocateMemory(4096));
  return memory;
}

PoolMemory::~PoolMemory() {
  std::map<uint64_t, Slab> left;
  {
    absl::MutexLock lock(&mu_);
    left.swap(slabs_);
  }
  left.merge(retiring_);
  for (auto& [offset, slab] : left) engine_->Deregister(slab.region).IgnoreError();
  if (probe_.data != nullptr) engine_->Deregister(probe_.id).IgnoreError();
}

Result<std::unique_ptr<memory::HostArena>> PoolMemory::Arena() {
  return memory::HostArena::Adopt(reservation_.base(), reservation_.size_bytes(), this,
                                  alignment_);
}

Status PoolMemory::Back(const memory::Extent& extent) {
  Result<LocalRegion> region =
      engine_->AllocateMemoryAt(reservation_.base() + extent.offset, extent.bytes);
  if (!region.ok()) {
    return region.status().WithContext("mapping a pool slab of " + std::to_string(extent.bytes) +
                                       " bytes at offset " + std::to_string(extent.offset));
  }
  absl::MutexLock lock(&mu_);
  slabs_[extent.offset] = Slab{extent.bytes, region->id, std::move(region->rkey)};
  return Status::Ok();
}

memory::ExtentBacking::Released PoolMemory::Release(const memory::Extent& extent) {
  Slab slab;
  if (auto it = retiring_.find(extent.offset); it != retiring_.end()) {
    slab = std::move(it->second);  // asked again for a slab that was busy
    retiring_.erase(it);
  } else {
    absl::MutexLock lock(&mu_);
    auto mapped = slabs_.find(extent.offset);
    if (mapped == slabs_.end()) {
      KVPOOL_LOG(ERROR) << "pool slab at offset " << extent.offset << " released but not mapped";
      return Released::kLost;
    }
    slab = std::move(mapped->second);
    slabs_.erase(mapped);  // from now on its key is handed to no one
  }
  return Unmap(extent.offset, slab);
}

memory::ExtentBacking::Released PoolMemory::Unmap(uint64_t offset, const Slab& slab) {
  if (Status st = engine_->Deregister(slab.region); !st.ok()) {
    if (st.code() == StatusCode::kFailedPrecondition) {
      // A transfer of this node still runs on it (a pull whose lease ended under it, bounded
      // by its timeout): the arena asks again before its next allocations.
      KVPOOL_LOG(WARNING) << "pool slab at offset " << offset << " is still used by a transfer; "
                          << "it is unmapped once that ends";
      retiring_.emplace(offset, slab);
      return Released::kLater;
    }
    KVPOOL_LOG(ERROR) << "cannot unmap the pool slab at offset " << offset << ": " << st
                      << "; its " << slab.bytes << " bytes stay out of use";
    return Released::kLost;
  }
  if (!reservation_.Restore(offset, slab.bytes)) {
    KVPOOL_LOG(ERROR) << "another mapping took the pool's range at offset " << offset
                      << " while a slab was unmapped; its " << slab.bytes
                      << " bytes stay out of use";
    return Released::kLost;
  }
  return Released::kYes;
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

}  // namespace kvpool::transport
