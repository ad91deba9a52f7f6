#include "kvpool/client.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <algorithm>
#include <chrono>

#include "client/lib/client_impl.h"
#include "kvpool/v1/mempool.grpc.pb.h"
#include "rpc/client_channel.h"
#include "rpc/convert.h"
#include "rpc/status_convert.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace kvpool {

Client::Client(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Client::~Client() = default;

const std::string& Client::address() const { return impl_->address; }

Result<std::unique_ptr<Client>> Client::Connect(std::string_view address,
                                                const ClientOptions& options) {
  auto impl = std::make_unique<Impl>();
  impl->address = std::string(address);
  impl->options = options;
  KVPOOL_ASSIGN_OR_RETURN(impl->channel, rpc::OpenChannel(address, options, "kvpoold"));
  impl->stub = v1::MemPool::NewStub(impl->channel);
  return std::unique_ptr<Client>(new Client(std::move(impl)));
}

Result<bool> Client::Health() {
  auto stub = grpc::health::v1::Health::NewStub(impl_->channel);
  grpc::health::v1::HealthCheckRequest req;
  grpc::health::v1::HealthCheckResponse resp;
  auto ctx = rpc::DeadlineContext(impl_->options.timeout_ms);
  KVPOOL_RETURN_IF_ERROR(rpc::FromGrpcStatus(stub->Check(ctx.get(), req, &resp)));
  return resp.status() == grpc::health::v1::HealthCheckResponse::SERVING;
}

Result<std::pair<NamespaceInfo, bool>> Client::CreateNamespace(const NamespaceSpec& spec) {
  v1::CreateNamespaceRequest req;
  rpc::ToProto(spec, req.mutable_spec());
  v1::CreateNamespaceResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::CreateNamespace, req, &resp));
  return std::make_pair(rpc::FromProto(resp.info()), resp.created());
}

Result<NamespaceInfo> Client::GetNamespace(std::string_view name) {
  v1::GetNamespaceRequest req;
  req.set_name(std::string(name));
  v1::GetNamespaceResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::GetNamespace, req, &resp));
  return rpc::FromProto(resp.info());
}

Result<std::vector<NamespaceInfo>> Client::ListNamespaces() {
  v1::ListNamespacesRequest req;
  v1::ListNamespacesResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::ListNamespaces, req, &resp));
  std::vector<NamespaceInfo> out;
  for (const auto& ns : resp.namespaces()) out.push_back(rpc::FromProto(ns));
  return out;
}

Result<uint64_t> Client::DeleteNamespace(std::string_view name) {
  v1::DeleteNamespaceRequest req;
  req.set_name(std::string(name));
  v1::DeleteNamespaceResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::DeleteNamespace, req, &resp));
  return resp.freed_blocks();
}

Result<Allocation> Client::AllocMem(std::string_view ns, uint32_t n_blocks, Tier tier,
                                    uint32_t lease_ttl_ms) {
  v1::AllocMemRequest req;
  req.set_namespace_(std::string(ns));
  req.set_n_blocks(n_blocks);
  req.set_tier(rpc::ToProto(tier));
  req.set_lease_ttl_ms(lease_ttl_ms);
  v1::AllocMemResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::AllocMem, req, &resp));
  Allocation out;
  out.lease = rpc::FromProto(resp.lease());
  KVPOOL_ASSIGN_OR_RETURN(out.blocks, rpc::FromProto(resp.blocks()));
  impl_->slab_keys->Learn(resp.blocks());
  impl_->leases->OnAllocated(out.lease.id, out.lease.ttl_ms, out.blocks);
  return out;
}

Result<uint32_t> Client::FreeMem(std::string_view ns, uint64_t lease_id,
                                 std::span<const BlockHandle> handles) {
  v1::FreeMemRequest req;
  req.set_namespace_(std::string(ns));
  req.set_lease_id(lease_id);
  req.mutable_handles()->Add(handles.begin(), handles.end());
  v1::FreeMemResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::FreeMem, req, &resp));
  impl_->leases->OnFreed(lease_id, handles);
  return resp.freed_blocks();
}

