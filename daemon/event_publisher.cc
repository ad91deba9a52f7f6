#include "daemon/event_publisher.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <chrono>
#include <random>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "rpc/client_channel.h"
#include "rpc/convert.h"
#include "rpc/status_convert.h"

namespace kvpool::daemon {
namespace {

int64_t NowMs() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

uint64_t RandomEpoch() {
  std::random_device rd;
  uint64_t e = 0;
  while (e == 0) e = (uint64_t{rd()} << 32) ^ rd();
  return e;
}

}  // namespace

EventPublisher::EventPublisher(EventPublisherOptions options, node::MemPool* pool)
    : options_(std::move(options)), pool_(pool), epoch_(RandomEpoch()) {
  // Not waited for, and quick to find a restarted scheduler.
  stub_ = v1::Scheduler::NewStub(rpc::CreateChannel(options_.scheduler_address,
                                                    options_.max_message_bytes,
                                                    /*fast_reconnect=*/true));
  pool_->SetEventSink(this);
  thread_ = std::thread([this] { Run(); });
}

EventPublisher::~EventPublisher() {
  pool_->SetEventSink(nullptr);
  {
    absl::MutexLock lock(&mu_);
    stop_ = true;
  }
  thread_.join();
  if (!registered_) return;
  // A clean shutdown leaves at once: the scheduler stops routing to this node's blocks now,
  // not after the heartbeat timeout. Best effort with a short deadline.
  v1::DeregisterNodeRequest req;
  req.set_node_id(options_.node_id);
  v1::DeregisterNodeResponse resp;
  grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() +
                   std::chrono::milliseconds(options_.deregister_timeout_ms));
  const grpc::Status st = stub_->DeregisterNode(&ctx, req, &resp);
  if (st.ok()) {
    KVPOOL_LOG(INFO) << "left the scheduler " << options_.scheduler_address << " ("
                     << resp.dropped_blocks() << " blocks dropped from its index)";
  } else {
    KVPOOL_LOG(WARNING) << "could not leave the scheduler " << options_.scheduler_address << ": "
                        << st.error_message() << " (it will drop this node after missed heartbeats)";
  }
}

void EventPublisher::OnEvent(node::PoolEvent event) {
  absl::MutexLock lock(&mu_);
  if (overflowed_) return;  // the coming snapshot covers it
  if (queue_.size() >= options_.max_queued_events) {
    queue_.clear();
    overflowed_ = true;
    return;
  }
  queue_.push_back(std::move(event));
}

std::unique_ptr<grpc::ClientContext> EventPublisher::Context() const {
  auto ctx = std::make_unique<grpc::ClientContext>();
  ctx->set_deadline(std::chrono::system_clock::now() +
                    std::chrono::milliseconds(options_.rpc_timeout_ms));
  return ctx;
}

bool EventPublisher::ReportDraining(bool draining, uint32_t timeout_ms) {
  absl::MutexLock lock(&mu_);
  draining_ = draining;
  const uint64_t generation = ++drain_generation_;
  heartbeat_now_ = true;
  auto acked = [this, generation]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return stop_ || acked_generation_ >= generation;
  };
  mu_.AwaitWithTimeout(absl::Condition(&acked), absl::Milliseconds(timeout_ms));
  return acked_generation_ >= generation;
}

bool EventPublisher::Register() {
  v1::RegisterNodeRequest req;
  req.set_node_id(options_.node_id);
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    req.set_draining(draining_);
    generation = drain_generation_;
  }
  req.set_address(options_.node_address);
  req.mutable_capacity_bytes()->set_host(options_.capacity_bytes);
  req.mutable_capacity_bytes()->set_disk(options_.disk_capacity_bytes);
  req.set_ucx_worker_address(options_.ucx_worker_address);
  v1::RegisterNodeResponse resp;
  auto ctx = Context();
  const grpc::Status st = stub_->RegisterNode(ctx.get(), req, &resp);
  if (!st.ok()) {
    // Once per outage at WARNING; the retries every retry_interval_ms only at DEBUG.
    if (!warned_unreachable_) {
      KVPOOL_LOG(WARNING) << "cannot register with scheduler " << options_.scheduler_address
                          << " (retrying; the node keeps serving): " << rpc::FromGrpcStatus(st);
      warned_unreachable_ = true;
    } else {
      KVPOOL_LOG(DEBUG) << "scheduler " << options_.scheduler_address
                        << " register failed: " << rpc::FromGrpcStatus(st);
    }
    return false;
  }
  warned_unreachable_ = false;
  {
    absl::MutexLock lock(&mu_);
    acked_generation_ = std::max(acked_generation_, generation);
  }
  KVPOOL_LOG(INFO) << "registered with scheduler " << options_.scheduler_address
                   << " node_id=" << options_.node_id << " epoch=" << epoch_
                   << (req.draining() ? " (draining)" : "");
  registered_ = true;
  synced_ = false;
  return true;
}

bool EventPublisher::Resync() {
  const node::PoolSnapshot snapshot = pool_->Snapshot();
  {
    absl::MutexLock lock(&mu_);
    while (!queue_.empty() && queue_.front().number <= snapshot.last_event) queue_.pop_front();
    overflowed_ = false;
  }
  v1::SyncSnapshotRequest req;
  req.set_node_id(options_.node_id);
  req.set_epoch(epoch_);
  req.set_seq(seq_);
  uint64_t blocks = 0;
  for (const node::PoolSnapshot::Namespace& ns : snapshot.namespaces) {
    if (ns.hashes.empty()) continue;
    v1::NamespaceBlocks* out = req.add_namespaces();
    out->set_namespace_(ns.ns);
    rpc::HashesToBytes(ns.hashes, out->mutable_block_hashes());
    out->mutable_tiers()->Reserve(static_cast<int>(ns.tiers.size()));
    for (Tier t : ns.tiers) out->add_tiers(rpc::ToProto(t));
    blocks += ns.hashes.size();
  }
  v1::SyncSnapshotResponse resp;
  auto ctx = Context();
  const grpc::Status st = stub_->SyncSnapshot(ctx.get(), req, &resp);
  if (!st.ok()) {
    KVPOOL_LOG(WARNING) << "snapshot to scheduler failed: " << rpc::FromGrpcStatus(st);
    registered_ = false;
    return false;
  }
  KVPOOL_LOG(INFO) << "synced with scheduler: blocks=" << blocks << " seq=" << seq_;
  synced_ = true;
  return true;
}

