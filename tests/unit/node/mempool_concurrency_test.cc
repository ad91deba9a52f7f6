// MemPool under concurrent callers: publishers, readers, deleters, evictors, a namespace that
// comes and goes, and a clock that expires abandoned leases, all on one pool at once. The pool
// lives in memory the test owns (HostArena::Adopt), so writers fill their blocks and readers
// check every byte of what they matched while holding its lease. CI runs this under TSan too
// (scripts/ci-sanitizers.sh).
#include <atomic>
#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <random>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "memory/host_arena.h"
#include "node/mempool.h"

namespace kvpool::node {
namespace {

constexpr uint32_t kBlockTokens = 4;
constexpr uint64_t kBlockBytes = 4096;
constexpr uint64_t kPoolBlocks = 192;
constexpr uint32_t kLongTtlMs = 60'000;  // never reached: the clock advances 20 s at most
constexpr uint32_t kShortTtlMs = 200;    // leases the workers abandon on purpose
constexpr int kPrompts = 48;
constexpr int kMaxPromptBlocks = 8;
constexpr int kSharedPrefixBlocks = 3;  // prompts share prefixes in groups of 4

struct Prompt {
  std::vector<uint32_t> tokens;
  std::vector<uint64_t> tags;  // per block: a function of the tokens up to its end
};

std::vector<Prompt> MakePrompts() {
  std::vector<Prompt> prompts;
  std::mt19937 rng(7);
  for (int p = 0; p < kPrompts; ++p) {
    Prompt prompt;
    const int blocks = 1 + static_cast<int>(rng() % kMaxPromptBlocks);
    uint64_t tag = 1469598103934665603ull;
    for (int b = 0; b < blocks; ++b) {
      for (uint32_t t = 0; t < kBlockTokens; ++t) {
        const uint32_t token = b < kSharedPrefixBlocks ? static_cast<uint32_t>(p / 4) * 100 + b
                                                       : static_cast<uint32_t>(p) * 1000 + b;
        prompt.tokens.push_back(token * 10 + t);
        tag = (tag ^ token) * 1099511628211ull;
      }
      prompt.tags.push_back(tag);
    }
    prompts.push_back(std::move(prompt));
  }
  return prompts;
}

class CountingSink final : public EventSink {
 public:
  // Relaxed: counters read only after every thread joined.
  void OnEvent(PoolEvent event) override {
    (event.kind == PoolEvent::Kind::kStored ? stored_ : removed_)
        .fetch_add(event.hashes.size(), std::memory_order_relaxed);
  }
  uint64_t stored() const { return stored_.load(std::memory_order_relaxed); }
  uint64_t removed() const { return removed_.load(std::memory_order_relaxed); }

