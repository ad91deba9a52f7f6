#include "kvpool/data_plane.h"

#include <grpcpp/grpcpp.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "client/lib/async_runner.h"
#include "client/lib/client_impl.h"
#include "client/lib/lease_book.h"
#include "kvpool/v1/mempool.grpc.pb.h"
#include "memory/device.h"
#include "rpc/client_channel.h"
#include "rpc/status_convert.h"
#include "transport/staged_copier.h"
#include "transport/transfer_engine.h"

namespace kvpool {

// ---- TransferHandle --------------------------------------------------------------------------

// The node as this DataPlane reaches it. Immutable; replaced whole when the node restarted.
struct NodeLink {
  std::string worker_address;
  // The node's pool: address of offset 0 and bytes (no key: each slab has its own, which comes
  // with the blocks, SlabKeyBook).
  transport::RemoteRegion region;
  // A page of the node's for the UCX handshake.
  transport::RemoteRegion probe;
  transport::PeerId peer{};
  /// Set when a batch on this link ended UNAVAILABLE: the next call reconnects.
  mutable std::atomic<bool> failed{false};
};

struct TransferHandle::Impl {
  // One batch per node slab the blocks lie in (each slab has its own key): almost always one.
  absl::InlinedVector<transport::TransferHandle, 1> handles;
  // The link the batch ran on, marked failed when the batch reports the node gone.
  std::shared_ptr<const NodeLink> link;
  // A Put the node runs as a pull (TransferFromRegion) instead: its outcome and size.
  std::shared_future<Status> pull;
  uint64_t pull_bytes = 0;
};

TransferHandle::TransferHandle() = default;
TransferHandle::~TransferHandle() = default;
TransferHandle::TransferHandle(const TransferHandle&) = default;
TransferHandle& TransferHandle::operator=(const TransferHandle&) = default;
TransferHandle::TransferHandle(std::shared_ptr<const Impl> impl) : impl_(std::move(impl)) {}

bool TransferHandle::valid() const {
  return impl_ != nullptr && (impl_->pull.valid() || !impl_->handles.empty());
}
bool TransferHandle::Poll() const {
  if (impl_ == nullptr) return true;
  if (impl_->pull.valid()) {
    return impl_->pull.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
  }
  for (const transport::TransferHandle& h : impl_->handles) {
    if (!h.Poll()) return false;
  }
  return true;
}
Status TransferHandle::Wait(int64_t timeout_ms) const {
  if (impl_ == nullptr) return FailedPreconditionError("Wait on an empty TransferHandle");
  if (impl_->pull.valid()) {
    if (impl_->pull.wait_for(std::chrono::milliseconds(std::max<int64_t>(0, timeout_ms))) !=
        std::future_status::ready) {
      return DeadlineExceededError("transfer of " + std::to_string(impl_->pull_bytes) +
                                   " bytes still running after " + std::to_string(timeout_ms) +
                                   " ms");
    }
    return impl_->pull.get();
  }
  Status st = Status::Ok();
  if (impl_->handles.size() == 1) {
    st = impl_->handles[0].Wait(timeout_ms);  // no clock read on the common path
  } else {
    // One deadline for all of them.
    const auto deadline = std::chrono::steady_clock::now() +
                          std::chrono::milliseconds(std::max<int64_t>(0, timeout_ms));
    for (const transport::TransferHandle& h : impl_->handles) {
      const int64_t left = std::chrono::duration_cast<std::chrono::milliseconds>(
                               deadline - std::chrono::steady_clock::now())
                               .count();
      Status one = h.Wait(std::max<int64_t>(0, left));
      if (st.ok()) st = std::move(one);
    }
  }
  // Relaxed: the flag is a hint for the next Submit, which re-checks under the DataPlane's lock.
  if (st.code() == StatusCode::kUnavailable && impl_->link != nullptr) {
    impl_->link->failed.store(true, std::memory_order_relaxed);
  }
  return st;
}
uint64_t TransferHandle::size_bytes() const {
  if (impl_ == nullptr) return 0;
  if (impl_->pull.valid()) return impl_->pull_bytes;
  uint64_t bytes = 0;
  for (const transport::TransferHandle& h : impl_->handles) bytes += h.size_bytes();
  return bytes;
}

// ---- DataPlane -------------------------------------------------------------------------------

namespace {

struct RegisteredRegion {
  transport::RegionId engine_id{};  // unset for device memory (not registered with UCX)
  uint64_t address = 0;
  uint64_t size_bytes = 0;
  std::string rkey;
  bool device = false;  // CUDA device memory: moved through staging
};

// A validated batch.
struct BuiltOps {
  // remote_address 0 for GPU-tier blocks. Inline storage: most calls move a few blocks, and an
  // allocation is a noticeable share of a one-block call.
  absl::InlinedVector<transport::TransferOp, 4> ops;
  bool node_gpu = false;      // some block is in the node's GPU tier: the node moves the bytes
  bool local_device = false;  // the region is device memory: this process stages the bytes
  uint64_t bytes() const {
    uint64_t total = 0;
    for (const transport::TransferOp& op : ops) total += op.size_bytes;
    return total;
  }
};

// One request of a batch the node runs against a host region of this process: a pull
// (TransferFromRegion) for a Put, a push (Transfer to the region) for a Get.
struct NodeRequest {
  uint64_t lease = 0;
  v1::TransferFromRegionRequest pull;  // Put
  v1::TransferRequest push;            // Get
  std::set<BlockHandle> named;
};

// Runs the requests one after the other; the first failure ends the batch.
Status RunNodeRequests(v1::MemPool::Stub& stub, bool is_put,
                       const std::vector<NodeRequest>& requests, uint32_t deadline_ms) {
  for (const NodeRequest& p : requests) {
    v1::TransferResponse resp;
    KVPOOL_RETURN_IF_ERROR(
        is_put ? rpc::CallUnary(stub, &v1::MemPool::Stub::TransferFromRegion, p.pull, &resp,
                                deadline_ms)
               : rpc::CallUnary(stub, &v1::MemPool::Stub::Transfer, p.push, &resp, deadline_ms));
  }
  return Status::Ok();
}

// One device copy: `bytes` from `src` to `dst`.
struct DeviceCopy {
  uint8_t* dst = nullptr;
  const uint8_t* src = nullptr;
  uint64_t bytes = 0;
};

// Queues every copy on `stream` and waits for all of them, also after a refused copy: no copy
// may still run into memory the caller reuses once this returns.
Status CopyAll(memory::CopyStream& stream, const std::vector<DeviceCopy>& copies) {
  Status st = Status::Ok();
  for (size_t i = 0; i < copies.size() && st.ok(); ++i) {
    st = stream.CopyAsync(copies[i].dst, copies[i].src, copies[i].bytes);
  }
  Status synced = stream.Synchronize();
  return st.ok() ? synced : st;
}

// The pinned bounce buffer of device-region batches on the node's GPU tier (see
// DataPlane::Put): the node reaches only host memory of this process, so those bytes go device
// -> bounce -> node and back. At least this big; larger when a block is.
constexpr uint64_t kBounceBytes = 4ull << 20;

// [offset, offset + length) inside [0, limit), without overflow.
bool InRange(uint64_t offset, uint64_t length, uint64_t limit) {
  return offset <= limit && length <= limit - offset;
}

// Releases a lease on scope exit unless dismissed: the flows must never leak an allocation.
class LeaseGuard {
 public:
  LeaseGuard(Client& client, uint64_t lease_id) : client_(client), lease_id_(lease_id) {}
  ~LeaseGuard() {
    // Best effort on error paths: an unreleased lease still expires at its deadline.
    if (lease_id_ != 0) client_.Release(lease_id_).status().IgnoreError();
  }
  LeaseGuard(const LeaseGuard&) = delete;
  LeaseGuard& operator=(const LeaseGuard&) = delete;
  /// Releases now and returns the outcome.
  Status ReleaseNow() {
    const uint64_t id = std::exchange(lease_id_, 0);
    return client_.Release(id).status();
  }

