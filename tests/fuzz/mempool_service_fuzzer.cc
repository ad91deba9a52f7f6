// libFuzzer target: kvpoold's gRPC handlers (daemon::MemPoolService over a real node::MemPool,
// no data plane) fed with mutated serialized requests; see fuzz_records.h for the format.
//
// Every answer must be a canonical status with a message (served_status.h). At the end of an
// input the clock jumps past the longest lease: then no block may stay allocated or pinned, the
// bytes in use must be exactly the cached blocks', and once everything is evicted and every
// namespace deleted the pool must be empty (nothing leaked, whatever the calls were).
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "common/clock.h"
#include "daemon/mempool_service.h"
#include "fuzz_records.h"
#include "record_input.h"
#include "node/mempool.h"
#include "proto_mutator.h"
#include "served_status.h"

namespace kvpool::fuzz {
namespace {

constexpr uint32_t kMaxLeaseTtlMs = 60'000;

node::MemPoolOptions PoolOptions() {
  node::MemPoolOptions options;
  options.node_id = "fuzz";
  options.capacity_bytes = 4ull << 20;
  options.huge_pages = false;
  options.slab_bytes = 256ull << 10;
  options.default_lease_ttl_ms = 1'000;
  options.max_lease_ttl_ms = kMaxLeaseTtlMs;
  options.max_request_blocks = 1'024;
  options.max_namespaces = 8;
  options.max_block_tokens = 1'024;
  options.max_block_bytes = 1ull << 20;
  return options;
}

// One input's pool and service, and what earlier answers returned.
class Harness {
 public:
  Harness() : pool_(CreatePool(&clock_)), service_(pool_.get()) {}

