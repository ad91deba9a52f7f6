// Daemon-driven transfers (MemPool Transfer and TransferWithInsert): this node writes its own
// leased blocks one-sided into another node's blocks or into a client's registered region.
#pragma once

#include <chrono>
#include <cstdint>
#include <map>
#include <span>
#include <string_view>

#include "absl/synchronization/mutex.h"
#include "daemon/peer_directory.h"
#include "kvpool/status.h"
#include "kvpool/v1/mempool.pb.h"
#include "node/mempool.h"
#include "transport/staged_copier.h"
#include "transport/transfer_engine.h"

namespace kvpool::daemon {

struct NodeTransferOptions {
  /// Time a transfer may take when the request gives none, in ms. Default: 30000.
  uint32_t default_timeout_ms = 30'000;
  /// Longest timeout a request may ask for, in ms (with TransferWithInsert's 2 s of slack it stays
  /// under a node's default --max-lease-ttl-ms). Default: 300000.
  uint32_t max_timeout_ms = 300'000;
  /// Deadline of each control call to the destination node, in ms. Default: 5000.
  uint32_t rpc_timeout_ms = 5'000;
  /// Fault injection for tests: TransferWithInsert sleeps this long after the bytes landed and
  /// before the destination's Insert, so a test can kill this node in between. Default: 0.
  uint32_t fault_pause_before_insert_ms = 0;
};

/// Runs Transfer and TransferWithInsert for MemPoolService.
///
/// Every check happens before any byte moves: the source blocks must be held by the request's
/// lease on this node (allocated under it or pinned by it); destination node blocks must be
/// allocated under the given lease there (the destination checks it, ResolveBlocks) and be as
/// large as the source blocks; a destination region range must lie inside the region. A
/// transfer writes nothing outside the destination blocks it was given.
///
/// Failures: UNAVAILABLE when the destination dies or its link breaks mid-transfer (noticed at
/// once for a process on this host, else by UCX), DEADLINE_EXCEEDED after the request's
/// timeout; in both cases the endpoint is closed (nothing more is written) and the next call
/// reconnects. TransferWithInsert then releases the destination allocation; if this node dies
/// instead, that allocation's lease expires on the destination. Either way the blocks are never
/// inserted, so nothing half-written becomes matchable.
///
/// Thread-safe. Borrows everything it is given; all must outlive it.
class NodeTransfer {
 public:
  /// `local_region_base`: the address of pool offset 0 in this process (the pool arena, which
  /// `engine` allocated and registered). `staging`: how GPU-tier blocks move (device -> pinned
  /// -> UCX and back); null on a node without a GPU tier.
  NodeTransfer(NodeTransferOptions options, node::MemPool* pool,
               transport::TransferEngine* engine, uint64_t local_region_base,
               PeerDirectory* peers, transport::StagedCopier* staging = nullptr)
      : options_(options),
        pool_(pool),
        engine_(engine),
        local_region_base_(local_region_base),
        peers_(peers),
        staging_(staging) {}

  /// Copies the source blocks to a node's blocks or a client region. Errors as the class
  /// comment, plus INVALID_ARGUMENT for a malformed request (no blocks, counts that differ, no
  /// destination, block sizes that differ, a timeout over the limit, checksums asked for a
  /// region destination), the source lease's errors (NOT_FOUND, FAILED_PRECONDITION), the
  /// peer lookup's (PeerDirectory::Get) and the destination's ResolveBlocks status; DATA_LOSS
  /// when verify_checksums finds a block that differs after the copy.
  Status Transfer(const v1::TransferRequest& req, v1::TransferResponse* resp);
  /// Allocates blocks on the destination (dst_node, or the scheduler's choice when empty),
  /// copies the source blocks there and inserts them as blocks start_block.. of the prompt
  /// there. The namespace is created on the destination with the source's parameters if
  /// missing (FAILED_PRECONDITION if it exists there with others). Errors as Transfer, plus
  /// the destination's AllocMem and Insert statuses.
  Status TransferWithInsert(const v1::TransferWithInsertRequest& req,
                            v1::TransferWithInsertResponse* resp);
  /// Whether TransferWithInsert could send to `node_id` with `timeout_ms` (0: the default):
  /// INVALID_ARGUMENT for an empty id, this node's own or a timeout over the limit, else the
  /// peer lookup's status (NOT_FOUND for a node nobody knows). Connects to the peer.
  Status CheckDestination(std::string_view node_id, uint32_t timeout_ms);
  /// Reads a client's region into this node's blocks, which must be allocated under
  /// dst_lease_id and not yet inserted. INVALID_ARGUMENT for counts that differ, a range outside
  /// the region or a malformed descriptor; the lease's errors; UNAVAILABLE / DEADLINE_EXCEEDED
  /// as Transfer (the endpoint is closed, so nothing more is read into the blocks).
  Status TransferFromRegion(const v1::TransferFromRegionRequest& req, v1::TransferResponse* resp);

  // ---- The receiving side of transfers sent as messages (TCP-only links, docs/transport.md)

