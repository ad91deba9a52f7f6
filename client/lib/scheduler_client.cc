#include "kvpool/scheduler_client.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <utility>

#include "kvpool/v1/scheduler.grpc.pb.h"
#include "rpc/client_channel.h"
#include "rpc/convert.h"
#include "rpc/status_convert.h"

namespace kvpool {
namespace {

SchedulerTierCounts FromProto(const v1::TierCounts& c) {
  return SchedulerTierCounts{c.gpu(), c.host(), c.disk()};
}

}  // namespace

struct SchedulerClient::Impl {
  std::string address;
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::Scheduler::Stub> stub;

  // Runs one unary RPC with the configured deadline.
  template <typename Req, typename Resp>
  Status Call(grpc::Status (v1::Scheduler::Stub::*method)(grpc::ClientContext*, const Req&,
                                                          Resp*),
              const Req& req, Resp* resp) const {
    return rpc::CallUnary(*stub, method, req, resp, options.timeout_ms);
  }
};

SchedulerClient::SchedulerClient(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
SchedulerClient::~SchedulerClient() = default;

const std::string& SchedulerClient::address() const { return impl_->address; }

Result<std::unique_ptr<SchedulerClient>> SchedulerClient::Connect(std::string_view address,
                                                                  const ClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->address = std::string(address);
  impl->options = options;
  // A restarted scheduler is found within a second, not after gRPC's default backoff.
  KVPOOL_ASSIGN_OR_RETURN(impl->channel,
                          rpc::OpenChannel(address, options, "kvpool-scheduler", true));
  impl->stub = v1::Scheduler::NewStub(impl->channel);
  return std::unique_ptr<SchedulerClient>(new SchedulerClient(std::move(impl)));
}

Result<PoolLookupResult> SchedulerClient::Lookup(std::string_view ns,
                                                 std::span<const BlockHash> hashes) {
  v1::LookupRequest req;
  req.set_namespace_(std::string(ns));
  rpc::HashesToBytes(hashes, req.mutable_block_hashes());
  v1::LookupResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::Scheduler::Stub::Lookup, req, &resp));
  PoolLookupResult out;
  out.prompt_blocks = resp.prompt_blocks();
  out.pooled_prefix_blocks = resp.pooled_prefix_blocks();
  out.held_blocks = resp.held_blocks();
  for (const v1::NodeLookup& n : resp.nodes()) {
    NodeHolding h;
    h.node_id = n.node_id();
    h.leading_blocks = n.leading_blocks();
    if (n.run_starts_size() != n.run_lengths_size()) {
      return InternalError("scheduler sent " + std::to_string(n.run_starts_size()) +
                           " run starts but " + std::to_string(n.run_lengths_size()) +
                           " run lengths");
    }
    for (int i = 0; i < n.run_starts_size(); ++i) {
      h.runs.push_back(SchedulerBlockRun{n.run_starts(i), n.run_lengths(i)});
    }
    h.held = FromProto(n.held());
    out.nodes.push_back(std::move(h));
  }
  for (const v1::PullSegment& s : resp.segments()) {
    KVPOOL_ASSIGN_OR_RETURN(Tier tier, rpc::FromProto(s.tier()));
    out.segments.push_back(PoolSegment{s.start(), s.length(), s.node_id(), tier});
  }
  return out;
}

Result<RouteAnswer> SchedulerClient::Route(const RouteQuery& query) {
  v1::RouteRequest req;
  req.set_namespace_(query.ns);
  rpc::HashesToBytes(query.hashes, req.mutable_block_hashes());
  req.set_prompt_tokens(query.prompt_tokens);
  req.set_role(query.role);
  for (const std::string& c : query.candidates) req.add_candidates(c);
  req.set_policy(query.policy);
  req.set_explain(query.explain);
  req.set_max_results(query.max_results);
  req.set_commit(query.commit);
  v1::RouteResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::Scheduler::Stub::Route, req, &resp));
  RouteAnswer out;
  out.policy = resp.policy();
  out.prompt_blocks = resp.prompt_blocks();
  out.pooled_prefix_blocks = resp.pooled_prefix_blocks();
  for (const v1::RouteCandidate& c : resp.ranked()) {
    RoutedInstance r;
    r.instance_id = c.instance_id();
    r.node_id = c.node_id();
    r.local_prefix_blocks = c.local_prefix_blocks();
    r.cached_blocks = c.cached_blocks();
    r.remote_blocks = c.remote_blocks();
    r.new_tokens = c.new_tokens();
    r.queued_prompt_tokens = c.queued_prompt_tokens();
    r.running_requests = c.running_requests();
    r.queue_wait_s = c.queue_wait_s();
    r.compute_s = c.compute_s();
    r.transfer_s = c.transfer_s();
    r.reason = c.reason();
    r.disk_read_bytes_per_s = c.disk_read_bytes_per_s();
    out.ranked.push_back(std::move(r));
  }
  return out;
}

