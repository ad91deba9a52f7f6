// Value types of the MemPool API, shared by the client library and the node.
// Plain structs: thread-compatible, cheap to move.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/block_hash.h"

namespace kvpool {

/// Memory tier of a block.
enum class Tier : uint8_t {
  kNone = 0,  ///< absent (Exists), or "the default tier" in requests
  kGpu = 1,   ///< device memory (CUDA); read and written through pinned staging (docs/gpu.md)
  kHost = 2,  ///< host DRAM
  kDisk = 3,  ///< SSD tier (RocksDB); never RDMA-readable: promoted to kHost before a read
};
/// "none", "gpu", "host" or "disk".
std::string_view TierName(Tier tier);

/// An opaque handle of one block, valid on the node that issued it. Stale handles (of freed or
/// evicted blocks) and handles of other namespaces are refused, not misread.
using BlockHandle = uint64_t;

/// A namespace: one model and KV layout. All fields are fixed at creation.
struct NamespaceSpec {
  /// [A-Za-z0-9._-], 1..128 characters.
  std::string name;
  /// Tokens per block, > 0 (e.g. 16, 64, 256, 512).
  uint32_t block_tokens = 0;
  /// Bytes of KV per block (all layers, K and V), a positive multiple of 64.
  uint64_t block_bytes = 0;
  /// Tenant isolation: equal tokens under different salts never match. Default: empty.
  std::string salt;

