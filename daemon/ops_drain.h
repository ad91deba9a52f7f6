// kvpoold's maintenance drain (kvpoolctl drain / undrain; docs/operations.md "Drain a node").
//
// Draining a node tells kvpool-scheduler to stop sending new work to it (its registration and
// heartbeats carry `draining`: Place skips the node, Route skips the instances on it) and moves
// its cold host-memory blocks down to its SSD tier, so that stopping it afterwards loses nothing
// and frees no memory an engine still reads. The node keeps serving its clients meanwhile:
// leases, matches and reads of blocks go on working (a DISK block is promoted again if a client
// asks for it with a lease). A drain may first hand the node's cached blocks to a peer
// (`handoff_node`): a node without an SSD tier keeps its cache in the cluster that way.
#pragma once

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kvpool/status.h"
#include "kvpool/v1/mempool.pb.h"
#include "node/mempool.h"

namespace kvpool::daemon {

class NodeTransfer;

/// How the draining state reaches the scheduler: sets it and waits up to `timeout_ms` for the
/// scheduler to acknowledge it; returns whether it did (EventPublisher::ReportDraining).
using DrainReporter = std::function<bool(bool draining, uint32_t timeout_ms)>;

/// The drain state of one kvpoold and the Drain / Undrain calls. Thread-safe: calls are
/// serialised (a second Drain waits for the first); `draining()` is lock-free.
class NodeDrain {
 public:
  /// `pool` and `transfer` (null: no hand-off, a node without a data plane) are borrowed and
  /// must outlive this object.
  explicit NodeDrain(node::MemPool* pool, NodeTransfer* transfer = nullptr)
      : pool_(pool), transfer_(transfer) {}

  /// Sets (or with an empty function clears) the scheduler reporter. When the node is draining
  /// already, the new reporter is told so at once (without waiting).
  void SetReporter(DrainReporter reporter);

  /// Keeps the drain state across restarts in `state_file` (kvpoold: <data-dir>/DRAINING):
  /// Drain creates the file, Undrain removes it. When the file exists already (the node was
  /// draining when it stopped), the node starts draining again, and the scheduler is told
  /// as soon as a reporter is set. Call once, before serving. An unreadable state is logged.
  void PersistIn(std::string state_file);

  /// True while the node is draining.
  bool draining() const { return draining_.load(std::memory_order_relaxed); }

  /// Validates the request (INVALID_ARGUMENT for handoff_node with mark_only, or naming this
  /// node; NOT_FOUND for a peer the node cannot find; FAILED_PRECONDITION for a hand-off on a
  /// node without a data plane), marks the node draining, tells the scheduler (waiting up to
  /// scheduler_timeout_ms, 0: 2000), hands its cached GPU and HOST blocks to handoff_node if
  /// given (HandOff; its first error is returned, with what was handed off so far), then demotes up to max_blocks (0: every one it can) of the coldest unleased HOST
  /// blocks of every namespace to the SSD tier (none with mark_only), a few hundred at a time
  /// so that the pool's lock is never held long. Without an SSD tier nothing is demoted
  /// (has_disk_tier false). Errors of the pool (an SSD tier failing) are returned as they are.
  Status Drain(const v1::DrainRequest& request, v1::DrainResponse* response);
  /// Ends draining and tells the scheduler, which then places on and routes to the node again.
  Status Undrain(const v1::UndrainRequest& request, v1::UndrainResponse* response);

 private:
  // Copies every namespace's cached memory-tier blocks to `node_id`, chain by chain: each chain
  // is pinned here with a read lease (Match), sent with TransferWithInsert and released.
  Status HandOff(const std::string& node_id, uint32_t timeout_ms, v1::DrainResponse* response);
  // Tells the reporter, if any; false without one.
  bool Report(bool draining, uint32_t timeout_ms) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Writes (draining) or removes the state file, if any; logs a failure (the drain itself
  // stands: it only would not survive a restart).
  void Save(bool draining) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  node::MemPool* const pool_;
  NodeTransfer* const transfer_;
  absl::Mutex mu_;
  DrainReporter reporter_ ABSL_GUARDED_BY(mu_);
  std::string state_file_ ABSL_GUARDED_BY(mu_);  // empty: not persisted
  std::atomic<bool> draining_{false};
};

}  // namespace kvpool::daemon