bool EventPublisher::Heartbeat() {
  v1::NodeHeartbeatRequest req;
  req.set_node_id(options_.node_id);
  const PoolStats stats = pool_->GetStats();
  req.mutable_used_bytes()->set_host(stats.used_bytes);
  req.mutable_used_bytes()->set_disk(stats.disk_used_bytes);
  req.set_disk_read_bytes_per_s(stats.disk_read_bytes_per_s);
  uint64_t generation = 0;
  {
    absl::MutexLock lock(&mu_);
    req.set_draining(draining_);
    generation = drain_generation_;
    heartbeat_now_ = false;
  }
  v1::NodeHeartbeatResponse resp;
  auto ctx = Context();
  const grpc::Status st = stub_->NodeHeartbeat(ctx.get(), req, &resp);
  if (!st.ok()) {
    KVPOOL_LOG(DEBUG) << "heartbeat failed: " << rpc::FromGrpcStatus(st);
    registered_ = false;
    return false;
  }
  if (resp.resync_needed()) synced_ = false;
  absl::MutexLock lock(&mu_);
  acked_generation_ = std::max(acked_generation_, generation);
  return true;
}

bool EventPublisher::Publish() {
  v1::PublishEventsRequest req;
  {
    absl::MutexLock lock(&mu_);
    if (overflowed_) {
      synced_ = false;
      return true;
    }
    while (!queue_.empty() && req.events_size() < static_cast<int>(options_.max_batch_events)) {
      const node::PoolEvent& e = queue_.front();
      v1::KvEvent* out = req.add_events();
      switch (e.kind) {
        case node::PoolEvent::Kind::kStored: out->set_kind(v1::KV_EVENT_STORED); break;
        case node::PoolEvent::Kind::kRemoved: out->set_kind(v1::KV_EVENT_REMOVED); break;
        case node::PoolEvent::Kind::kTierChanged: out->set_kind(v1::KV_EVENT_TIER_CHANGED); break;
      }
      out->set_namespace_(e.ns);
      if (e.kind == node::PoolEvent::Kind::kStored && e.parent) {
        rpc::HashesToBytes(std::span(&*e.parent, 1), out->mutable_parent_hash());
      }
      if (e.kind != node::PoolEvent::Kind::kRemoved) out->set_tier(rpc::ToProto(e.tier));
      rpc::HashesToBytes(e.hashes, out->mutable_block_hashes());
      queue_.pop_front();
    }
  }
  if (req.events_size() == 0) return true;
  req.set_node_id(options_.node_id);
  req.set_epoch(epoch_);
  req.set_seq(++seq_);
  v1::PublishEventsResponse resp;
  auto ctx = Context();
  const grpc::Status st = stub_->PublishEvents(ctx.get(), req, &resp);
  if (!st.ok()) {
    // Whether the batch applied is unknown: the snapshot after re-registering covers it.
    KVPOOL_LOG(WARNING) << "publishing events failed: " << rpc::FromGrpcStatus(st);
    registered_ = false;
    return false;
  }
  if (resp.outcome() == v1::PUBLISH_RESYNC_NEEDED) {
    KVPOOL_LOG(INFO) << "scheduler asks for a resync: " << resp.reason();
    synced_ = false;
  } else if (resp.mismatched_blocks() > 0) {
    KVPOOL_LOG(WARNING) << "scheduler index disagreed on " << resp.mismatched_blocks()
                        << " blocks: resyncing";
    synced_ = false;
  }
  return true;
}

void EventPublisher::Run() {
  for (;;) {
    {
      absl::MutexLock lock(&mu_);
      if (stop_) return;
    }
    bool ok = true;
    if (!registered_) {
      ok = Register();
      if (ok) next_heartbeat_ms_ = NowMs() + options_.heartbeat_interval_ms;
    }
    if (ok && !synced_) ok = Resync();
    bool heartbeat_now = false;
    {
      absl::MutexLock lock(&mu_);
      heartbeat_now = heartbeat_now_;
    }
    if (ok && (heartbeat_now || NowMs() >= next_heartbeat_ms_)) {
      ok = Heartbeat();
      next_heartbeat_ms_ = NowMs() + options_.heartbeat_interval_ms;
    }
    if (ok && synced_) ok = Publish();
    if (!ok) {
      absl::MutexLock lock(&mu_);
      mu_.AwaitWithTimeout(absl::Condition(&stop_),
                           absl::Milliseconds(options_.retry_interval_ms));
      continue;
    }
    if (!synced_) continue;
    // Wait for events, the next heartbeat or stop.
    const int64_t wait_ms = std::max<int64_t>(0, next_heartbeat_ms_ - NowMs());
    absl::MutexLock lock(&mu_);
    auto ready = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) {
      return stop_ || !queue_.empty() || overflowed_ || heartbeat_now_;
    };
    mu_.AwaitWithTimeout(absl::Condition(&ready), absl::Milliseconds(wait_ms));
  }
}

}  // namespace kvpool::daemon