Result<InsertResult> Client::Insert(std::string_view ns, PromptView prompt, uint32_t start_block,
                                    std::span<const BlockHandle> handles, uint64_t lease_id,
                                    bool keep_pinned, bool durable) {
  v1::InsertRequest req;
  req.set_namespace_(std::string(ns));
  rpc::ToProto(prompt, req.mutable_prompt());
  req.set_start_block(start_block);
  req.mutable_handles()->Add(handles.begin(), handles.end());
  req.set_lease_id(lease_id);
  req.set_keep_pinned(keep_pinned);
  req.set_durable(durable);
  v1::InsertResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Insert, req, &resp));
  InsertResult out;
  out.inserted_blocks = resp.inserted_blocks();
  out.duplicate_blocks = resp.duplicate_blocks();
  out.handles.assign(resp.handles().begin(), resp.handles().end());
  out.duplicate.assign(resp.duplicate().begin(), resp.duplicate().end());
  impl_->leases->OnInserted(lease_id, handles, out.handles, keep_pinned);
  return out;
}

Result<MatchResult> Client::Match(std::string_view ns, PromptView prompt, uint32_t start_block,
                                  bool lease, uint32_t lease_ttl_ms) {
  v1::MatchRequest req;
  req.set_namespace_(std::string(ns));
  rpc::ToProto(prompt, req.mutable_prompt());
  req.set_start_block(start_block);
  req.set_lease(lease);
  req.set_lease_ttl_ms(lease_ttl_ms);
  v1::MatchResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Match, req, &resp));
  MatchResult out;
  out.matched_blocks = resp.matched_blocks();
  out.prompt_blocks = resp.prompt_blocks();
  KVPOOL_ASSIGN_OR_RETURN(out.blocks, rpc::FromProto(resp.blocks()));
  out.lease = rpc::FromProto(resp.lease());
  impl_->slab_keys->Learn(resp.blocks());
  impl_->leases->OnPinned(out.lease.id, out.lease.ttl_ms, out.blocks);
  return out;
}

Result<ExistsResult> Client::Exists(std::string_view ns, PromptView prompt) {
  v1::ExistsRequest req;
  req.set_namespace_(std::string(ns));
  rpc::ToProto(prompt, req.mutable_prompt());
  v1::ExistsResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Exists, req, &resp));
  ExistsResult out;
  out.present_blocks = resp.present_blocks();
  out.tiers.reserve(resp.tiers_size());
  for (int t : resp.tiers()) {
    KVPOOL_ASSIGN_OR_RETURN(Tier tier, rpc::FromProto(static_cast<v1::Tier>(t)));
    out.tiers.push_back(tier);
  }
  return out;
}

Result<uint32_t> Client::Delete(std::string_view ns, PromptView prompt) {
  v1::DeleteRequest req;
  req.set_namespace_(std::string(ns));
  rpc::ToProto(prompt, req.mutable_prompt());
  v1::DeleteResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Delete, req, &resp));
  return resp.deleted_blocks();
}

Result<Lease> Client::Renew(uint64_t lease_id, uint32_t lease_ttl_ms) {
  v1::RenewRequest req;
  req.set_lease_id(lease_id);
  req.set_lease_ttl_ms(lease_ttl_ms);
  v1::RenewResponse resp;
  Status st = impl_->Call(&v1::MemPool::Stub::Renew, req, &resp);
  if (!st.ok()) {
    // A lease the node no longer knows is over here too.
    if (st.code() == StatusCode::kNotFound || st.code() == StatusCode::kFailedPrecondition) {
      impl_->leases->OnReleased(lease_id);
    }
    return st;
  }
  const Lease lease = rpc::FromProto(resp.lease());
  impl_->leases->OnRenewed(lease_id, lease.ttl_ms);
  return lease;
}

Result<uint32_t> Client::Release(uint64_t lease_id) {
  v1::ReleaseRequest req;
  req.set_lease_id(lease_id);
  v1::ReleaseResponse resp;
  // Whatever the node answers, this client stops using the lease's blocks.
  impl_->leases->OnReleased(lease_id);
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Release, req, &resp));
  return resp.released_blocks();
}

Result<PoolStats> Client::GetStats() {
  v1::GetStatsRequest req;
  v1::GetStatsResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::GetStats, req, &resp));
  return rpc::FromProto(resp);
}

Result<uint64_t> Client::Evict(std::string_view ns, uint64_t n_blocks) {
  v1::EvictRequest req;
  req.set_namespace_(std::string(ns));
  req.set_n_blocks(n_blocks);
  v1::EvictResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Evict, req, &resp));
  return resp.evicted_blocks();
}

