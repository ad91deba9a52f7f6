// kvpoold's side of the KV-event feed: registers the node with kvpool-scheduler, heartbeats,
// streams the pool's events in numbered batches and resyncs with a full snapshot when needed.
#pragma once

#include <cstdint>
#include <deque>
#include <memory>
#include <string>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kvpool/status.h"
#include "kvpool/v1/scheduler.grpc.pb.h"
#include "node/mempool.h"

namespace kvpool::daemon {

struct EventPublisherOptions {
  /// kvpool-scheduler's address, host:port. Required.
  std::string scheduler_address;
  /// This node's id and MemPool gRPC address as the scheduler shows them. Required.
  std::string node_id;
  std::string node_address;
  /// The node's UCX worker address (GetDataPlane's), reported at registration. Default: empty.
  std::string ucx_worker_address;
  /// Host-tier capacity reported at registration, in bytes. Default: 0.
  uint64_t capacity_bytes = 0;
  /// SSD-tier capacity reported at registration, in bytes (0: none). Default: 0.
  uint64_t disk_capacity_bytes = 0;
  /// Interval between heartbeats, in ms (keep it well under the scheduler's
  /// --heartbeat-timeout-ms). Default: 1000.
  uint32_t heartbeat_interval_ms = 1000;
  /// Wait before retrying after the scheduler could not be reached, in ms. Default: 500.
  uint32_t retry_interval_ms = 500;
  /// Deadline of each call to the scheduler, in ms. Default: 5000.
  uint32_t rpc_timeout_ms = 5000;
  /// Most events per PublishEvents batch. Default: 1024.
  uint32_t max_batch_events = 1024;
  /// Events queued beyond this (scheduler slow or away) are dropped and replaced by a resync.
  /// Default: 65536.
  uint32_t max_queued_events = 65536;
  /// How long destruction waits for the scheduler to confirm the node left, in ms.
  /// Default: 1000.
  uint32_t deregister_timeout_ms = 1000;
  /// Largest message sent to the scheduler (snapshots), in bytes. Default: 256 MiB.
  uint64_t max_message_bytes = 256ull << 20;
};

/// Feeds a MemPool's events to kvpool-scheduler.
///
/// Protocol (see SchedulerService): RegisterNode, SyncSnapshot at (epoch, seq), then batches
/// seq + 1, + 2, ... The epoch is drawn at random per publisher (one daemon run). A batch
/// answered resync_needed, a heartbeat saying the scheduler lost the node's stream, NOT_FOUND
/// (the scheduler forgot the node, e.g. it restarted) or any failed call leads to registering
/// again if needed and sending a fresh snapshot; events the snapshot covers are dropped. The
/// pool keeps working whatever the scheduler does.
///
/// Thread-safe. Construction installs itself as the pool's event sink and starts one thread;
/// destruction removes the sink, stops the thread and deregisters the node (DeregisterNode), so
/// a cleanly stopped node leaves the scheduler's index at once. The pool must outlive the
/// publisher.
class EventPublisher final : public node::EventSink {
 public:
  EventPublisher(EventPublisherOptions options, node::MemPool* pool);
  ~EventPublisher() override;
  EventPublisher(const EventPublisher&) = delete;
  EventPublisher& operator=(const EventPublisher&) = delete;

  /// Queues one event (called by the pool with its lock held).
  void OnEvent(node::PoolEvent event) override;

  /// Sets whether the node reports itself draining (kvpoolctl drain) in its registration and
  /// every heartbeat, and sends a heartbeat at once. Returns true once the scheduler has
  /// acknowledged a registration or heartbeat carrying this state, false if that did not happen
  /// within `timeout_ms` (the state is still reported from then on).
  bool ReportDraining(bool draining, uint32_t timeout_ms);

 private:
  void Run();
  // One step each; false when the scheduler could not be reached or rejected the call.
  bool Register();
  bool Resync();
  bool Heartbeat();
  bool Publish();
  std::unique_ptr<grpc::ClientContext> Context() const;

  const EventPublisherOptions options_;
  node::MemPool* const pool_;
  const uint64_t epoch_;
  std::unique_ptr<v1::Scheduler::Stub> stub_;

  absl::Mutex mu_;
  std::deque<node::PoolEvent> queue_ ABSL_GUARDED_BY(mu_);
  bool overflowed_ ABSL_GUARDED_BY(mu_) = false;
  bool stop_ ABSL_GUARDED_BY(mu_) = false;
  // Draining state (ReportDraining): each change bumps drain_generation_; a registration or
  // heartbeat that carried generation G and succeeded sets acked_generation_ = G.
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  uint64_t drain_generation_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t acked_generation_ ABSL_GUARDED_BY(mu_) = 0;
  bool heartbeat_now_ ABSL_GUARDED_BY(mu_) = false;

  // Owned by the thread.
  bool registered_ = false;
  bool synced_ = false;
  uint64_t seq_ = 0;
  int64_t next_heartbeat_ms_ = 0;
  bool warned_unreachable_ = false;

  std::thread thread_;
};

}  // namespace kvpool::daemon
