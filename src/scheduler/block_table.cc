#include "scheduler/block_table.h"

#include <sys/mman.h>

#include <atomic>
#include <cstdlib>
#include <memory>
#include <new>
#include <utility>

namespace kvpool::scheduler {
namespace {

constexpr size_t kMinCapacity = 16;

// A different seed per table, so that hashes chosen to collide in one process's tables do not
// keep colliding after a restart or in another namespace. Not a secret; relaxed ordering: only
// uniqueness matters, and fetch_add gives it.
uint64_t NextSeed() {
  static std::atomic<uint64_t> counter{0x243F6A8885A308D3ull};
  uint64_t x = counter.fetch_add(0x9E3779B97F4A7C15ull, std::memory_order_relaxed);
  x ^= reinterpret_cast<uintptr_t>(&counter);
  x ^= x >> 31;
  x *= 0xBF58476D1CE4E5B9ull;
  return x ^ (x >> 29);
}

// Grow past 3/4 full: keeps successful probes ~2.5 slots (about one cache line).
bool OverLoad(size_t size, size_t capacity) { return size * 4 > capacity * 3; }

constexpr size_t kHugePageBytes = size_t{2} << 20;

}  // namespace

void BlockTable::FreeSlots::operator()(Slot* slots) const { std::free(slots); }

std::unique_ptr<BlockTable::Slot[], BlockTable::FreeSlots> BlockTable::AllocateSlots(
    size_t capacity) {
  const size_t bytes = capacity * sizeof(Slot);
  void* memory = nullptr;
  if (bytes >= kHugePageBytes) {
    // Route probes random slots of a table far larger than the TLB reaches with 4 KiB pages;
    // huge pages save a page walk per probe. Only a hint: without THP it is plain memory.
    const size_t rounded = (bytes + kHugePageBytes - 1) / kHugePageBytes * kHugePageBytes;
    memory = std::aligned_alloc(kHugePageBytes, rounded);
    if (memory != nullptr) madvise(memory, rounded, MADV_HUGEPAGE);
  } else {
    memory = std::malloc(bytes);
  }
  if (memory == nullptr) throw std::bad_alloc();
  Slot* slots = static_cast<Slot*>(memory);
  std::uninitialized_value_construct_n(slots, capacity);
  return std::unique_ptr<Slot[], FreeSlots>(slots);
}

BlockTable::BlockTable() : seed_(NextSeed()) {}
BlockTable::BlockTable(BlockTable&&) noexcept = default;
BlockTable& BlockTable::operator=(BlockTable&&) noexcept = default;
BlockTable::~BlockTable() = default;

size_t BlockTable::Probe(const BlockHash& hash) const {
  size_t i = Home(hash);
  while (!slots_[i].holders.empty() && slots_[i].hash != hash) i = (i + 1) & mask_;
  return i;
}

void BlockTable::Rehash(size_t new_capacity) {
  std::unique_ptr<Slot[], FreeSlots> old = std::move(slots_);
  const size_t old_capacity = capacity_;
  slots_ = AllocateSlots(new_capacity);
  capacity_ = new_capacity;
  mask_ = new_capacity - 1;
  for (size_t i = 0; i < old_capacity; ++i) {
    if (old[i].holders.empty()) continue;
    slots_[Probe(old[i].hash)] = old[i];
  }
}

void BlockTable::MaybeShrink() {
  size_t capacity = capacity_;
  while (capacity > kMinCapacity && size_ * 8 < capacity) capacity /= 2;
  if (capacity != capacity_) Rehash(capacity);
}

void BlockTable::Reserve(size_t blocks) {
  size_t capacity = capacity_ == 0 ? kMinCapacity : capacity_;
  while (OverLoad(blocks, capacity)) capacity *= 2;
  if (capacity != capacity_) Rehash(capacity);
}

Tier BlockTable::Set(const BlockHash& hash, NodeIndex node, Tier tier, HolderOverflowPool& pool) {
  if (capacity_ == 0 || OverLoad(size_ + 1, capacity_)) Reserve(size_ + 1);
  Slot& slot = slots_[Probe(hash)];
  if (slot.holders.empty()) {
    slot.hash = hash;
    ++size_;
  }
  return slot.holders.Set(node, tier, pool);
}

Tier BlockTable::Erase(const BlockHash& hash, NodeIndex node, HolderOverflowPool& pool) {
  if (capacity_ == 0) return Tier::kNone;
  const size_t i = Probe(hash);
  Slot& slot = slots_[i];
  if (slot.holders.empty()) return Tier::kNone;
  Tier old = slot.holders.Erase(node, pool);
  if (old != Tier::kNone && slot.holders.empty()) {
    EraseSlot(i);
    MaybeShrink();
  }
  return old;
}

Tier BlockTable::Move(const BlockHash& hash, NodeIndex node, Tier tier, HolderOverflowPool& pool) {
  if (capacity_ == 0) return Tier::kNone;
  Slot& slot = slots_[Probe(hash)];
  if (slot.holders.empty() || slot.holders.Find(node, pool) == Tier::kNone) return Tier::kNone;
  return slot.holders.Set(node, tier, pool);
}

void BlockTable::EraseSlot(size_t i) {
  // Knuth's Algorithm R: move each later slot of the run back into the hole unless its home
  // lies cyclically in (hole, slot], where it would become unreachable.
  size_t hole = i;
  for (size_t j = (i + 1) & mask_; !slots_[j].holders.empty(); j = (j + 1) & mask_) {
    const size_t home = Home(slots_[j].hash);
    const bool home_in_gap = hole <= j ? (hole < home && home <= j) : (hole < home || home <= j);
    if (home_in_gap) continue;
    slots_[hole] = slots_[j];
    hole = j;
  }
  slots_[hole] = Slot{};
  --size_;
}

uint64_t BlockTable::EraseNode(NodeIndex node, HolderOverflowPool& pool) {
  uint64_t erased = 0;
  // EraseSlot only moves slots backwards along their run into the hole at i, so re-examining
  // slot i after an erase visits every slot at least once (a run wrapping past the end may
  // bring an already visited slot back to the end, where erasing `node` again is a no-op).
  for (size_t i = 0; i < capacity_;) {
    Slot& slot = slots_[i];
    if (slot.holders.empty() || slot.holders.Erase(node, pool) == Tier::kNone) {
      ++i;
      continue;
    }
    ++erased;
    if (slot.holders.empty()) {
      EraseSlot(i);
    } else {
      ++i;
    }
  }
  MaybeShrink();
  return erased;
}

}  // namespace kvpool::scheduler