Result<std::vector<PoolNode>> SchedulerClient::ListNodes() {
  v1::ListNodesRequest req;
  v1::ListNodesResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::Scheduler::Stub::ListNodes, req, &resp));
  std::vector<PoolNode> out;
  for (const v1::NodeInfo& n : resp.nodes()) {
    PoolNode p;
    p.node_id = n.node_id();
    p.address = n.address();
    p.capacity_host_bytes = n.capacity_bytes().host();
    p.used_host_bytes = n.used_bytes().host();
    p.alive = n.alive();
    p.synced = n.synced();
    p.draining = n.draining();
    p.last_heartbeat_age_ms = n.last_heartbeat_age_ms();
    p.disk_read_bytes_per_s = n.disk_read_bytes_per_s();
    p.indexed_blocks = FromProto(n.indexed_blocks());
    out.push_back(std::move(p));
  }
  return out;
}

Result<std::vector<PoolInstance>> SchedulerClient::ListInstances() {
  v1::ListInstancesRequest req;
  v1::ListInstancesResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::Scheduler::Stub::ListInstances, req, &resp));
  std::vector<PoolInstance> out;
  for (const v1::InstanceInfo& i : resp.instances()) {
    out.push_back(PoolInstance{i.instance_id(), i.role(), i.node_id(), i.max_running_requests(),
                               i.queued_prompt_tokens(), i.running_requests(),
                               i.estimated_queued_prompt_tokens(), i.estimated_running_requests(),
                               i.alive(), i.last_report_age_ms(), i.queued_prefill_s(),
                               i.estimated_queued_prefill_s()});
  }
  return out;
}

Result<Placement> SchedulerClient::Place(std::string_view ns, uint64_t n_blocks,
                                         std::span<const std::string> allowed_nodes, Tier tier) {
  v1::PlaceRequest req;
  req.set_namespace_(std::string(ns));
  req.set_n_blocks(n_blocks);
  for (const std::string& n : allowed_nodes) req.add_allowed_nodes(n);
  req.set_tier(rpc::ToProto(tier));
  v1::PlaceResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::Scheduler::Stub::Place, req, &resp));
  return Placement{resp.node_id(), resp.free_bytes(), resp.needed_bytes(), resp.reason()};
}

Result<PoolIndexStats> SchedulerClient::GetIndexStats(uint32_t top) {
  v1::GetIndexStatsRequest req;
  req.set_top(top);
  v1::GetIndexStatsResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::Scheduler::Stub::GetIndexStats, req, &resp));
  PoolIndexStats out;
  out.blocks = resp.blocks();
  out.copies = resp.copies();
  out.memory_bytes = resp.memory_bytes();
  for (const auto& ns : resp.namespaces()) out.namespace_blocks.emplace_back(ns.namespace_(), ns.blocks());
  for (const auto& n : resp.nodes()) out.node_blocks.emplace_back(n.node_id(), FromProto(n.blocks()));
  for (const auto& r : resp.most_replicated()) {
    if (r.hash().size() != kBlockHashBytes) return InternalError("scheduler sent a malformed hash");
    out.most_replicated.push_back(PoolIndexStats::Replicated{
        r.namespace_(), BlockHash::FromBytes(reinterpret_cast<const uint8_t*>(r.hash().data())),
        {r.node_ids().begin(), r.node_ids().end()}});
  }
  return out;
}

Status SchedulerClient::RegisterInstance(std::string_view instance_id, std::string_view role,
                                         std::string_view node_id,
                                         uint32_t max_running_requests) {
  v1::RegisterInstanceRequest req;
  req.set_instance_id(std::string(instance_id));
  req.set_role(std::string(role));
  req.set_node_id(std::string(node_id));
  req.set_max_running_requests(max_running_requests);
  v1::RegisterInstanceResponse resp;
  return impl_->Call(&v1::Scheduler::Stub::RegisterInstance, req, &resp);
}

Status SchedulerClient::ReportLoad(std::string_view instance_id, uint64_t queued_prompt_tokens,
                                   uint32_t running_requests, double queued_prefill_s) {
  v1::ReportLoadRequest req;
  req.set_instance_id(std::string(instance_id));
  req.set_queued_prompt_tokens(queued_prompt_tokens);
  req.set_running_requests(running_requests);
  req.set_queued_prefill_s(queued_prefill_s);
  v1::ReportLoadResponse resp;
  return impl_->Call(&v1::Scheduler::Stub::ReportLoad, req, &resp);
}

Status SchedulerClient::DeregisterInstance(std::string_view instance_id) {
  v1::DeregisterInstanceRequest req;
  req.set_instance_id(std::string(instance_id));
  v1::DeregisterInstanceResponse resp;
  return impl_->Call(&v1::Scheduler::Stub::DeregisterInstance, req, &resp);
}

}  // namespace kvpool
