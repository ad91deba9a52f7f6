// libFuzzer target: kvpool-scheduler's gRPC handlers (daemon::SchedulerService with a manual
// clock) fed with mutated serialized requests; see fuzz_records.h for the format.
//
// Every answer must be a canonical status with a message (served_status.h). At the end of an
// input the clock jumps past every timeout and dead members are expired: then no node, no
// instance and no indexed block may be left (a dead node's blocks leave the index).
#include <cstddef>
#include <cstdint>

#include "common/clock.h"
#include "daemon/scheduler_service.h"
#include "fuzz_records.h"
#include "proto_mutator.h"
#include "record_input.h"
#include "served_status.h"

namespace kvpool::fuzz {
namespace {

// Longer than any timeout a test or default configures (registry defaults: 10 s).
constexpr int64_t kBeyondTimeoutsMs = 1'000'000'000;

class Harness {
 public:
  Harness() : service_(daemon::SchedulerServiceOptions{}, &clock_) {}

  void Run(const Record& r) {
    using M = SchedulerMethod;
    using S = daemon::SchedulerService;
    switch (static_cast<M>(r.method % static_cast<uint8_t>(M::kCount))) {
      case M::kRegisterNode: Call<v1::RegisterNodeResponse>(r, &S::RegisterNode); break;
      case M::kNodeHeartbeat: Call<v1::NodeHeartbeatResponse>(r, &S::NodeHeartbeat); break;
      case M::kPublishEvents: Call<v1::PublishEventsResponse>(r, &S::PublishEvents); break;
      case M::kSyncSnapshot: Call<v1::SyncSnapshotResponse>(r, &S::SyncSnapshot); break;
      case M::kRegisterInstance:
        Call<v1::RegisterInstanceResponse>(r, &S::RegisterInstance);
        break;
      case M::kReportLoad: Call<v1::ReportLoadResponse>(r, &S::ReportLoad); break;
      case M::kDeregisterNode: Call<v1::DeregisterNodeResponse>(r, &S::DeregisterNode); break;
      case M::kDeregisterInstance:
        Call<v1::DeregisterInstanceResponse>(r, &S::DeregisterInstance);
        break;
      case M::kLookup: Call<v1::LookupResponse>(r, &S::Lookup); break;
      case M::kRoute: Call<v1::RouteResponse>(r, &S::Route); break;
      case M::kPlace: Call<v1::PlaceResponse>(r, &S::Place); break;
      case M::kListNodes: Call<v1::ListNodesResponse>(r, &S::ListNodes); break;
      case M::kListInstances: Call<v1::ListInstancesResponse>(r, &S::ListInstances); break;
      case M::kGetIndexStats: Call<v1::GetIndexStatsResponse>(r, &S::GetIndexStats); break;
      case M::kExpireDead:
        clock_.AdvanceMs(int64_t{r.flags} * 1'000);
        service_.ExpireDead();
        break;
      case M::kCount:
        break;
    }
  }

  // Every member times out: nothing may stay registered or indexed.
  void CheckAllExpire() {
    clock_.AdvanceMs(kBeyondTimeoutsMs);
    service_.ExpireDead();
    v1::ListNodesRequest nodes_request;
    v1::ListNodesResponse nodes;
    CheckServed(service_.ListNodes(nullptr, &nodes_request, &nodes));
    KVPOOL_FUZZ_CHECK(nodes.nodes_size() == 0);
    v1::ListInstancesRequest instances_request;
    v1::ListInstancesResponse instances;
    CheckServed(service_.ListInstances(nullptr, &instances_request, &instances));
    KVPOOL_FUZZ_CHECK(instances.instances_size() == 0);
    v1::GetIndexStatsRequest stats_request;
    v1::GetIndexStatsResponse stats;
    CheckServed(service_.GetIndexStats(nullptr, &stats_request, &stats));
    KVPOOL_FUZZ_CHECK(stats.blocks() == 0);
    KVPOOL_FUZZ_CHECK(stats.copies() == 0);
  }

 private:
  template <typename Resp, typename Req>
  void Call(const Record& r,
            grpc::Status (daemon::SchedulerService::*method)(grpc::ServerContext*, const Req*,
                                                             Resp*)) {
    Req req;
    if (!req.ParseFromArray(r.payload.data(), static_cast<int>(r.payload.size()))) return;
    Resp resp;
    CheckServed((service_.*method)(nullptr, &req, &resp));
  }

  ManualClock clock_;
  daemon::SchedulerService service_;
};

// The request message of each method, for the structure-aware mutator.
const google::protobuf::Message* Request(uint8_t method) {
  using M = SchedulerMethod;
  switch (static_cast<M>(method)) {
    case M::kRegisterNode: return &v1::RegisterNodeRequest::default_instance();
    case M::kNodeHeartbeat: return &v1::NodeHeartbeatRequest::default_instance();
    case M::kPublishEvents: return &v1::PublishEventsRequest::default_instance();
    case M::kSyncSnapshot: return &v1::SyncSnapshotRequest::default_instance();
    case M::kRegisterInstance: return &v1::RegisterInstanceRequest::default_instance();
    case M::kReportLoad: return &v1::ReportLoadRequest::default_instance();
    case M::kDeregisterNode: return &v1::DeregisterNodeRequest::default_instance();
    case M::kDeregisterInstance: return &v1::DeregisterInstanceRequest::default_instance();
    case M::kLookup: return &v1::LookupRequest::default_instance();
    case M::kRoute: return &v1::RouteRequest::default_instance();
    case M::kPlace: return &v1::PlaceRequest::default_instance();
    case M::kListNodes: return &v1::ListNodesRequest::default_instance();
    case M::kListInstances: return &v1::ListInstancesRequest::default_instance();
    case M::kGetIndexStats: return &v1::GetIndexStatsRequest::default_instance();
    case M::kExpireDead:  // no request: the clock advance is in the record's flags
    case M::kCount: break;
  }
  return nullptr;
}

}  // namespace
}  // namespace kvpool::fuzz

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  return kvpool::fuzz::MutateRecordInput(
      data, size, max_size, seed, static_cast<uint8_t>(kvpool::fuzz::SchedulerMethod::kCount),
      &kvpool::fuzz::Request);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kvpool::fuzz::RunRecordInput<kvpool::fuzz::Harness>(
      data, size, [](kvpool::fuzz::Harness& harness) { harness.CheckAllExpire(); });
}
