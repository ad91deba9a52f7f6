#include "kvpool/client.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>

#include "kvpool/v1/mempool.grpc.pb.h"
#include "rpc/client_channel.h"
#include "rpc/convert.h"
#include "rpc/status_convert.h"
#include "grpc/health/v1/health.grpc.pb.h"

namespace kvpool {

namespace v1 = ::kvpool::v1;

struct Client::Impl {
  std::string address;
  ClientOptions options;
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<v1::MemPool::Stub> stub;

  // Runs one unary RPC with the configured deadline.
  template <typename Req, typename Resp>
  Status Call(grpc::Status (v1::MemPool::Stub::*method)(grpc::ClientContext*, const Req&, Resp*),
              const Req& req, Resp* resp) const {
    return rpc::CallUnary(*stub, method, req, resp, options.timeout_ms);
  }
};

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
  return resp.freed_blocks();
}

Result<InsertResult> Client::Insert(std::string_view ns, PromptView prompt, uint32_t start_block,
                                    std::span<const BlockHandle> handles, uint64_t lease_id,
                                    bool keep_pinned) {
  v1::InsertRequest req;
  req.set_namespace_(std::string(ns));
  rpc::ToProto(prompt, req.mutable_prompt());
  req.set_start_block(start_block);
  req.mutable_handles()->Add(handles.begin(), handles.end());
  req.set_lease_id(lease_id);
  req.set_keep_pinned(keep_pinned);
  v1::InsertResponse resp;
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Insert, req, &resp));
  InsertResult out;
  out.inserted_blocks = resp.inserted_blocks();
  out.duplicate_blocks = resp.duplicate_blocks();
  out.handles.assign(resp.handles().begin(), resp.handles().end());
  out.duplicate.assign(resp.duplicate().begin(), resp.duplicate().end());
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
  KVPOOL_RETURN_IF_ERROR(impl_->Call(&v1::MemPool::Stub::Renew, req, &resp));
  return rpc::FromProto(resp.lease());
}

Result<uint32_t> Client::Release(uint64_t lease_id) {
  v1::ReleaseRequest req;
  req.set_lease_id(lease_id);
  v1::ReleaseResponse resp;
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

}  // namespace kvpool
