// MessageInbox: the receiving side of two-sided transfers, for links where one-sided writes are
// unsafe (TCP-only links under UCX 1.13: the target of an emulated Put aborts when its writer
// dies; docs/transport.md "Known limitations"). The receiver names the windows of its own
// memory that a transfer may fill and gets a token; the sender sends the bytes as eager active
// messages tagged with the token and the destination address; the engine's AM handler hands
// each to Deliver, which copies it only inside the token's windows; the receiver Awaits the
// token before it uses the bytes (e.g. before inserting the blocks).
//
// No UCX here: the engine feeds it. Internal to kvpool_transport.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <random>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "kvpool/status.h"

namespace kvpool::transport::internal {

/// Memory of this process that one transfer's messages may write. A plain value type.
struct InboxWindow {
  uint64_t address = 0;
  uint64_t size_bytes = 0;
};

/// Thread-safe. Deliver copies under the inbox's lock, so once Cancel (or an Await that ended
/// the token) returns, no message writes into that token's windows any more and their memory
/// may be reused.
class MessageInbox {
 public:
  using Clock = std::chrono::steady_clock;

  /// Registers `windows` (at least one; each non-empty, not wrapping, none overlapping another)
  /// for a new token: nonzero, random, never reused by this inbox. Deliveries after `expires`
  /// are refused (set it before the windows' memory may be freed, e.g. the lease holding them
  /// expires). Tokens that expired are forgotten here. INVALID_ARGUMENT for bad windows.
  Result<uint64_t> Expect(std::vector<InboxWindow> windows, Clock::time_point expires);
  /// Copies [data, + size_bytes) to `address` if the range lies inside one window of `token`
  /// and overlaps nothing delivered to it before. Otherwise nothing is copied, the token fails
  /// (its Await returns the reason) and the reason is returned: NOT_FOUND (unknown, cancelled
  /// or ended token), DEADLINE_EXCEEDED (expired), INVALID_ARGUMENT (outside the windows, or
  /// overlapping), also for size 0.
  Status Deliver(uint64_t token, uint64_t address, const void* data, uint64_t size_bytes);
  /// Waits until every byte of every window of `token` was delivered (OK; the token ends), the
  /// token failed (that status; it ends), or `timeout_ms` passed (DEADLINE_EXCEEDED; the token
  /// stays). NOT_FOUND for an unknown or ended token.
  Status Await(uint64_t token, int64_t timeout_ms);
  /// Ends the token: later deliveries are refused. No-op for an unknown one.
  void Cancel(uint64_t token);
  /// Tokens registered and not ended (expired ones included until the next Expect).
  size_t pending() const;

 private:
  struct Slot {
    std::vector<InboxWindow> windows;  // sorted by address
    // Per window, delivered ranges: start -> end, disjoint.
    std::vector<std::map<uint64_t, uint64_t>> delivered;
    uint64_t expected_bytes = 0;
    uint64_t delivered_bytes = 0;
    Clock::time_point expires;
    Status failure;  // set once a delivery broke the rules
  };

  mutable absl::Mutex mu_;
  absl::CondVar changed_;
  absl::flat_hash_map<uint64_t, Slot> slots_ ABSL_GUARDED_BY(mu_);
  std::mt19937_64 rng_ ABSL_GUARDED_BY(mu_){std::random_device{}()};
};

}  // namespace kvpool::transport::internal