 private:
  std::atomic<uint64_t> stored_{0}, removed_{0};
};

// Statuses a racing caller may legitimately get: a full pool, a lease or block that another
// thread's Delete, eviction or the clock ended first, a namespace being deleted.
bool Expected(const Status& s) {
  return s.ok() || s.code() == StatusCode::kResourceExhausted ||
         s.code() == StatusCode::kFailedPrecondition || s.code() == StatusCode::kNotFound;
}

TEST_CASE("MemPool: concurrent callers never see another block's bytes and leave exact "
          "accounting",
          "[concurrency]") {
  const size_t capacity = kPoolBlocks * kBlockBytes;
  std::unique_ptr<uint8_t, decltype(&std::free)> memory(
      static_cast<uint8_t*>(std::aligned_alloc(4096, capacity)), &std::free);
  REQUIRE(memory != nullptr);
  uint8_t* const base = memory.get();
  auto arena = memory::HostArena::Adopt(base, capacity);
  REQUIRE(arena.ok());
  MemPoolOptions o;
  o.huge_pages = false;
  o.slab_bytes = 8 * kBlockBytes;
  o.default_lease_ttl_ms = kLongTtlMs;
  o.max_lease_ttl_ms = kLongTtlMs;
  o.max_request_blocks = 64;
  o.max_namespaces = 4;
  ManualClock clock;
  auto created = MemPool::Create(o, &clock, std::move(arena).value());
  REQUIRE(created.ok());
  MemPool& pool = **created;
  CountingSink sink;
  pool.SetEventSink(&sink);
  const NamespaceSpec spec{"ns", kBlockTokens, kBlockBytes, ""};
  REQUIRE(pool.CreateNamespace(spec).ok());
  const std::vector<Prompt> prompts = MakePrompts();

  std::atomic<bool> stop{false};
  std::atomic<uint64_t> unexpected{0}, corrupt{0}, verified{0};
  std::atomic<uint64_t> first_unexpected_code{0};
  const auto check = [&](const Status& s) {
    if (Expected(s)) return s.ok();
    if (unexpected.fetch_add(1) == 0) first_unexpected_code = static_cast<uint64_t>(s.code());
    return false;
  };
  const auto fill = [&](const BlockLocation& loc, uint64_t tag) {
    for (uint64_t i = 0; i < kBlockBytes; i += sizeof tag) std::memcpy(base + loc.offset + i, &tag, sizeof tag);
  };
  const auto holds = [&](const BlockLocation& loc, uint64_t tag) {
    for (uint64_t i = 0; i < kBlockBytes; i += sizeof tag) {
      if (std::memcmp(base + loc.offset + i, &tag, sizeof tag) != 0) return false;
    }
    return true;
  };

  const auto worker = [&](int index) {
    std::mt19937 rng(static_cast<uint32_t>(index) * 77 + 1);
    for (int iter = 0; iter < 3000; ++iter) {
      const Prompt& p = prompts[rng() % prompts.size()];
      const uint32_t n = static_cast<uint32_t>(p.tags.size());
      const PromptView view = PromptView::Tokens(p.tokens);
      const uint32_t op = rng() % 100;
      if (op < 35) {  // publish: write every block, insert, release
        auto alloc = pool.AllocMem("ns", n, Tier::kHost, kLongTtlMs);
        if (!check(alloc.status())) continue;
        std::vector<BlockHandle> handles;
        for (uint32_t b = 0; b < n; ++b) {
          fill(alloc->blocks[b], p.tags[b]);
          handles.push_back(alloc->blocks[b].handle);
        }
        check(pool.Insert("ns", view, 0, handles, alloc->lease.id, false).status());
        check(pool.Release(alloc->lease.id).status());
      } else if (op < 70) {  // read: match with a lease, check every byte, release
        auto m = pool.Match("ns", view, 0, true, kLongTtlMs);
        if (!check(m.status()) || m->lease.id == 0) continue;
        for (uint32_t b = 0; b < m->matched_blocks; ++b) {
          if (!holds(m->blocks[b], p.tags[b])) corrupt.fetch_add(1);
        }
        verified.fetch_add(m->matched_blocks);
        if (rng() % 4 == 0) check(pool.Renew(m->lease.id, kLongTtlMs).status());
        if (rng() % 4 == 0) {
          std::vector<BlockHandle> handles;
          for (const BlockLocation& l : m->blocks) handles.push_back(l.handle);
          check(pool.ResolveLeased(m->lease.id, handles, BlockAccess::kRead, false).status());
        }
        check(pool.Release(m->lease.id).status());
      } else if (op < 78) {  // allocate and free, never inserted
        auto alloc = pool.AllocMem("ns", n, Tier::kHost, kLongTtlMs);
        if (!check(alloc.status())) continue;
        std::vector<BlockHandle> handles;
        for (const BlockLocation& l : alloc->blocks) handles.push_back(l.handle);
        check(pool.FreeMem("ns", alloc->lease.id, handles).status());
        check(pool.Release(alloc->lease.id).status());
      } else if (op < 83) {  // abandon a short lease: the clock thread's sweep ends it
        if (rng() % 2 == 0) {
          check(pool.AllocMem("ns", 1 + rng() % 2, Tier::kHost, kShortTtlMs).status());
        } else {
          check(pool.Match("ns", view, 0, true, kShortTtlMs).status());
        }
      } else if (op < 90) {
        check(pool.Exists("ns", view).status());
      } else if (op < 95) {
        check(pool.Delete("ns", view).status());
      } else if (op < 98) {
        check(pool.Evict("ns", 1 + rng() % 8).status());
      } else {
        const PoolStats s = pool.GetStats();
        if (s.used_bytes > s.capacity_bytes) corrupt.fetch_add(1);
      }
    }
  };
  // A second namespace created, used and deleted over and over, taking memory from "ns".
  const auto churn = [&] {
    const NamespaceSpec other{"other", kBlockTokens, kBlockBytes, "salt"};
    while (!stop.load()) {
      if (!check(pool.CreateNamespace(other).status())) continue;
      auto alloc = pool.AllocMem("other", 4, Tier::kHost, kLongTtlMs);
      if (check(alloc.status())) check(pool.Release(alloc->lease.id).status());
      const auto deleted = pool.DeleteNamespace("other");
      check(deleted.status());
    }
  };
  // Time passes (at most 20 s, below every long lease) and the sweep runs.
  const auto ticker = [&] {
    for (int i = 0; i < 4000 && !stop.load(); ++i) {
      clock.AdvanceMs(5);
      pool.ExpireLeases();
      std::this_thread::yield();
    }
  };

  std::vector<std::thread> workers;
  for (int i = 0; i < 4; ++i) workers.emplace_back(worker, i);
  std::thread churner(churn), tick(ticker);
  for (std::thread& t : workers) t.join();
  stop = true;
  churner.join();
  tick.join();

  INFO("first unexpected status code: " << first_unexpected_code.load());
  CHECK(unexpected == 0);
  CHECK(corrupt == 0);
  CHECK(verified > 0);

  // Every abandoned lease ends; then the counters add up and agree with an Exists sweep.
  clock.AdvanceMs(kLongTtlMs + 1);
  pool.ExpireLeases();
  const PoolStats stats = pool.GetStats();
  CHECK(stats.active_leases == 0);
  uint64_t ns_used = 0, cached = 0;
  for (const NamespaceInfo& ns : stats.namespaces) {
    INFO(ns.spec.name);
    CHECK(ns.stats.allocated_blocks == 0);
    CHECK(ns.stats.pinned_blocks == 0);
    CHECK(ns.stats.used_bytes == ns.stats.cached_blocks * kBlockBytes);
    ns_used += ns.stats.used_bytes;
    if (ns.spec.name == "ns") cached = ns.stats.cached_blocks;
  }
  CHECK(stats.used_bytes == ns_used);
  std::set<uint64_t> present;
  for (const Prompt& p : prompts) {
    auto e = pool.Exists("ns", PromptView::Tokens(p.tokens));
    REQUIRE(e.ok());
    for (size_t b = 0; b < e->tiers.size(); ++b) {
      if (e->tiers[b] != Tier::kNone) present.insert(p.tags[b]);
    }
  }
  CHECK(present.size() == cached);
  CHECK(stats.used_bytes == present.size() * kBlockBytes);
  // The events tell the same story: what was stored and not removed is what is cached.
  CHECK(sink.stored() - sink.removed() == cached);

  // And everything comes back.
  REQUIRE(pool.Evict("", UINT64_MAX).ok());
  for (const NamespaceInfo& ns : pool.ListNamespaces()) {
    REQUIRE(pool.DeleteNamespace(ns.spec.name).ok());
  }
  const PoolStats empty = pool.GetStats();
  CHECK(empty.used_bytes == 0);
  CHECK(empty.reserved_bytes == 0);
  CHECK(empty.free_bytes == empty.capacity_bytes);
  pool.SetEventSink(nullptr);
}

}  // namespace
}  // namespace kvpool::node
