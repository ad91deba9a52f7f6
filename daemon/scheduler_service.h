// The gRPC face of kvpool-scheduler: decodes requests, calls the scheduler core (registry,
// global index, router, placer), encodes responses.
#pragma once

#include <cstdint>
#include <map>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "kvpool/v1/scheduler.grpc.pb.h"
#include "scheduler/global_index.h"
#include "scheduler/namespace_models.h"
#include "scheduler/placement.h"
#include "scheduler/registry.h"
#include "scheduler/router.h"

namespace kvpool::daemon {

/// What the scheduler service is built from.
struct SchedulerServiceOptions {
  scheduler::RegistryOptions registry;
  scheduler::RouterOptions router;
  /// Model of namespaces that were never configured.
  scheduler::NamespaceModel default_model;
  /// Models of named namespaces (block layout and compute cost), from --namespace-model.
  std::vector<std::pair<std::string, scheduler::NamespaceModel>> namespace_models;
};

/// Counters and sizes of a SchedulerService, for /metrics (read at scrape time). Counters are
/// totals since start. Value type.
struct SchedulerServiceStats {
  /// KV events (stored, removed, tier-changed) in batches the index applied.
  uint64_t events_applied = 0;
  /// Block changes those events made.
  uint64_t event_blocks_applied = 0;
  /// Batches answered PUBLISH_STALE (already applied) and PUBLISH_RESYNC_NEEDED.
  uint64_t stale_batches = 0;
  uint64_t resyncs_requested = 0;
  /// Full snapshots applied (SyncSnapshot): every resync ends in one.
  uint64_t snapshots_applied = 0;
  /// Route calls answered, by the policy that ranked them ("cost", "prefix", ...).
  std::map<std::string, uint64_t> routes_by_policy;
  /// Global index now: distinct blocks, (block, node) copies, bytes of memory.
  uint64_t index_blocks = 0;
  uint64_t index_copies = 0;
  uint64_t index_memory_bytes = 0;
  /// Distinct blocks per namespace.
  std::map<std::string, uint64_t> index_blocks_by_namespace;
  /// Registered members now, alive (heartbeat within the timeout) or not.
  uint64_t nodes_alive = 0;
  uint64_t nodes_dead = 0;
  uint64_t instances_alive = 0;
  uint64_t instances_dead = 0;
};

/// Implements kvpool.v1.Scheduler. Every field is validated here (INVALID_ARGUMENT naming the
/// bad value) before the core sees it; the core's own errors pass through unchanged.
///
/// Node protocol: RegisterNode, then SyncSnapshot (full snapshot), then PublishEvents batches
/// seq + 1, + 2, ... and NodeHeartbeat. PublishEvents / SyncSnapshot / NodeHeartbeat of a node
/// that is not registered answer NOT_FOUND: the node registers again and resyncs (this is how
/// nodes find a restarted scheduler).
///
/// Thread-safe: one mutex serialises every call into the core. `clock` is borrowed and must
/// outlive the service.
class SchedulerService final : public v1::Scheduler::Service {
 public:
  SchedulerService(const SchedulerServiceOptions& options, const Clock* clock);

  grpc::Status RegisterNode(grpc::ServerContext*, const v1::RegisterNodeRequest*,
                            v1::RegisterNodeResponse*) override;
  grpc::Status NodeHeartbeat(grpc::ServerContext*, const v1::NodeHeartbeatRequest*,
                             v1::NodeHeartbeatResponse*) override;
  grpc::Status PublishEvents(grpc::ServerContext*, const v1::PublishEventsRequest*,
                             v1::PublishEventsResponse*) override;
  grpc::Status SyncSnapshot(grpc::ServerContext*, const v1::SyncSnapshotRequest*,
                            v1::SyncSnapshotResponse*) override;
  grpc::Status RegisterInstance(grpc::ServerContext*, const v1::RegisterInstanceRequest*,
                                v1::RegisterInstanceResponse*) override;
  grpc::Status ReportLoad(grpc::ServerContext*, const v1::ReportLoadRequest*,
                          v1::ReportLoadResponse*) override;
  grpc::Status DeregisterNode(grpc::ServerContext*, const v1::DeregisterNodeRequest*,
                              v1::DeregisterNodeResponse*) override;
  grpc::Status DeregisterInstance(grpc::ServerContext*, const v1::DeregisterInstanceRequest*,
                                  v1::DeregisterInstanceResponse*) override;
  grpc::Status Lookup(grpc::ServerContext*, const v1::LookupRequest*,
                      v1::LookupResponse*) override;
  grpc::Status Route(grpc::ServerContext*, const v1::RouteRequest*,
                     v1::RouteResponse*) override;
  grpc::Status Place(grpc::ServerContext*, const v1::PlaceRequest*,
                     v1::PlaceResponse*) override;
  grpc::Status ListNodes(grpc::ServerContext*, const v1::ListNodesRequest*,
                         v1::ListNodesResponse*) override;
  grpc::Status ListInstances(grpc::ServerContext*, const v1::ListInstancesRequest*,
                             v1::ListInstancesResponse*) override;

  grpc::Status GetIndexStats(grpc::ServerContext*, const v1::GetIndexStatsRequest*,
                             v1::GetIndexStatsResponse*) override;

  /// Removes members whose heartbeats stopped and drops dead nodes' blocks from the index.
  /// Returns the expired members (for logging).
  scheduler::ExpiredMembers ExpireDead();

  /// Counters and sizes for /metrics. Takes the service mutex briefly.
  SchedulerServiceStats Stats();

 private:
  absl::Mutex mu_;
  SchedulerServiceStats counters_ ABSL_GUARDED_BY(mu_);
  scheduler::Registry registry_ ABSL_GUARDED_BY(mu_);
  scheduler::GlobalIndex index_ ABSL_GUARDED_BY(mu_);
  scheduler::NamespaceModels models_ ABSL_GUARDED_BY(mu_);
  scheduler::Router router_ ABSL_GUARDED_BY(mu_);
  scheduler::Placer placer_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvpool::daemon
