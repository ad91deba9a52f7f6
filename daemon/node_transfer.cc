#include "daemon/node_transfer.h"

#include <algorithm>
#include <chrono>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "common/metrics.h"
#include "common/quote.h"
#include "rpc/client_channel.h"
#include "rpc/convert.h"
#include "transport/remote_slabs.h"

namespace kvpool::daemon {
namespace {

// How long past the transfer's timeout a TransferWithInsert's destination lease lasts.
constexpr uint32_t kInsertSlackMs = 2000;

uint64_t MicrosSince(std::chrono::steady_clock::time_point start) {
  return static_cast<uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(
                                   std::chrono::steady_clock::now() - start)
                                   .count());
}

uint64_t TotalBytes(std::span<const transport::TransferOp> ops) {
  uint64_t total = 0;
  for (const transport::TransferOp& op : ops) total += op.size_bytes;
  return total;
}

// Milliseconds left until `deadline`, at least 0.
int64_t LeftMs(std::chrono::steady_clock::time_point deadline) {
  return std::max<int64_t>(0, std::chrono::duration_cast<std::chrono::milliseconds>(
                                  deadline - std::chrono::steady_clock::now())
                                  .count());
}

// The end of one Transfer or TransferWithInsert: every step gets at most the time left, so a
// network cut fails the whole call within its timeout (plus one control call's slack), not one
// control-call timeout per step.
class Deadline {
 public:
  Deadline(std::chrono::steady_clock::time_point start, uint32_t timeout_ms)
      : at_(start + std::chrono::milliseconds(timeout_ms)) {}
  bool passed() const { return std::chrono::steady_clock::now() >= at_; }
  // Milliseconds left plus `slack_ms`, at least 1, at most `cap_ms`.
  uint32_t LeftMs(uint32_t cap_ms, uint32_t slack_ms = 0) const {
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
                          at_ - std::chrono::steady_clock::now())
                          .count() +
                      slack_ms;
    return static_cast<uint32_t>(std::clamp<int64_t>(left, 1, cap_ms));
  }

 private:
  std::chrono::steady_clock::time_point at_;
};

// Ends a destination lease on scope exit unless dismissed: a failed TransferWithInsert leaves
// nothing allocated on the destination (and if this node dies, the lease expires there).
class RemoteLeaseGuard {
 public:
  RemoteLeaseGuard(v1::MemPool::Stub* stub, uint64_t lease_id, uint32_t timeout_ms)
      : stub_(stub), lease_id_(lease_id), timeout_ms_(timeout_ms) {}
  ~RemoteLeaseGuard() {
    if (lease_id_ == 0) return;
    v1::ReleaseRequest req;
    req.set_lease_id(lease_id_);
    v1::ReleaseResponse resp;
    // Best effort: a destination that cannot be reached frees the blocks when the lease expires.
    rpc::CallUnary(*stub_, &v1::MemPool::Stub::Release, req, &resp, timeout_ms_).IgnoreError();
  }
  RemoteLeaseGuard(const RemoteLeaseGuard&) = delete;
  RemoteLeaseGuard& operator=(const RemoteLeaseGuard&) = delete;

 private:
  v1::MemPool::Stub* stub_;
  uint64_t lease_id_;
  uint32_t timeout_ms_;
};

// Prefixes a destination node's status with what was being done there.
Status AtNode(Status st, std::string_view node_id, std::string_view call) {
  if (st.ok()) return st;
  return Status(st.code(), "destination node " + Quote(node_id) + ": " + std::string(call) +
                               ": " + std::string(st.message()));
}

}  // namespace

Result<uint32_t> NodeTransfer::WithinLease(uint32_t timeout_ms, uint64_t lease_id,
                                           uint32_t lease_left_ms) {
  if (lease_left_ms <= kLeaseMarginMs) {
    return FailedPreconditionError("lease " + std::to_string(lease_id) + " has only " +
                                   std::to_string(lease_left_ms) +
                                   " ms left, too little for a transfer into its blocks (renew it)");
  }
  return std::min(timeout_ms, lease_left_ms - kLeaseMarginMs);
}

Result<uint32_t> NodeTransfer::TimeoutOf(uint32_t requested_ms) const {
  if (requested_ms == 0) return options_.default_timeout_ms;
  if (requested_ms > options_.max_timeout_ms) {
    return InvalidArgumentError("timeout_ms " + std::to_string(requested_ms) +
                                " exceeds the limit of " +
                                std::to_string(options_.max_timeout_ms));
  }
  return requested_ms;
}

