// Options of one MemPool node.
#pragma once

#include <cstdint>
#include <map>
#include <string>

#include "kvpool/status.h"

namespace kvpool::node {

struct MemPoolOptions {
  /// Name of this node in stats and logs. Default: "kvpoold".
  std::string node_id = "kvpoold";
  /// Bytes of host memory in the pool. Must be > 0. Default: 1 GiB.
  uint64_t capacity_bytes = 1ull << 30;
  /// Try huge pages for the arena (hugetlb, then transparent). Default: true.
  bool huge_pages = true;
  /// Target bytes of one slab, the unit in which namespaces claim arena memory; 0 picks
  /// SlabBytesFor's automatic size. Capped at capacity_bytes / 8 so several namespaces fit;
  /// never smaller than one block. Default: 0 (automatic).
  uint64_t slab_bytes = 0;
  /// Lease time-to-live when a request gives 0, in ms. Default: 30000.
  uint32_t default_lease_ttl_ms = 30'000;
  /// Largest lease time-to-live a request may ask for, in ms. Default: 600000 (10 minutes).
  uint32_t max_lease_ttl_ms = 600'000;
  /// Most blocks one request may name (hashes, handles, allocations). Default: 65536.
  uint32_t max_request_blocks = 65'536;
  /// Most namespaces at once. Default: 256.
  uint32_t max_namespaces = 256;
  /// Largest block_tokens a namespace may have. Default: 65536.
  uint32_t max_block_tokens = 65'536;
  /// Largest block_bytes a namespace may have. Default: 1 GiB.
  uint64_t max_block_bytes = 1ull << 30;
  /// Per-namespace quotas: the most bytes of host memory the blocks of one namespace may hold
  /// (allocated, cached and deleted-but-pinned; the GPU and SSD tiers are not counted), by
  /// namespace name (kvpoold --namespace-quota NAME=BYTES). A namespace not listed gets
  /// default_namespace_quota_bytes; 0 means no quota. An allocation past the quota evicts that
  /// namespace's own cold blocks, never another's, else fails RESOURCE_EXHAUSTED. Default: none.
  std::map<std::string, uint64_t> namespace_quota_bytes;
  /// Quota of namespaces not in namespace_quota_bytes; 0: none. Default: 0.
  uint64_t default_namespace_quota_bytes = 0;
  /// Write-behind (with an SSD tier; MemPool::WriteBehind): how many bytes at the head of each
  /// namespace's eviction order are kept written to the SSD tier ahead of time, so that host
  /// eviction drops those blocks without writing them under the pool's lock; capped at an
  /// eighth of capacity_bytes and a quarter of the SSD tier. Active only while host memory has
  /// fewer free bytes than that. When on, a demotion that must write under the pool's lock
  /// defers the deletes that make room for it to the next WriteBehind call, which the owner
  /// must then make periodically (kvpoold: every 10 ms). 0: off (kvpoold --write-behind).
  /// Default: 64 MiB.
  uint64_t write_behind_bytes = 64ull << 20;

  /// The quota of namespace `name` in bytes (0: none).
  uint64_t QuotaBytesOf(const std::string& name) const {
    auto it = namespace_quota_bytes.find(name);
    return it != namespace_quota_bytes.end() ? it->second : default_namespace_quota_bytes;
  }

  /// OK, or INVALID_ARGUMENT naming the first bad field and its value.
  /// The slab size of a namespace with blocks of `block_bytes`: slab_bytes, or when it is 0
  /// 32 MiB, grown to capacity / 1024 on pools over 32 GiB, so that a pool never has more than
  /// about 1,024 slabs (each slab of a pool on the data plane is its own UCX allocation: a
  /// System V segment, of which a host has 4,096 by default, or an open shared-memory file).
  /// Then capped at capacity / 8 and raised to one block.
  uint64_t SlabBytesFor(uint64_t block_bytes) const;
  Status Validate() const;
};

}  // namespace kvpool::node
