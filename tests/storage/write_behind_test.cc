// MemPool::WriteBehind on a real BlockStore: blocks written ahead of eviction are dropped by the
// eviction without another write and come back byte-exact; it works only under pressure; and
// under concurrent publishes, deletes, matches and a namespace deletion, the SSD tier ends up
// holding exactly the blocks the index says it holds. SwapOut and Evict use the same writes
// ahead of their eviction.
#include <catch2/catch.hpp>

#include <atomic>
#include <random>
#include <thread>
#include <vector>

#include "node/mempool.h"
#include "storage/block_store.h"
#include "temp_dir.h"
#include "tier_pool.h"

namespace kvpool::node {
namespace {

using namespace kvpool::node::testing;  // NOLINT: the test helpers

void WriteBehindBlocks(MemPoolOptions& o, uint64_t blocks) {
  o.write_behind_bytes = blocks * kBlockBytes;
}

// 600 random steps over 24 prompts of 1 to `max_blocks` blocks (seeds from `first_seed`):
// publish one not cached, match one (byte-exact), delete one and, with `swap_out`, SwapOut 3
// blocks. Returns the prompts.
std::vector<std::vector<uint32_t>> RandomOps(TierPool& p, uint32_t rng_seed, uint32_t first_seed,
                                             uint32_t max_blocks, bool swap_out) {
  std::mt19937 rng(rng_seed);
  std::vector<std::vector<uint32_t>> prompts;
  for (uint32_t i = 0; i < 24; ++i) prompts.push_back(Prompt(first_seed + i, 1 + i % max_blocks));
  for (int step = 0; step < 600; ++step) {
    const auto& prompt = prompts[rng() % prompts.size()];
    const uint32_t op = rng() % (swap_out ? 5 : 4);
    if (op <= 1) {
      if (p.Tiers(prompt)[0] == Tier::kNone) p.Publish(prompt);
    } else if (op == 2) {
      p.MatchAndVerify(prompt);
    } else if (op == 3 && swap_out) {
      REQUIRE(p.pool->SwapOut("ns", 3).ok());
    } else {
      REQUIRE(p.pool->Delete("ns", PromptView::Tokens(prompt)).ok());
    }
  }
  return prompts;
}

TEST_CASE("Write-behind: eviction drops blocks written ahead without writing, byte-exact",
          "[storage]") {
  ScratchDir dir;
  // 32 host blocks: the window is 4 blocks (write_behind_bytes; an eighth of host memory).
  TierPool p(dir.File("ssd"), 32, 64, true, [](MemPoolOptions& o) { WriteBehindBlocks(o, 4); });
  const auto a = Prompt(1, 4);
  p.Publish(a);
  for (uint32_t i = 2; i <= 7; ++i) p.Publish(Prompt(i, 4));
  // 4 of 32 blocks free: not fewer free bytes than the window, so nothing to do yet.
  CHECK(*p.pool->WriteBehind() == 0);
  p.Publish(Prompt(8, 4));

  // Full: the head of the eviction order (a, leaf first) is written.
  CHECK(*p.pool->WriteBehind() == 4);
  CHECK(*p.pool->WriteBehind() == 0);  // the window (4 blocks) is written
  CHECK(p.store->block_count() == 4);
  CHECK(p.Tiers(a) == std::vector<Tier>(4, Tier::kHost));  // still in memory
  auto stats = p.pool->GetNamespace("ns")->stats;
  CHECK(stats.written_behind_blocks == 4);
  CHECK(stats.disk_blocks == 4);
  CHECK(stats.pinned_blocks == 0);

  // The next publish evicts a: demoted, and the SSD tier gets no new write.
  const uint64_t used = p.store->used_bytes();
  p.Publish(Prompt(9, 4));
  CHECK(p.Tiers(a) == std::vector<Tier>(4, Tier::kDisk));
  CHECK(p.store->block_count() == 4);
  CHECK(p.store->used_bytes() == used);
  stats = p.pool->GetNamespace("ns")->stats;
  CHECK(stats.demoted_blocks == 4);
  CHECK(stats.evicted_blocks == 0);
  // a's slots now hold another prompt: the promotion reads what write-behind wrote.
  CHECK(p.MatchAndVerify(a) == 4);
}

TEST_CASE("Write-behind: off with write_behind_bytes 0, and a no-op without an SSD tier",
          "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 8, 64, true, [](MemPoolOptions& o) { o.write_behind_bytes = 0; });
  p.Publish(Prompt(1, 8));
  CHECK(*p.pool->WriteBehind() == 0);
  CHECK(p.store->block_count() == 0);

  MemPoolOptions o;
  o.capacity_bytes = 8 * kBlockBytes;
  o.huge_pages = false;
  o.slab_bytes = 2 * kBlockBytes;
  ManualClock clock;
  auto bare = MemPool::Create(o, &clock);
  REQUIRE(bare.ok());
  CHECK(*(*bare)->WriteBehind() == 0);
}

TEST_CASE("Write-behind: a demotion under the lock leaves its room-making deletes to it",
          "[storage]") {
  for (const bool on : {true, false}) {
    DYNAMIC_SECTION("write-behind " << (on ? "on" : "off")) {
      ScratchDir dir;
      // 8 host blocks, an SSD tier of 8. WriteBehind is never called until the end, so every
      // eviction demotes under the lock, and once the tier is full makes room on it.
      TierPool p(dir.File("ssd"), 8, 8, true,
                 [on](MemPoolOptions& o) { WriteBehindBlocks(o, on ? 4 : 0); });
      for (uint32_t i = 0; i < 6; ++i) p.Publish(Prompt(i, 4));
      const auto last = Prompt(5, 4);
      const auto first = Prompt(0, 4);
      CHECK(p.Tiers(first) == std::vector<Tier>(4, Tier::kNone));  // dropped from the tier
      CHECK(p.store->block_count() == 8);
      CHECK(p.store->used_bytes() == 8 * kBlockBytes);
      // With it on, the dropped blocks are only marked: out of the counts, not yet deleted.
      CHECK(p.store->marked_blocks() == (on ? 8u : 0u));
      CHECK(p.MatchAndVerify(Prompt(2, 4)) == 4);  // what the tier holds reads back exact
      CHECK(p.MatchAndVerify(last) == 4);
      // The next call deletes them, also with nothing to write.
      CHECK(p.pool->WriteBehind().ok());
      CHECK(p.store->marked_blocks() == 0);
      CHECK(p.pool->GetNamespace("ns")->stats.disk_blocks == p.store->block_count());
    }
  }
}

TEST_CASE("Write-behind: the window is capped by host memory and by the SSD tier's size",
          "[storage]") {
  ScratchDir dir;
  // write_behind_bytes of 8 blocks, 32 host blocks (an eighth: 4) and an SSD tier of 8 (a
  // quarter: 2). More would make room for a batch by dropping what an earlier batch wrote ahead.
  TierPool p(dir.File("ssd"), 32, 8, true, [](MemPoolOptions& o) { WriteBehindBlocks(o, 8); });
  for (uint32_t i = 0; i < 8; ++i) p.Publish(Prompt(i, 4));
  uint64_t written = 0;
  for (int call = 0; call < 8; ++call) written += p.pool->WriteBehind().value_or(0);
  CHECK(written == 2);
  CHECK(p.store->block_count() == 2);
  CHECK(p.pool->GetNamespace("ns")->stats.disk_blocks == 2);
}

TEST_CASE("Write-behind: under concurrent publishes, deletes and matches the tier stays exact",
          "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 64, 256, true, [](MemPoolOptions& o) { WriteBehindBlocks(o, 16); });
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> written{0};
  std::thread writer([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (auto n = p.pool->WriteBehind(); n.ok()) written += *n;
      std::this_thread::yield();
    }
  });
  const auto prompts = RandomOps(p, 7, 100, 6, /*swap_out=*/false);
  for (const auto& prompt : prompts) p.MatchAndVerify(prompt);
  stop = true;
  writer.join();
  CHECK(written.load() > 0);
  // Blocks deleted while being written were deleted from the tier again.
  CHECK(p.pool->GetNamespace("ns")->stats.disk_blocks == p.store->block_count());