Status NodeTransfer::CheckDestination(std::string_view node_id, uint32_t timeout_ms) {
  KVPOOL_RETURN_IF_ERROR(TimeoutOf(timeout_ms).status());
  return peers_->Get(node_id).status();
}

uint64_t NodeTransfer::Ops::bytes() const { return TotalBytes(host) + TotalBytes(device); }

void NodeTransfer::Ops::Add(const NodeTransfer& self, const BlockLocation& block,
                            uint64_t remote_address) {
  if (block.tier == Tier::kGpu) {
    device.push_back(transport::TransferOp{
        reinterpret_cast<uint64_t>(self.pool_->gpu_base()) + block.offset, remote_address,
        block.length});
  } else {
    host.push_back(transport::TransferOp{self.local_region_base_ + block.offset, remote_address,
                                         block.length});
  }
}

Status NodeTransfer::RunBatch(bool is_put, transport::PeerId endpoint,
                              std::span<const Batch> batches, uint32_t timeout_ms,
                              std::string_view node_id, std::string_view what,
                              uint64_t message_token) {
  const auto start = std::chrono::steady_clock::now();
  const auto deadline = start + std::chrono::milliseconds(timeout_ms);
  uint64_t bytes = 0;
  for (const Batch& batch : batches) {
    if (!batch.ops.device.empty() && staging_ == nullptr) {
      return InternalError("GPU-tier blocks but no GPU staging on this node");
    }
    bytes += batch.ops.bytes();
  }
  // Every batch's host ops are submitted before any is waited for.
  std::vector<transport::TransferHandle> handles;
  Status landed = Status::Ok();
  for (const Batch& batch : batches) {
    if (batch.ops.host.empty()) continue;
    Result<transport::TransferHandle> handle =
        message_token != 0
            ? engine_->SendMessages(endpoint, batch.remote, message_token, batch.ops.host)
        : is_put ? engine_->Put(endpoint, batch.remote, batch.ops.host)
                 : engine_->Get(endpoint, batch.remote, batch.ops.host);
    if (!handle.ok()) {
      landed = handle.status();
      break;
    }
    handles.push_back(*std::move(handle));
  }
  // GPU blocks are staged while the host blocks' batches run.
  for (const Batch& batch : batches) {
    if (!landed.ok()) break;
    if (batch.ops.device.empty()) continue;
    landed = is_put ? staging_->Put(endpoint, batch.remote, batch.ops.device, LeftMs(deadline))
                    : staging_->Get(endpoint, batch.remote, batch.ops.device, LeftMs(deadline));
  }
  for (const transport::TransferHandle& handle : handles) {
    Status host_landed = handle.Wait(LeftMs(deadline));
    if (landed.ok()) landed = std::move(host_landed);
  }
  // Naming the transport is a round trip to the progress thread: only when metrics are on.
  if (metrics::TransferMetricsInstalled()) {
    metrics::RecordTransfer(engine_->Transports(endpoint).value_or("unknown"),
                            node_id.empty() ? (is_put ? "put" : "get") : "node", bytes,
                            std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
                                .count(),
                            landed.ok());
  }
  if (landed.ok()) return landed;
  // Close the endpoint so the batch writes nothing more (DEADLINE_EXCEEDED leaves it running),
  // and so that the next transfer reconnects (a restarted peer has a new address).
  if (!node_id.empty()) {
    peers_->Forget(node_id);
  } else {
    engine_->Disconnect(endpoint).IgnoreError();
  }
  const std::string message = std::string(what) + " failed after " +
                              std::to_string(bytes) + " bytes were submitted: " +
                              std::string(landed.message());
  KVPOOL_LOG(WARNING) << message;
  if (landed.code() == StatusCode::kDeadlineExceeded) {
    return DeadlineExceededError(std::string(what) + " did not finish within " +
                                 std::to_string(timeout_ms) + " ms");
  }
  return Status(landed.code() == StatusCode::kCancelled ? StatusCode::kUnavailable
                                                        : landed.code(),
                message);
}

