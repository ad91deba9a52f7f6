#include "daemon/mempool_service.h"

#include <algorithm>
#include <chrono>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/container/inlined_vector.h"
#include "rpc/convert.h"
#include "rpc/server_security.h"
#include "rpc/status_convert.h"

namespace kvpool::daemon {
namespace {

using rpc::ToGrpcStatus;

// Milliseconds until the call's deadline (none: `cap_ms`), between 1 and `cap_ms`.
uint32_t CallLeftMs(const grpc::ServerContext* ctx, uint32_t cap_ms) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                        ctx->deadline() - std::chrono::system_clock::now())
                        .count();
  return static_cast<uint32_t>(std::clamp<int64_t>(left, 1, cap_ms));
}

// Longest a node waits for a transfer's messages within one call (the longest transfer
// timeout a request may ask for, NodeTransferOptions::max_timeout_ms).
constexpr uint32_t kMaxMessagesWaitMs = 300'000;

// Runs `body`, a function returning kvpool::Status, and converts its result for gRPC.
template <typename Fn>
grpc::Status Serve(Fn&& body) {
  return ToGrpcStatus(body());
}

// Namespace-scoped tokens: OK unless the call's token may not use `ns`.
Status CheckNamespace(grpc::ServerContext* ctx, std::string_view ns) {
  return rpc::CheckNamespaceAccess(ctx, ns);
}

// ... or the namespace of lease `lease_id` (looked up only for a scoped token; an unknown lease
// gives the error the call itself would give).
Status CheckLease(grpc::ServerContext* ctx, node::MemPool* pool, uint64_t lease_id) {
  if (!rpc::NamespaceScopeOf(ctx).has_value()) return Status::Ok();
  KVPOOL_ASSIGN_OR_RETURN(std::string ns, pool->LeaseNamespace(lease_id));
  return rpc::CheckNamespaceAccess(ctx, ns);
}

// Drops the namespaces a scoped token may not see.
void FilterNamespaces(grpc::ServerContext* ctx,
                      google::protobuf::RepeatedPtrField<v1::NamespaceInfo>* infos) {
  const std::optional<std::vector<std::string>> scope = rpc::NamespaceScopeOf(ctx);
  if (!scope.has_value()) return;
  google::protobuf::RepeatedPtrField<v1::NamespaceInfo> kept;
  for (v1::NamespaceInfo& info : *infos) {
    if (rpc::NamespaceMatches(*scope, info.spec().name())) kept.Add(std::move(info));
  }
  infos->Swap(&kept);
}

Status NoDataPlane() {
  return FailedPreconditionError("this node runs without a data plane (kvpoold --no-data-plane)");
}

}  // namespace

grpc::Status MemPoolService::CreateNamespace(grpc::ServerContext* ctx,
                                             const v1::CreateNamespaceRequest* req,
                                             v1::CreateNamespaceResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->spec().name()));
    KVPOOL_ASSIGN_OR_RETURN(auto created, pool_->CreateNamespace(rpc::FromProto(req->spec())));
    rpc::ToProto(created.first, resp->mutable_info());
    resp->set_created(created.second);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::GetNamespace(grpc::ServerContext* ctx,
                                          const v1::GetNamespaceRequest* req,
                                          v1::GetNamespaceResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->name()));
    KVPOOL_ASSIGN_OR_RETURN(NamespaceInfo info, pool_->GetNamespace(req->name()));
    rpc::ToProto(info, resp->mutable_info());
    return Status::Ok();
  });
}

grpc::Status MemPoolService::ListNamespaces(grpc::ServerContext* ctx,
                                            const v1::ListNamespacesRequest*,
                                            v1::ListNamespacesResponse* resp) {
  for (const NamespaceInfo& info : pool_->ListNamespaces()) {
    rpc::ToProto(info, resp->add_namespaces());
  }
  FilterNamespaces(ctx, resp->mutable_namespaces());
  return grpc::Status::OK;
}

