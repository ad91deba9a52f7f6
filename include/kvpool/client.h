// libkvpool: the client library that inference servers link to use a kvpoold node.
//
//   auto client = kvpool::Client::Connect("127.0.0.1:7700");
//   if (!client.ok()) ...;
//   kvpool::NamespaceSpec spec{"llama3-8b", 16, 2 << 20, ""};
//   (*client)->CreateNamespace(spec);
//   auto alloc = (*client)->AllocMem("llama3-8b", 4);           // blocks + lease
//   ... write KV into the blocks (data plane: see the transfer API) ...
//   (*client)->Insert("llama3-8b", PromptView::Tokens(tokens), 0, handles, alloc->lease.id);
//   auto hit = (*client)->Match("llama3-8b", PromptView::Tokens(tokens));
//
// Only std and kvpool types appear here: no gRPC, protobuf or absl.
#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/status.h"
#include "kvpool/types.h"

namespace kvpool {

struct ClientOptions {
  /// Deadline of each call, in milliseconds. Default: 10000.
  uint32_t timeout_ms = 10'000;
  /// How long Connect waits for the server to answer, in milliseconds. Default: 5000.
  uint32_t connect_timeout_ms = 5'000;
  /// Largest message sent or received, in bytes. Default: 64 MiB.
  uint32_t max_message_bytes = 64u << 20;
  /// Connect with TLS, trusting the system's CA roots unless tls_ca_file is set. Setting
  /// tls_ca_file or tls_cert_file also turns TLS on. Default: false (plaintext, unless the
  /// process's default says otherwise: see docs/security.md).
  bool tls = false;
  /// PEM file of the CA the server's certificate must chain to. Default: "" (system roots).
  std::string tls_ca_file;
  /// PEM certificate and private key this client presents, for servers that require mutual
  /// TLS. Both or neither. Default: "" (none).
  std::string tls_cert_file;
  std::string tls_key_file;
  /// Bearer token sent as `authorization: Bearer <token>` on every call; needs TLS.
  /// Default: "" (none).
  std::string auth_token;
};

/// What one Client::Drain call did, and what the node still holds (kvpoolctl drain).
struct DrainProgress {
  /// The node was draining before this call.
  bool was_draining = false;
  /// The node reports to a scheduler, and the scheduler confirmed the draining state.
  bool has_scheduler = false;
  bool scheduler_acknowledged = false;
  /// The node has an SSD tier; without one nothing can be demoted.
  bool has_disk_tier = false;
  /// Host blocks moved to the SSD tier by this call, and blocks that left host memory but could
  /// not be written (SSD tier full of blocks it may not drop).
  uint64_t demoted_blocks = 0;
  uint64_t dropped_blocks = 0;
  /// After the call: cached blocks still in memory, of which pinned by leases (they move once
  /// released), blocks allocated but not yet inserted, blocks on the SSD tier.
  uint64_t host_blocks = 0;
  uint64_t pinned_blocks = 0;
  uint64_t allocated_blocks = 0;
  uint64_t disk_blocks = 0;
  uint32_t namespaces = 0;
  /// With DrainOptions::handoff_node: blocks copied to that node and inserted there, blocks it
  /// had cached already, bytes moved and TransferWithInsert calls (one per chain of blocks).
  uint64_t handed_off_blocks = 0;
  uint64_t handoff_duplicate_blocks = 0;
  uint64_t handoff_bytes = 0;
  uint32_t handoff_chains = 0;
};

/// One Client::Drain call.
struct DrainOptions {
  /// Most host blocks to demote to the SSD tier in this call; 0: all it can. Default: 0.
  uint64_t max_blocks = 0;
  /// Demote host blocks to the SSD tier; false only marks the node draining. Default: true.
  bool demote = true;
  /// How long to wait for the scheduler to confirm, in ms; 0: 2000. Default: 0.
  uint32_t scheduler_timeout_ms = 0;
  /// Before demoting, copy every cached GPU and HOST block to this peer node (a node id the
  /// draining node knows: --peer or the scheduler), which inserts and serves them; empty: no
  /// hand-off. Needs demote. Default: empty.
  std::string handoff_node;
  /// Time each chain's transfer may take, in ms; 0: the node's default. Default: 0.
  uint32_t handoff_timeout_ms = 0;
};

/// What Client::Undrain did.
struct UndrainResult {
  bool was_draining = false;
  bool has_scheduler = false;
  bool scheduler_acknowledged = false;
};

/// A connection to one kvpoold node.
///
/// Every call is a blocking unary RPC that returns the node's status unchanged: INVALID_ARGUMENT,
/// NOT_FOUND, ALREADY_EXISTS, FAILED_PRECONDITION, RESOURCE_EXHAUSTED as documented
/// for each call below and in docs/api.md; UNAVAILABLE when the node cannot be reached;
/// DEADLINE_EXCEEDED when it does not answer within ClientOptions::timeout_ms.
///
/// Thread-safe: one Client may be shared by many threads.
class Client {
 public:
  /// Connects to `address` (host:port) and waits until the node answers a health check.
  /// UNAVAILABLE if it does not within connect_timeout_ms.
  static Result<std::unique_ptr<Client>> Connect(std::string_view address,
                                                 const ClientOptions& options = {});
  ~Client();
  Client(const Client&) = delete;
  Client& operator=(const Client&) = delete;