Status NodeTransfer::Transfer(const v1::TransferRequest& req, v1::TransferResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  KVPOOL_ASSIGN_OR_RETURN(const uint32_t timeout_ms, TimeoutOf(req.timeout_ms()));
  if (req.destination_case() == v1::TransferRequest::DESTINATION_NOT_SET) {
    return InvalidArgumentError("a transfer needs a destination: node blocks or a client region");
  }
  const bool to_node = req.destination_case() == v1::TransferRequest::kNode;
  if (!to_node && req.verify_checksums()) {
    return InvalidArgumentError(
        "verify_checksums needs a node destination (a client checks its own region)");
  }
  const size_t n = static_cast<size_t>(req.src_handles_size());
  const size_t n_dst = to_node ? static_cast<size_t>(req.node().handles_size())
                               : static_cast<size_t>(req.region().offsets_size());
  if (n != n_dst) {
    return InvalidArgumentError("a transfer needs one destination per source block: got " +
                                std::to_string(n_dst) + " destinations for " + std::to_string(n) +
                                " source blocks");
  }
  KVPOOL_ASSIGN_OR_RETURN(node::LeasedBlocks src,
                          pool_->ResolveLeased(req.src_lease_id(), rpc::HandlesOf(req.src_handles()),
                                               node::BlockAccess::kRead, req.verify_checksums()));
  if (!to_node) {
    return RegionBatch(/*is_put=*/true, req.region(), src.blocks, timeout_ms,
                       "transfer to a client region", start, resp);
  }

  const v1::NodeBlocks& dst = req.node();
  const Deadline deadline(start, timeout_ms);
  KVPOOL_ASSIGN_OR_RETURN(PeerNode peer, peers_->Get(dst.node_id()));
  const bool messages = UseMessages(peer, src.blocks);
  v1::ResolveBlocksRequest check;
  check.set_lease_id(dst.lease_id());
  *check.mutable_handles() = dst.handles();
  check.set_for_write(true);
  check.set_expect_messages(messages);
  if (messages) check.set_messages_ttl_ms(timeout_ms);
  v1::ResolveBlocksResponse checked;
  KVPOOL_RETURN_IF_ERROR(AtNode(rpc::CallUnary(*peer.stub, &v1::MemPool::Stub::ResolveBlocks,
                                               check, &checked,
                                               deadline.LeftMs(options_.rpc_timeout_ms)),
                                dst.node_id(), "ResolveBlocks"));
  KVPOOL_ASSIGN_OR_RETURN(std::vector<BlockLocation> dst_blocks,
                          rpc::FromProto(checked.blocks()));
  // The Puts end before the destination lease does (messages are cut off there already).
  KVPOOL_ASSIGN_OR_RETURN(const uint32_t put_ms,
                          WithinLease(deadline.LeftMs(timeout_ms), dst.lease_id(),
                                      checked.ttl_left_ms()));
  KVPOOL_ASSIGN_OR_RETURN(const uint64_t bytes,
                          PutToNode(peer, src.blocks, dst_blocks, checked.blocks(), put_ms,
                                    "resolved", checked.messages_token()));
  check.clear_expect_messages();  // the checksum call below reuses the request
  check.clear_messages_ttl_ms();
  if (messages) {
    // The messages left this node; the destination says when they all landed.
    v1::ResolveBlocksRequest await = check;
    await.set_await_messages(checked.messages_token());
    v1::ResolveBlocksResponse awaited;
    KVPOOL_RETURN_IF_ERROR(AtNode(rpc::CallUnary(*peer.stub, &v1::MemPool::Stub::ResolveBlocks,
                                                 await, &awaited,
                                                 deadline.LeftMs(options_.rpc_timeout_ms)),
                                  dst.node_id(), "ResolveBlocks (awaiting the messages)"));
  }
  if (req.verify_checksums()) {
    check.set_checksums(true);
    KVPOOL_RETURN_IF_ERROR(AtNode(rpc::CallUnary(*peer.stub, &v1::MemPool::Stub::ResolveBlocks,
                                                 check, &checked, options_.rpc_timeout_ms),
                                  dst.node_id(), "ResolveBlocks (checksums)"));
    for (size_t i = 0; i < n; ++i) {
      if (static_cast<int>(i) >= checked.checksums_size() ||
          checked.checksums(static_cast<int>(i)) != src.checksums[i]) {
        return DataLossError("block " + std::to_string(i) + " (source handle " +
                             std::to_string(src.blocks[i].handle) +
                             ") differs on the destination after the transfer");
      }
    }
  }
  resp->set_blocks(static_cast<uint32_t>(n));
  resp->set_bytes(bytes);
  resp->set_elapsed_us(MicrosSince(start));
  return Status::Ok();
}