 private:
  Client& client_;
  uint64_t lease_id_;
};

}  // namespace

struct DataPlane::Impl {
  DataPlaneOptions options;
  // The connecting Client's lease book: every transfer is checked against it.
  std::shared_ptr<client_internal::LeaseBook> leases;
  // The connecting Client's slab keys: a block is reached with the key of its slab.
  std::shared_ptr<client_internal::SlabKeyBook> slab_keys;
  std::shared_ptr<v1::MemPool::Stub> stub;
  uint32_t rpc_timeout_ms = 10'000;
  std::unique_ptr<transport::TransferEngine> engine;
  // Puts the node runs as pulls (see DataPlaneOptions::put_path), decided at Connect.
  bool node_pulls_puts = false;

  absl::Mutex mu;
  std::shared_ptr<const NodeLink> link ABSL_GUARDED_BY(mu);
  // Pulls in flight, by local region id: the node reads that memory until they finish.
  std::multimap<uint64_t, std::shared_future<Status>> pulls ABSL_GUARDED_BY(mu);
  // The threads those batches run on (joined after ~Impl has waited for every batch).
  client_internal::AsyncRunner runner;

  ~Impl() {
    // The node may still be reading registered memory: let every pull finish first (each is
    // bounded by its RPC deadline).
    std::multimap<uint64_t, std::shared_future<Status>> pending;
    {
      absl::MutexLock lock(&mu);
      pending.swap(pulls);
    }
    for (auto& [region, pull] : pending) pull.wait();
    absl::MutexLock lock(&bounce.mu);
    DropBounceLocked();
    for (Bounce::Buffer& old : bounce.retired) engine->Deregister(old.engine_id).IgnoreError();
    bounce.retired.clear();
    bounce.stream.reset();
  }

  // Forgets finished pulls.
  void PrunePullsLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    std::erase_if(pulls, [](const auto& entry) {
      return entry.second.wait_for(std::chrono::seconds(0)) == std::future_status::ready;
    });
  }
  uint64_t next_region ABSL_GUARDED_BY(mu) = 1;
  std::map<uint64_t, RegisteredRegion> regions ABSL_GUARDED_BY(mu);
  // Device regions: the CUDA device and the pinned staging, opened by the first of them.
  std::unique_ptr<memory::DeviceRuntime> device ABSL_GUARDED_BY(mu);
  std::unique_ptr<transport::StagedCopier> staging ABSL_GUARDED_BY(mu);

  // The bounce buffer (kBounceBytes) of device regions and GPU-tier blocks, created by the first
  // such batch. Its mutex is held by the one batch using it for the whole batch.
  struct Bounce {
    struct Buffer {
      std::unique_ptr<memory::PinnedBuffer> memory;
      transport::RegionId engine_id{};
      std::string rkey;
    };
    absl::Mutex mu;
    Buffer current ABSL_GUARDED_BY(mu);
    // Buffers of failed batches: the node may still write them after its RPC gave up, so they
    // are never reused, only deregistered with the DataPlane.
    std::vector<Buffer> retired ABSL_GUARDED_BY(mu);
    std::unique_ptr<memory::CopyStream> stream ABSL_GUARDED_BY(mu);
  };
  Bounce bounce;

