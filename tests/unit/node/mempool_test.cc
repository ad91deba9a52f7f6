#include "node/mempool.h"

#include <catch2/catch.hpp>
#include <map>
#include <numeric>
#include <optional>
#include <random>
#include <set>

#include "common/clock.h"
#include "kvpool/block_hash.h"
#include "node/block_handle.h"

namespace kvpool::node {
namespace {

constexpr uint32_t kBlockTokens = 4;
constexpr uint64_t kBlockBytes = 4096;

// A pool of `blocks` blocks of 4 KiB with one namespace "ns" (4-token blocks), on a manual clock.
struct Fixture {
  explicit Fixture(uint64_t blocks = 64, uint32_t default_ttl_ms = 1000) {
    MemPoolOptions o;
    o.capacity_bytes = blocks * kBlockBytes;
    o.huge_pages = false;
    o.slab_bytes = 8 * kBlockBytes;
    o.default_lease_ttl_ms = default_ttl_ms;
    o.max_lease_ttl_ms = 60'000;
    o.max_request_blocks = 1024;
    o.max_namespaces = 4;
    auto created = MemPool::Create(o, &clock);
    REQUIRE(created.ok());
    pool = std::move(created).value();
    REQUIRE(pool->CreateNamespace(Spec("ns")).ok());
  }

  static NamespaceSpec Spec(std::string name, std::string salt = "") {
    return NamespaceSpec{std::move(name), kBlockTokens, kBlockBytes, std::move(salt)};
  }

  static std::vector<BlockHandle> Handles(const Allocation& a) {
    std::vector<BlockHandle> out;
    for (const auto& b : a.blocks) out.push_back(b.handle);
    return out;
  }

  // Allocates and inserts a whole token prompt; returns the insert result.
  InsertResult Publish(const std::vector<uint32_t>& tokens, std::string ns = "ns") {
    const uint32_t n = static_cast<uint32_t>(tokens.size() / kBlockTokens);
    auto alloc = pool->AllocMem(ns, n, Tier::kHost, 0);
    REQUIRE(alloc.ok());
    auto ins = pool->Insert(ns, PromptView::Tokens(tokens), 0, Handles(*alloc), alloc->lease.id, false);
    REQUIRE(ins.ok());
    REQUIRE(pool->Release(alloc->lease.id).ok());
    return *ins;
  }

  uint32_t Matched(const std::vector<uint32_t>& tokens, uint32_t start = 0) {
    auto m = pool->Match("ns", PromptView::Tokens(tokens), start, false, 0);
    REQUIRE(m.ok());
    return m->matched_blocks;
  }

  NamespaceStats Stats(const std::string& ns = "ns") {
    auto info = pool->GetNamespace(ns);
    REQUIRE(info.ok());
    return info->stats;
  }

