#include "daemon/scheduler_service.h"

#include <algorithm>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "common/quote.h"
#include "rpc/convert.h"
#include "rpc/status_convert.h"

namespace kvpool::daemon {
namespace {

using rpc::ToGrpcStatus;

// Ids and names longer than this are rejected: they would only bloat the registry and logs.
constexpr size_t kMaxIdBytes = 256;
// Largest prompt accepted by Lookup and Route, in blocks.
constexpr size_t kMaxPromptBlocks = 1 << 20;

template <typename Fn>
grpc::Status Serve(Fn&& body) {
  return ToGrpcStatus(body());
}


Status ValidateId(std::string_view field, const std::string& value) {
  if (value.empty()) return InvalidArgumentError(std::string(field) + " must not be empty");
  if (value.size() > kMaxIdBytes) {
    return InvalidArgumentError(std::string(field) + " is " + std::to_string(value.size()) +
                                " bytes long; at most " + std::to_string(kMaxIdBytes));
  }
  return Status::Ok();
}

// A tier that names where blocks live: gpu, host or disk.
Result<Tier> StorageTier(std::string_view field, v1::Tier tier) {
  KVPOOL_ASSIGN_OR_RETURN(Tier t, rpc::FromProto(tier));
  if (t == Tier::kNone) {
    return InvalidArgumentError(std::string(field) + " must be TIER_GPU, TIER_HOST or TIER_DISK, not " +
                                std::to_string(static_cast<int>(tier)));
  }
  return t;
}

Status DecodeHashes(std::string_view field, const std::string& bytes,
                    std::vector<BlockHash>* out) {
  Status st = rpc::HashesFromBytes(bytes, out);
  if (!st.ok()) return InvalidArgumentError(std::string(field) + ": " + std::string(st.message()));
  return Status::Ok();
}

Status DecodePrompt(const std::string& ns, const std::string& bytes,
                    std::vector<BlockHash>* hashes) {
  KVPOOL_RETURN_IF_ERROR(ValidateId("namespace", ns));
  KVPOOL_RETURN_IF_ERROR(DecodeHashes("block_hashes", bytes, hashes));
  if (hashes->size() > kMaxPromptBlocks) {
    return InvalidArgumentError("the prompt has " + std::to_string(hashes->size()) +
                                " blocks; at most " + std::to_string(kMaxPromptBlocks));
  }
  return Status::Ok();
}

scheduler::TierBytes FromProto(const v1::TierBytes& b) {
  return scheduler::TierBytes{b.gpu(), b.host(), b.disk()};
}
void ToProto(const scheduler::TierBytes& b, v1::TierBytes* out) {
  out->set_gpu(b.gpu);
  out->set_host(b.host);
  out->set_disk(b.disk);
}
void ToProto(const scheduler::TierCounts& c, v1::TierCounts* out) {
  out->set_gpu(c.gpu);
  out->set_host(c.host);
  out->set_disk(c.disk);
}

Result<scheduler::KvEvent> FromProto(const v1::KvEvent& e, size_t i) {
  const std::string where = "events[" + std::to_string(i) + "]";
  scheduler::KvEvent out;
  KVPOOL_RETURN_IF_ERROR(ValidateId(where + ".namespace", e.namespace_()));
  out.ns = e.namespace_();
  KVPOOL_RETURN_IF_ERROR(DecodeHashes(where + ".block_hashes", e.block_hashes(), &out.hashes));
  if (out.hashes.empty()) {
    return InvalidArgumentError(where + ".block_hashes is empty");
  }
  switch (e.kind()) {
    case v1::KV_EVENT_STORED: out.kind = scheduler::KvEventKind::kStored; break;
    case v1::KV_EVENT_REMOVED: out.kind = scheduler::KvEventKind::kRemoved; break;
    case v1::KV_EVENT_TIER_CHANGED: out.kind = scheduler::KvEventKind::kTierChanged; break;
    default:
      return InvalidArgumentError(where + ".kind " + std::to_string(static_cast<int>(e.kind())) +
                                  " is not a known event kind");
  }
  if (out.kind != scheduler::KvEventKind::kRemoved) {
    KVPOOL_ASSIGN_OR_RETURN(out.tier, StorageTier(where + ".tier", e.tier()));
  }
  if (!e.parent_hash().empty()) {
    if (out.kind != scheduler::KvEventKind::kStored) {
      return InvalidArgumentError(where + ".parent_hash is only allowed on KV_EVENT_STORED");
    }
    if (e.parent_hash().size() != kBlockHashBytes) {
      return InvalidArgumentError(where + ".parent_hash is " +
                                  std::to_string(e.parent_hash().size()) +
                                  " bytes long, not 16");
    }
    out.parent = BlockHash::FromBytes(reinterpret_cast<const uint8_t*>(e.parent_hash().data()));
  }
  return out;
}

}  // namespace

SchedulerService::SchedulerService(const SchedulerServiceOptions& options, const Clock* clock)
    : registry_(options.registry, clock),
      models_(options.default_model),
      router_(options.router, &index_, &registry_, &models_),
      placer_(&registry_, &index_, &models_) {
  absl::MutexLock lock(&mu_);
  // Options are validated before the service is built, so Set cannot fail here.
  for (const auto& [ns, model] : options.namespace_models) models_.Set(ns, model).IgnoreError();
}

grpc::Status SchedulerService::RegisterNode(grpc::ServerContext*,
                                            const v1::RegisterNodeRequest* req,
                                            v1::RegisterNodeResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(ValidateId("node_id", req->node_id()));
    KVPOOL_RETURN_IF_ERROR(ValidateId("address", req->address()));
    scheduler::NodeRegistration reg;
    reg.id = req->node_id();
    reg.address = req->address();
    reg.ucx_worker_address = req->ucx_worker_address();
    reg.capacity_bytes = FromProto(req->capacity_bytes());
    reg.draining = req->draining();
    absl::MutexLock lock(&mu_);
    KVPOOL_ASSIGN_OR_RETURN(scheduler::RegisterOutcome outcome, registry_.RegisterNode(reg));
    if (reg.draining) KVPOOL_LOG(INFO) << "node " << reg.id << " registered draining";
    resp->set_new_member(outcome.new_member);
    resp->set_changed(outcome.changed);
    return Status::Ok();
  });
}

grpc::Status SchedulerService::NodeHeartbeat(grpc::ServerContext*,
                                             const v1::NodeHeartbeatRequest* req,
                                             v1::NodeHeartbeatResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(ValidateId("node_id", req->node_id()));
    std::optional<scheduler::TierBytes> used;
    if (req->has_used_bytes()) used = FromProto(req->used_bytes());
    absl::MutexLock lock(&mu_);
    // First: it refuses a bad figure before the heartbeat changes anything.
    KVPOOL_RETURN_IF_ERROR(
        registry_.SetNodeDiskBandwidth(req->node_id(), req->disk_read_bytes_per_s()));
    KVPOOL_RETURN_IF_ERROR(registry_.NodeHeartbeat(req->node_id(), used));
    if (registry_.IsDraining(req->node_id()) != req->draining()) {
      KVPOOL_LOG(INFO) << "node " << req->node_id()
                       << (req->draining() ? " is draining: no new placements or routes to it"
                                           : " stopped draining");
      KVPOOL_RETURN_IF_ERROR(registry_.SetNodeDraining(req->node_id(), req->draining()));
    }
    const auto stream = index_.StreamState(req->node_id());
    resp->set_resync_needed(!stream.has_value() || stream->needs_resync);
    return Status::Ok();
  });
}

grpc::Status SchedulerService::PublishEvents(grpc::ServerContext*,
                                             const v1::PublishEventsRequest* req,
                                             v1::PublishEventsResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(ValidateId("node_id", req->node_id()));
    if (req->seq() == 0) return InvalidArgumentError("seq must be >= 1, not 0");
    scheduler::KvEventBatch batch;
    batch.node_id = req->node_id();
    batch.epoch = req->epoch();
    batch.seq = req->seq();
    batch.events.reserve(static_cast<size_t>(req->events_size()));
    for (int i = 0; i < req->events_size(); ++i) {
      KVPOOL_ASSIGN_OR_RETURN(scheduler::KvEvent e,
                              FromProto(req->events(i), static_cast<size_t>(i)));
      batch.events.push_back(std::move(e));
    }
    absl::MutexLock lock(&mu_);
    if (registry_.FindNode(batch.node_id) == nullptr) {
      return NotFoundError("node " + Quote(batch.node_id) + " is not registered; register it");
    }
    KVPOOL_ASSIGN_OR_RETURN(scheduler::ApplyResult result, index_.Apply(batch));
    switch (result.outcome) {
      case scheduler::ApplyOutcome::kApplied:
        resp->set_outcome(v1::PUBLISH_APPLIED);
        counters_.events_applied += batch.events.size();
        counters_.event_blocks_applied += result.applied_blocks;
        break;
      case scheduler::ApplyOutcome::kStale:
        resp->set_outcome(v1::PUBLISH_STALE);
        ++counters_.stale_batches;
        break;
      case scheduler::ApplyOutcome::kResyncNeeded:
        resp->set_outcome(v1::PUBLISH_RESYNC_NEEDED);
        ++counters_.resyncs_requested;
        break;
    }
    resp->set_applied_blocks(result.applied_blocks);
    resp->set_mismatched_blocks(result.mismatched_blocks);
    resp->set_reason(result.reason);
    return Status::Ok();
  });
}