  friend bool operator==(const NamespaceSpec&, const NamespaceSpec&) = default;
};

/// Counters of one namespace on one node.
struct NamespaceStats {
  uint64_t allocated_blocks = 0;  ///< leased by AllocMem, not yet inserted
  uint64_t cached_blocks = 0;     ///< in the prompt tree
  uint64_t pinned_blocks = 0;     ///< cached blocks with at least one read lease
  uint64_t reserved_bytes = 0;    ///< arena bytes held by this namespace's slabs
  uint64_t used_bytes = 0;        ///< bytes of live blocks (allocated, cached, detached)
  uint64_t hit_blocks = 0;        ///< blocks returned by Match
  uint64_t miss_blocks = 0;       ///< blocks asked for by Match and not found
  uint64_t match_requests = 0;
  uint64_t inserted_blocks = 0;
  uint64_t deduplicated_blocks = 0;
  uint64_t evicted_blocks = 0;
  uint64_t deleted_blocks = 0;
  uint64_t index_bytes = 0;       ///< memory of the prompt tree
  uint64_t disk_blocks = 0;       ///< blocks the SSD tier stores (some may be on HOST too)
  uint64_t demoted_blocks = 0;    ///< blocks moved down a tier: GPU to HOST or DISK, HOST to DISK (pressure or SwapOut)
  uint64_t promoted_blocks = 0;   ///< DISK blocks read back into pool memory
  uint64_t written_behind_blocks = 0;  ///< HOST blocks written to the SSD tier ahead of eviction
  uint64_t gpu_used_bytes = 0;    ///< bytes of live GPU-tier blocks (not in used_bytes)
};

/// A namespace as a node knows it.
struct NamespaceInfo {
  NamespaceSpec spec;
  /// Numeric id, unique for the node's lifetime (part of every block handle).
  uint32_t id = 0;
  /// h[-1] of the namespace (docs/hashing.md).
  BlockHash root_hash;
  NamespaceStats stats;
};

/// A pin with a deadline. Leased blocks are never evicted or reused; a lease that is not renewed
/// expires by itself and releases its blocks, so a crashed client leaks nothing.
struct Lease {
  /// 0 means "no lease".
  uint64_t id = 0;
  /// Time left when the node answered, in milliseconds.
  uint32_t ttl_ms = 0;
};

/// Where one block lives on its node.
struct BlockLocation {
  BlockHandle handle = 0;
  Tier tier = Tier::kNone;
  /// Byte offset of the block in the node's pool region.
  uint64_t offset = 0;
  /// Bytes of the block (the namespace's block_bytes).
  uint64_t length = 0;
};

/// Result of AllocMem: fresh blocks held by a new lease.
struct Allocation {
  Lease lease;
  std::vector<BlockLocation> blocks;
};

/// Result of Insert.
struct InsertResult {
  uint32_t inserted_blocks = 0;
  uint32_t duplicate_blocks = 0;
  /// The cached block of each inserted position: the caller's, or the one already cached.
  std::vector<BlockHandle> handles;
  /// Per position: true when the block was already cached and the caller's copy was freed.
  std::vector<bool> duplicate;
};

/// Result of Match.
struct MatchResult {
  /// Length of the cached run from start_block.
  uint32_t matched_blocks = 0;
  /// Full blocks in the prompt.
  uint32_t prompt_blocks = 0;
  /// Locations of the matched blocks, in prompt order.
  std::vector<BlockLocation> blocks;
  /// The read lease pinning them (id 0 unless one was asked for and something matched).
  Lease lease;
};

/// Result of Exists: the tier of each block of the prompt (kNone where absent).
struct ExistsResult {
  std::vector<Tier> tiers;
  uint32_t present_blocks = 0;
};

/// Memory a client registered with its data plane, described so that a kvpoold node can write
/// into it (DataPlane::ExportRegion; Client::TransferToRegion). Opaque bytes travel as is.
struct RegionDescriptor {
  /// The client's transfer engine address.
  std::string worker_address;
  /// Address of the region's first byte in the client's process. Default: 0.
  uint64_t base = 0;
  /// Default: 0.
  uint64_t size_bytes = 0;
  /// Packed remote key of the region.
  std::string rkey;
};

/// Destination blocks on another kvpoold node, allocated there under `lease_id`.
struct NodeBlocks {
  std::string node_id;
  uint64_t lease_id = 0;
  std::vector<BlockHandle> handles;
};

/// Result of a node-driven Transfer.
struct TransferResult {
  uint32_t blocks = 0;
  uint64_t bytes = 0;
  /// From the node's checks to the last byte landing, in microseconds.
  uint64_t elapsed_us = 0;
};

/// Result of TransferWithInsert.
struct TransferWithInsertResult {
  /// The node that stored the blocks (the scheduler's choice when none was given).
  std::string dst_node;
  uint32_t inserted_blocks = 0;
  /// Blocks already cached on the destination (its new copy was dropped).
  uint32_t duplicate_blocks = 0;
  uint64_t bytes = 0;
  uint64_t elapsed_us = 0;
};

/// Blocks a lease holds, as the node resolved them (Client::ResolveBlocks).
struct ResolvedBlocks {
  /// The lease's namespace.
  NamespaceSpec spec;
  std::vector<BlockLocation> blocks;
  /// BlockChecksum of each block's bytes on the node, when asked for.
  std::vector<uint64_t> checksums;
};

/// Node-wide counters.
struct PoolStats {
  std::string node_id;
  uint64_t capacity_bytes = 0;
  uint64_t used_bytes = 0;      ///< bytes of live blocks
  uint64_t reserved_bytes = 0;  ///< bytes claimed by namespaces' slabs
  uint64_t free_bytes = 0;      ///< arena bytes not claimed by any slab
  /// "hugetlb", "transparent_huge", "plain", or "external" (memory adopted from the data plane)
  std::string page_mode;
  uint64_t active_leases = 0;
  uint64_t expired_leases = 0;  ///< total since start
  uint64_t uptime_ms = 0;
  /// SSD tier: capacity and bytes of block data stored (0 and 0 without one).
  uint64_t disk_capacity_bytes = 0;
  uint64_t disk_used_bytes = 0;
  /// SSD tier's measured read bandwidth in bytes/s (a running estimate over its block reads,
  /// docs/storage.md "Measured read bandwidth"); 0 without a tier or before any read.
  double disk_read_bytes_per_s = 0;
  /// GPU tier: device memory of the pool and bytes of it no slab holds (0 and 0 without one),
  /// and the device ("cuda:0 NVIDIA H100 80GB HBM3 (79.6 GiB)"; empty without one).
  uint64_t gpu_capacity_bytes = 0;
  uint64_t gpu_free_bytes = 0;
  std::string gpu_device;
  std::vector<NamespaceInfo> namespaces;
};

/// A prompt as an operation receives it: token ids or precomputed chained block hashes, always
/// from the prompt's first block. Exactly one of the two is non-empty. Borrowed views: the
/// caller keeps the data alive for the duration of the call.
struct PromptView {
  std::span<const uint32_t> tokens;
  std::span<const BlockHash> hashes;

  static PromptView Tokens(std::span<const uint32_t> t) { return {t, {}}; }
  static PromptView Hashes(std::span<const BlockHash> h) { return {{}, h}; }
};

}  // namespace kvpool