  // The namespace can go while write-behind runs: DeleteNamespace waits for the batch in flight.
  stop = false;
  for (uint32_t i = 0; i < 8; ++i) p.Publish(Prompt(500 + i, 4));
  std::thread again([&] {
    while (!stop.load(std::memory_order_relaxed)) p.pool->WriteBehind().status().IgnoreError();
  });
  REQUIRE(p.pool->DeleteNamespace("ns").ok());
  stop = true;
  again.join();
  CHECK(p.store->block_count() == 0);
  CHECK(p.store->used_bytes() == 0);
}

TEST_CASE("SwapOut and Evict write ahead: exact results, also past the SSD tier's capacity",
          "[storage]") {
  ScratchDir dir;
  // An SSD tier of 8 blocks: SwapOut of 12 makes room by dropping what it wrote first.
  TierPool p(dir.File("ssd"), 32, 8);
  const auto a = Prompt(1, 6), b = Prompt(2, 6);
  p.Publish(a);
  p.Publish(b);
  auto out = p.pool->SwapOut("ns", 12);
  REQUIRE(out.ok());
  CHECK(out->demoted_blocks + out->dropped_blocks == 12);
  auto stats = p.pool->GetNamespace("ns")->stats;
  CHECK(stats.disk_blocks == p.store->block_count());
  CHECK(stats.disk_blocks <= 8);
  CHECK(stats.written_behind_blocks == 0);  // SwapOut's writes are demotions, not write-behind
  CHECK(stats.cached_blocks == 0);
  CHECK(stats.pinned_blocks == 0);
  // What the tier kept is a prefix of each prompt, byte-exact.
  const uint32_t kept = p.MatchAndVerify(a) + p.MatchAndVerify(b);
  CHECK(kept == stats.disk_blocks);

  // Evict of one namespace, and of every namespace, demotes the same way.
  p.Publish(Prompt(3, 4));
  auto evicted = p.pool->Evict("ns", 2);
  REQUIRE(evicted.ok());
  CHECK(*evicted == 2);
  evicted = p.pool->Evict("", 100);
  REQUIRE(evicted.ok());
  stats = p.pool->GetNamespace("ns")->stats;
  CHECK(stats.cached_blocks == 0);
  CHECK(stats.disk_blocks == p.store->block_count());
  p.MatchAndVerify(Prompt(3, 4));  // whatever the tier kept of it reads back byte-exact
}

TEST_CASE("Evict of every namespace writes each namespace's share ahead, and demotes exactly",
          "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 32, 64);
  REQUIRE(p.pool->CreateNamespace(NamespaceSpec{"ns2", kBlockTokens, kBlockBytes, ""}).ok());
  p.Publish(Prompt(1, 4));
  p.Publish(Prompt(2, 4), false, "ns2");

  // Six of the eight: all four of the namespace the eviction takes first, two of the other.
  auto evicted = p.pool->Evict("", 6);
  REQUIRE(evicted.ok());
  CHECK(*evicted == 6);
  const auto a = p.pool->GetNamespace("ns")->stats, b = p.pool->GetNamespace("ns2")->stats;
  CHECK(a.cached_blocks + b.cached_blocks == 2);
  CHECK(a.disk_blocks + b.disk_blocks == 6);
  CHECK(a.demoted_blocks + b.demoted_blocks == 6);
  CHECK(a.evicted_blocks + b.evicted_blocks == 0);
  CHECK(p.store->block_count() == 6);
  CHECK(p.MatchAndVerify(Prompt(1, 4)) == 4);
}

TEST_CASE("SwapOut counts as dropped only its own blocks, not those the tier drops for room",
          "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 32, 8);
  const auto old = Prompt(1, 8), fresh = Prompt(2, 4);
  p.Publish(old);
  REQUIRE(p.pool->SwapOut("ns", 8).ok());  // the tier is full of DISK-only blocks
  p.Publish(fresh);
  auto out = p.pool->SwapOut("ns", 4);
  REQUIRE(out.ok());
  // The tier dropped 4 of the old blocks to take the fresh ones: all 4 were demoted.
  CHECK(out->demoted_blocks == 4);
  CHECK(out->dropped_blocks == 0);
  CHECK(p.Tiers(fresh) == std::vector<Tier>(4, Tier::kDisk));
  CHECK(p.pool->GetNamespace("ns")->stats.evicted_blocks == 4);  // the old ones
  CHECK(p.MatchAndVerify(fresh) == 4);
}

TEST_CASE("SwapOut under concurrent SwapOuts, write-behind, publishes and deletes stays exact",
          "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 64, 256, true, [](MemPoolOptions& o) { WriteBehindBlocks(o, 16); });
  std::atomic<bool> stop{false};
  std::atomic<uint64_t> swapped{0};
  std::thread swapper([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      if (auto out = p.pool->SwapOut("ns", 5); out.ok()) swapped += out->demoted_blocks;
      p.pool->WriteBehind().status().IgnoreError();
    }
  });
  const auto prompts = RandomOps(p, 11, 200, 5, /*swap_out=*/true);
  stop = true;
  swapper.join();
  CHECK(swapped.load() > 0);
  for (const auto& prompt : prompts) p.MatchAndVerify(prompt);
  const auto stats = p.pool->GetNamespace("ns")->stats;
  CHECK(stats.disk_blocks == p.store->block_count());
  CHECK(stats.pinned_blocks == 0);

  // A SwapOut racing the namespace's deletion: NOT_FOUND or done, never a crash or a leak.
  for (uint32_t i = 0; i < 8; ++i) p.Publish(Prompt(600 + i, 4));
  std::thread late([&] {
    auto out = p.pool->SwapOut("ns", 32);
    CHECK((out.ok() || out.status().code() == StatusCode::kNotFound));
  });
  REQUIRE(p.pool->DeleteNamespace("ns").ok());
  late.join();
  CHECK(p.store->block_count() == 0);
  CHECK(p.store->used_bytes() == 0);
}

}  // namespace
}  // namespace kvpool::node