grpc::Status SchedulerService::SyncSnapshot(grpc::ServerContext*,
                                            const v1::SyncSnapshotRequest* req,
                                            v1::SyncSnapshotResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(ValidateId("node_id", req->node_id()));
    scheduler::NodeSnapshot snapshot;
    snapshot.node_id = req->node_id();
    snapshot.epoch = req->epoch();
    snapshot.seq = req->seq();
    snapshot.namespaces.reserve(static_cast<size_t>(req->namespaces_size()));
    std::vector<BlockHash> hashes;
    for (int i = 0; i < req->namespaces_size(); ++i) {
      const v1::NamespaceBlocks& in = req->namespaces(i);
      const std::string where = "namespaces[" + std::to_string(i) + "]";
      KVPOOL_RETURN_IF_ERROR(ValidateId(where + ".namespace", in.namespace_()));
      KVPOOL_RETURN_IF_ERROR(DecodeHashes(where + ".block_hashes", in.block_hashes(), &hashes));
      if (static_cast<size_t>(in.tiers_size()) != hashes.size()) {
        return InvalidArgumentError(where + " has " + std::to_string(hashes.size()) +
                                    " hashes but " + std::to_string(in.tiers_size()) + " tiers");
      }
      scheduler::NamespaceSnapshot ns;
      ns.ns = in.namespace_();
      ns.blocks.reserve(hashes.size());
      for (size_t j = 0; j < hashes.size(); ++j) {
        KVPOOL_ASSIGN_OR_RETURN(
            Tier tier, StorageTier(where + ".tiers[" + std::to_string(j) + "]",
                                   in.tiers(static_cast<int>(j))));
        ns.blocks.push_back(scheduler::SnapshotBlock{hashes[j], tier});
      }
      snapshot.namespaces.push_back(std::move(ns));
    }
    absl::MutexLock lock(&mu_);
    if (registry_.FindNode(snapshot.node_id) == nullptr) {
      return NotFoundError("node " + Quote(snapshot.node_id) + " is not registered; register it");
    }
    KVPOOL_RETURN_IF_ERROR(index_.ReplaceNode(snapshot));
    ++counters_.snapshots_applied;
    resp->set_blocks(index_.NodeBlocks(snapshot.node_id).total());
    return Status::Ok();
  });
}

grpc::Status SchedulerService::RegisterInstance(grpc::ServerContext*,
                                                const v1::RegisterInstanceRequest* req,
                                                v1::RegisterInstanceResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(ValidateId("instance_id", req->instance_id()));
    if (req->node_id().size() > kMaxIdBytes) {
      return InvalidArgumentError("node_id is " + std::to_string(req->node_id().size()) +
                                  " bytes long; at most " + std::to_string(kMaxIdBytes));
    }
    scheduler::InstanceRegistration reg;
    reg.id = req->instance_id();
    KVPOOL_ASSIGN_OR_RETURN(reg.role, scheduler::ParseInstanceRole(req->role()));
    reg.node_id = req->node_id();
    reg.max_running_requests = req->max_running_requests();
    absl::MutexLock lock(&mu_);
    KVPOOL_ASSIGN_OR_RETURN(scheduler::RegisterOutcome outcome, registry_.RegisterInstance(reg));
    resp->set_new_member(outcome.new_member);
    resp->set_changed(outcome.changed);
    return Status::Ok();
  });
}

grpc::Status SchedulerService::ReportLoad(grpc::ServerContext*, const v1::ReportLoadRequest* req,
                                          v1::ReportLoadResponse*) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(ValidateId("instance_id", req->instance_id()));
    scheduler::InstanceLoad load{req->queued_prompt_tokens(), req->running_requests(),
                                 req->queued_prefill_s()};
    absl::MutexLock lock(&mu_);
    return registry_.ReportLoad(req->instance_id(), load);
  });
}