Result<uint64_t> Client::SwapOut(std::string_view ns, uint64_t n_blocks) {
  v1::SwapOutRequest req;
  req.set_namespace_(std::string(ns));
  req.set_n_blocks(n_blocks);
  v1::SwapOutResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::SwapOut, req, &resp));
  return resp.demoted_blocks();
}

Result<DrainProgress> Client::Drain(uint64_t max_blocks, bool demote,
                                    uint32_t scheduler_timeout_ms) {
  DrainOptions options;
  options.max_blocks = max_blocks;
  options.demote = demote;
  options.scheduler_timeout_ms = scheduler_timeout_ms;
  return Drain(options);
}

Result<DrainProgress> Client::Drain(const DrainOptions& options) {
  v1::DrainRequest req;
  req.set_max_blocks(options.max_blocks);
  req.set_mark_only(!options.demote);
  req.set_scheduler_timeout_ms(options.scheduler_timeout_ms);
  req.set_handoff_node(options.handoff_node);
  req.set_handoff_timeout_ms(options.handoff_timeout_ms);
  v1::DrainResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Drain, req, &resp));
  DrainProgress out;
  out.was_draining = resp.was_draining();
  out.has_scheduler = resp.has_scheduler();
  out.scheduler_acknowledged = resp.scheduler_acknowledged();
  out.has_disk_tier = resp.has_disk_tier();
  out.demoted_blocks = resp.demoted_blocks();
  out.dropped_blocks = resp.dropped_blocks();
  out.host_blocks = resp.host_blocks();
  out.pinned_blocks = resp.pinned_blocks();
  out.allocated_blocks = resp.allocated_blocks();
  out.disk_blocks = resp.disk_blocks();
  out.namespaces = resp.namespaces();
  out.handed_off_blocks = resp.handed_off_blocks();
  out.handoff_duplicate_blocks = resp.handoff_duplicate_blocks();
  out.handoff_bytes = resp.handoff_bytes();
  out.handoff_chains = resp.handoff_chains();
  return out;
}

Result<UndrainResult> Client::Undrain(uint32_t scheduler_timeout_ms) {
  v1::UndrainRequest req;
  req.set_scheduler_timeout_ms(scheduler_timeout_ms);
  v1::UndrainResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Undrain, req, &resp));
  return UndrainResult{resp.was_draining(), resp.has_scheduler(), resp.scheduler_acknowledged()};
}

Result<uint32_t> Client::SwapIn(std::string_view ns, PromptView prompt, uint32_t start_block) {
  v1::SwapInRequest req;
  req.set_namespace_(std::string(ns));
  rpc::ToProto(prompt, req.mutable_prompt());
  req.set_start_block(start_block);
  v1::SwapInResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::SwapIn, req, &resp));
  return resp.promoted_blocks();
}

Result<ResolvedBlocks> Client::ResolveBlocks(uint64_t lease_id,
                                             std::span<const BlockHandle> handles,
                                             bool for_write, bool checksums) {
  v1::ResolveBlocksRequest req;
  req.set_lease_id(lease_id);
  req.mutable_handles()->Add(handles.begin(), handles.end());
  req.set_for_write(for_write);
  req.set_checksums(checksums);
  v1::ResolveBlocksResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::ResolveBlocks, req, &resp));
  ResolvedBlocks out;
  out.spec = rpc::FromProto(resp.spec());
  KVPOOL_ASSIGN_OR_RETURN(out.blocks, rpc::FromProto(resp.blocks()));
  out.checksums.assign(resp.checksums().begin(), resp.checksums().end());
  return out;
}

