// DirectWindows: peers' memory that UCX mapped into this process (same-host shared memory), so a
// small Put or Get is a memcpy on the caller's thread instead of a round trip through the
// progress thread. Internal to kvpool_transport.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "transport/transfer_engine.h"

namespace kvpool::transport::internal {

/// The windows of one engine, keyed by (peer, packed rkey). A window is a remote region whose
/// bytes are reachable through a local pointer (ucp_rkey_ptr of an rkey the progress thread
/// unpacked over a posix or sysv shared-memory transport).
///
/// Thread-safe. The progress thread Adds and Revokes (it owns the rkeys that keep the mappings
/// alive); any thread may TryCopy. A copy runs under a reader lock, and Revoke takes the writer
/// lock, so once Revoke returns no copy is still touching that peer's mappings and the rkeys
/// may be destroyed.
class DirectWindows {
 public:
  /// Records that [remote_address, + size_bytes) of `peer`'s region with rkey `rkey` is mapped
  /// at `local` in this process. Replaces an earlier window of the same key.
  void Add(uint64_t peer, std::string_view rkey, uint64_t remote_address, uint64_t size_bytes,
           uint8_t* local);
  /// Forgets every window of `peer`; returns once no copy into them is running.
  void Revoke(uint64_t peer);
  /// Forgets `peer`'s window for `rkey` (if any); returns once no copy into it is running.
  void Revoke(uint64_t peer, std::string_view rkey);
  /// Forgets every window.
  void RevokeAll();
  /// How many windows `peer` has (for DescribePeer).
  size_t CountFor(uint64_t peer) const;

  /// Copies every op with memcpy (Put: local -> remote, Get: remote -> local) when `peer` has a
  /// window for `rkey` that covers every op's remote range; then returns true: the batch is
  /// complete. Returns false, having copied nothing, otherwise. The ops must be validated
  /// (non-empty, no wrap-around) by the caller.
  bool TryCopy(bool is_put, uint64_t peer, std::string_view rkey,
               std::span<const TransferOp> ops) const;

 private:
  struct Window {
    uint64_t remote_address = 0;
    uint64_t size_bytes = 0;
    uint8_t* local = nullptr;
  };

  mutable absl::Mutex mu_;
  // Per peer, by packed rkey: a node hands out one key per pool slab, so a client may hold
  // hundreds of windows to one node.
  absl::flat_hash_map<uint64_t, absl::flat_hash_map<std::string, Window>> by_peer_
      ABSL_GUARDED_BY(mu_);
};

}  // namespace kvpool::transport::internal