grpc::Status SchedulerService::Lookup(grpc::ServerContext*, const v1::LookupRequest* req,
                                      v1::LookupResponse* resp) {
  return Serve([&]() -> Status {
    std::vector<BlockHash> hashes;
    KVPOOL_RETURN_IF_ERROR(DecodePrompt(req->namespace_(), req->block_hashes(), &hashes));
    scheduler::LookupResult result;
    {
      absl::MutexLock lock(&mu_);
      result = scheduler::Lookup(index_, req->namespace_(), hashes);
    }
    resp->set_prompt_blocks(result.prompt_blocks);
    resp->set_pooled_prefix_blocks(result.pooled_prefix_blocks);
    resp->set_held_blocks(result.held_blocks);
    for (const scheduler::NodeLookup& n : result.nodes) {
      v1::NodeLookup* out = resp->add_nodes();
      out->set_node_id(n.node_id);
      out->set_leading_blocks(n.leading_blocks);
      for (const scheduler::BlockRun& run : n.runs) {
        out->add_run_starts(run.start);
        out->add_run_lengths(run.length);
      }
      ToProto(n.held, out->mutable_held());
    }
    for (const scheduler::PullSegment& s : result.segments) {
      v1::PullSegment* out = resp->add_segments();
      out->set_start(s.start);
      out->set_length(s.length);
      out->set_node_id(s.node_id);
      out->set_tier(rpc::ToProto(s.tier));
    }
    return Status::Ok();
  });
}

grpc::Status SchedulerService::Route(grpc::ServerContext*, const v1::RouteRequest* req,
                                     v1::RouteResponse* resp) {
  return Serve([&]() -> Status {
    std::vector<BlockHash> hashes;
    KVPOOL_RETURN_IF_ERROR(DecodePrompt(req->namespace_(), req->block_hashes(), &hashes));
    scheduler::RouteRequest route;
    route.ns = req->namespace_();
    route.hashes = hashes;
    route.prompt_tokens = req->prompt_tokens();
    route.role = scheduler::InstanceRole::kColocated;
    if (!req->role().empty()) {
      KVPOOL_ASSIGN_OR_RETURN(route.role, scheduler::ParseInstanceRole(req->role()));
    }
    std::vector<std::string> candidates(req->candidates().begin(), req->candidates().end());
    for (size_t i = 0; i < candidates.size(); ++i) {
      KVPOOL_RETURN_IF_ERROR(ValidateId("candidates[" + std::to_string(i) + "]", candidates[i]));
    }
    route.candidates = candidates;
    if (!req->policy().empty()) {
      KVPOOL_ASSIGN_OR_RETURN(scheduler::RoutePolicy policy,
                              scheduler::ParseRoutePolicy(req->policy()));
      route.policy = policy;
    }
    route.explain = req->explain();
    route.max_results = req->max_results();
    absl::MutexLock lock(&mu_);
    KVPOOL_ASSIGN_OR_RETURN(scheduler::RouteResult result, router_.Route(route));
    if (req->commit() && !result.ranked.empty()) {
      const scheduler::RouteCandidate& best = result.ranked.front();
      KVPOOL_RETURN_IF_ERROR(registry_.NoteRouted(best.instance_id, best.new_tokens,
                                                   best.cost.compute_s + best.cost.transfer_s));
    }
    const std::string_view policy_name = scheduler::RoutePolicyName(result.policy);
    ++counters_.routes_by_policy[std::string(policy_name)];
    resp->set_policy(std::string(policy_name));
    resp->set_prompt_blocks(result.prompt_blocks);
    resp->set_pooled_prefix_blocks(result.pooled_prefix_blocks);
    for (const scheduler::RouteCandidate& c : result.ranked) {
      v1::RouteCandidate* out = resp->add_ranked();
      out->set_instance_id(c.instance_id);
      out->set_node_id(c.node_id);
      out->set_local_prefix_blocks(c.local_prefix_blocks);
      out->set_cached_blocks(c.cached_blocks);
      out->set_remote_blocks(c.remote_blocks);
      out->set_new_tokens(c.new_tokens);
      out->set_queued_prompt_tokens(c.load.queued_prompt_tokens);
      out->set_running_requests(c.load.running_requests);
      out->set_queue_wait_s(c.cost.queue_wait_s);
      out->set_compute_s(c.cost.compute_s);
      out->set_transfer_s(c.cost.transfer_s);
      out->set_reason(c.reason);
      out->set_disk_read_bytes_per_s(c.disk_read_bytes_per_s);
    }
    return Status::Ok();
  });
}