namespace {

TransferResult FromProto(const v1::TransferResponse& resp) {
  return TransferResult{resp.blocks(), resp.bytes(), resp.elapsed_us()};
}

// A transfer's deadline: the node's own timeout plus the control round trips around it.
uint32_t TransferCallTimeout(const ClientOptions& options, uint32_t transfer_timeout_ms) {
  return transfer_timeout_ms == 0 ? std::max<uint32_t>(options.timeout_ms, 60'000)
                                  : transfer_timeout_ms + options.timeout_ms;
}

}  // namespace

Result<TransferResult> Client::TransferToNode(uint64_t src_lease_id,
                                              std::span<const BlockHandle> src,
                                              const NodeBlocks& dst, uint32_t timeout_ms,
                                              bool verify_checksums) {
  v1::TransferRequest req;
  req.set_src_lease_id(src_lease_id);
  req.mutable_src_handles()->Add(src.begin(), src.end());
  v1::NodeBlocks* node = req.mutable_node();
  node->set_node_id(dst.node_id);
  node->set_lease_id(dst.lease_id);
  node->mutable_handles()->Add(dst.handles.begin(), dst.handles.end());
  req.set_timeout_ms(timeout_ms);
  req.set_verify_checksums(verify_checksums);
  v1::TransferResponse resp;
  KVPOOL_RETURN_IF_ERROR(rpc::CallUnary(*impl_->stub, &v1::MemPool::Stub::Transfer, req, &resp,
                                        TransferCallTimeout(impl_->options, timeout_ms)));
  return FromProto(resp);
}

Result<TransferResult> Client::TransferToRegion(uint64_t src_lease_id,
                                                std::span<const BlockHandle> src,
                                                const RegionDescriptor& region,
                                                std::span<const uint64_t> offsets,
                                                uint32_t timeout_ms) {
  v1::TransferRequest req;
  req.set_src_lease_id(src_lease_id);
  req.mutable_src_handles()->Add(src.begin(), src.end());
  v1::RegionBlocks* dst = req.mutable_region();
  dst->set_worker_address(region.worker_address);
  dst->set_region_base(region.base);
  dst->set_region_bytes(region.size_bytes);
  dst->set_rkey(region.rkey);
  dst->mutable_offsets()->Add(offsets.begin(), offsets.end());
  req.set_timeout_ms(timeout_ms);
  v1::TransferResponse resp;
  KVPOOL_RETURN_IF_ERROR(rpc::CallUnary(*impl_->stub, &v1::MemPool::Stub::Transfer, req, &resp,
                                        TransferCallTimeout(impl_->options, timeout_ms)));
  return FromProto(resp);
}

Result<TransferResult> Client::TransferFromRegion(const RegionDescriptor& region,
                                                  std::span<const uint64_t> offsets,
                                                  uint64_t dst_lease_id,
                                                  std::span<const BlockHandle> dst,
                                                  uint32_t timeout_ms) {
  v1::TransferFromRegionRequest req;
  v1::RegionBlocks* src = req.mutable_src();
  src->set_worker_address(region.worker_address);
  src->set_region_base(region.base);
  src->set_region_bytes(region.size_bytes);
  src->set_rkey(region.rkey);
  src->mutable_offsets()->Add(offsets.begin(), offsets.end());
  req.set_dst_lease_id(dst_lease_id);
  req.mutable_dst_handles()->Add(dst.begin(), dst.end());
  req.set_timeout_ms(timeout_ms);
  v1::TransferResponse resp;
  KVPOOL_RETURN_IF_ERROR(rpc::CallUnary(*impl_->stub, &v1::MemPool::Stub::TransferFromRegion,
                                        req, &resp,
                                        TransferCallTimeout(impl_->options, timeout_ms)));
  return FromProto(resp);
}

Result<TransferWithInsertResult> Client::TransferWithInsert(
    std::string_view dst_node, std::string_view ns, PromptView prompt, uint32_t start_block,
    uint64_t src_lease_id, std::span<const BlockHandle> src, uint32_t timeout_ms) {
  v1::TransferWithInsertRequest req;
  req.set_dst_node(std::string(dst_node));
  req.set_namespace_(std::string(ns));
  rpc::ToProto(prompt, req.mutable_prompt());
  req.set_start_block(start_block);
  req.set_src_lease_id(src_lease_id);
  req.mutable_src_handles()->Add(src.begin(), src.end());
  req.set_timeout_ms(timeout_ms);
  v1::TransferWithInsertResponse resp;
  KVPOOL_RETURN_IF_ERROR(rpc::CallUnary(*impl_->stub, &v1::MemPool::Stub::TransferWithInsert,
                                        req, &resp,
                                        TransferCallTimeout(impl_->options, timeout_ms)));
  return TransferWithInsertResult{resp.dst_node(), resp.inserted_blocks(),
                                  resp.duplicate_blocks(), resp.bytes(), resp.elapsed_us()};
}

}  // namespace kvpool
