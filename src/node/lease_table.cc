#include "node/lease_table.h"

#include <limits>

namespace kvpool::node {
namespace {
constexpr size_t kRememberedExpiries = 4096;
}  // namespace

LeaseTable::LeaseTable() : rng_(std::random_device{}()) {}

LeaseRecord& LeaseTable::Create(uint32_t namespace_id, int64_t deadline_ms) {
  uint64_t id = 0;
  do {
    id = rng_();
  } while (id == 0 || leases_.contains(id));
  LeaseRecord& lease = leases_[id];
  lease.id = id;
  lease.namespace_id = namespace_id;
  lease.deadline_ms = deadline_ms;
  heap_.push(HeapItem{deadline_ms, id});
  return lease;
}

LeaseRecord* LeaseTable::Find(uint64_t id) {
  auto it = leases_.find(id);
  return it == leases_.end() ? nullptr : &it->second;
}

bool LeaseTable::RecentlyExpired(uint64_t id) const { return recently_expired_.contains(id); }

void LeaseTable::Renew(LeaseRecord& lease, int64_t deadline_ms) {
  lease.deadline_ms = deadline_ms;
  heap_.push(HeapItem{deadline_ms, lease.id});
}

LeaseRecord LeaseTable::Remove(uint64_t id) {
  auto it = leases_.find(id);
  LeaseRecord record = std::move(it->second);
  leases_.erase(it);
  return record;
}

void LeaseTable::TakeExpired(int64_t now_ms, std::vector<LeaseRecord>* expired) {
  while (!heap_.empty() && heap_.top().deadline_ms <= now_ms) {
    const HeapItem item = heap_.top();
    heap_.pop();
    auto it = leases_.find(item.id);
    if (it == leases_.end() || it->second.deadline_ms != item.deadline_ms) continue;  // stale
    expired->push_back(std::move(it->second));
    leases_.erase(it);
    RememberExpired(item.id);
  }
  // Stale items of released leases would otherwise pile up under long-lived renewals.
  if (heap_.size() > 4 * leases_.size() + 1024) {
    decltype(heap_) fresh;
    for (const auto& [id, lease] : leases_) fresh.push(HeapItem{lease.deadline_ms, id});
    heap_.swap(fresh);
  }
}

int64_t LeaseTable::NextDeadlineMs() {
  while (!heap_.empty()) {
    const HeapItem& top = heap_.top();
    auto it = leases_.find(top.id);
    if (it != leases_.end() && it->second.deadline_ms == top.deadline_ms) return top.deadline_ms;
    heap_.pop();
  }
  return std::numeric_limits<int64_t>::max();
}

void LeaseTable::RememberExpired(uint64_t id) {
  recently_expired_.insert(id);
  expired_order_.push_back(id);
  if (expired_order_.size() > kRememberedExpiries) {
    recently_expired_.erase(expired_order_.front());
    expired_order_.pop_front();
  }
}

}  // namespace kvpool::node