grpc::Status SchedulerService::Place(grpc::ServerContext*, const v1::PlaceRequest* req,
                                     v1::PlaceResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(ValidateId("namespace", req->namespace_()));
    if (req->n_blocks() == 0) return InvalidArgumentError("n_blocks must be > 0, not 0");
    std::vector<std::string> allowed(req->allowed_nodes().begin(), req->allowed_nodes().end());
    for (size_t i = 0; i < allowed.size(); ++i) {
      KVPOOL_RETURN_IF_ERROR(ValidateId("allowed_nodes[" + std::to_string(i) + "]", allowed[i]));
    }
    scheduler::PlacementRequest place;
    place.ns = req->namespace_();
    place.n_blocks = req->n_blocks();
    place.allowed_nodes = allowed;
    place.tier = Tier::kHost;
    if (req->tier() != v1::TIER_UNSPECIFIED) {
      KVPOOL_ASSIGN_OR_RETURN(place.tier, StorageTier("tier", req->tier()));
    }
    absl::MutexLock lock(&mu_);
    KVPOOL_ASSIGN_OR_RETURN(scheduler::PlacementDecision d, placer_.PlaceBlocks(place));
    resp->set_node_id(d.node_id);
    resp->set_free_bytes(d.free_bytes);
    resp->set_needed_bytes(d.needed_bytes);
    resp->set_reason(d.reason);
    return Status::Ok();
  });
}

grpc::Status SchedulerService::ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                                         v1::ListNodesResponse* resp) {
  return Serve([&]() -> Status {
    absl::MutexLock lock(&mu_);
    const int64_t now = registry_.NowMs();
    for (const auto& [id, node] : registry_.nodes()) {
      v1::NodeInfo* out = resp->add_nodes();
      out->set_node_id(node.id);
      out->set_address(node.address);
      out->set_ucx_worker_address(node.ucx_worker_address);
      ToProto(node.capacity_bytes, out->mutable_capacity_bytes());
      if (node.used_bytes) ToProto(*node.used_bytes, out->mutable_used_bytes());
      out->set_alive(registry_.IsAlive(node, now));
      out->set_last_heartbeat_age_ms(now - node.last_heartbeat_ms);
      ToProto(index_.NodeBlocks(node.id), out->mutable_indexed_blocks());
      const auto stream = index_.StreamState(node.id);
      out->set_synced(stream.has_value() && !stream->needs_resync);
      out->set_draining(node.draining);
      out->set_disk_read_bytes_per_s(node.disk_read_bytes_per_s);
    }
    return Status::Ok();
  });
}

grpc::Status SchedulerService::GetIndexStats(grpc::ServerContext*,
                                             const v1::GetIndexStatsRequest* req,
                                             v1::GetIndexStatsResponse* resp) {
  return Serve([&]() -> Status {
    if (req->top() > 1000) {
      return InvalidArgumentError("top must be at most 1000, got " + std::to_string(req->top()));
    }
    const size_t top = req->top() == 0 ? 10 : req->top();
    absl::MutexLock lock(&mu_);
    resp->set_blocks(index_.blocks());
    resp->set_copies(index_.copies());
    resp->set_memory_bytes(index_.MemoryBytes());
    for (const std::string& ns : index_.Namespaces()) {
      v1::NamespaceBlockCount* out = resp->add_namespaces();
      out->set_namespace_(ns);
      out->set_blocks(index_.FindNamespace(ns)->size());
    }
    for (const std::string& id : index_.NodeIds()) {
      v1::NodeBlockCount* out = resp->add_nodes();
      out->set_node_id(id);
      ToProto(index_.NodeBlocks(id), out->mutable_blocks());
    }
    // The most replicated blocks: a bounded min-heap on holder count over one pass of the index.
    struct Candidate {
      size_t holders;
      std::string ns;
      BlockHash hash;
      std::vector<scheduler::NodeIndex> nodes;
    };
    auto fewer = [](const Candidate& a, const Candidate& b) { return a.holders > b.holders; };
    std::vector<Candidate> heap;
    index_.ForEach([&](std::string_view ns, const BlockHash& hash,
                       std::span<const scheduler::Holder> holders) {
      if (heap.size() == top && holders.size() <= heap.front().holders) return;
      Candidate c{holders.size(), std::string(ns), hash, {}};
      for (const scheduler::Holder& h : holders) c.nodes.push_back(h.node);
      heap.push_back(std::move(c));
      std::push_heap(heap.begin(), heap.end(), fewer);
      if (heap.size() > top) {
        std::pop_heap(heap.begin(), heap.end(), fewer);
        heap.pop_back();
      }
    });
    std::sort_heap(heap.begin(), heap.end(), fewer);
    for (const Candidate& c : heap) {
      v1::ReplicatedBlock* out = resp->add_most_replicated();
      out->set_namespace_(c.ns);
      const auto bytes = c.hash.Bytes();
      out->set_hash(std::string(bytes.begin(), bytes.end()));
      for (scheduler::NodeIndex n : c.nodes) out->add_node_ids(index_.node_id(n));
    }
    return Status::Ok();
  });
}