  // Opens the device and the staging buffers once.
  Status EnsureDeviceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu) {
    if (staging != nullptr) return Status::Ok();
    if (device == nullptr) {
      if (options.emulate_device) {
        device = memory::NewEmulatedDevice();
      } else {
        KVPOOL_ASSIGN_OR_RETURN(device, memory::OpenCudaDevice(options.cuda_device));
      }
    }
    KVPOOL_ASSIGN_OR_RETURN(staging, transport::StagedCopier::Create(engine.get(), device.get(),
                                                                     transport::StagingOptions{}));
    return Status::Ok();
  }

  std::shared_ptr<const NodeLink> Link() {
    absl::MutexLock lock(&mu);
    return link;
  }

  // The link and one local region, read under one acquisition of `mu` (this runs on every
  // Put and Get). `found` is false when the region is not registered.
  struct CallView {
    std::shared_ptr<const NodeLink> node;
    bool found = false;
    uint64_t address = 0;
    uint64_t size_bytes = 0;
    bool device = false;
  };
  CallView View(RegionId region) {
    absl::MutexLock lock(&mu);
    CallView view{link};
    auto it = regions.find(static_cast<uint64_t>(region));
    if (it == regions.end()) return view;
    view.found = true;
    view.address = it->second.address;
    view.size_bytes = it->second.size_bytes;
    view.device = it->second.device;
    return view;
  }

  // Asks the node for its data plane and connects to it, finishing the handshake.
  Result<std::shared_ptr<const NodeLink>> OpenLink() {
    v1::GetDataPlaneRequest req;
    v1::GetDataPlaneResponse resp;
    KVPOOL_RETURN_IF_ERROR(rpc::CallUnary(*stub, &v1::MemPool::Stub::GetDataPlane, req, &resp,
                                          rpc_timeout_ms));
    if (resp.region_base() == 0 || resp.region_bytes() == 0 || resp.worker_address().empty()) {
      return InternalError("the node sent an incomplete data plane");
    }
    if (resp.probe_rkey().empty()) {
      return FailedPreconditionError("the node sent no per-slab data plane: it runs an older "
                                     "kvpool than this libkvpool (upgrade them together, "
                                     "docs/operations.md)");
    }
    auto fresh = std::make_shared<NodeLink>();
    fresh->worker_address = resp.worker_address();
    fresh->region = transport::RemoteRegion{resp.region_base(), resp.region_bytes(), ""};
    fresh->probe =
        transport::RemoteRegion{resp.probe_address(), resp.probe_bytes(), resp.probe_rkey()};
    slab_keys->SetPoolBase(resp.region_base());
    KVPOOL_ASSIGN_OR_RETURN(fresh->peer, engine->Connect(fresh->worker_address));
    // Finished before any large transfer (see CompleteWireup: otherwise this process dying early
    // in its first transfer can abort the node's).
    if (Status st = engine->CompleteWireup(fresh->peer, fresh->probe, options.transfer_timeout_ms);
        !st.ok()) {
      engine->Disconnect(fresh->peer).IgnoreError();
      return st;
    }
    return std::shared_ptr<const NodeLink>(std::move(fresh));
  }

  // After a flow gave up on a batch (timeout): force-closes the endpoint so the batch cannot
  // write blocks that are about to be released, and opens a fresh one to the same node.
  void ResetPeer(const std::shared_ptr<const NodeLink>& stale) {
    absl::MutexLock lock(&mu);
    if (link != stale) return;
    engine->Disconnect(stale->peer).IgnoreError();
    Result<transport::PeerId> peer = engine->Connect(stale->worker_address);
    // If the node cannot be reached any more, later batches on the old id read NOT_FOUND.
    if (!peer.ok()) return;
    auto fresh = std::make_shared<NodeLink>();
    fresh->worker_address = stale->worker_address;
    fresh->region = stale->region;
    fresh->probe = stale->probe;
    fresh->peer = *peer;
    engine->CompleteWireup(fresh->peer, fresh->probe, options.transfer_timeout_ms).IgnoreError();
    link = std::move(fresh);
  }

  // A batch found the node unreachable. Reconnects from a fresh GetDataPlane: OK when it is the
  // same node process (a new endpoint, nothing lost). If the node restarted (a new engine
  // address) or cannot be reached, every lease this client held there is void: the lease book
  // is cleared and UNAVAILABLE returned.
  Status Relink(const std::shared_ptr<const NodeLink>& stale, Status failure) {
    absl::MutexLock lock(&mu);
    if (link != stale) return failure;  // another thread relinked already
    engine->Disconnect(stale->peer).IgnoreError();
    Result<std::shared_ptr<const NodeLink>> fresh = OpenLink();
    if (!fresh.ok()) {
      // Unknown whether the node lives: refusing transfers on its leases is the safe side.
      leases->Clear();
      return UnavailableError(std::string(failure.message()) +
                              "; reconnecting failed: " + std::string(fresh.status().message()));
    }
    // The engine address names the process: a new one means the node restarted.
    const bool restarted = (*fresh)->worker_address != stale->worker_address;
    link = *std::move(fresh);
    if (!restarted) return Status::Ok();  // the same node: carry on with the fresh endpoint
    leases->Clear();
    slab_keys->Clear();
    return UnavailableError(std::string(failure.message()) +
                            "; the node restarted: its leases and blocks are gone; reconnected "
                            "to the new node (allocate again)");
  }

  Result<TransferHandle> Submit(bool is_put, RegionId region, std::span<const uint64_t> offsets,
                                std::span<const BlockLocation> blocks) {
    CallView view = View(region);
    if (view.node->failed.load(std::memory_order_relaxed)) {
      // An earlier batch found the node gone: reconnect first. A restarted node voids this
      // client's leases, so the call fails; the same node just gets a fresh endpoint.
      KVPOOL_RETURN_IF_ERROR(
          Relink(view.node, UnavailableError("an earlier transfer found the node unreachable")));
      view = View(region);
    }
    KVPOOL_ASSIGN_OR_RETURN(BuiltOps built, BuildOps(view, region, offsets, blocks, is_put));
    std::shared_ptr<const NodeLink> node = std::move(view.node);
    if (built.node_gpu) {
      if (built.local_device) return SubmitBounced(is_put, region, blocks, std::move(built));
      return SubmitNodeDriven(is_put, region, offsets, blocks, built.bytes());
    }
    if (is_put && node_pulls_puts && !built.local_device) {
      return SubmitNodeDriven(true, region, offsets, blocks, built.bytes());
    }
    KVPOOL_ASSIGN_OR_RETURN(client_internal::BatchSlabs slabs, FindSlabs(*node, blocks));
    if (built.local_device) {
      return SubmitStaged(is_put, region, std::move(node), SplitBySlab(slabs, built));
    }
    auto impl = std::make_shared<TransferHandle::Impl>();
    auto submit = [&](const transport::RemoteRegion& remote,
                      std::span<const transport::TransferOp> ops) -> Status {
      Result<transport::TransferHandle> h = is_put ? engine->Put(node->peer, remote, ops)
                                                   : engine->Get(node->peer, remote, ops);
      if (h.status().code() == StatusCode::kUnavailable) node->failed.store(true);
      if (!h.ok()) return h.status();
      impl->handles.push_back(*std::move(h));
      return Status::Ok();
    };
    if (slabs.slabs.size() == 1) {
      // The common case: every block in one slab, the ops as built.
      KVPOOL_RETURN_IF_ERROR(submit(*slabs.slabs[0], built.ops));
    } else {
      // Batches already submitted run on when a later one is refused; the caller gets the error
      // and no handle, as for a batch refused whole (the blocks' bytes are undefined either way).
      for (const SlabOps& batch : SplitBySlab(slabs, built)) {
        KVPOOL_RETURN_IF_ERROR(submit(*batch.remote, batch.ops));
      }
    }
    impl->link = std::move(node);
    return TransferHandle(std::shared_ptr<const TransferHandle::Impl>(std::move(impl)));
  }

  // The slabs of a batch's host blocks, with their keys from the connecting Client's
  // responses. Keys the node replaced since the last batch are dropped from the engine first,
  // so it unmaps the old memory they name.
  Result<client_internal::BatchSlabs> FindSlabs(const NodeLink& node,
                                                std::span<const BlockLocation> blocks) {
    std::vector<std::string> replaced;
    Result<client_internal::BatchSlabs> slabs = slab_keys->Find(blocks, &replaced);
    if (!replaced.empty()) engine->ForgetRemoteKeys(node.peer, std::move(replaced));
    return slabs;
  }

  // The ops of one slab of the node's pool, with that slab's key.
  struct SlabOps {
    transport::RemoteSlabs::Slab remote;
    std::vector<transport::TransferOp> ops;
  };
  // Groups `built`'s ops (one per block) by the slab each block lies in.
  static std::vector<SlabOps> SplitBySlab(const client_internal::BatchSlabs& slabs,
                                          const BuiltOps& built) {
    std::vector<SlabOps> batches(slabs.slabs.size());
    for (size_t i = 0; i < batches.size(); ++i) batches[i].remote = slabs.slabs[i];
    for (size_t i = 0; i < built.ops.size(); ++i) {
      batches[slabs.slab_of[i]].ops.push_back(built.ops[i]);
    }
    return batches;
  }

  // Runs a batch on a thread of the runner so the call stays asynchronous; the region counts as
  // in use (Deregister refuses) until it ends.
  TransferHandle RunAsync(RegionId region, uint64_t bytes, std::function<Status()> work) {
    std::shared_future<Status> done = runner.Run(std::move(work));
    {
      absl::MutexLock lock(&mu);
      PrunePullsLocked();
      pulls.emplace(static_cast<uint64_t>(region), done);
    }
    auto impl = std::make_shared<TransferHandle::Impl>();
    impl->pull = std::move(done);
    impl->pull_bytes = bytes;
    return TransferHandle(std::shared_ptr<const TransferHandle::Impl>(std::move(impl)));
  }

  // A batch on a device region: this process stages the bytes through pinned buffers.
  Result<TransferHandle> SubmitStaged(bool is_put, RegionId region,
                                      std::shared_ptr<const NodeLink> node,
                                      std::vector<SlabOps> batches) {
    transport::StagedCopier* copier = nullptr;
    {
      absl::MutexLock lock(&mu);
      copier = staging.get();
    }
    uint64_t bytes = 0;
    for (const SlabOps& batch : batches) {
      for (const transport::TransferOp& op : batch.ops) bytes += op.size_bytes;
    }
    return RunAsync(region, bytes,
                    [copier, is_put, node = std::move(node), batches = std::move(batches),
                     timeout_ms = options.transfer_timeout_ms]() -> Status {
                      for (const SlabOps& b : batches) {
                        Status st = is_put ? copier->Put(node->peer, *b.remote, b.ops, timeout_ms)
                                           : copier->Get(node->peer, *b.remote, b.ops, timeout_ms);
                        if (st.code() == StatusCode::kUnavailable) node->failed.store(true);
                        KVPOOL_RETURN_IF_ERROR(st);
                      }
                      return Status::Ok();
                    });
  }

  // A batch the node runs: for a Put a pull (TransferFromRegion), for a Get a push (Transfer to
  // the region), one request per lease holding the blocks. Used for the node's GPU-tier blocks,
  // which only the node can reach, and for Puts over TCP (DataPlaneOptions::put_path). The
  // batch is already validated.
  Result<TransferHandle> SubmitNodeDriven(bool is_put, RegionId region,
                                          std::span<const uint64_t> offsets,
                                          std::span<const BlockLocation> blocks, uint64_t bytes) {
    RegisteredRegion local;
    {
      absl::MutexLock lock(&mu);
      local = regions.at(static_cast<uint64_t>(region));
    }
    std::vector<NodeRequest> requests =
        NodeRequests(is_put, local, offsets, blocks, LeasesOf(is_put, blocks));
    return RunAsync(region, bytes,
                    [stub = stub, is_put, requests = std::move(requests),
                     deadline_ms = options.transfer_timeout_ms + rpc_timeout_ms]() -> Status {
                      return RunNodeRequests(*stub, is_put, requests, deadline_ms);
                    });
  }

  // The lease holding each block (for a Put the one that may write it), looked up now: the
  // lease book may change while a batch runs.
  std::vector<uint64_t> LeasesOf(bool is_put, std::span<const BlockLocation> blocks) {
    std::vector<uint64_t> out;
    out.reserve(blocks.size());
    for (const BlockLocation& b : blocks) {
      out.push_back(is_put ? leases->WritableLeaseOf(b.handle) : leases->LeaseOf(b.handle));
    }
    return out;
  }

  // The node's requests moving blocks[i] (held by lease_of[i]) from or to `local` +
  // offsets[i]: one per lease; a block named twice (a batch may write one block repeatedly)
  // starts another request, because the node refuses a repeated handle in one.
  std::vector<NodeRequest> NodeRequests(bool is_put, const RegisteredRegion& local,
                                        std::span<const uint64_t> offsets,
                                        std::span<const BlockLocation> blocks,
                                        std::span<const uint64_t> lease_of) {
    std::vector<NodeRequest> requests;
    for (size_t i = 0; i < blocks.size(); ++i) {
      const uint64_t lease = lease_of[i];
      auto fits = [&](const NodeRequest& p) {
        return p.lease == lease && p.named.count(blocks[i].handle) == 0;
      };
      auto it = std::find_if(requests.begin(), requests.end(), fits);
      if (it == requests.end()) {
        requests.push_back(NodeRequest{lease, {}, {}, {}});
        it = std::prev(requests.end());
      }
      it->named.insert(blocks[i].handle);
      const bool first = it->named.size() == 1;
      v1::RegionBlocks* where = is_put ? it->pull.mutable_src() : it->push.mutable_region();
      if (first) {
        where->set_worker_address(engine->worker_address());
        where->set_region_base(local.address);
        where->set_region_bytes(local.size_bytes);
        where->set_rkey(local.rkey);
        if (is_put) {
          it->pull.set_dst_lease_id(lease);
          it->pull.set_timeout_ms(options.transfer_timeout_ms);
        } else {
          it->push.set_src_lease_id(lease);
          it->push.set_timeout_ms(options.transfer_timeout_ms);
        }
      }
      if (is_put) {
        it->pull.add_dst_handles(blocks[i].handle);
      } else {
        it->push.add_src_handles(blocks[i].handle);
      }
      where->add_offsets(offsets[i]);
    }
    return requests;
  }

  // A batch of a device region with GPU-tier blocks (the rest of the batch may be host blocks):
  // the node cannot reach device memory of this process and no peer can reach its GPU blocks,
  // so the bytes go through the bounce buffer, a chunk of whole blocks at a time. Put: device ->
  // bounce, then the node pulls the chunk; Get: the node pushes the chunk, then bounce ->
  // device. The batch is already validated.
  Result<TransferHandle> SubmitBounced(bool is_put, RegionId region,
                                       std::span<const BlockLocation> blocks, BuiltOps built) {
    memory::DeviceRuntime* dev = nullptr;
    {
      absl::MutexLock lock(&mu);
      dev = device.get();
    }
    const uint64_t bytes = built.bytes();
    return RunAsync(region, bytes,
                    [this, dev, is_put,
                     ops = std::vector<transport::TransferOp>(built.ops.begin(), built.ops.end()),
                     blocks = std::vector<BlockLocation>(blocks.begin(), blocks.end()),
                     lease_of = LeasesOf(is_put, blocks)]() -> Status {
                      return RunBounced(dev, is_put, ops, blocks, lease_of);
                    });
  }

  Status RunBounced(memory::DeviceRuntime* dev, bool is_put,
                    const std::vector<transport::TransferOp>& ops,
                    const std::vector<BlockLocation>& blocks,
                    const std::vector<uint64_t>& lease_of) {
    uint64_t largest = 0;
    for (const transport::TransferOp& op : ops) largest = std::max(largest, op.size_bytes);
    absl::MutexLock hold(&bounce.mu);
    KVPOOL_RETURN_IF_ERROR(EnsureBounceLocked(dev, std::max(kBounceBytes, largest)));
    uint8_t* const base = bounce.current.memory->data();
    const RegisteredRegion staged{bounce.current.engine_id, reinterpret_cast<uint64_t>(base),
                                  bounce.current.memory->size_bytes(), bounce.current.rkey};
    const uint32_t deadline_ms = options.transfer_timeout_ms + rpc_timeout_ms;
    size_t first = 0;
    while (first < ops.size()) {
      // The chunk: blocks first..end-1, packed from the start of the bounce buffer. The buffer
      // holds the largest block, so every chunk has at least one.
      std::vector<uint64_t> at;  // each block's offset in the bounce buffer
      std::vector<DeviceCopy> copies;
      uint64_t used = 0;
      size_t end = first;
      for (; end < ops.size() && ops[end].size_bytes <= staged.size_bytes - used; ++end) {
        uint8_t* device_bytes = reinterpret_cast<uint8_t*>(ops[end].local_address);
        const uint64_t size = ops[end].size_bytes;
        copies.push_back(is_put ? DeviceCopy{base + used, device_bytes, size}
                                : DeviceCopy{device_bytes, base + used, size});
        at.push_back(used);
        used += size;
      }
      if (is_put) {
        KVPOOL_RETURN_IF_ERROR(
            CopyAll(*bounce.stream, copies).WithContext("device -> bounce buffer"));
      }
      const size_t n = end - first;
      Status moved = RunNodeRequests(
          *stub, is_put,
          NodeRequests(is_put, staged, at,
                       std::span<const BlockLocation>(blocks).subspan(first, n),
                       std::span<const uint64_t>(lease_of).subspan(first, n)),
          deadline_ms);
      if (!moved.ok()) {
        // The node may still be moving bytes of this chunk after its RPC ended.
        RetireBounceLocked();
        return moved;
      }
      if (!is_put) {
        KVPOOL_RETURN_IF_ERROR(
            CopyAll(*bounce.stream, copies).WithContext("bounce buffer -> device"));
      }
      first = end;
    }
    return Status::Ok();
  }

  // A registered bounce buffer of at least `bytes` and a stream, made on first use and grown
  // when a batch has a larger block.
  Status EnsureBounceLocked(memory::DeviceRuntime* dev, uint64_t bytes)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(bounce.mu) {
    if (bounce.stream == nullptr) {
      KVPOOL_ASSIGN_OR_RETURN(bounce.stream, dev->NewStream());
    }
    if (bounce.current.memory != nullptr && bounce.current.memory->size_bytes() >= bytes) {
      return Status::Ok();
    }
    DropBounceLocked();
    Result<std::unique_ptr<memory::PinnedBuffer>> memory = dev->AllocatePinned(bytes);
    if (!memory.ok()) {
      return memory.status().WithContext("pinned bounce buffer for GPU-tier blocks");
    }
    Result<transport::LocalRegion> registered =
        engine->RegisterMemory((*memory)->data(), (*memory)->size_bytes());
    if (!registered.ok()) {
      return registered.status().WithContext("registering the bounce buffer for GPU-tier blocks");
    }
    bounce.current = Bounce::Buffer{*std::move(memory), registered->id, registered->rkey};
    return Status::Ok();
  }

  // Frees the bounce buffer; no transfer may use it any more.
  void DropBounceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(bounce.mu) {
    if (bounce.current.memory == nullptr) return;
    engine->Deregister(bounce.current.engine_id).IgnoreError();
    bounce.current = Bounce::Buffer{};
  }

  // Sets the bounce buffer aside after a failed batch; the next batch makes a new one.
  void RetireBounceLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(bounce.mu) {
    if (bounce.current.memory == nullptr) return;
    bounce.retired.push_back(std::move(bounce.current));
    bounce.current = Bounce::Buffer{};
  }

  // Validates the whole batch and builds its ops; nothing moves on error.
  Result<BuiltOps> BuildOps(const CallView& view, RegionId region,
                            std::span<const uint64_t> offsets,
                            std::span<const BlockLocation> blocks, bool for_write) {
    const transport::RemoteRegion& node_region = view.node->region;
    if (blocks.empty()) return InvalidArgumentError("a transfer needs at least one block");
    if (offsets.size() != blocks.size()) {
      return InvalidArgumentError("a transfer needs one region offset per block: got " +
                                  std::to_string(offsets.size()) + " offsets for " +
                                  std::to_string(blocks.size()) + " blocks");
    }
    if (!view.found) {
      return NotFoundError("region " + std::to_string(static_cast<uint64_t>(region)) +
                           " is not registered with this DataPlane");
    }
    BuiltOps built;
    built.local_device = view.device;
    // Messages are built only for a bad block: this loop runs on every call.
    auto which = [&](size_t i) {
      return "block " + std::to_string(i) + " (handle " + std::to_string(blocks[i].handle) + ")";
    };
    auto& ops = built.ops;
    ops.reserve(blocks.size());
    for (size_t i = 0; i < blocks.size(); ++i) {
      const BlockLocation& b = blocks[i];
      if (b.tier != Tier::kHost && b.tier != Tier::kGpu) {
        return InvalidArgumentError(which(i) + " is in tier " + std::string(TierName(b.tier)) +
                                    "; the data plane moves host and GPU blocks (Match with a "
                                    "lease promotes disk blocks first)");
      }
      if (b.length == 0) return InvalidArgumentError(which(i) + " has length 0");
      if (b.tier == Tier::kGpu) {
        built.node_gpu = true;  // the node checks its own device offsets
      } else if (!InRange(b.offset, b.length, node_region.size_bytes)) {
        return InvalidArgumentError(which(i) + " [" + std::to_string(b.offset) + ", +" +
                                    std::to_string(b.length) + ") lies outside the node's " +
                                    std::to_string(node_region.size_bytes) + "-byte region");
      }
      if (!InRange(offsets[i], b.length, view.size_bytes)) {
        return InvalidArgumentError("region offset " + std::to_string(i) + " [" +
                                    std::to_string(offsets[i]) + ", +" +
                                    std::to_string(b.length) + ") lies outside the " +
                                    std::to_string(view.size_bytes) + "-byte region " +
                                    std::to_string(static_cast<uint64_t>(region)));
      }
      ops.push_back(transport::TransferOp{
          view.address + offsets[i], b.tier == Tier::kGpu ? 0 : node_region.address + b.offset,
          b.length});
    }
    KVPOOL_RETURN_IF_ERROR(leases->Check(blocks, for_write));
    return built;
  }
};