  const std::string& address() const;

  /// True if the node reports SERVING on the gRPC health service.
  Result<bool> Health();

  // ---- Namespaces ----------------------------------------------------------------------------

  /// Creates a namespace; returns its info and whether it was created (false: it existed with
  /// equal parameters). ALREADY_EXISTS if it exists with other parameters; INVALID_ARGUMENT for
  /// a bad name, block_tokens or block_bytes.
  Result<std::pair<NamespaceInfo, bool>> CreateNamespace(const NamespaceSpec& spec);
  /// NOT_FOUND if unknown.
  Result<NamespaceInfo> GetNamespace(std::string_view name);
  Result<std::vector<NamespaceInfo>> ListNamespaces();
  /// Deletes a namespace and its blocks; returns how many blocks were live. FAILED_PRECONDITION
  /// while leases of it are active.
  Result<uint64_t> DeleteNamespace(std::string_view name);

  // ---- Memory --------------------------------------------------------------------------------

  /// Allocates `n_blocks` blocks, all or nothing, under a new lease (`lease_ttl_ms` 0: the
  /// node's default). May evict cold cached blocks; RESOURCE_EXHAUSTED when it cannot.
  Result<Allocation> AllocMem(std::string_view ns, uint32_t n_blocks, Tier tier = Tier::kHost,
                              uint32_t lease_ttl_ms = 0);
  /// Frees allocated, never-inserted blocks held by `lease_id`. All or nothing.
  Result<uint32_t> FreeMem(std::string_view ns, uint64_t lease_id,
                           std::span<const BlockHandle> handles);

  // ---- Index ---------------------------------------------------------------------------------

  /// Publishes `handles[i]` as block `start_block + i` of `prompt`; they must be allocated under
  /// `lease_id`. Already-cached blocks are deduplicated (the caller's copy is freed; the result
  /// says which). Token prompts must be a whole number of blocks. With `durable` the node
  /// answers only once the blocks are synced to its SSD tier, so a crash of the node afterwards
  /// loses none of them (docs/storage.md); FAILED_PRECONDITION if the node has no SSD tier,
  /// RESOURCE_EXHAUSTED if the tier cannot take them (nothing is inserted then).
  Result<InsertResult> Insert(std::string_view ns, PromptView prompt, uint32_t start_block,
                              std::span<const BlockHandle> handles, uint64_t lease_id,
                              bool keep_pinned = false, bool durable = false);
  /// The longest cached run of the prompt from `start_block`; with `lease`, pins it under a new
  /// read lease that the caller must Release (or let expire). With a lease, blocks on the
  /// node's SSD tier are promoted to host memory first, so every returned block is readable;
  /// without one they come back with tier kDisk and handle 0.
  Result<MatchResult> Match(std::string_view ns, PromptView prompt, uint32_t start_block = 0,
                            bool lease = false, uint32_t lease_ttl_ms = 0);
  /// Per block of the prompt: cached here, and in which tier.
  Result<ExistsResult> Exists(std::string_view ns, PromptView prompt);
  /// Removes the prompt's last full block and everything cached below it; returns how many.
  Result<uint32_t> Delete(std::string_view ns, PromptView prompt);

  // ---- Leases --------------------------------------------------------------------------------

  /// Extends a lease. NOT_FOUND if unknown; FAILED_PRECONDITION if it already expired.
  Result<Lease> Renew(uint64_t lease_id, uint32_t lease_ttl_ms = 0);
  /// Ends a lease; returns how many blocks it still held.
  Result<uint32_t> Release(uint64_t lease_id);

  /// The locations of `handles`, checked the way a transfer checks them: each must be held by
  /// `lease_id` (for_write: allocated under it and not yet inserted; else also pinned by it).
  /// With `checksums`, the node also returns BlockChecksum of each block's bytes (it reads
  /// them: for debugging). NOT_FOUND / FAILED_PRECONDITION for a lease or block that does not
  /// qualify, naming it.
  Result<ResolvedBlocks> ResolveBlocks(uint64_t lease_id, std::span<const BlockHandle> handles,
                                       bool for_write, bool checksums = false);

  // ---- Node-driven transfers (kvpoold needs its data plane) ---------------------------------