grpc::Status SchedulerService::ListInstances(grpc::ServerContext*,
                                             const v1::ListInstancesRequest*,
                                             v1::ListInstancesResponse* resp) {
  return Serve([&]() -> Status {
    absl::MutexLock lock(&mu_);
    const int64_t now = registry_.NowMs();
    for (const auto& [id, inst] : registry_.instances()) {
      v1::InstanceInfo* out = resp->add_instances();
      out->set_instance_id(inst.id);
      out->set_role(std::string(scheduler::InstanceRoleName(inst.role)));
      out->set_node_id(inst.node_id);
      out->set_max_running_requests(inst.max_running_requests);
      out->set_queued_prompt_tokens(inst.reported.queued_prompt_tokens);
      out->set_running_requests(inst.reported.running_requests);
      const scheduler::InstanceLoad est = inst.EstimatedLoad();
      out->set_estimated_queued_prompt_tokens(est.queued_prompt_tokens);
      out->set_estimated_running_requests(est.running_requests);
      out->set_queued_prefill_s(inst.reported.queued_prefill_s);
      out->set_estimated_queued_prefill_s(est.queued_prefill_s);
      out->set_alive(registry_.IsAlive(inst, now));
      out->set_last_report_age_ms(now - inst.last_report_ms);
    }
    return Status::Ok();
  });
}

grpc::Status SchedulerService::DeregisterNode(grpc::ServerContext*,
                                              const v1::DeregisterNodeRequest* req,
                                              v1::DeregisterNodeResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(ValidateId("node_id", req->node_id()));
    absl::MutexLock lock(&mu_);
    KVPOOL_RETURN_IF_ERROR(registry_.RemoveNode(req->node_id()));
    resp->set_dropped_blocks(index_.DropNode(req->node_id()));
    KVPOOL_LOG(INFO) << "node " << req->node_id() << " left; " << resp->dropped_blocks()
                     << " blocks dropped from the index";
    return Status::Ok();
  });
}

grpc::Status SchedulerService::DeregisterInstance(grpc::ServerContext*,
                                                  const v1::DeregisterInstanceRequest* req,
                                                  v1::DeregisterInstanceResponse*) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(ValidateId("instance_id", req->instance_id()));
    absl::MutexLock lock(&mu_);
    return registry_.RemoveInstance(req->instance_id());
  });
}

scheduler::ExpiredMembers SchedulerService::ExpireDead() {
  absl::MutexLock lock(&mu_);
  scheduler::ExpiredMembers expired = registry_.ExpireDead();
  for (const std::string& node : expired.nodes) index_.DropNode(node);
  return expired;
}

SchedulerServiceStats SchedulerService::Stats() {
  absl::MutexLock lock(&mu_);
  SchedulerServiceStats stats = counters_;
  stats.index_blocks = index_.blocks();
  stats.index_copies = index_.copies();
  stats.index_memory_bytes = index_.MemoryBytes();
  for (const std::string& ns : index_.Namespaces()) {
    stats.index_blocks_by_namespace[ns] = index_.FindNamespace(ns)->size();
  }
  const int64_t now = registry_.NowMs();
  for (const auto& [id, node] : registry_.nodes()) {
    ++(registry_.IsAlive(node, now) ? stats.nodes_alive : stats.nodes_dead);
  }
  for (const auto& [id, inst] : registry_.instances()) {
    ++(registry_.IsAlive(inst, now) ? stats.instances_alive : stats.instances_dead);
  }
  return stats;
}

}  // namespace kvpool::daemon