DataPlane::DataPlane(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
DataPlane::~DataPlane() = default;

Result<std::unique_ptr<DataPlane>> DataPlane::Connect(Client& client,
                                                      const DataPlaneOptions& options) {
  // The node's data-plane description travels over the control plane, on a channel of our own
  // (Client keeps its gRPC stub private).
  const ClientOptions channel_options = client.impl_->options;
  KVPOOL_ASSIGN_OR_RETURN(auto channel,
                          rpc::OpenChannel(client.address(), channel_options, "kvpoold"));
  auto impl = std::make_unique<Impl>();
  impl->options = options;
  impl->leases = client.impl_->leases;
  impl->slab_keys = client.impl_->slab_keys;
  impl->stub = v1::MemPool::NewStub(channel);
  impl->rpc_timeout_ms = channel_options.timeout_ms;
  transport::TransferEngineOptions eopts;
  eopts.tls = options.tls;
  eopts.name = "libkvpool";
  KVPOOL_ASSIGN_OR_RETURN(impl->engine, transport::TransferEngine::Create(eopts));
  Result<std::shared_ptr<const NodeLink>> link = impl->OpenLink();
  if (!link.ok()) return link.status().WithContext("node " + client.address());
  switch (options.put_path) {
    case PutPath::kDirect: impl->node_pulls_puts = false; break;
    case PutPath::kNodePulls: impl->node_pulls_puts = true; break;
    case PutPath::kAuto: {
      // Over TCP UCX emulates one-sided writes with messages the node must acknowledge, and
      // UCX 1.13 aborts the node when a writer dies mid-Put (docs/transport.md). Let the node
      // pull instead wherever the link to it is TCP alone.
      impl->node_pulls_puts = impl->engine->UsesOnlyTcp((*link)->peer).value_or(false);
      break;
    }
  }
  {
    absl::MutexLock lock(&impl->mu);
    impl->link = *std::move(link);
  }
  return std::unique_ptr<DataPlane>(new DataPlane(std::move(impl)));
}

uint64_t DataPlane::node_region_bytes() const { return impl_->Link()->region.size_bytes; }
bool DataPlane::node_pulls_puts() const { return impl_->node_pulls_puts; }

Result<RegionId> DataPlane::RegisterMemory(void* ptr, size_t size_bytes, MemoryKind kind) {
  if (kind == MemoryKind::kDevice) {
    if (ptr == nullptr || size_bytes == 0) {
      return InvalidArgumentError("RegisterMemory: a device region needs a pointer and a size");
    }
    const uint64_t address = reinterpret_cast<uint64_t>(ptr);
    absl::MutexLock lock(&impl_->mu);
    KVPOOL_RETURN_IF_ERROR(impl_->EnsureDeviceLocked());
    const uint8_t* last = static_cast<const uint8_t*>(ptr) + size_bytes - 1;
    // The emulation's "device" memory is host memory: any range is accepted.
    if (!impl_->device->emulated() &&
        (!impl_->device->IsDevicePointer(ptr) || !impl_->device->IsDevicePointer(last))) {
      return InvalidArgumentError("RegisterMemory: [" + std::to_string(address) + ", +" +
                                  std::to_string(size_bytes) + ") is not device memory of " +
                                  impl_->device->Describe());
    }
    for (const auto& [id, r] : impl_->regions) {
      if (r.device && address < r.address + r.size_bytes && r.address < address + size_bytes) {
        return InvalidArgumentError("RegisterMemory: the device range overlaps region " +
                                    std::to_string(id));
      }
    }
    const uint64_t id = impl_->next_region++;
    impl_->regions[id] = RegisteredRegion{transport::RegionId{}, address, size_bytes, "", true};
    return static_cast<RegionId>(id);
  }
  if (kind != MemoryKind::kHost) {
    return InvalidArgumentError("unknown memory kind " +
                                std::to_string(static_cast<int>(kind)));
  }
  KVPOOL_ASSIGN_OR_RETURN(transport::LocalRegion local,
                          impl_->engine->RegisterMemory(ptr, size_bytes));
  absl::MutexLock lock(&impl_->mu);
  const uint64_t id = impl_->next_region++;
  impl_->regions[id] = RegisteredRegion{local.id, reinterpret_cast<uint64_t>(local.data),
                                        local.size_bytes, local.rkey};
  return static_cast<RegionId>(id);
}

Status DataPlane::Deregister(RegionId region) {
  absl::MutexLock lock(&impl_->mu);
  auto it = impl_->regions.find(static_cast<uint64_t>(region));
  if (it == impl_->regions.end()) {
    return NotFoundError("region " + std::to_string(static_cast<uint64_t>(region)) +
                         " is not registered with this DataPlane");
  }
  impl_->PrunePullsLocked();
  if (impl_->pulls.count(static_cast<uint64_t>(region)) > 0) {
    return FailedPreconditionError("region " + std::to_string(static_cast<uint64_t>(region)) +
                                   " is still in use by a transfer in flight");
  }
  if (!it->second.device) KVPOOL_RETURN_IF_ERROR(impl_->engine->Deregister(it->second.engine_id));
  impl_->regions.erase(it);
  return Status::Ok();
}

Result<RegionDescriptor> DataPlane::ExportRegion(RegionId region) {
  absl::MutexLock lock(&impl_->mu);
  auto it = impl_->regions.find(static_cast<uint64_t>(region));
  if (it == impl_->regions.end()) {
    return NotFoundError("region " + std::to_string(static_cast<uint64_t>(region)) +
                         " is not registered with this DataPlane");
  }
  if (it->second.device) {
    return FailedPreconditionError("region " + std::to_string(static_cast<uint64_t>(region)) +
                                   " is device memory, which peers cannot reach (no CUDA "
                                   "transport in this UCX): export a host region");
  }
  return RegionDescriptor{impl_->engine->worker_address(), it->second.address,
                          it->second.size_bytes, it->second.rkey};
}

Result<TransferHandle> DataPlane::Put(RegionId region, std::span<const uint64_t> region_offsets,
                                      std::span<const BlockLocation> blocks) {
  return impl_->Submit(/*is_put=*/true, region, region_offsets, blocks);
}

Result<TransferHandle> DataPlane::Get(std::span<const BlockLocation> blocks, RegionId region,
                                      std::span<const uint64_t> region_offsets) {
  return impl_->Submit(/*is_put=*/false, region, region_offsets, blocks);
}

Status DataPlane::Verify(uint64_t lease_id, std::span<const BlockLocation> blocks,
                         RegionId region, std::span<const uint64_t> region_offsets) {
  KVPOOL_ASSIGN_OR_RETURN(BuiltOps built,
                          impl_->BuildOps(impl_->View(region), region, region_offsets, blocks, false));
  const auto& ops = built.ops;
  v1::ResolveBlocksRequest req;
  req.set_lease_id(lease_id);
  for (const BlockLocation& b : blocks) req.add_handles(b.handle);
  req.set_checksums(true);
  v1::ResolveBlocksResponse resp;
  KVPOOL_RETURN_IF_ERROR(rpc::CallUnary(*impl_->stub, &v1::MemPool::Stub::ResolveBlocks, req,
                                        &resp, impl_->rpc_timeout_ms));
  if (resp.checksums_size() != static_cast<int>(blocks.size())) {
    return InternalError("the node returned " + std::to_string(resp.checksums_size()) +
                         " checksums for " + std::to_string(blocks.size()) + " blocks");
  }
  std::vector<uint8_t> scratch;  // a device region's bytes, copied to the host
  for (size_t i = 0; i < ops.size(); ++i) {
    const void* local = reinterpret_cast<const void*>(ops[i].local_address);
    if (built.local_device) {
      scratch.resize(ops[i].size_bytes);
      absl::MutexLock lock(&impl_->mu);
      KVPOOL_RETURN_IF_ERROR(impl_->device->CopySync(scratch.data(), local, scratch.size()));
      local = scratch.data();
    }
    const uint64_t here = BlockChecksum(local, ops[i].size_bytes);
    if (here != resp.checksums(static_cast<int>(i))) {
      return DataLossError("block " + std::to_string(i) + " (handle " +
                           std::to_string(blocks[i].handle) + ") differs: checksum " +
                           std::to_string(resp.checksums(static_cast<int>(i))) +
                           " on the node, " + std::to_string(here) + " here");
    }
  }
  return Status::Ok();
}

Status DataPlane::CheckSameClient(const Client& client) const {
  if (client.impl_->leases != impl_->leases) {
    return InvalidArgumentError("the flows need the Client this DataPlane was connected with (" +
                                client.address() + " is another one)");
  }
  return Status::Ok();
}

Result<InsertResult> DataPlane::PutAndInsert(Client& client, std::string_view ns,
                                             PromptView prompt, uint32_t start_block,
                                             RegionId region,
                                             std::span<const uint64_t> region_offsets) {
  if (region_offsets.empty()) return InvalidArgumentError("PutAndInsert needs at least one block");
  KVPOOL_RETURN_IF_ERROR(CheckSameClient(client));
  KVPOOL_ASSIGN_OR_RETURN(
      Allocation alloc,
      client.AllocMem(ns, static_cast<uint32_t>(region_offsets.size()), Tier::kHost));
  // From here on the guard releases the lease on every path: Release frees never-inserted blocks,
  // so a failed flow leaves nothing allocated and nothing matchable.
  LeaseGuard guard(client, alloc.lease.id);
  const std::shared_ptr<const NodeLink> node = impl_->Link();
  KVPOOL_ASSIGN_OR_RETURN(TransferHandle handle, Put(region, region_offsets, alloc.blocks));
  Status landed = handle.Wait(impl_->options.transfer_timeout_ms);
  if (landed.code() == StatusCode::kDeadlineExceeded) {
    // The batch may still write: cut it off before the blocks go back to the pool.
    impl_->ResetPeer(node);
  }
  KVPOOL_RETURN_IF_ERROR(landed);
  if (impl_->options.verify_checksums) {
    KVPOOL_RETURN_IF_ERROR(Verify(alloc.lease.id, alloc.blocks, region, region_offsets));
  }
  std::vector<BlockHandle> handles;
  handles.reserve(alloc.blocks.size());
  for (const BlockLocation& b : alloc.blocks) handles.push_back(b.handle);
  KVPOOL_ASSIGN_OR_RETURN(InsertResult inserted,
                          client.Insert(ns, prompt, start_block, handles, alloc.lease.id));
  KVPOOL_RETURN_IF_ERROR(guard.ReleaseNow());
  return inserted;
}

Result<uint32_t> DataPlane::MatchAndGet(Client& client, std::string_view ns, PromptView prompt,
                                        RegionId region,
                                        std::span<const uint64_t> region_offsets) {
  if (region_offsets.empty()) return InvalidArgumentError("MatchAndGet needs at least one block");
  KVPOOL_RETURN_IF_ERROR(CheckSameClient(client));
  KVPOOL_ASSIGN_OR_RETURN(MatchResult match,
                          client.Match(ns, prompt, 0, /*lease=*/true));
  LeaseGuard guard(client, match.lease.id);
  const size_t n = std::min(match.blocks.size(), region_offsets.size());
  if (n == 0) return uint32_t{0};
  const std::shared_ptr<const NodeLink> node = impl_->Link();
  KVPOOL_ASSIGN_OR_RETURN(
      TransferHandle handle,
      Get(std::span<const BlockLocation>(match.blocks).first(n), region,
          region_offsets.first(n)));
  Status landed = handle.Wait(impl_->options.transfer_timeout_ms);
  if (landed.code() == StatusCode::kDeadlineExceeded) impl_->ResetPeer(node);
  KVPOOL_RETURN_IF_ERROR(landed);
  if (impl_->options.verify_checksums) {
    KVPOOL_RETURN_IF_ERROR(Verify(match.lease.id,
                                  std::span<const BlockLocation>(match.blocks).first(n), region,
                                  region_offsets.first(n)));
  }
  KVPOOL_RETURN_IF_ERROR(guard.ReleaseNow());
  return static_cast<uint32_t>(n);
}

}  // namespace kvpool