Result<uint64_t> NodeTransfer::PutToNode(const PeerNode& peer, std::span<const BlockLocation> src,
                                         std::span<const BlockLocation> dst,
                                         const v1::BlockList& dst_list, uint32_t timeout_ms,
                                         std::string_view dst_verb, uint64_t message_token) {
  if (dst.size() != src.size()) {
    return InternalError("destination node " + Quote(peer.node_id) + " " + std::string(dst_verb) +
                         " " + std::to_string(dst.size()) + " of " + std::to_string(src.size()) +
                         " blocks");
  }
  transport::RemoteSlabs slabs(peer.pool_base);
  for (const v1::SlabKey& key : dst_list.slab_keys()) {
    slabs.Learn(key.offset(), key.bytes(), key.rkey());
  }
  std::vector<Batch> batches;  // one per destination slab, in order of first use
  uint64_t bytes = 0;
  for (size_t i = 0; i < src.size(); ++i) {
    if (dst[i].length != src[i].length) {
      return InvalidArgumentError(
          "block " + std::to_string(i) + ": the source block has " +
          std::to_string(src[i].length) + " bytes but destination block " +
          std::to_string(dst[i].handle) + " has " + std::to_string(dst[i].length));
    }
    if (dst[i].tier == Tier::kGpu) {
      return FailedPreconditionError(
          "destination block " + std::to_string(dst[i].handle) + " is in the GPU tier of node " +
          Quote(peer.node_id) +
          ", which peers cannot write one-sided: allocate host blocks there (its own node "
          "stages GPU blocks, TransferFromRegion)");
    }
    const transport::RemoteSlabs::Slab* slab = slabs.Find(dst[i].offset, dst[i].length);
    if (slab == nullptr) {
      return InternalError("destination node " + Quote(peer.node_id) + " sent no key for the "
                           "slab of block " + std::to_string(dst[i].handle) + " at offset " +
                           std::to_string(dst[i].offset));
    }
    auto batch = std::find_if(batches.begin(), batches.end(),
                              [&](const Batch& b) { return b.remote.address == (*slab)->address; });
    if (batch == batches.end()) batch = batches.insert(batches.end(), Batch{**slab, {}});
    batch->ops.Add(*this, src[i], peer.pool_base + dst[i].offset);
    bytes += src[i].length;
  }
  KVPOOL_RETURN_IF_ERROR(RunBatch(true, peer.endpoint, batches, timeout_ms, peer.node_id,
                                  "transfer to node '" + peer.node_id + "'", message_token));
  return bytes;
}

bool NodeTransfer::UseMessages(const PeerNode& peer, std::span<const BlockLocation> src) {
  for (const BlockLocation& b : src) {
    if (b.tier == Tier::kGpu) return false;  // staged chunk by chunk, one-sided
  }
  return engine_->UsesOnlyTcp(peer.endpoint).value_or(false);
}

Result<uint64_t> NodeTransfer::ExpectMessages(uint64_t lease_id,
                                              std::span<const BlockLocation> blocks,
                                              uint32_t ttl_ms, uint32_t lease_left_ms) {
  if (ttl_ms == 0 || ttl_ms > options_.max_timeout_ms) {
    return InvalidArgumentError("messages_ttl_ms " + std::to_string(ttl_ms) +
                                " must be in [1, " + std::to_string(options_.max_timeout_ms) +
                                "]");
  }
  // Messages arriving later are refused: none lands after the lease ended.
  KVPOOL_ASSIGN_OR_RETURN(ttl_ms, WithinLease(ttl_ms, lease_id, lease_left_ms));
  std::vector<transport::MessageWindow> windows;
  windows.reserve(blocks.size());
  for (const BlockLocation& b : blocks) {
    if (b.tier == Tier::kGpu) {
      return FailedPreconditionError("block " + std::to_string(b.handle) +
                                     " is in the GPU tier: messages land in host memory only");
    }
    windows.push_back({local_region_base_ + b.offset, b.length});
  }
  KVPOOL_ASSIGN_OR_RETURN(const uint64_t token, engine_->ExpectMessages(windows, ttl_ms));
  const auto now = std::chrono::steady_clock::now();
  absl::MutexLock lock(&tokens_mu_);
  for (auto it = tokens_by_lease_.begin(); it != tokens_by_lease_.end();) {
    it = it->second.expires < now ? tokens_by_lease_.erase(it) : std::next(it);
  }
  tokens_by_lease_.emplace(lease_id,
                           LeaseToken{token, now + std::chrono::milliseconds(ttl_ms)});
  return token;
}