  ManualClock clock;
  std::unique_ptr<MemPool> pool;
};

std::vector<uint32_t> Tokens(uint32_t first, uint32_t count) {
  std::vector<uint32_t> t(count);
  std::iota(t.begin(), t.end(), first);
  return t;
}

std::vector<uint32_t> Concat(std::vector<uint32_t> a, const std::vector<uint32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

}  // namespace

TEST_CASE("MemPool: CreateNamespace is idempotent and refuses conflicting parameters", "[node]") {
  Fixture f;
  auto again = f.pool->CreateNamespace(Fixture::Spec("ns"));
  REQUIRE(again.ok());
  CHECK_FALSE(again->second);
  auto conflict = f.pool->CreateNamespace(NamespaceSpec{"ns", 8, kBlockBytes, ""});
  CHECK(conflict.status().code() == StatusCode::kAlreadyExists);
  CHECK_THAT(conflict.status().message(), Catch::Contains("block_tokens=4"));
  CHECK(f.pool->CreateNamespace(Fixture::Spec("ns", "other-salt")).status().code() ==
        StatusCode::kAlreadyExists);
}

TEST_CASE("MemPool: bad namespace specs are INVALID_ARGUMENT naming the value", "[node]") {
  Fixture f;
  struct Case {
    NamespaceSpec spec;
    const char* needle;
  };
  const Case cases[] = {
      {{"", 4, 4096, ""}, "empty"},
      {{"bad name", 4, 4096, ""}, "bad name"},
      {{std::string(129, 'a'), 4, 4096, ""}, "129"},
      {{"x", 0, 4096, ""}, "got 0"},
      {{"x", 4, 100, ""}, "got 100"},
      {{"x", 4, 0, ""}, "got 0"},
      {{"x", 4, 1ull << 40, ""}, "exceeds"},
      {{"x", 4, 4096, std::string(300, 's')}, "300"},
  };
  for (const Case& c : cases) {
    auto r = f.pool->CreateNamespace(c.spec);
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains(c.needle));
  }
  CHECK(f.pool->ListNamespaces().size() == 1);
}

TEST_CASE("MemPool: too many namespaces is RESOURCE_EXHAUSTED", "[node]") {
  Fixture f;  // max_namespaces = 4, "ns" exists
  REQUIRE(f.pool->CreateNamespace(Fixture::Spec("a")).ok());
  REQUIRE(f.pool->CreateNamespace(Fixture::Spec("b")).ok());
  REQUIRE(f.pool->CreateNamespace(Fixture::Spec("c")).ok());
  CHECK(f.pool->CreateNamespace(Fixture::Spec("d")).status().code() ==
        StatusCode::kResourceExhausted);
}

TEST_CASE("MemPool: unknown namespace is NOT_FOUND for every operation", "[node]") {
  Fixture f;
  const auto t = Tokens(0, 8);
  CHECK(f.pool->GetNamespace("nope").status().code() == StatusCode::kNotFound);
  CHECK(f.pool->AllocMem("nope", 1, Tier::kHost, 0).status().code() == StatusCode::kNotFound);
  CHECK(f.pool->Match("nope", PromptView::Tokens(t), 0, false, 0).status().code() == StatusCode::kNotFound);
  CHECK(f.pool->Exists("nope", PromptView::Tokens(t)).status().code() == StatusCode::kNotFound);
  CHECK(f.pool->Delete("nope", PromptView::Tokens(t)).status().code() == StatusCode::kNotFound);
  CHECK(f.pool->DeleteNamespace("nope").status().code() == StatusCode::kNotFound);
  CHECK(f.pool->Evict("nope", 1).status().code() == StatusCode::kNotFound);
}

TEST_CASE("MemPool: Insert then Match returns the longest cached prefix", "[node]") {
  Fixture f;
  const auto system = Tokens(1000, 16);                  // 4 blocks shared
  const auto a = Concat(system, Tokens(0, 8));           // +2 blocks
  const auto b = Concat(system, Tokens(500, 12));        // +3 other blocks
  const InsertResult ia = f.Publish(a);
  CHECK(ia.inserted_blocks == 6);
  CHECK(ia.duplicate_blocks == 0);
  CHECK(f.Matched(a) == 6);
  CHECK(f.Matched(b) == 4);  // stops at the first block that differs
  CHECK(f.Matched(Concat(a, Tokens(7, 3))) == 6);  // a ragged tail is ignored
  const InsertResult ib = f.Publish(b);
  CHECK(ib.inserted_blocks == 3);
  CHECK(ib.duplicate_blocks == 4);
  CHECK(f.Stats().cached_blocks == 9);
  // Deduplicated copies were freed: only cached blocks use memory.
  CHECK(f.Stats().used_bytes == 9 * kBlockBytes);
  CHECK(f.Stats().allocated_blocks == 0);
}

TEST_CASE("MemPool: dedup returns the already cached handle", "[node]") {
  Fixture f;
  const auto t = Tokens(0, 8);
  const InsertResult first = f.Publish(t);
  const InsertResult second = f.Publish(t);
  CHECK(second.duplicate_blocks == 2);
  CHECK(second.duplicate == std::vector<bool>{true, true});
  CHECK(second.handles == first.handles);
  CHECK(f.Stats().deduplicated_blocks == 2);
}

TEST_CASE("MemPool: hashes and tokens address the same blocks", "[node]") {
  Fixture f;
  const auto t = Tokens(42, 12);
  f.Publish(t);
  const BlockHasher hasher("ns", "", kBlockTokens);
  const auto hashes = hasher.HashPrompt(t);
  auto m = f.pool->Match("ns", PromptView::Hashes(hashes), 0, false, 0);
  REQUIRE(m.ok());
  CHECK(m->matched_blocks == 3);
  auto e = f.pool->Exists("ns", PromptView::Hashes(hashes));
  REQUIRE(e.ok());
  CHECK(e->present_blocks == 3);
  CHECK(e->tiers == std::vector<Tier>{Tier::kHost, Tier::kHost, Tier::kHost});
}

TEST_CASE("MemPool: salted namespaces never match each other's prefixes", "[node]") {
  Fixture f;
  REQUIRE(f.pool->CreateNamespace(Fixture::Spec("tenant-b", "salt-b")).ok());
  const auto t = Tokens(0, 8);
  f.Publish(t, "ns");
  auto m = f.pool->Match("tenant-b", PromptView::Tokens(t), 0, false, 0);
  REQUIRE(m.ok());
  CHECK(m->matched_blocks == 0);
}

TEST_CASE("MemPool: a segment without its beginning matches from its start block", "[node]") {
  Fixture f;
  const auto t = Tokens(0, 24);  // 6 blocks; this node holds blocks 2..5 only
  auto alloc = f.pool->AllocMem("ns", 4, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  REQUIRE(f.pool->Insert("ns", PromptView::Tokens(t), 2, Fixture::Handles(*alloc), alloc->lease.id, false).ok());
  CHECK(f.Matched(t, 0) == 0);
  CHECK(f.Matched(t, 2) == 4);
  CHECK(f.Matched(t, 3) == 3);
  auto e = f.pool->Exists("ns", PromptView::Tokens(t));
  REQUIRE(e.ok());
  CHECK(e->tiers == std::vector<Tier>{Tier::kNone, Tier::kNone, Tier::kHost, Tier::kHost,
                                      Tier::kHost, Tier::kHost});
  // Filling the hole later joins the segment to the prompt.
  auto front = f.pool->AllocMem("ns", 2, Tier::kHost, 0);
  REQUIRE(front.ok());
  const std::vector<uint32_t> head(t.begin(), t.begin() + 8);
  REQUIRE(f.pool->Insert("ns", PromptView::Tokens(head), 0, Fixture::Handles(*front), front->lease.id, false).ok());
  CHECK(f.Matched(t, 0) == 6);
}

TEST_CASE("MemPool: Insert refuses bad input and changes nothing", "[node]") {
  Fixture f;
  REQUIRE(f.pool->CreateNamespace(Fixture::Spec("other")).ok());
  const auto t = Tokens(0, 8);
  auto alloc = f.pool->AllocMem("ns", 2, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  const auto h = Fixture::Handles(*alloc);
  const uint64_t lease = alloc->lease.id;
  auto insert = [&](PromptView p, uint32_t start, std::vector<BlockHandle> handles, uint64_t l) {
    return f.pool->Insert("ns", p, start, handles, l, false).status();
  };
  const auto ragged = Tokens(0, 7);
  CHECK(insert(PromptView::Tokens(ragged), 0, {h[0]}, lease).code() == StatusCode::kInvalidArgument);
  CHECK_THAT(insert(PromptView::Tokens(ragged), 0, {h[0]}, lease).message(),
             Catch::Contains("7 tokens are not a whole number of 4-token blocks"));
  CHECK(insert(PromptView::Tokens(t), 1, h, lease).code() == StatusCode::kInvalidArgument);
  CHECK(insert(PromptView::Tokens(t), 0, {}, lease).code() == StatusCode::kInvalidArgument);
  CHECK(insert(PromptView::Tokens(t), 0, {h[0], h[0]}, lease).code() == StatusCode::kInvalidArgument);
  CHECK(insert(PromptView::Tokens(t), 0, h, 0).code() == StatusCode::kInvalidArgument);
  CHECK(insert(PromptView::Tokens(t), 0, h, 12345).code() == StatusCode::kNotFound);
  CHECK(insert(PromptView{}, 0, h, lease).code() == StatusCode::kInvalidArgument);  // no blocks
  const BlockHash fake{1, 2};
  CHECK(insert(PromptView{t, std::span<const BlockHash>(&fake, 1)}, 0, h, lease).code() ==
        StatusCode::kInvalidArgument);

  // A handle of another namespace, a made-up handle, and one held by another lease.
  auto other = f.pool->AllocMem("other", 1, Tier::kHost, 0);
  REQUIRE(other.ok());
  CHECK(insert(PromptView::Tokens(t), 0, {h[0], other->blocks[0].handle}, lease).code() ==
        StatusCode::kInvalidArgument);
  CHECK(insert(PromptView::Tokens(t), 0, {h[0], EncodeHandle(1, 0, 999999)}, lease).code() ==
        StatusCode::kInvalidArgument);
  auto second = f.pool->AllocMem("ns", 1, Tier::kHost, 0);
  REQUIRE(second.ok());
  CHECK(insert(PromptView::Tokens(t), 0, {h[0], second->blocks[0].handle}, lease).code() ==
        StatusCode::kFailedPrecondition);
  // A lease of another namespace.
  CHECK(insert(PromptView::Tokens(t), 0, h, other->lease.id).code() == StatusCode::kFailedPrecondition);

  // Nothing was inserted or lost by the refusals: the good request still works.
  CHECK(f.Stats().cached_blocks == 0);
  CHECK(f.Stats().allocated_blocks == 3);
  REQUIRE(insert(PromptView::Tokens(t), 0, h, lease).ok());
  // Inserting the same blocks twice: they are no longer allocated.
  CHECK(insert(PromptView::Tokens(t), 0, h, lease).code() == StatusCode::kFailedPrecondition);
  CHECK(f.Matched(t) == 2);
}

TEST_CASE("MemPool: AllocMem refuses bad counts and tiers", "[node]") {
  Fixture f;
  CHECK(f.pool->AllocMem("ns", 0, Tier::kHost, 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(f.pool->AllocMem("ns", 5000, Tier::kHost, 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(f.pool->AllocMem("ns", 1, Tier::kGpu, 0).status().code() == StatusCode::kFailedPrecondition);
  CHECK(f.pool->AllocMem("ns", 1, Tier::kHost, 999'999).status().code() == StatusCode::kInvalidArgument);
  const auto full = f.pool->AllocMem("ns", 65, Tier::kHost, 0);  // pool holds 64
  CHECK(full.status().code() == StatusCode::kResourceExhausted);
  CHECK(f.Stats().allocated_blocks == 0);
  CHECK(f.pool->GetStats().active_leases == 0);
  CHECK(f.pool->AllocMem("ns", 64, Tier::kHost, 0).ok());
}

TEST_CASE("MemPool: FreeMem frees only the lease's allocated blocks, all or nothing", "[node]") {
  Fixture f;
  auto alloc = f.pool->AllocMem("ns", 4, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  const auto h = Fixture::Handles(*alloc);
  auto other = f.pool->AllocMem("ns", 1, Tier::kHost, 0);
  REQUIRE(other.ok());
  // One bad handle in the list: nothing is freed.
  const std::vector<BlockHandle> mixed = {h[0], other->blocks[0].handle};
  CHECK(f.pool->FreeMem("ns", alloc->lease.id, mixed).status().code() == StatusCode::kFailedPrecondition);
  CHECK(f.Stats().allocated_blocks == 5);
  auto freed = f.pool->FreeMem("ns", alloc->lease.id, std::vector<BlockHandle>{h[0], h[1]});
  REQUIRE(freed.ok());
  CHECK(*freed == 2);
  // Double free: the handles are stale now.
  CHECK(f.pool->FreeMem("ns", alloc->lease.id, std::vector<BlockHandle>{h[0]}).status().code() ==
        StatusCode::kNotFound);
  CHECK(f.Stats().allocated_blocks == 3);
}

TEST_CASE("MemPool: an AllocMem lease that expires returns its blocks", "[node]") {
  Fixture f(64, /*default_ttl_ms=*/1000);
  auto alloc = f.pool->AllocMem("ns", 10, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  CHECK(alloc->lease.ttl_ms == 1000);
  f.clock.AdvanceMs(999);
  CHECK(f.pool->ExpireLeases() == 0);
  CHECK(f.Stats().allocated_blocks == 10);
  f.clock.AdvanceMs(1);
  CHECK(f.pool->ExpireLeases() == 1);
  CHECK(f.Stats().allocated_blocks == 0);
  CHECK(f.Stats().used_bytes == 0);
  // Using it now says it expired.
  auto late = f.pool->Insert("ns", PromptView::Tokens(Tokens(0, 4)), 0,
                             std::vector<BlockHandle>{alloc->blocks[0].handle}, alloc->lease.id, false);
  CHECK(late.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(late.status().message(), Catch::Contains("expired"));
  auto renew = f.pool->Renew(alloc->lease.id, 0);
  CHECK(renew.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(renew.status().message(), Catch::Contains("expired"));
  CHECK(f.pool->GetStats().expired_leases == 1);
}

TEST_CASE("MemPool: leases expire lazily even without a sweep", "[node]") {
  Fixture f(64, 1000);
  auto alloc = f.pool->AllocMem("ns", 64, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  CHECK(f.pool->AllocMem("ns", 1, Tier::kHost, 0).status().code() == StatusCode::kResourceExhausted);
  f.clock.AdvanceMs(1001);
  CHECK(f.pool->AllocMem("ns", 64, Tier::kHost, 0).ok());
}

TEST_CASE("MemPool: Renew extends a lease and Release ends it", "[node]") {
  Fixture f(64, 1000);
  auto alloc = f.pool->AllocMem("ns", 2, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  f.clock.AdvanceMs(900);
  auto renewed = f.pool->Renew(alloc->lease.id, 5000);
  REQUIRE(renewed.ok());
  CHECK(renewed->ttl_ms == 5000);
  f.clock.AdvanceMs(4000);
  CHECK(f.pool->ExpireLeases() == 0);
  CHECK(f.Stats().allocated_blocks == 2);
  auto released = f.pool->Release(alloc->lease.id);
  REQUIRE(released.ok());
  CHECK(*released == 2);
  CHECK(f.Stats().allocated_blocks == 0);
  CHECK(f.pool->Release(alloc->lease.id).status().code() == StatusCode::kNotFound);
  CHECK(f.pool->Release(0).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("MemPool: AllocMem evicts cold unleased blocks to make room", "[node]") {
  Fixture f(64);
  for (uint32_t p = 0; p < 8; ++p) f.Publish(Tokens(p * 1000, 32));  // 8 prompts x 8 blocks = full
  CHECK(f.Stats().cached_blocks == 64);
  f.Matched(Tokens(0, 32));  // prompt 0 is now the most recently used
  auto alloc = f.pool->AllocMem("ns", 16, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  CHECK(f.Stats().evicted_blocks == 16);
  CHECK(f.Matched(Tokens(0, 32)) == 8);     // the hot prompt survived
  CHECK(f.Matched(Tokens(1000, 32)) == 0);  // the coldest went first
}

TEST_CASE("MemPool: eviction keeps every cached prefix free of holes", "[node]") {
  Fixture f(64);
  std::mt19937 rng(1);
  const auto system = Tokens(100000, 16);
  std::vector<std::vector<uint32_t>> prompts;
  for (int round = 0; round < 200; ++round) {
    std::uniform_int_distribution<uint32_t> len(1, 6);
    auto p = Concat(system, Tokens(rng() % 50 * 1000, len(rng) * kBlockTokens));
    prompts.push_back(p);
    const uint32_t matched = f.Matched(p);
    const uint32_t missing = static_cast<uint32_t>(p.size() / kBlockTokens) - matched;
    if (missing == 0) continue;
    auto alloc = f.pool->AllocMem("ns", missing, Tier::kHost, 0);
    REQUIRE(alloc.ok());
    REQUIRE(f.pool->Insert("ns", PromptView::Tokens(p), matched, Fixture::Handles(*alloc),
                           alloc->lease.id, false).ok());
    REQUIRE(f.pool->Release(alloc->lease.id).ok());
    for (const auto& q : prompts) {
      auto e = f.pool->Exists("ns", PromptView::Tokens(q));
      REQUIRE(e.ok());
      const auto first_absent = std::find(e->tiers.begin(), e->tiers.end(), Tier::kNone);
      CHECK(std::find(first_absent, e->tiers.end(), Tier::kHost) == e->tiers.end());
    }
  }
  CHECK(f.Stats().evicted_blocks > 0);
}

TEST_CASE("MemPool: pinned blocks are never evicted; RESOURCE_EXHAUSTED when all are pinned", "[node]") {
  Fixture f(16);
  const auto t = Tokens(0, 64);  // 16 blocks fill the pool
  f.Publish(t);
  auto pinned = f.pool->Match("ns", PromptView::Tokens(t), 0, /*lease=*/true, 0);
  REQUIRE(pinned.ok());
  REQUIRE(pinned->lease.id != 0);
  CHECK(f.Stats().pinned_blocks == 16);
  CHECK(f.pool->AllocMem("ns", 1, Tier::kHost, 0).status().code() == StatusCode::kResourceExhausted);
  CHECK(f.Matched(t) == 16);
  REQUIRE(f.pool->Release(pinned->lease.id).ok());
  CHECK(f.Stats().pinned_blocks == 0);
  CHECK(f.pool->AllocMem("ns", 1, Tier::kHost, 0).ok());
  CHECK(f.Matched(t) == 15);  // the leaf went, the prefix stayed
}

TEST_CASE("MemPool: Delete removes a prefix's subtree; pinned blocks live until released", "[node]") {
  Fixture f;
  const auto base = Tokens(0, 8);
  const auto a = Concat(base, Tokens(100, 8));
  const auto b = Concat(base, Tokens(200, 8));
  f.Publish(a);
  f.Publish(b);
  auto pinned = f.pool->Match("ns", PromptView::Tokens(a), 0, true, 0);
  REQUIRE(pinned.ok());
  const std::vector<uint32_t> first_block(base.begin(), base.begin() + 4);
  auto deleted = f.pool->Delete("ns", PromptView::Tokens(Concat(first_block, {})));
  REQUIRE(deleted.ok());
  CHECK(*deleted == 6);  // block 0 and everything below it
  CHECK(f.Matched(a) == 0);
  CHECK(f.Matched(b) == 0);
  // a's 4 blocks are pinned: they keep their memory until the lease goes.
  CHECK(f.Stats().used_bytes == 4 * kBlockBytes);
  REQUIRE(f.pool->Release(pinned->lease.id).ok());
  CHECK(f.Stats().used_bytes == 0);
  CHECK(f.pool->Delete("ns", PromptView::Tokens(Tokens(0, 3))).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("MemPool: Match validates start_block and counts hits and misses", "[node]") {
  Fixture f;
  const auto t = Tokens(0, 16);
  f.Publish(std::vector<uint32_t>(t.begin(), t.begin() + 8));
  CHECK(f.pool->Match("ns", PromptView::Tokens(t), 5, false, 0).status().code() ==
        StatusCode::kInvalidArgument);
  auto m = f.pool->Match("ns", PromptView::Tokens(t), 4, false, 0);
  REQUIRE(m.ok());
  CHECK(m->matched_blocks == 0);
  CHECK(f.Matched(t) == 2);
  const NamespaceStats s = f.Stats();
  CHECK(s.match_requests == 2);
  CHECK(s.hit_blocks == 2);
  CHECK(s.miss_blocks == 2);
  CHECK(f.pool->Match("ns", PromptView::Tokens(Tokens(0, 2048 * 4)), 0, false, 0).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("MemPool: DeleteNamespace waits for its leases and frees its memory", "[node]") {
  Fixture f;
  f.Publish(Tokens(0, 16));
  auto alloc = f.pool->AllocMem("ns", 4, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  CHECK(f.pool->DeleteNamespace("ns").status().code() == StatusCode::kFailedPrecondition);
  REQUIRE(f.pool->Release(alloc->lease.id).ok());
  auto deleted = f.pool->DeleteNamespace("ns");
  REQUIRE(deleted.ok());
  CHECK(*deleted == 4);
  CHECK(f.pool->GetStats().reserved_bytes == 0);
  CHECK(f.pool->GetStats().free_bytes == 64 * kBlockBytes);
}

TEST_CASE("MemPool: a namespace under pressure takes memory from another's cold blocks", "[node]") {
  Fixture f(64);
  REQUIRE(f.pool->CreateNamespace(Fixture::Spec("b")).ok());
  for (uint32_t p = 0; p < 8; ++p) f.Publish(Tokens(p * 1000, 32), "b");
  CHECK(f.Stats("b").cached_blocks == 64);
  auto alloc = f.pool->AllocMem("ns", 16, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  CHECK(f.Stats("b").evicted_blocks >= 16);
}

TEST_CASE("MemPool: ResolveLeased returns locations of held blocks and refuses the rest",
          "[node]") {
  Fixture f;
  auto alloc = f.pool->AllocMem("ns", 3, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  const std::vector<BlockHandle> handles = Fixture::Handles(*alloc);

  // Allocated under the lease: readable and writable, at the locations AllocMem gave.
  auto w = f.pool->ResolveLeased(alloc->lease.id, handles, BlockAccess::kWrite, false);
  REQUIRE(w.ok());
  CHECK(w->spec.name == "ns");
  REQUIRE(w->blocks.size() == 3);
  CHECK(w->blocks[2].offset == alloc->blocks[2].offset);
  CHECK(w->checksums.empty());
  REQUIRE(f.pool->ResolveLeased(alloc->lease.id, handles, BlockAccess::kRead, true).ok());

  // Bad input: no handles, a repeated handle, an unknown lease, another lease's block.
  CHECK(f.pool->ResolveLeased(alloc->lease.id, {}, BlockAccess::kRead, false).status().code() ==
        StatusCode::kInvalidArgument);
  const std::vector<BlockHandle> twice = {handles[0], handles[0]};
  CHECK(f.pool->ResolveLeased(alloc->lease.id, twice, BlockAccess::kRead, false).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(f.pool->ResolveLeased(12345, handles, BlockAccess::kRead, false).status().code() ==
        StatusCode::kNotFound);
  auto other = f.pool->AllocMem("ns", 1, Tier::kHost, 0);
  REQUIRE(other.ok());
  auto foreign = f.pool->ResolveLeased(other->lease.id, handles, BlockAccess::kRead, false);
  CHECK(foreign.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(foreign.status().message()), Catch::Contains("not allocated under or pinned by"));

  // Inserted with keep_pinned: still readable through the lease, no longer writable.
  const std::vector<uint32_t> tokens = Tokens(100, 3 * kBlockTokens);
  REQUIRE(f.pool->Insert("ns", PromptView::Tokens(tokens), 0, handles, alloc->lease.id, true).ok());
  CHECK(f.pool->ResolveLeased(alloc->lease.id, handles, BlockAccess::kRead, false).ok());
  auto ro = f.pool->ResolveLeased(alloc->lease.id, handles, BlockAccess::kWrite, false);
  CHECK(ro.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(ro.status().message()), Catch::Contains("already inserted"));

  // A Match lease reads what it pinned; after Release, nothing.
  auto m = f.pool->Match("ns", PromptView::Tokens(tokens), 0, true, 0);
  REQUIRE(m.ok());
  REQUIRE(m->matched_blocks == 3);
  CHECK(f.pool->ResolveLeased(m->lease.id, handles, BlockAccess::kRead, false).ok());
  REQUIRE(f.pool->Release(m->lease.id).ok());
  CHECK(f.pool->ResolveLeased(m->lease.id, handles, BlockAccess::kRead, false).status().code() ==
        StatusCode::kNotFound);

  // An expired lease is refused as expired.
  f.clock.AdvanceMs(5'000);
  auto expired = f.pool->ResolveLeased(other->lease.id, Fixture::Handles(*other),
                                       BlockAccess::kRead, false);
  CHECK(expired.status().code() == StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(expired.status().message()), Catch::Contains("expired"));
}

TEST_CASE("MemPool: ResolveLeased checksums are XXH3-64 of each block's bytes", "[node]") {
  Fixture f;
  auto alloc = f.pool->AllocMem("ns", 2, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  auto r = f.pool->ResolveLeased(alloc->lease.id, Fixture::Handles(*alloc), BlockAccess::kRead,
                                 true);
  REQUIRE(r.ok());
  REQUIRE(r->checksums.size() == 2);
  // Fresh blocks of a plain mapping are zero-filled; the checksum of 4 KiB of zeros differs
  // from that of any other content.
  const std::vector<uint8_t> zeros(kBlockBytes, 0);
  std::vector<uint8_t> ones(kBlockBytes, 1);
  CHECK(r->checksums[0] == BlockChecksum(zeros.data(), zeros.size()));
  CHECK(r->checksums[0] != BlockChecksum(ones.data(), ones.size()));
}

}  // namespace kvpool::node

namespace kvpool::node {
namespace {

TEST_CASE("MemPool: CachedChains covers every cached block once, parents first", "[node]") {
  Fixture f;
  // A tree: b branches off a after 2 blocks, c after 3; d stands alone.
  const auto a = Tokens(0, 16);
  const auto b = Concat(Tokens(0, 8), Tokens(100, 8));
  const auto c = Concat(Tokens(0, 12), Tokens(200, 4));
  const auto d = Tokens(300, 8);
  for (const auto& p : {a, b, c, d}) f.Publish(p);
  const BlockHasher hasher("ns", "", kBlockTokens);
  // Every cached block with its parent (nullopt for a prompt's first block).
  std::map<std::pair<uint64_t, uint64_t>, std::optional<BlockHash>> parent_of;
  for (const auto& p : {a, b, c, d}) {
    const std::vector<BlockHash> h = hasher.HashPrompt(p);
    for (size_t i = 0; i < h.size(); ++i) {
      parent_of[{h[i].hi, h[i].lo}] = i == 0 ? std::nullopt : std::optional<BlockHash>(h[i - 1]);
    }
  }
  REQUIRE(parent_of.size() == 9);

  const std::vector<CachedChain> chains = f.pool->CachedChains("ns").value();
  CHECK(chains.size() == 4);  // one per leaf
  std::set<std::pair<uint64_t, uint64_t>> seen;
  for (const CachedChain& chain : chains) {
    REQUIRE_FALSE(chain.hashes.empty());
    // The chain's parent was listed before it (or it starts a prompt).
    if (chain.parent) CHECK(seen.count({chain.parent->hi, chain.parent->lo}) == 1);
    std::optional<BlockHash> prev = chain.parent;
    for (const BlockHash& h : chain.hashes) {
      const auto key = std::make_pair(h.hi, h.lo);
      REQUIRE(parent_of.count(key) == 1);
      CHECK(parent_of.at(key) == prev);  // consecutive blocks of one prompt
      CHECK(seen.insert(key).second);    // listed once
      prev = h;
    }
  }
  CHECK(seen.size() == parent_of.size());
  CHECK(f.pool->CachedChains("nope").status().code() == StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvpool::node
