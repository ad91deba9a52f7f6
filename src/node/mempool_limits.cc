// MemPool's per-namespace quotas (MemPoolOptions::namespace_quota_bytes) and the lease lookup
// of namespace-scoped tokens. Kept apart from mempool.cc: AllocateWithEvictionLocked only calls
// EnforceQuotaLocked.
#include <string>

#include "common/quote.h"
#include "common/units.h"
#include "node/mempool.h"

namespace kvpool::node {

Status MemPool::EnforceQuotaLocked(NamespaceState& ns, size_t n) {
  const std::string& name = ns.spec().name;
  const uint64_t quota_bytes = options_.QuotaBytesOf(name);
  if (quota_bytes == 0) return Status::Ok();
  const uint64_t block_bytes = ns.spec().block_bytes;
  const uint64_t quota = quota_bytes / block_bytes;
  auto limited = [&] {
    return "namespace " + Quote(name) + " is over its quota of " + FormatBytes(quota_bytes) +
           " of host memory (" + std::to_string(quota) + " blocks of " +
           std::to_string(block_bytes) + " bytes; kvpoold --namespace-quota)";
  };
  if (n > quota) {
    return ResourceExhaustedError(limited() + ": " + std::to_string(n) +
                                  " blocks can never fit");
  }
  const uint64_t used = ns.allocator().used_blocks();
  if (used + n <= quota) return Status::Ok();
  // Its own coldest unleased HOST blocks make room (demoted to the SSD tier when there is one);
  // another namespace's blocks never do: a quota is this namespace's business only.
  EvictFromLocked(ns, used + n - quota, Tier::kHost);
  const uint64_t now_used = ns.allocator().used_blocks();
  if (now_used + n <= quota) return Status::Ok();
  return ResourceExhaustedError(limited() + ": " + std::to_string(now_used) +
                                " blocks in use (" + std::to_string(ns.allocated_blocks) +
                                " allocated, " + std::to_string(ns.pinned_blocks) +
                                " pinned) and none of them can be evicted for " +
                                std::to_string(n) + " more");
}

Result<std::string> MemPool::LeaseNamespace(uint64_t lease_id) {
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(LeaseRecord * lease, FindLeaseLocked(lease_id, nullptr));
  auto it = namespaces_by_id_.find(lease->namespace_id);
  if (it == namespaces_by_id_.end()) {
    return NotFoundError("lease " + std::to_string(lease_id) + " belongs to a deleted namespace");
  }
  return it->second->spec().name;
}

}  // namespace kvpool::node