grpc::Status MemPoolService::DeleteNamespace(grpc::ServerContext* ctx,
                                             const v1::DeleteNamespaceRequest* req,
                                             v1::DeleteNamespaceResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->name()));
    KVPOOL_ASSIGN_OR_RETURN(uint64_t freed, pool_->DeleteNamespace(req->name()));
    resp->set_freed_blocks(freed);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::AllocMem(grpc::ServerContext* ctx, const v1::AllocMemRequest* req,
                                      v1::AllocMemResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    KVPOOL_ASSIGN_OR_RETURN(Tier tier, rpc::FromProto(req->tier()));
    KVPOOL_ASSIGN_OR_RETURN(Allocation alloc, pool_->AllocMem(req->namespace_(), req->n_blocks(),
                                                              tier, req->lease_ttl_ms()));
    rpc::ToProto(alloc.lease, resp->mutable_lease());
    rpc::ToProto(alloc.blocks, resp->mutable_blocks());
    AttachSlabKeys(resp->mutable_blocks());
    return Status::Ok();
  });
}

grpc::Status MemPoolService::FreeMem(grpc::ServerContext* ctx, const v1::FreeMemRequest* req,
                                     v1::FreeMemResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    KVPOOL_ASSIGN_OR_RETURN(uint32_t freed, pool_->FreeMem(req->namespace_(), req->lease_id(),
                                                           rpc::HandlesOf(req->handles())));
    resp->set_freed_blocks(freed);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::Insert(grpc::ServerContext* ctx, const v1::InsertRequest* req,
                                    v1::InsertResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    std::vector<BlockHash> hashes;
    KVPOOL_ASSIGN_OR_RETURN(PromptView prompt, rpc::FromProto(req->prompt(), &hashes));
    if (req->messages_token() != 0) {
      // A node-to-node transfer sent the bytes as messages: insert only once all landed.
      if (transfer_ == nullptr) return NoDataPlane();
      KVPOOL_RETURN_IF_ERROR(transfer_->AwaitMessages(req->lease_id(), req->messages_token(),
                                                      CallLeftMs(ctx, kMaxMessagesWaitMs)));
    }
    KVPOOL_ASSIGN_OR_RETURN(
        InsertResult result,
        pool_->Insert(req->namespace_(), prompt, req->start_block(), rpc::HandlesOf(req->handles()),
                      req->lease_id(), req->keep_pinned(), req->durable()));
    resp->set_inserted_blocks(result.inserted_blocks);
    resp->set_duplicate_blocks(result.duplicate_blocks);
    resp->mutable_handles()->Add(result.handles.begin(), result.handles.end());
    resp->mutable_duplicate()->Reserve(static_cast<int>(result.duplicate.size()));
    for (bool d : result.duplicate) resp->add_duplicate(d);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::Match(grpc::ServerContext* ctx, const v1::MatchRequest* req,
                                   v1::MatchResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    std::vector<BlockHash> hashes;
    KVPOOL_ASSIGN_OR_RETURN(PromptView prompt, rpc::FromProto(req->prompt(), &hashes));
    KVPOOL_ASSIGN_OR_RETURN(MatchResult result,
                            pool_->Match(req->namespace_(), prompt, req->start_block(),
                                         req->lease(), req->lease_ttl_ms()));
    resp->set_matched_blocks(result.matched_blocks);
    resp->set_prompt_blocks(result.prompt_blocks);
    rpc::ToProto(result.blocks, resp->mutable_blocks());
    AttachSlabKeys(resp->mutable_blocks());
    rpc::ToProto(result.lease, resp->mutable_lease());
    return Status::Ok();
  });
}

grpc::Status MemPoolService::Exists(grpc::ServerContext* ctx, const v1::ExistsRequest* req,
                                    v1::ExistsResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    std::vector<BlockHash> hashes;
    KVPOOL_ASSIGN_OR_RETURN(PromptView prompt, rpc::FromProto(req->prompt(), &hashes));
    KVPOOL_ASSIGN_OR_RETURN(ExistsResult result, pool_->Exists(req->namespace_(), prompt));
    resp->mutable_tiers()->Reserve(static_cast<int>(result.tiers.size()));
    for (Tier t : result.tiers) resp->add_tiers(rpc::ToProto(t));
    resp->set_present_blocks(result.present_blocks);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::Delete(grpc::ServerContext* ctx, const v1::DeleteRequest* req,
                                    v1::DeleteResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    std::vector<BlockHash> hashes;
    KVPOOL_ASSIGN_OR_RETURN(PromptView prompt, rpc::FromProto(req->prompt(), &hashes));
    KVPOOL_ASSIGN_OR_RETURN(uint32_t deleted, pool_->Delete(req->namespace_(), prompt));
    resp->set_deleted_blocks(deleted);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::Renew(grpc::ServerContext* ctx, const v1::RenewRequest* req,
                                   v1::RenewResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckLease(ctx, pool_, req->lease_id()));
    KVPOOL_ASSIGN_OR_RETURN(Lease lease, pool_->Renew(req->lease_id(), req->lease_ttl_ms()));
    rpc::ToProto(lease, resp->mutable_lease());
    return Status::Ok();
  });
}

grpc::Status MemPoolService::Release(grpc::ServerContext* ctx, const v1::ReleaseRequest* req,
                                     v1::ReleaseResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckLease(ctx, pool_, req->lease_id()));
    // Messages still on their way must not land in blocks the release frees.
    if (transfer_ != nullptr) transfer_->ReleaseLease(req->lease_id());
    KVPOOL_ASSIGN_OR_RETURN(uint32_t released, pool_->Release(req->lease_id()));
    resp->set_released_blocks(released);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::GetStats(grpc::ServerContext* ctx, const v1::GetStatsRequest*,
                                      v1::GetStatsResponse* resp) {
  rpc::ToProto(pool_->GetStats(), resp);
  FilterNamespaces(ctx, resp->mutable_namespaces());
  return grpc::Status::OK;
}

grpc::Status MemPoolService::Evict(grpc::ServerContext* ctx, const v1::EvictRequest* req,
                                   v1::EvictResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    KVPOOL_ASSIGN_OR_RETURN(uint64_t evicted, pool_->Evict(req->namespace_(), req->n_blocks()));
    resp->set_evicted_blocks(evicted);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::SwapOut(grpc::ServerContext* ctx, const v1::SwapOutRequest* req,
                                     v1::SwapOutResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    KVPOOL_ASSIGN_OR_RETURN(node::SwapOutResult result,
                            pool_->SwapOut(req->namespace_(), req->n_blocks()));
    resp->set_demoted_blocks(result.demoted_blocks);
    resp->set_dropped_blocks(result.dropped_blocks);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::SwapIn(grpc::ServerContext* ctx, const v1::SwapInRequest* req,
                                    v1::SwapInResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    std::vector<BlockHash> hashes;
    KVPOOL_ASSIGN_OR_RETURN(PromptView prompt, rpc::FromProto(req->prompt(), &hashes));
    KVPOOL_ASSIGN_OR_RETURN(uint32_t promoted,
                            pool_->SwapIn(req->namespace_(), prompt, req->start_block()));
    resp->set_promoted_blocks(promoted);
    return Status::Ok();
  });
}

grpc::Status MemPoolService::GetDataPlane(grpc::ServerContext*, const v1::GetDataPlaneRequest*,
                                          v1::GetDataPlaneResponse* resp) {
  return Serve([&]() -> Status {
    if (!data_plane_.has_value()) return NoDataPlane();
    resp->set_worker_address(data_plane_->worker_address);
    resp->set_region_base(data_plane_->region_base);
    resp->set_region_bytes(data_plane_->region_bytes);
    resp->set_probe_address(data_plane_->probe_address);
    resp->set_probe_bytes(data_plane_->probe_bytes);
    resp->set_probe_rkey(data_plane_->probe_rkey);
    return Status::Ok();
  });
}

void MemPoolService::AttachSlabKeys(v1::BlockList* list) const {
  if (!data_plane_.has_value() || data_plane_->memory == nullptr) return;
  // Only HOST blocks live in the pool's slabs (GPU offsets are the device arena's).
  absl::InlinedVector<uint64_t, 8> host;
  for (int i = 0; i < list->offsets_size(); ++i) {
    if (list->tiers(i) == v1::TIER_HOST) host.push_back(list->offsets(i));
  }
  if (host.empty()) return;
  for (transport::SlabKey& key : data_plane_->memory->KeysFor(host, list->block_bytes())) {
    v1::SlabKey* out = list->add_slab_keys();
    out->set_offset(key.offset);
    out->set_bytes(key.bytes);
    out->set_rkey(std::move(key.rkey));
  }
}

grpc::Status MemPoolService::ResolveBlocks(grpc::ServerContext* ctx,
                                           const v1::ResolveBlocksRequest* req,
                                           v1::ResolveBlocksResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckLease(ctx, pool_, req->lease_id()));
    if (req->expect_messages() || req->await_messages() != 0) {
      if (transfer_ == nullptr) return NoDataPlane();
      if (req->expect_messages() && !req->for_write()) {
        return InvalidArgumentError("expect_messages needs for_write: messages write the blocks");
      }
    }
    if (req->await_messages() != 0) {
      KVPOOL_RETURN_IF_ERROR(transfer_->AwaitMessages(req->lease_id(), req->await_messages(),
                                                      CallLeftMs(ctx, kMaxMessagesWaitMs)));
    }
    KVPOOL_ASSIGN_OR_RETURN(
        node::LeasedBlocks leased,
        pool_->ResolveLeased(req->lease_id(), rpc::HandlesOf(req->handles()),
                             req->for_write() ? node::BlockAccess::kWrite
                                              : node::BlockAccess::kRead,
                             req->checksums()));
    if (req->expect_messages()) {
      KVPOOL_ASSIGN_OR_RETURN(const uint64_t token,
                              transfer_->ExpectMessages(req->lease_id(), leased.blocks,
                                                        req->messages_ttl_ms(),
                                                        leased.ttl_left_ms));
      resp->set_messages_token(token);
    }
    rpc::ToProto(leased.spec, resp->mutable_spec());
    resp->set_ttl_left_ms(leased.ttl_left_ms);
    rpc::ToProto(leased.blocks, resp->mutable_blocks());
    AttachSlabKeys(resp->mutable_blocks());
    resp->mutable_checksums()->Add(leased.checksums.begin(), leased.checksums.end());
    return Status::Ok();
  });
}

grpc::Status MemPoolService::Transfer(grpc::ServerContext* ctx, const v1::TransferRequest* req,
                                      v1::TransferResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckLease(ctx, pool_, req->src_lease_id()));
    if (transfer_ == nullptr) return NoDataPlane();
    return transfer_->Transfer(*req, resp);
  });
}

grpc::Status MemPoolService::TransferWithInsert(grpc::ServerContext* ctx,
                                                const v1::TransferWithInsertRequest* req,
                                                v1::TransferWithInsertResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckLease(ctx, pool_, req->src_lease_id()));
    KVPOOL_RETURN_IF_ERROR(CheckNamespace(ctx, req->namespace_()));
    if (transfer_ == nullptr) return NoDataPlane();
    return transfer_->TransferWithInsert(*req, resp);
  });
}

grpc::Status MemPoolService::TransferFromRegion(grpc::ServerContext* ctx,
                                                const v1::TransferFromRegionRequest* req,
                                                v1::TransferResponse* resp) {
  return Serve([&]() -> Status {
    KVPOOL_RETURN_IF_ERROR(CheckLease(ctx, pool_, req->dst_lease_id()));
    if (transfer_ == nullptr) return NoDataPlane();
    return transfer_->TransferFromRegion(*req, resp);
  });
}

grpc::Status MemPoolService::Drain(grpc::ServerContext*, const v1::DrainRequest* req,
                                   v1::DrainResponse* resp) {
  return Serve([&]() -> Status { return drain_.Drain(*req, resp); });
}

grpc::Status MemPoolService::Undrain(grpc::ServerContext*, const v1::UndrainRequest* req,
                                     v1::UndrainResponse* resp) {
  return Serve([&]() -> Status { return drain_.Undrain(*req, resp); });
}

}  // namespace kvpool::daemon