  void Run(const Record& r) {
    if (r.flags & kAdvanceClock) {
      clock_.AdvanceMs(int64_t{r.flags >> 3} * 1'000);
      pool_->ExpireLeases();
    }
    const bool lease = (r.flags & kUseLastLease) != 0;
    const bool handles = (r.flags & kUseLastHandles) != 0;
    auto set_handles = [&](google::protobuf::RepeatedField<uint64_t>* field) {
      if (handles) field->Assign(last_handles_.begin(), last_handles_.end());
    };
    using M = MemPoolMethod;
    using S = daemon::MemPoolService;
    switch (static_cast<M>(r.method % static_cast<uint8_t>(M::kCount))) {
      case M::kCreateNamespace: {
        v1::CreateNamespaceResponse resp;
        Call(r, &S::CreateNamespace, &resp, [](v1::CreateNamespaceRequest&) {});
        break;
      }
      case M::kGetNamespace: {
        v1::GetNamespaceResponse resp;
        Call(r, &S::GetNamespace, &resp, [](v1::GetNamespaceRequest&) {});
        break;
      }
      case M::kListNamespaces: {
        v1::ListNamespacesResponse resp;
        Call(r, &S::ListNamespaces, &resp, [](v1::ListNamespacesRequest&) {});
        break;
      }
      case M::kDeleteNamespace: {
        v1::DeleteNamespaceResponse resp;
        Call(r, &S::DeleteNamespace, &resp, [](v1::DeleteNamespaceRequest&) {});
        break;
      }
      case M::kAllocMem: {
        v1::AllocMemResponse resp;
        if (Call(r, &S::AllocMem, &resp, [](v1::AllocMemRequest&) {})) {
          KVPOOL_FUZZ_CHECK(resp.lease().id() != 0);
          Remember(resp.lease().id(), resp.blocks().handles());
        }
        break;
      }
      case M::kFreeMem: {
        v1::FreeMemResponse resp;
        Call(r, &S::FreeMem, &resp, [&](v1::FreeMemRequest& req) {
          if (lease) req.set_lease_id(last_lease_);
          set_handles(req.mutable_handles());
        });
        break;
      }
      case M::kInsert: {
        v1::InsertResponse resp;
        if (Call(r, &S::Insert, &resp, [&](v1::InsertRequest& req) {
              if (lease) req.set_lease_id(last_lease_);
              set_handles(req.mutable_handles());
            })) {
          KVPOOL_FUZZ_CHECK(resp.inserted_blocks() + resp.duplicate_blocks() ==
                            static_cast<uint32_t>(resp.handles_size()));
        }
        break;
      }
      case M::kMatch: {
        v1::MatchResponse resp;
        if (Call(r, &S::Match, &resp, [](v1::MatchRequest&) {})) {
          KVPOOL_FUZZ_CHECK(resp.matched_blocks() <= resp.prompt_blocks());
          KVPOOL_FUZZ_CHECK(static_cast<uint32_t>(resp.blocks().handles_size()) ==
                            resp.matched_blocks());
          if (resp.lease().id() != 0) Remember(resp.lease().id(), resp.blocks().handles());
        }
        break;
      }
      case M::kExists: {
        v1::ExistsResponse resp;
        Call(r, &S::Exists, &resp, [](v1::ExistsRequest&) {});
        break;
      }
      case M::kDelete: {
        v1::DeleteResponse resp;
        Call(r, &S::Delete, &resp, [](v1::DeleteRequest&) {});
        break;
      }
      case M::kRenew: {
        v1::RenewResponse resp;
        Call(r, &S::Renew, &resp, [&](v1::RenewRequest& req) {
          if (lease) req.set_lease_id(last_lease_);
        });
        break;
      }
      case M::kRelease: {
        v1::ReleaseResponse resp;
        Call(r, &S::Release, &resp, [&](v1::ReleaseRequest& req) {
          if (lease) req.set_lease_id(last_lease_);
        });
        break;
      }
      case M::kGetStats: {
        v1::GetStatsResponse resp;
        Call(r, &S::GetStats, &resp, [](v1::GetStatsRequest&) {});
        break;
      }
      case M::kEvict: {
        v1::EvictResponse resp;
        Call(r, &S::Evict, &resp, [](v1::EvictRequest&) {});
        break;
      }
      case M::kGetDataPlane: {
        v1::GetDataPlaneResponse resp;
        Call(r, &S::GetDataPlane, &resp, [](v1::GetDataPlaneRequest&) {});
        break;
      }
      case M::kResolveBlocks: {
        v1::ResolveBlocksResponse resp;
        Call(r, &S::ResolveBlocks, &resp, [&](v1::ResolveBlocksRequest& req) {
          if (lease) req.set_lease_id(last_lease_);
          set_handles(req.mutable_handles());
        });
        break;
      }
      case M::kTransfer: {
        v1::TransferResponse resp;
        Call(r, &S::Transfer, &resp, [](v1::TransferRequest&) {});
        break;
      }
      case M::kTransferWithInsert: {
        v1::TransferWithInsertResponse resp;
        Call(r, &S::TransferWithInsert, &resp, [](v1::TransferWithInsertRequest&) {});
        break;
      }
      case M::kTransferFromRegion: {
        v1::TransferResponse resp;
        Call(r, &S::TransferFromRegion, &resp, [](v1::TransferFromRegionRequest&) {});
        break;
      }
      case M::kSwapOut: {  // the pool has no SSD tier: refused, cleanly
        v1::SwapOutResponse resp;
        Call(r, &S::SwapOut, &resp, [](v1::SwapOutRequest&) {});
        break;
      }
      case M::kSwapIn: {
        v1::SwapInResponse resp;
        Call(r, &S::SwapIn, &resp, [](v1::SwapInRequest&) {});
        break;
      }
      case M::kDrain: {  // no scheduler, no SSD tier: marks the node, demotes nothing
        v1::DrainResponse resp;
        Call(r, &S::Drain, &resp, [](v1::DrainRequest&) {});
        break;
      }
      case M::kUndrain: {
        v1::UndrainResponse resp;
        Call(r, &S::Undrain, &resp, [](v1::UndrainRequest&) {});
        break;
      }
      case M::kCount:
        break;
    }
  }

  // Every lease ends: nothing may stay allocated or pinned, and once the cache is evicted and
  // the namespaces deleted, the pool holds no byte.
  void CheckNothingLeaks() {
    clock_.AdvanceMs(kMaxLeaseTtlMs + 1);
    pool_->ExpireLeases();
    v1::GetStatsResponse stats;
    const v1::GetStatsRequest stats_request;
    CheckServed(service_.GetStats(nullptr, &stats_request, &stats));
    KVPOOL_FUZZ_CHECK(stats.active_leases() == 0);
    uint64_t cached_bytes = 0;
    for (const v1::NamespaceInfo& ns : stats.namespaces()) {
      KVPOOL_FUZZ_CHECK(ns.stats().allocated_blocks() == 0);
      KVPOOL_FUZZ_CHECK(ns.stats().pinned_blocks() == 0);
      KVPOOL_FUZZ_CHECK(ns.stats().used_bytes() ==
                        ns.stats().cached_blocks() * ns.spec().block_bytes());
      cached_bytes += ns.stats().used_bytes();
    }
    KVPOOL_FUZZ_CHECK(stats.used_bytes() == cached_bytes);

    v1::EvictRequest evict;
    evict.set_n_blocks(UINT64_MAX);
    v1::EvictResponse evicted;
    CheckServed(service_.Evict(nullptr, &evict, &evicted));
    for (const v1::NamespaceInfo& ns : stats.namespaces()) {
      v1::DeleteNamespaceRequest del;
      del.set_name(ns.spec().name());
      v1::DeleteNamespaceResponse deleted;
      const grpc::Status status = service_.DeleteNamespace(nullptr, &del, &deleted);
      KVPOOL_FUZZ_CHECK(status.ok());
      KVPOOL_FUZZ_CHECK(deleted.freed_blocks() == 0);
    }
    v1::GetStatsResponse empty;
    CheckServed(service_.GetStats(nullptr, &stats_request, &empty));
    KVPOOL_FUZZ_CHECK(empty.namespaces_size() == 0);
    KVPOOL_FUZZ_CHECK(empty.used_bytes() == 0);
    KVPOOL_FUZZ_CHECK(empty.reserved_bytes() == 0);
    KVPOOL_FUZZ_CHECK(empty.free_bytes() == empty.capacity_bytes());
  }

 private:
  static std::unique_ptr<node::MemPool> CreatePool(ManualClock* clock) {
    auto pool = node::MemPool::Create(PoolOptions(), clock);
    KVPOOL_FUZZ_CHECK(pool.ok());
    return std::move(*pool);
  }

  template <typename Req, typename Resp, typename Patch>
  bool Call(const Record& r,
            grpc::Status (daemon::MemPoolService::*method)(grpc::ServerContext*, const Req*, Resp*),
            Resp* resp, Patch patch) {
    Req req;
    if (!req.ParseFromArray(r.payload.data(), static_cast<int>(r.payload.size()))) return false;
    patch(req);
    const grpc::Status status = (service_.*method)(nullptr, &req, resp);
    CheckServed(status);
    return status.ok();
  }

  void Remember(uint64_t lease, const google::protobuf::RepeatedField<uint64_t>& handles) {
    last_lease_ = lease;
    last_handles_.assign(handles.begin(), handles.end());
  }

  ManualClock clock_;
  std::unique_ptr<node::MemPool> pool_;
  daemon::MemPoolService service_;
  uint64_t last_lease_ = 0;
  std::vector<uint64_t> last_handles_;
};

// The request message of each method, for the structure-aware mutator.
const google::protobuf::Message* Request(uint8_t method) {
  using M = MemPoolMethod;
  switch (static_cast<M>(method)) {
    case M::kCreateNamespace: return &v1::CreateNamespaceRequest::default_instance();
    case M::kGetNamespace: return &v1::GetNamespaceRequest::default_instance();
    case M::kListNamespaces: return &v1::ListNamespacesRequest::default_instance();
    case M::kDeleteNamespace: return &v1::DeleteNamespaceRequest::default_instance();
    case M::kAllocMem: return &v1::AllocMemRequest::default_instance();
    case M::kFreeMem: return &v1::FreeMemRequest::default_instance();
    case M::kInsert: return &v1::InsertRequest::default_instance();
    case M::kMatch: return &v1::MatchRequest::default_instance();
    case M::kExists: return &v1::ExistsRequest::default_instance();
    case M::kDelete: return &v1::DeleteRequest::default_instance();
    case M::kRenew: return &v1::RenewRequest::default_instance();
    case M::kRelease: return &v1::ReleaseRequest::default_instance();
    case M::kGetStats: return &v1::GetStatsRequest::default_instance();
    case M::kEvict: return &v1::EvictRequest::default_instance();
    case M::kGetDataPlane: return &v1::GetDataPlaneRequest::default_instance();
    case M::kResolveBlocks: return &v1::ResolveBlocksRequest::default_instance();
    case M::kTransfer: return &v1::TransferRequest::default_instance();
    case M::kTransferWithInsert: return &v1::TransferWithInsertRequest::default_instance();
    case M::kTransferFromRegion: return &v1::TransferFromRegionRequest::default_instance();
    case M::kSwapOut: return &v1::SwapOutRequest::default_instance();
    case M::kSwapIn: return &v1::SwapInRequest::default_instance();
    case M::kDrain: return &v1::DrainRequest::default_instance();
    case M::kUndrain: return &v1::UndrainRequest::default_instance();
    case M::kCount: break;
  }
  return nullptr;
}

}  // namespace
}  // namespace kvpool::fuzz

extern "C" size_t LLVMFuzzerCustomMutator(uint8_t* data, size_t size, size_t max_size,
                                          unsigned int seed) {
  return kvpool::fuzz::MutateRecordInput(
      data, size, max_size, seed, static_cast<uint8_t>(kvpool::fuzz::MemPoolMethod::kCount),
      &kvpool::fuzz::Request);
}

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  return kvpool::fuzz::RunRecordInput<kvpool::fuzz::Harness>(
      data, size, [](kvpool::fuzz::Harness& harness) { harness.CheckNothingLeaks(); });
}
