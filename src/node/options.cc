#include "node/options.h"

#include <algorithm>
#include <string>

#include "node/validation.h"

namespace kvpool::node {

uint64_t MemPoolOptions::SlabBytesFor(uint64_t block_bytes) const {
  constexpr uint64_t kDefaultSlabBytes = 32ull << 20;
  constexpr uint64_t kMaxSlabs = 1024;
  const uint64_t target =
      slab_bytes != 0 ? slab_bytes : std::max(kDefaultSlabBytes, capacity_bytes / kMaxSlabs);
  return std::max(block_bytes, std::min(target, capacity_bytes / 8));
}

Status MemPoolOptions::Validate() const {
  if (node_id.empty()) return InvalidArgumentError("node_id must not be empty");
  if (capacity_bytes == 0) return InvalidArgumentError("capacity_bytes must be > 0");
  if (default_lease_ttl_ms == 0) return InvalidArgumentError("default_lease_ttl_ms must be > 0");
  if (max_lease_ttl_ms < default_lease_ttl_ms) {
    return InvalidArgumentError("max_lease_ttl_ms (" + std::to_string(max_lease_ttl_ms) +
                                ") is below default_lease_ttl_ms (" +
                                std::to_string(default_lease_ttl_ms) + ")");
  }
  if (max_request_blocks == 0) return InvalidArgumentError("max_request_blocks must be > 0");
  if (max_namespaces == 0 || max_namespaces > 65'535) {
    return InvalidArgumentError("max_namespaces must be in 1..65535, got " +
                                std::to_string(max_namespaces));
  }
  if (max_block_tokens == 0) return InvalidArgumentError("max_block_tokens must be > 0");
  if (max_block_bytes < 64) {
    return InvalidArgumentError("max_block_bytes must be >= 64, got " + std::to_string(max_block_bytes));
  }
  for (const auto& [name, bytes] : namespace_quota_bytes) {
    if (Status st = ValidateNamespaceName(name); !st.ok()) {
      return InvalidArgumentError("namespace quota: " + std::string(st.message()));
    }
  }
  return Status::Ok();
}

}  // namespace kvpool::node