auto NodeTransfer::FindTokenLocked(uint64_t lease_id, uint64_t token)
    -> std::multimap<uint64_t, LeaseToken>::iterator {
  auto [first, last] = tokens_by_lease_.equal_range(lease_id);
  auto it = std::find_if(first, last, [&](const auto& e) { return e.second.token == token; });
  return it == last ? tokens_by_lease_.end() : it;
}

Status NodeTransfer::AwaitMessages(uint64_t lease_id, uint64_t token, uint32_t timeout_ms) {
  {
    absl::MutexLock lock(&tokens_mu_);
    if (FindTokenLocked(lease_id, token) == tokens_by_lease_.end()) {
      return NotFoundError("lease " + std::to_string(lease_id) + " holds no messages token " +
                           std::to_string(token));
    }
  }
  Status st = engine_->AwaitMessages(token, timeout_ms);
  if (st.code() != StatusCode::kDeadlineExceeded) {
    // Ended (landed or failed): forget it.
    absl::MutexLock lock(&tokens_mu_);
    if (auto it = FindTokenLocked(lease_id, token); it != tokens_by_lease_.end()) {
      tokens_by_lease_.erase(it);
    }
  }
  if (st.ok()) return st;
  return Status(st.code(), "the transfer's messages (token " + std::to_string(token) +
                               "): " + std::string(st.message()));
}

void NodeTransfer::ReleaseLease(uint64_t lease_id) {
  std::vector<uint64_t> tokens;
  {
    absl::MutexLock lock(&tokens_mu_);
    auto [first, last] = tokens_by_lease_.equal_range(lease_id);
    for (auto it = first; it != last; ++it) tokens.push_back(it->second.token);
    tokens_by_lease_.erase(lease_id);
  }
  for (uint64_t token : tokens) engine_->CancelMessages(token);
}

