#include "transport/remote_slabs.h"

#include <iterator>
#include <utility>

namespace kvpool::transport {

std::vector<std::string> RemoteSlabs::Learn(uint64_t offset, uint64_t bytes, std::string rkey) {
  std::vector<std::string> replaced;
  auto it = by_offset_.find(offset);
  if (it != by_offset_.end() && it->second->size_bytes == bytes && it->second->rkey == rkey) {
    return replaced;
  }
  // Forget every known slab that overlaps [offset, + bytes).
  it = by_offset_.lower_bound(offset);
  if (it != by_offset_.begin()) {
    auto prev = std::prev(it);
    if (prev->first + prev->second->size_bytes > offset) it = prev;
  }
  while (it != by_offset_.end() && it->first < offset + bytes) {
    replaced.push_back(it->second->rkey);
    it = by_offset_.erase(it);
  }
  by_offset_.emplace(offset, std::make_shared<const RemoteRegion>(
                                 RemoteRegion{pool_base_ + offset, bytes, std::move(rkey)}));
  return replaced;
}

const RemoteSlabs::Slab* RemoteSlabs::Find(uint64_t offset, uint64_t length) const {
  auto it = by_offset_.upper_bound(offset);
  if (it == by_offset_.begin()) return nullptr;
  it = std::prev(it);
  const uint64_t slab_end = it->first + it->second->size_bytes;
  if (offset + length > slab_end || offset + length < offset) return nullptr;
  return &it->second;
}

void RemoteSlabs::Rebase(uint64_t pool_base) {
  if (pool_base == pool_base_) return;
  pool_base_ = pool_base;
  for (auto& [offset, slab] : by_offset_) {
    slab = std::make_shared<const RemoteRegion>(
        RemoteRegion{pool_base + offset, slab->size_bytes, slab->rkey});
  }
}

}  // namespace kvpool::transport