  /// The node copies its blocks `src` (held by `src_lease_id` here) into blocks of another
  /// node (dst.node_id, known to the node by --peer or through the scheduler), which must be
  /// allocated there under dst.lease_id. `timeout_ms` 0: the node's default. With
  /// `verify_checksums` the node compares checksums of both ends afterwards (DATA_LOSS on a
  /// difference). INVALID_ARGUMENT for counts or block sizes that differ; NOT_FOUND for an
  /// unknown node; FAILED_PRECONDITION for blocks not held as required on either side;
  /// UNAVAILABLE when the destination dies mid-transfer; DEADLINE_EXCEEDED after `timeout_ms`.
  Result<TransferResult> TransferToNode(uint64_t src_lease_id, std::span<const BlockHandle> src,
                                        const NodeBlocks& dst, uint32_t timeout_ms = 0,
                                        bool verify_checksums = false);
  /// The node copies its blocks `src` into a client's registered memory (MemServe PD-basic:
  /// prefill's node writes straight into the decode instance's KV buffer): block i goes to
  /// region.base + offsets[i]. INVALID_ARGUMENT for a range outside the region or a malformed
  /// descriptor; UNAVAILABLE when the region's process cannot be reached or dies.
  Result<TransferResult> TransferToRegion(uint64_t src_lease_id, std::span<const BlockHandle> src,
                                          const RegionDescriptor& region,
                                          std::span<const uint64_t> offsets,
                                          uint32_t timeout_ms = 0);
  /// The reverse of TransferToRegion: the node reads `region` + offsets[i] into its own block
  /// dst[i], which must be allocated under `dst_lease_id` and not yet inserted (a prefill
  /// instance hands its KV to the pool without copying it itself; Insert afterwards).
  /// INVALID_ARGUMENT for counts that differ or a range outside the region;
  /// NOT_FOUND / FAILED_PRECONDITION for blocks the lease does not hold for writing;
  /// UNAVAILABLE when the region's process cannot be reached or dies.
  Result<TransferResult> TransferFromRegion(const RegionDescriptor& region,
                                            std::span<const uint64_t> offsets,
                                            uint64_t dst_lease_id,
                                            std::span<const BlockHandle> dst,
                                            uint32_t timeout_ms = 0);
  /// The node stores its blocks `src` (of namespace `ns`) on node `dst_node` (empty: the one
  /// the scheduler's Place picks) as blocks start_block.. of `prompt`: the destination
  /// allocates, this node writes, the destination inserts only once every byte landed. On any
  /// failure nothing becomes matchable there and the allocation is freed (at once, or when its
  /// lease expires if this node died). Errors as TransferToNode plus the destination's
  /// AllocMem and Insert statuses; FAILED_PRECONDITION when `ns` exists there with other
  /// parameters or no scheduler can choose a node.
  Result<TransferWithInsertResult> TransferWithInsert(std::string_view dst_node,
                                                      std::string_view ns, PromptView prompt,
                                                      uint32_t start_block,
                                                      uint64_t src_lease_id,
                                                      std::span<const BlockHandle> src,
                                                      uint32_t timeout_ms = 0);

  // ---- Admin ---------------------------------------------------------------------------------

  Result<PoolStats> GetStats();
  /// Evicts up to `n_blocks` cold unleased blocks (`ns` empty: any namespace).
  Result<uint64_t> Evict(std::string_view ns, uint64_t n_blocks);
  /// Moves up to `n_blocks` of the namespace's coldest unleased host blocks to the node's SSD
  /// tier (MemServe's SwapOut); returns how many were demoted. FAILED_PRECONDITION if the node
  /// has no SSD tier; INVALID_ARGUMENT for 0.
  Result<uint64_t> SwapOut(std::string_view ns, uint64_t n_blocks);
  /// Reads the prompt's blocks from `start_block` on that are on the SSD tier back into host
  /// memory (MemServe's SwapIn), unleased; returns how many. FAILED_PRECONDITION if the node
  /// has no SSD tier.
  Result<uint32_t> SwapIn(std::string_view ns, PromptView prompt, uint32_t start_block = 0);
  /// Admin: marks the node draining (its scheduler stops placing blocks on it and routing
  /// requests to instances on it; waits up to `scheduler_timeout_ms`, 0: 2000, for the
  /// scheduler to confirm) and demotes up to `max_blocks` (0: all it can) of its coldest
  /// unleased host blocks to its SSD tier (none unless `demote`). Call again to go on.
  /// PERMISSION_DENIED without the admin token (docs/operations.md "Drain a node").
  Result<DrainProgress> Drain(uint64_t max_blocks = 0, bool demote = true,
                              uint32_t scheduler_timeout_ms = 0);
  /// The same with every option, including a hand-off to a peer node (docs/operations.md):
  /// INVALID_ARGUMENT for a hand-off without demote, to the node itself or with a timeout over
  /// the node's limit; NOT_FOUND for a node it does not know; a failed transfer's status, with
  /// what was handed off before it (blocks handed off stay on the peer).
  Result<DrainProgress> Drain(const DrainOptions& options);
  /// Admin: ends draining; the scheduler places on and routes to the node again.
  Result<UndrainResult> Undrain(uint32_t scheduler_timeout_ms = 0);

 private:
  friend class DataPlane;  // shares the Client's lease book (client/lib/lease_book.h)
  struct Impl;
  explicit Client(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvpool
