// The gRPC face of a node's MemPool: decodes requests, calls node::MemPool, encodes responses.
#pragma once

#include <cstdint>
#include <optional>
#include <string>
#include <utility>

#include "daemon/node_transfer.h"
#include "daemon/ops_drain.h"
#include "transport/pool_memory.h"
#include "kvpool/v1/mempool.grpc.pb.h"
#include "node/mempool.h"

namespace kvpool::daemon {

/// What GetDataPlane publishes: how peers reach the pool's memory over the data plane. Plain
/// value type (no transport type: the daemon fills it from its TransferEngine).
struct DataPlaneEndpoint {
  /// The engine's worker address (opaque bytes).
  std::string worker_address;
  /// Address, in this process, of pool offset 0. Default: 0.
  uint64_t region_base = 0;
  /// Bytes of the pool region. Default: 0.
  uint64_t region_bytes = 0;
  /// The probe page for the UCX handshake: address, bytes, packed remote key.
  uint64_t probe_address = 0;
  uint64_t probe_bytes = 0;
  std::string probe_rkey;
  /// The pool's slabs and their keys (borrowed; outlives the service).
  const transport::PoolMemory* memory = nullptr;
};

/// Implements kvpool.v1.MemPool on top of node::MemPool. Every request is validated (wire shape
/// here, semantics in the node) and errors map to canonical gRPC codes with the node's message.
/// Thread-safe (MemPool is); the pool must outlive the service.
///
/// Namespace-scoped tokens (docs/security.md): a call whose token may use only some namespaces
/// is PERMISSION_DENIED, before anything runs, when it names another namespace or a lease of
/// one; ListNamespaces and GetStats show it only its namespaces.
class MemPoolService final : public v1::MemPool::Service {
 public:
  /// `data_plane`: what GetDataPlane answers; `transfer`: runs Transfer and
  /// TransferWithInsert (borrowed). Without them (no data plane) those calls are
  /// FAILED_PRECONDITION.
  explicit MemPoolService(node::MemPool* pool,
                          std::optional<DataPlaneEndpoint> data_plane = std::nullopt,
                          NodeTransfer* transfer = nullptr)
      : pool_(pool), data_plane_(std::move(data_plane)), transfer_(transfer), drain_(pool, transfer) {}

  /// The node's drain state (Drain / Undrain); kvpoold's main connects it to the scheduler.
  NodeDrain& drain() { return drain_; }

  grpc::Status CreateNamespace(grpc::ServerContext*, const v1::CreateNamespaceRequest*,
                               v1::CreateNamespaceResponse*) override;
  grpc::Status GetNamespace(grpc::ServerContext*, const v1::GetNamespaceRequest*,
                            v1::GetNamespaceResponse*) override;
  grpc::Status ListNamespaces(grpc::ServerContext*, const v1::ListNamespacesRequest*,
                              v1::ListNamespacesResponse*) override;
  grpc::Status DeleteNamespace(grpc::ServerContext*, const v1::DeleteNamespaceRequest*,
                               v1::DeleteNamespaceResponse*) override;
  grpc::Status AllocMem(grpc::ServerContext*, const v1::AllocMemRequest*,
                        v1::AllocMemResponse*) override;
  grpc::Status FreeMem(grpc::ServerContext*, const v1::FreeMemRequest*,
                       v1::FreeMemResponse*) override;
  grpc::Status Insert(grpc::ServerContext*, const v1::InsertRequest*,
                      v1::InsertResponse*) override;
  grpc::Status Match(grpc::ServerContext*, const v1::MatchRequest*, v1::MatchResponse*) override;
  grpc::Status Exists(grpc::ServerContext*, const v1::ExistsRequest*,
                      v1::ExistsResponse*) override;
  grpc::Status Delete(grpc::ServerContext*, const v1::DeleteRequest*,
                      v1::DeleteResponse*) override;
  grpc::Status Renew(grpc::ServerContext*, const v1::RenewRequest*, v1::RenewResponse*) override;
  grpc::Status Release(grpc::ServerContext*, const v1::ReleaseRequest*,
                       v1::ReleaseResponse*) override;
  grpc::Status GetStats(grpc::ServerContext*, const v1::GetStatsRequest*,
                        v1::GetStatsResponse*) override;
  grpc::Status Evict(grpc::ServerContext*, const v1::EvictRequest*,
                     v1::EvictResponse*) override;
  grpc::Status SwapOut(grpc::ServerContext*, const v1::SwapOutRequest*,
                       v1::SwapOutResponse*) override;
  grpc::Status SwapIn(grpc::ServerContext*, const v1::SwapInRequest*,
                      v1::SwapInResponse*) override;
  grpc::Status GetDataPlane(grpc::ServerContext*, const v1::GetDataPlaneRequest*,
                            v1::GetDataPlaneResponse*) override;
  grpc::Status ResolveBlocks(grpc::ServerContext*, const v1::ResolveBlocksRequest*,
                             v1::ResolveBlocksResponse*) override;
  grpc::Status Transfer(grpc::ServerContext*, const v1::TransferRequest*,
                        v1::TransferResponse*) override;
  grpc::Status TransferWithInsert(grpc::ServerContext*, const v1::TransferWithInsertRequest*,
                                  v1::TransferWithInsertResponse*) override;
  grpc::Status TransferFromRegion(grpc::ServerContext*, const v1::TransferFromRegionRequest*,
                                  v1::TransferResponse*) override;
  grpc::Status Drain(grpc::ServerContext*, const v1::DrainRequest*, v1::DrainResponse*) override;
  grpc::Status Undrain(grpc::ServerContext*, const v1::UndrainRequest*,
                       v1::UndrainResponse*) override;

 private:
  // Adds the keys of the slabs holding `list`'s HOST blocks (nothing without a data plane).
  void AttachSlabKeys(v1::BlockList* list) const;

  node::MemPool* pool_;
  const std::optional<DataPlaneEndpoint> data_plane_;
  NodeTransfer* const transfer_;
  NodeDrain drain_;
};

}  // namespace kvpool::daemon