Status NodeTransfer::TransferWithInsert(const v1::TransferWithInsertRequest& req,
                                        v1::TransferWithInsertResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  KVPOOL_ASSIGN_OR_RETURN(const uint32_t timeout_ms, TimeoutOf(req.timeout_ms()));
  KVPOOL_ASSIGN_OR_RETURN(node::LeasedBlocks src,
                          pool_->ResolveLeased(req.src_lease_id(), rpc::HandlesOf(req.src_handles()),
                                               node::BlockAccess::kRead, false));
  if (src.spec.name != req.namespace_()) {
    return InvalidArgumentError("the source lease " + std::to_string(req.src_lease_id()) +
                                " belongs to namespace " + Quote(src.spec.name) + ", not " +
                                Quote(req.namespace_()));
  }
  const size_t n = src.blocks.size();
  // The prompt must name every block before anything is allocated or moved.
  std::vector<BlockHash> hash_storage;
  KVPOOL_ASSIGN_OR_RETURN(PromptView prompt, rpc::FromProto(req.prompt(), &hash_storage));
  const uint64_t prompt_blocks = prompt.hashes.empty()
                                     ? prompt.tokens.size() / src.spec.block_tokens
                                     : prompt.hashes.size();
  if (!prompt.tokens.empty() && prompt.tokens.size() % src.spec.block_tokens != 0) {
    return InvalidArgumentError("the prompt has " + std::to_string(prompt.tokens.size()) +
                                " tokens, not a whole number of " +
                                std::to_string(src.spec.block_tokens) + "-token blocks");
  }
  if (static_cast<uint64_t>(req.start_block()) + n > prompt_blocks) {
    return InvalidArgumentError("the prompt has " + std::to_string(prompt_blocks) +
                                " full blocks, but start_block " +
                                std::to_string(req.start_block()) + " + " + std::to_string(n) +
                                " source blocks needs " +
                                std::to_string(static_cast<uint64_t>(req.start_block()) + n));
  }
  const Deadline deadline(start, timeout_ms);
  std::string dst_node = req.dst_node();
  if (dst_node.empty()) {
    KVPOOL_ASSIGN_OR_RETURN(dst_node, peers_->Place(req.namespace_(), n));
  }
  KVPOOL_ASSIGN_OR_RETURN(PeerNode peer, peers_->Get(dst_node));

  v1::CreateNamespaceRequest create;
  rpc::ToProto(src.spec, create.mutable_spec());
  v1::CreateNamespaceResponse created;
  Status st = rpc::CallUnary(*peer.stub, &v1::MemPool::Stub::CreateNamespace, create, &created,
                             deadline.LeftMs(options_.rpc_timeout_ms));
  if (st.code() == StatusCode::kAlreadyExists) {
    return FailedPreconditionError("namespace " + Quote(src.spec.name) + " exists on node " +
                                   Quote(dst_node) + " with other parameters: " +
                                   std::string(st.message()));
  }
  KVPOOL_RETURN_IF_ERROR(AtNode(std::move(st), dst_node, "CreateNamespace"));

  // The allocation outlives this call by at most its lease: if this node dies mid-transfer the
  // destination frees the blocks when it expires.
  v1::AllocMemRequest alloc_req;
  alloc_req.set_namespace_(req.namespace_());
  alloc_req.set_n_blocks(static_cast<uint32_t>(n));
  alloc_req.set_tier(v1::TIER_HOST);
  // The transfer's timeout plus time for the Insert: an Insert that comes later finds the lease
  // expired and fails, so a late transfer is never inserted either.
  alloc_req.set_lease_ttl_ms(timeout_ms + kInsertSlackMs);
  v1::AllocMemResponse alloc;
  KVPOOL_RETURN_IF_ERROR(AtNode(rpc::CallUnary(*peer.stub, &v1::MemPool::Stub::AllocMem,
                                               alloc_req, &alloc,
                                               deadline.LeftMs(options_.rpc_timeout_ms)),
                                dst_node, "AllocMem"));
  RemoteLeaseGuard guard(peer.stub.get(), alloc.lease().id(), options_.rpc_timeout_ms);
  KVPOOL_ASSIGN_OR_RETURN(std::vector<BlockLocation> dst_blocks, rpc::FromProto(alloc.blocks()));
  uint64_t message_token = 0;
  if (UseMessages(peer, src.blocks)) {
    // The destination takes the bytes as messages into exactly these blocks, and its Insert
    // waits for all of them.
    v1::ResolveBlocksRequest expect;
    expect.set_lease_id(alloc.lease().id());
    for (const BlockLocation& b : dst_blocks) expect.add_handles(b.handle);
    expect.set_for_write(true);
    expect.set_expect_messages(true);
    expect.set_messages_ttl_ms(timeout_ms);
    v1::ResolveBlocksResponse expected;
    KVPOOL_RETURN_IF_ERROR(AtNode(rpc::CallUnary(*peer.stub, &v1::MemPool::Stub::ResolveBlocks,
                                                 expect, &expected,
                                                 deadline.LeftMs(options_.rpc_timeout_ms)),
                                  dst_node, "ResolveBlocks (expecting messages)"));
    message_token = expected.messages_token();
  }
  KVPOOL_ASSIGN_OR_RETURN(const uint64_t bytes,
                          PutToNode(peer, src.blocks, dst_blocks, alloc.blocks(),
                                    deadline.LeftMs(timeout_ms), "allocated", message_token));

  if (options_.fault_pause_before_insert_ms > 0) {
    std::this_thread::sleep_for(std::chrono::milliseconds(options_.fault_pause_before_insert_ms));
  }
  // The caller stops waiting at the timeout: a copy that finished later must not be inserted,
  // or a call reported as failed would leave its blocks matchable.
  if (deadline.passed()) {
    return DeadlineExceededError("TransferWithInsert to node " + Quote(dst_node) +
                                 " did not finish within " + std::to_string(timeout_ms) +
                                 " ms; nothing was inserted");
  }
  // Every byte landed: only now may the blocks become matchable there.
  v1::InsertRequest insert;
  insert.set_namespace_(req.namespace_());
  *insert.mutable_prompt() = req.prompt();
  insert.set_start_block(req.start_block());
  insert.set_lease_id(alloc.lease().id());
  for (const BlockLocation& b : dst_blocks) insert.add_handles(b.handle);
  insert.set_messages_token(message_token);
  v1::InsertResponse inserted;
  // The Insert itself may use one second past the deadline: well inside the destination
  // lease's slack (kInsertSlackMs) and the client's deadline, which adds its own call timeout.
  KVPOOL_RETURN_IF_ERROR(AtNode(rpc::CallUnary(*peer.stub, &v1::MemPool::Stub::Insert, insert,
                                               &inserted,
                                               deadline.LeftMs(options_.rpc_timeout_ms,
                                                               kInsertSlackMs / 2)),
                                dst_node, "Insert"));
  resp->set_dst_node(dst_node);
  resp->set_inserted_blocks(inserted.inserted_blocks());
  resp->set_duplicate_blocks(inserted.duplicate_blocks());
  resp->set_bytes(bytes);
  resp->set_elapsed_us(MicrosSince(start));
  return Status::Ok();
}

