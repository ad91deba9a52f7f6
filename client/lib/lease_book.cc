#include "client/lib/lease_book.h"

#include <time.h>

#include <algorithm>
#include <string>

namespace kvpool::client_internal {

CoarseMonotonicClock::time_point CoarseMonotonicClock::now() noexcept {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return time_point(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
}

CoarseMonotonicClock::duration CoarseMonotonicClock::resolution() noexcept {
  static const duration res = [] {
    timespec ts{};
    if (clock_getres(CLOCK_MONOTONIC_COARSE, &ts) != 0) {
      return duration(std::chrono::milliseconds(10));  // longer than any tick in use
    }
    return duration(std::chrono::seconds(ts.tv_sec) + std::chrono::nanoseconds(ts.tv_nsec));
  }();
  return res;
}

namespace {
// A deadline `ttl_ms` after `now` that the coarse clock cannot overshoot.
LeaseBook::Clock::time_point DeadlineAfter(LeaseBook::Clock::time_point now, uint32_t ttl_ms) {
  return now + std::chrono::milliseconds(ttl_ms) - LeaseBook::Clock::resolution();
}
}  // namespace

void LeaseBook::AddLocked(uint64_t lease_id, uint32_t ttl_ms,
                          std::span<const BlockLocation> blocks, bool writable) {
  const Clock::time_point now = Clock::now();
  MaybeSweepLocked(now);
  LeaseEntry& lease = leases_[lease_id];
  lease.deadline = DeadlineAfter(now, ttl_ms);
  lease.handles.reserve(lease.handles.size() + blocks.size());
  for (const BlockLocation& b : blocks) {
    BlockEntry& entry = blocks_[b.handle];
    entry.offset = b.offset;
    entry.length = b.length;
    entry.holders.push_back(Holder{lease_id, writable});
    lease.handles.push_back(b.handle);
  }
}

void LeaseBook::OnAllocated(uint64_t lease_id, uint32_t ttl_ms,
                            std::span<const BlockLocation> blocks) {
  absl::MutexLock lock(&mu_);
  AddLocked(lease_id, ttl_ms, blocks, /*writable=*/true);
}

void LeaseBook::OnPinned(uint64_t lease_id, uint32_t ttl_ms,
                         std::span<const BlockLocation> blocks) {
  if (lease_id == 0) return;
  absl::MutexLock lock(&mu_);
  AddLocked(lease_id, ttl_ms, blocks, /*writable=*/false);
}

void LeaseBook::OnInserted(uint64_t lease_id, std::span<const BlockHandle> allocated,
                           std::span<const BlockHandle> result, bool keep_pinned) {
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < allocated.size(); ++i) {
    auto it = blocks_.find(allocated[i]);
    if (it == blocks_.end()) continue;
    auto& holders = it->second.holders;
    auto holder = std::find_if(holders.begin(), holders.end(),
                               [&](const Holder& h) { return h.lease_id == lease_id; });
    if (holder == holders.end()) continue;
    // A block that became cached is never written again. With keep_pinned the lease still
    // reads it; a duplicate's copy was freed, and the cached original lives at a location this
    // book was never told (Match it to read it).
    const bool same_block = i < result.size() && result[i] == allocated[i];
    if (keep_pinned && same_block) {
      holder->writable = false;
    } else {
      DropHolderLocked(allocated[i], lease_id);
    }
  }
}

void LeaseBook::OnFreed(uint64_t lease_id, std::span<const BlockHandle> handles) {
  absl::MutexLock lock(&mu_);
  for (BlockHandle h : handles) DropHolderLocked(h, lease_id);
}

void LeaseBook::OnRenewed(uint64_t lease_id, uint32_t ttl_ms) {
  absl::MutexLock lock(&mu_);
  auto it = leases_.find(lease_id);
  if (it != leases_.end()) it->second.deadline = DeadlineAfter(Clock::now(), ttl_ms);
}

void LeaseBook::OnReleased(uint64_t lease_id) {
  absl::MutexLock lock(&mu_);
  RemoveLeaseLocked(lease_id);
}

void LeaseBook::DropHolderLocked(BlockHandle handle, uint64_t lease_id) {
  auto it = blocks_.find(handle);
  if (it == blocks_.end()) return;
  auto& holders = it->second.holders;
  holders.erase(std::remove_if(holders.begin(), holders.end(),
                               [&](const Holder& h) { return h.lease_id == lease_id; }),
                holders.end());
  if (holders.empty()) blocks_.erase(it);
}

void LeaseBook::RemoveLeaseLocked(uint64_t lease_id) {
  auto it = leases_.find(lease_id);
  if (it == leases_.end()) return;
  for (BlockHandle h : it->second.handles) DropHolderLocked(h, lease_id);
  leases_.erase(it);
}

void LeaseBook::MaybeSweepLocked(Clock::time_point now) {
  if (now < next_sweep_) return;
  next_sweep_ = now + sweep_interval_;
  std::vector<uint64_t> expired;
  for (const auto& [id, lease] : leases_) {
    if (lease.deadline <= now) expired.push_back(id);
  }
  for (uint64_t id : expired) RemoveLeaseLocked(id);
}

void LeaseBook::Clear() {
  absl::MutexLock lock(&mu_);
  blocks_.clear();
  leases_.clear();
}

bool LeaseBook::LiveLocked(uint64_t lease_id, Clock::time_point now) {
  auto it = leases_.find(lease_id);
  return it != leases_.end() && it->second.deadline > now;
}

Status LeaseBook::Check(std::span<const BlockLocation> blocks, bool for_write) {
  const Clock::time_point now = Clock::now();
  absl::MutexLock lock(&mu_);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const BlockLocation& b = blocks[i];
    // Built only for a refusal: Check runs on every Put and Get.
    auto which = [&] {
      return "block " + std::to_string(i) + " (handle " + std::to_string(b.handle) + ")";
    };
    auto it = blocks_.find(b.handle);
    if (it == blocks_.end()) {
      return FailedPreconditionError(
          which() + " is held by no lease of this client (AllocMem or Match with a lease first; "
                  "released, freed and inserted blocks are refused)");
    }
    const BlockEntry& entry = it->second;
    if (entry.offset != b.offset || entry.length != b.length) {
      return FailedPreconditionError(
          which() + " is at [" + std::to_string(entry.offset) + ", +" +
          std::to_string(entry.length) + ") on the node, not at the given [" +
          std::to_string(b.offset) + ", +" + std::to_string(b.length) + ")");
    }
    bool live = false;
    bool writable = false;
    for (const Holder& h : entry.holders) {
      if (!LiveLocked(h.lease_id, now)) continue;
      live = true;
      writable = writable || h.writable;
    }
    if (!live) {
      return FailedPreconditionError(which() + " is held only by expired leases");
    }
    if (for_write && !writable) {
      return FailedPreconditionError(
          which() + " is read-only: only allocated blocks not yet inserted may be written");
    }
  }
  return Status::Ok();
}

uint64_t LeaseBook::LeaseOf(BlockHandle handle) {
  const Clock::time_point now = Clock::now();
  absl::MutexLock lock(&mu_);
  auto it = blocks_.find(handle);
  if (it == blocks_.end()) return 0;
  for (const Holder& h : it->second.holders) {
    if (LiveLocked(h.lease_id, now)) return h.lease_id;
  }
  return 0;
}

uint64_t LeaseBook::WritableLeaseOf(BlockHandle handle) {
  const Clock::time_point now = Clock::now();
  absl::MutexLock lock(&mu_);
  auto it = blocks_.find(handle);
  if (it == blocks_.end()) return 0;
  for (const Holder& h : it->second.holders) {
    if (h.writable && LiveLocked(h.lease_id, now)) return h.lease_id;
  }
  return 0;
}

size_t LeaseBook::lease_count() {
  absl::MutexLock lock(&mu_);
  return leases_.size();
}

size_t LeaseBook::block_count() {
  absl::MutexLock lock(&mu_);
  return blocks_.size();
}

}  // namespace kvpool::client_internal
