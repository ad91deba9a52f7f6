#include "scheduler/holder_set.h"

#include <algorithm>

namespace kvpool::scheduler {

uint32_t HolderOverflowPool::Allocate() {
  if (!free_.empty()) {
    uint32_t id = free_.back();
    free_.pop_back();
    return id;
  }
  lists_.emplace_back();
  return static_cast<uint32_t>(lists_.size() - 1);
}

void HolderOverflowPool::Release(uint32_t id) {
  // Give the memory back: overflowed blocks are rare, and a released list may never be reused.
  std::vector<uint16_t>().swap(lists_[id]);
  free_.push_back(id);
}

size_t HolderOverflowPool::MemoryBytes() const {
  size_t bytes = lists_.capacity() * sizeof(std::vector<uint16_t>) +
                 free_.capacity() * sizeof(uint32_t);
  for (const auto& list : lists_) bytes += list.capacity() * sizeof(uint16_t);
  return bytes;
}

Tier HolderSet::Find(NodeIndex node, const HolderOverflowPool& pool) const {
  Tier found = Tier::kNone;
  ForEach(pool, [&](Holder h) {
    if (h.node == node) found = h.tier;
  });
  return found;
}

size_t HolderSet::size(const HolderOverflowPool& pool) const {
  if (overflowed()) return pool.at(overflow_id()).size();
  size_t n = 0;
  while (n < kInlineHolders && slots_[n] != 0) ++n;
  return n;
}

Tier HolderSet::Set(NodeIndex node, Tier tier, HolderOverflowPool& pool) {
  const uint16_t code = Encode(node, tier);
  if (overflowed()) {
    auto& list = pool.at(overflow_id());
    for (uint16_t& c : list) {
      if (Decode(c).node == node) {
        Tier old = Decode(c).tier;
        c = code;
        return old;
      }
    }
    list.push_back(code);
    return Tier::kNone;
  }
  size_t n = 0;
  for (; n < kInlineHolders && slots_[n] != 0; ++n) {
    if (Decode(slots_[n]).node == node) {
      Tier old = Decode(slots_[n]).tier;
      slots_[n] = code;
      return old;
    }
  }
  if (n < kInlineHolders) {
    slots_[n] = code;
    return Tier::kNone;
  }
  uint32_t id = pool.Allocate();
  auto& list = pool.at(id);
  list.assign(slots_.begin(), slots_.end());
  list.push_back(code);
  slots_ = {static_cast<uint16_t>(id & 0xFFFF), static_cast<uint16_t>(id >> 16), 0, kOverflowTag};
  return Tier::kNone;
}

Tier HolderSet::Erase(NodeIndex node, HolderOverflowPool& pool) {
  if (overflowed()) {
    const uint32_t id = overflow_id();
    auto& list = pool.at(id);
    auto it = std::find_if(list.begin(), list.end(),
                           [&](uint16_t c) { return Decode(c).node == node; });
    if (it == list.end()) return Tier::kNone;
    Tier old = Decode(*it).tier;
    *it = list.back();
    list.pop_back();
    if (list.size() <= kInlineHolders) {
      std::array<uint16_t, kInlineHolders> inline_slots{};
      std::copy(list.begin(), list.end(), inline_slots.begin());
      pool.Release(id);
      slots_ = inline_slots;
    }
    return old;
  }
  for (size_t i = 0; i < kInlineHolders && slots_[i] != 0; ++i) {
    if (Decode(slots_[i]).node != node) continue;
    Tier old = Decode(slots_[i]).tier;
    // Keep holders packed at the front: move the last one into the hole.
    size_t last = i;
    while (last + 1 < kInlineHolders && slots_[last + 1] != 0) ++last;
    slots_[i] = slots_[last];
    slots_[last] = 0;
    return old;
  }
  return Tier::kNone;
}

void HolderSet::Clear(HolderOverflowPool& pool) {
  if (overflowed()) pool.Release(overflow_id());
  slots_ = {};
}

}  // namespace kvpool::scheduler