Result<transport::PeerId> NodeTransfer::ConnectRegion(const v1::RegionBlocks& region,
                                                      const transport::RemoteRegion& remote) {
  KVPOOL_ASSIGN_OR_RETURN(transport::PeerId endpoint, engine_->Connect(region.worker_address()));
  if (Status st = engine_->CompleteWireup(endpoint, remote, options_.rpc_timeout_ms); !st.ok()) {
    engine_->Disconnect(endpoint).IgnoreError();
    return Status(st.code(),
                  "cannot reach the client region's process: " + std::string(st.message()));
  }
  return endpoint;
}

Status NodeTransfer::TransferFromRegion(const v1::TransferFromRegionRequest& req,
                                        v1::TransferResponse* resp) {
  const auto start = std::chrono::steady_clock::now();
  KVPOOL_ASSIGN_OR_RETURN(const uint32_t timeout_ms, TimeoutOf(req.timeout_ms()));
  const v1::RegionBlocks& region = req.src();
  const size_t n = static_cast<size_t>(req.dst_handles_size());
  if (static_cast<size_t>(region.offsets_size()) != n) {
    return InvalidArgumentError("a transfer needs one region offset per destination block: got " +
                                std::to_string(region.offsets_size()) + " offsets for " +
                                std::to_string(n) + " blocks");
  }
  KVPOOL_ASSIGN_OR_RETURN(node::LeasedBlocks dst,
                          pool_->ResolveLeased(req.dst_lease_id(), rpc::HandlesOf(req.dst_handles()),
                                               node::BlockAccess::kWrite, false));
  KVPOOL_ASSIGN_OR_RETURN(const uint32_t within_lease_ms,
                          WithinLease(timeout_ms, req.dst_lease_id(), dst.ttl_left_ms));
  return RegionBatch(/*is_put=*/false, region, dst.blocks, within_lease_ms,
                     "transfer from a client region", start, resp);
}

Status NodeTransfer::RegionBatch(bool is_put, const v1::RegionBlocks& region,
                                 std::span<const BlockLocation> blocks, uint32_t timeout_ms,
                                 std::string_view what, std::chrono::steady_clock::time_point start,
                                 v1::TransferResponse* resp) {
  Batch batch{transport::RemoteRegion{region.region_base(), region.region_bytes(), region.rkey()},
              {}};
  const transport::RemoteRegion& remote = batch.remote;
  for (size_t i = 0; i < blocks.size(); ++i) {
    const uint64_t offset = region.offsets(static_cast<int>(i));
    // Checked whole here, before anything moves: staged GPU blocks reach the engine chunk by
    // chunk, so its own range check would come after earlier chunks had moved.
    if (offset > remote.size_bytes || blocks[i].length > remote.size_bytes - offset) {
      return InvalidArgumentError("region offset " + std::to_string(i) + " [" +
                                  std::to_string(offset) + ", +" +
                                  std::to_string(blocks[i].length) + ") lies outside the " +
                                  std::to_string(remote.size_bytes) + "-byte region");
    }
    batch.ops.Add(*this, blocks[i], remote.address + offset);
  }
  KVPOOL_ASSIGN_OR_RETURN(transport::PeerId endpoint, ConnectRegion(region, remote));
  KVPOOL_RETURN_IF_ERROR(
      RunBatch(is_put, endpoint, std::span<const Batch>(&batch, 1), timeout_ms, "", what));
  resp->set_blocks(static_cast<uint32_t>(blocks.size()));
  resp->set_bytes(batch.ops.bytes());
  resp->set_elapsed_us(MicrosSince(start));
  return Status::Ok();
}

}  // namespace kvpool::daemon
