#include "transport/direct_windows.h"

#include <cstring>

namespace kvpool::transport::internal {

void DirectWindows::Add(uint64_t peer, std::string_view rkey, uint64_t remote_address,
                        uint64_t size_bytes, uint8_t* local) {
  absl::MutexLock lock(&mu_);
  by_peer_[peer].insert_or_assign(std::string(rkey), Window{remote_address, size_bytes, local});
}

void DirectWindows::Revoke(uint64_t peer) {
  absl::MutexLock lock(&mu_);
  by_peer_.erase(peer);
}

void DirectWindows::Revoke(uint64_t peer, std::string_view rkey) {
  absl::MutexLock lock(&mu_);
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return;
  auto window = it->second.find(absl::string_view(rkey.data(), rkey.size()));
  if (window != it->second.end()) it->second.erase(window);
}

void DirectWindows::RevokeAll() {
  absl::MutexLock lock(&mu_);
  by_peer_.clear();
}

size_t DirectWindows::CountFor(uint64_t peer) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_peer_.find(peer);
  return it == by_peer_.end() ? 0 : it->second.size();
}

bool DirectWindows::TryCopy(bool is_put, uint64_t peer, std::string_view rkey,
                            std::span<const TransferOp> ops) const {
  absl::ReaderMutexLock lock(&mu_);
  auto it = by_peer_.find(peer);
  if (it == by_peer_.end()) return false;
  auto found = it->second.find(absl::string_view(rkey.data(), rkey.size()));
  if (found == it->second.end()) return false;
  const Window* window = &found->second;
  const uint64_t end = window->remote_address + window->size_bytes;
  for (const TransferOp& op : ops) {
    if (op.remote_address < window->remote_address || op.remote_address + op.size_bytes > end) {
      return false;
    }
  }
  // The reader lock is held across the copies: Revoke (before the rkeys that keep the mapping
  // alive are destroyed) waits for them.
  for (const TransferOp& op : ops) {
    auto* local = reinterpret_cast<uint8_t*>(op.local_address);
    uint8_t* remote = window->local + (op.remote_address - window->remote_address);
    if (is_put) std::memcpy(remote, local, op.size_bytes);
    else std::memcpy(local, remote, op.size_bytes);
  }
  return true;
}

}  // namespace kvpool::transport::internal