  /// Registers this node's `blocks` (held by `lease_id` for writing) as the windows of a new
  /// messages token that a peer's SendMessages may fill for `ttl_ms`
  /// (TransferEngine::ExpectMessages), at most until shortly before the lease ends
  /// (`lease_left_ms`). INVALID_ARGUMENT for a ttl of 0 or over the timeout limit;
  /// FAILED_PRECONDITION for a block in the GPU tier or a lease about to end.
  Result<uint64_t> ExpectMessages(uint64_t lease_id, std::span<const BlockLocation> blocks,
                                  uint32_t ttl_ms, uint32_t lease_left_ms);
  /// Waits up to `timeout_ms` until every byte of `token` (registered under `lease_id`) landed;
  /// the token then ends. NOT_FOUND for a token that lease does not hold; otherwise as
  /// TransferEngine::AwaitMessages, with the message naming the token.
  Status AwaitMessages(uint64_t lease_id, uint64_t token, uint32_t timeout_ms);
  /// Ends the tokens of `lease_id` (its blocks are about to be freed): no message writes into
  /// them once this returns.
  void ReleaseLease(uint64_t lease_id);

 private:
  /// Writes into a lease's blocks end this long before the lease at the latest.
  static constexpr uint32_t kLeaseMarginMs = 50;
  /// `timeout_ms`, cut so that writes into the blocks of `lease_id` (with `lease_left_ms`
  /// left) end kLeaseMarginMs before it: past its end they may belong to someone else.
  /// FAILED_PRECONDITION for a lease with kLeaseMarginMs or less left.
  static Result<uint32_t> WithinLease(uint32_t timeout_ms, uint64_t lease_id,
                                      uint32_t lease_left_ms);
  Result<uint32_t> TimeoutOf(uint32_t requested_ms) const;
  /// The ops of one batch: those whose local side is in host memory go to the engine as one
  /// batch, those on the GPU tier through `staging_`.
  struct Ops {
    std::vector<transport::TransferOp> host;
    std::vector<transport::TransferOp> device;
    uint64_t bytes() const;
    /// Adds the op for `block` of this node (host or GPU tier) and `remote_address`.
    void Add(const NodeTransfer& self, const BlockLocation& block, uint64_t remote_address);
  };
  /// The ops whose remote side lies in one remote region (a client region, or one slab of a
  /// peer's pool, which has its own key).
  struct Batch {
    transport::RemoteRegion remote;
    Ops ops;
  };
  /// Puts (or Gets) every batch to (from) `peer` and waits for all; with a `message_token`,
  /// sends the host ops as messages for it instead of Putting them. On failure closes the
  /// endpoint (PeerDirectory::Forget for nodes) so nothing more moves.
  Status RunBatch(bool is_put, transport::PeerId endpoint, std::span<const Batch> batches,
                  uint32_t timeout_ms, std::string_view node_id, std::string_view what,
                  uint64_t message_token = 0);
  /// Writes this node's `src` blocks into `peer`'s `dst` blocks (equal counts and lengths,
  /// checked first; `dst_verb` says how the peer produced them, for the error), each with the
  /// key of its slab from `dst_list` (the peer's BlockList), as messages of `message_token`
  /// when it is not 0; returns bytes.
  Result<uint64_t> PutToNode(const PeerNode& peer, std::span<const BlockLocation> src,
                             std::span<const BlockLocation> dst, const v1::BlockList& dst_list,
                             uint32_t timeout_ms, std::string_view dst_verb,
                             uint64_t message_token);
  /// Whether to send `src` to `peer` as messages: the link is TCP alone (where UCX 1.13 may
  /// abort the target of a Put whose writer dies) and every block is in host memory.
  bool UseMessages(const PeerNode& peer, std::span<const BlockLocation> src);
  /// Moves `blocks` of this node to (is_put) or from a client region, one block per region
  /// offset, after checking the offsets; fills `resp`.
  Status RegionBatch(bool is_put, const v1::RegionBlocks& region,
                     std::span<const BlockLocation> blocks, uint32_t timeout_ms,
                     std::string_view what, std::chrono::steady_clock::time_point start,
                     v1::TransferResponse* resp);
  /// Connects to a client region's engine and finishes the handshake.
  Result<transport::PeerId> ConnectRegion(const v1::RegionBlocks& region,
                                          const transport::RemoteRegion& remote);

  const NodeTransferOptions options_;
  node::MemPool* const pool_;
  transport::TransferEngine* const engine_;
  const uint64_t local_region_base_;
  PeerDirectory* const peers_;
  transport::StagedCopier* const staging_;

  // Messages tokens by the lease holding their windows, with their expiry.
  struct LeaseToken {
    uint64_t token = 0;
    std::chrono::steady_clock::time_point expires;
  };
  absl::Mutex tokens_mu_;
  std::multimap<uint64_t, LeaseToken> tokens_by_lease_ ABSL_GUARDED_BY(tokens_mu_);
  // The entry of `token` under `lease_id`, or tokens_by_lease_.end().
  std::multimap<uint64_t, LeaseToken>::iterator FindTokenLocked(uint64_t lease_id, uint64_t token)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(tokens_mu_);
};

}  // namespace kvpool::daemon
