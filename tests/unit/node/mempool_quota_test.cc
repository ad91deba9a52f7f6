// Per-namespace quotas (MemPoolOptions::namespace_quota_bytes) and LeaseNamespace.
#include <catch2/catch.hpp>
#include <numeric>
#include <string>
#include <vector>

#include "common/clock.h"
#include "node/mempool.h"

namespace kvpool::node {
namespace {

constexpr uint32_t kBlockTokens = 4;
constexpr uint64_t kBlockBytes = 4096;

NamespaceSpec Spec(std::string name) { return {std::move(name), kBlockTokens, kBlockBytes, ""}; }

std::vector<uint32_t> Tokens(uint32_t first, uint32_t blocks) {
  std::vector<uint32_t> t(blocks * kBlockTokens);
  std::iota(t.begin(), t.end(), first);
  return t;
}

std::vector<BlockHandle> Handles(const Allocation& a) {
  std::vector<BlockHandle> out;
  for (const BlockLocation& b : a.blocks) out.push_back(b.handle);
  return out;
}

struct QuotaPool {
  explicit QuotaPool(MemPoolOptions o = {}) {
    o.capacity_bytes = 256 * kBlockBytes;
    o.huge_pages = false;
    o.slab_bytes = 8 * kBlockBytes;
    auto created = MemPool::Create(o, &clock);
    REQUIRE(created.ok());
    pool = std::move(created).value();
    for (const char* ns : {"capped", "other"}) REQUIRE(pool->CreateNamespace(Spec(ns)).ok());
  }
  void Publish(const std::string& ns, uint32_t first, uint32_t blocks) {
    auto alloc = pool->AllocMem(ns, blocks, Tier::kHost, 0);
    REQUIRE(alloc.ok());
    REQUIRE(pool->Insert(ns, PromptView::Tokens(Tokens(first, blocks)), 0, Handles(*alloc),
                         alloc->lease.id, false)
                .ok());
    REQUIRE(pool->Release(alloc->lease.id).ok());
  }
  NamespaceStats Stats(const std::string& ns) { return pool->GetNamespace(ns)->stats; }

  ManualClock clock;
  std::unique_ptr<MemPool> pool;
};

MemPoolOptions CappedAt(uint64_t blocks) {
  MemPoolOptions o;
  o.namespace_quota_bytes["capped"] = blocks * kBlockBytes;
  return o;
}

TEST_CASE("Quota: an allocation past it evicts the namespace's own cold blocks first",
          "[node][quota]") {
  QuotaPool p(CappedAt(8));
  p.Publish("other", 1000, 20);
  p.Publish("capped", 0, 6);
  auto alloc = p.pool->AllocMem("capped", 5, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  CHECK(p.Stats("capped").cached_blocks == 3);      // 6 + 5 - 8 = 3 of its own went
  CHECK(p.Stats("capped").evicted_blocks == 3);
  CHECK(p.Stats("other").cached_blocks == 20);      // never another namespace's
  CHECK(p.Stats("other").evicted_blocks == 0);
  CHECK(p.pool->AllocMem("capped", 3, Tier::kHost, 0).ok());  // 5 + 3 = 8: at the quota
}

TEST_CASE("Quota: RESOURCE_EXHAUSTED names the namespace and the quota when nothing can go",
          "[node][quota]") {
  QuotaPool p(CappedAt(8));
  auto held = p.pool->AllocMem("capped", 6, Tier::kHost, 0);
  REQUIRE(held.ok());
  Result<Allocation> over = p.pool->AllocMem("capped", 3, Tier::kHost, 0);
  REQUIRE(over.status().code() == StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(over.status().message()),
             Catch::Contains("namespace 'capped' is over its quota of 32 KiB") &&
                 Catch::Contains("8 blocks") && Catch::Contains("6 allocated"));
  Result<Allocation> never = p.pool->AllocMem("capped", 9, Tier::kHost, 0);
  CHECK(never.status().code() == StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(never.status().message()), Catch::Contains("can never fit"));
  // A failed allocation leaves no lease behind; other namespaces allocate freely.
  CHECK(p.pool->GetStats().active_leases == 1);
  CHECK(p.pool->AllocMem("other", 100, Tier::kHost, 0).ok());
  // Pinned blocks count and are not evicted.
  REQUIRE(p.pool->Release(held->lease.id).ok());
  p.Publish("capped", 0, 6);
  auto pinned = p.pool->Match("capped", PromptView::Tokens(Tokens(0, 6)), 0, true, 0);
  REQUIRE(pinned.ok());
  CHECK(p.pool->AllocMem("capped", 3, Tier::kHost, 0).status().code() ==
        StatusCode::kResourceExhausted);
  CHECK(p.Stats("capped").cached_blocks == 6);
}

TEST_CASE("Quota: the default applies to unlisted namespaces; 0 lifts it", "[node][quota]") {
  MemPoolOptions o;
  o.default_namespace_quota_bytes = 4 * kBlockBytes;
  o.namespace_quota_bytes["capped"] = 0;
  QuotaPool p(o);
  CHECK(p.pool->AllocMem("capped", 50, Tier::kHost, 0).ok());
  CHECK(p.pool->AllocMem("other", 4, Tier::kHost, 0).ok());
  CHECK(p.pool->AllocMem("other", 1, Tier::kHost, 0).status().code() ==
        StatusCode::kResourceExhausted);
  MemPoolOptions bad;
  bad.namespace_quota_bytes["no spaces"] = 1;
  CHECK(bad.Validate().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("LeaseNamespace: the namespace of a lease; lease errors as Renew's", "[node]") {
  QuotaPool p;
  auto alloc = p.pool->AllocMem("other", 1, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  CHECK(*p.pool->LeaseNamespace(alloc->lease.id) == "other");
  CHECK(p.pool->LeaseNamespace(0).status().code() == StatusCode::kInvalidArgument);
  CHECK(p.pool->LeaseNamespace(12345).status().code() == StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvpool::node
