#include "transport/message_inbox.h"

#include <algorithm>
#include <cstring>
#include <string>

namespace kvpool::transport::internal {
namespace {

std::string Range(uint64_t address, uint64_t size) {
  return "[" + std::to_string(address) + ", +" + std::to_string(size) + ")";
}

}  // namespace

Result<uint64_t> MessageInbox::Expect(std::vector<InboxWindow> windows,
                                      Clock::time_point expires) {
  if (windows.empty()) return InvalidArgumentError("a message inbox needs at least one window");
  std::sort(windows.begin(), windows.end(),
            [](const InboxWindow& a, const InboxWindow& b) { return a.address < b.address; });
  uint64_t total = 0;
  for (size_t i = 0; i < windows.size(); ++i) {
    const InboxWindow& w = windows[i];
    if (w.size_bytes == 0 || w.address == 0 || w.address + w.size_bytes < w.address) {
      return InvalidArgumentError("message window " + Range(w.address, w.size_bytes) +
                                  " is empty, null or wraps");
    }
    if (i > 0 && windows[i - 1].address + windows[i - 1].size_bytes > w.address) {
      return InvalidArgumentError("message windows " +
                                  Range(windows[i - 1].address, windows[i - 1].size_bytes) +
                                  " and " + Range(w.address, w.size_bytes) + " overlap");
    }
    total += w.size_bytes;
  }
  absl::MutexLock lock(&mu_);
  const Clock::time_point now = Clock::now();
  for (auto it = slots_.begin(); it != slots_.end();) {
    if (it->second.expires < now) {
      slots_.erase(it++);
    } else {
      ++it;
    }
  }
  uint64_t token = 0;
  while (token == 0 || slots_.contains(token)) token = rng_();
  Slot& slot = slots_[token];
  slot.delivered.resize(windows.size());
  slot.windows = std::move(windows);
  slot.expected_bytes = total;
  slot.expires = expires;
  return token;
}

Status MessageInbox::Deliver(uint64_t token, uint64_t address, const void* data,
                             uint64_t size_bytes) {
  absl::MutexLock lock(&mu_);
  auto it = slots_.find(token);
  if (it == slots_.end()) {
    return NotFoundError("no transfer expects messages with token " + std::to_string(token));
  }
  Slot& slot = it->second;
  if (!slot.failure.ok()) return slot.failure;
  auto fail = [&](Status why) {
    slot.failure = why;
    changed_.SignalAll();
    return why;
  };
  if (Clock::now() > slot.expires) {
    return fail(DeadlineExceededError("a message for token " + std::to_string(token) +
                                      " arrived after its transfer expired"));
  }
  if (size_bytes == 0 || address + size_bytes < address) {
    return fail(InvalidArgumentError("empty or wrapping message " + Range(address, size_bytes)));
  }
  // The last window starting at or before `address`.
  const auto w_it = std::upper_bound(
      slot.windows.begin(), slot.windows.end(), address,
      [](uint64_t a, const InboxWindow& w) { return a < w.address; });
  if (w_it == slot.windows.begin()) {
    return fail(InvalidArgumentError("message " + Range(address, size_bytes) +
                                     " lies outside the transfer's windows"));
  }
  const size_t index = static_cast<size_t>(w_it - slot.windows.begin()) - 1;
  const InboxWindow& w = slot.windows[index];
  if (address + size_bytes > w.address + w.size_bytes) {
    return fail(InvalidArgumentError("message " + Range(address, size_bytes) +
                                     " lies outside the transfer's windows"));
  }
  std::map<uint64_t, uint64_t>& done = slot.delivered[index];
  auto next = done.lower_bound(address);
  const bool overlaps_next = next != done.end() && next->first < address + size_bytes;
  const bool overlaps_prev = next != done.begin() && std::prev(next)->second > address;
  if (overlaps_next || overlaps_prev) {
    return fail(InvalidArgumentError("message " + Range(address, size_bytes) +
                                     " overlaps bytes the transfer already delivered"));
  }
  std::memcpy(reinterpret_cast<void*>(address), data, size_bytes);
  done.emplace(address, address + size_bytes);
  slot.delivered_bytes += size_bytes;
  if (slot.delivered_bytes == slot.expected_bytes) changed_.SignalAll();
  return Status::Ok();
}

Status MessageInbox::Await(uint64_t token, int64_t timeout_ms) {
  const absl::Time deadline = absl::Now() + absl::Milliseconds(std::max<int64_t>(0, timeout_ms));
  absl::MutexLock lock(&mu_);
  for (;;) {
    auto it = slots_.find(token);
    if (it == slots_.end()) {
      return NotFoundError("no transfer expects messages with token " + std::to_string(token));
    }
    Slot& slot = it->second;
    if (!slot.failure.ok() || slot.delivered_bytes == slot.expected_bytes) {
      Status result = slot.failure;
      slots_.erase(it);
      return result;
    }
    // A CondVar loop rather than an absl::Condition (TSan and abseil, see AwaitNoTierIoLocked).
    if (changed_.WaitWithDeadline(&mu_, deadline)) {
      auto again = slots_.find(token);
      if (again != slots_.end() && again->second.failure.ok() &&
          again->second.delivered_bytes < again->second.expected_bytes) {
        return DeadlineExceededError(
            "messages of token " + std::to_string(token) + ": " +
            std::to_string(again->second.delivered_bytes) + " of " +
            std::to_string(again->second.expected_bytes) + " bytes arrived within " +
            std::to_string(timeout_ms) + " ms");
      }
    }
  }
}

void MessageInbox::Cancel(uint64_t token) {
  absl::MutexLock lock(&mu_);
  slots_.erase(token);
  changed_.SignalAll();
}

size_t MessageInbox::pending() const {
  absl::MutexLock lock(&mu_);
  return slots_.size();
}

}  // namespace kvpool::transport::internal
