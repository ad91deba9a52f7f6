// The MemPool's DISK tier on a real BlockStore: demotion and promotion byte-exact, the prefix
// property under mixed-tier eviction (randomised), concurrent reads while blocks are demoted,
// recovery from the store, durable inserts and corrupt stored blocks.
#include <catch2/catch.hpp>

#include <atomic>
#include <cstdlib>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "common/clock.h"
#include "memory/host_arena.h"
#include "node/mempool.h"
#include "storage/block_store.h"
#include "temp_dir.h"
#include "tier_pool.h"

namespace kvpool::node {
namespace {

using namespace kvpool::node::testing;  // NOLINT: the test helpers

TEST_CASE("Tiers: SwapOut demotes and Match with a lease promotes, byte-exact", "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 16, 64);
  const auto prompt = Prompt(1, 6);
  p.Publish(prompt);
  CHECK(p.Tiers(prompt) == std::vector<Tier>(6, Tier::kHost));

  auto out = p.pool->SwapOut("ns", 4);
  REQUIRE(out.ok());
  CHECK(out->demoted_blocks == 4);
  CHECK(out->dropped_blocks == 0);
  // Deepest first: the prompt reads HOST then DISK.
  CHECK(p.Tiers(prompt) == std::vector<Tier>{Tier::kHost, Tier::kHost, Tier::kDisk, Tier::kDisk,
                                             Tier::kDisk, Tier::kDisk});
  // The freed slots are reused by another prompt: promotion must read the SSD tier.
  p.Publish(Prompt(99, 4));
  CHECK(p.MatchAndVerify(prompt) == 6);
  CHECK(p.Tiers(prompt) == std::vector<Tier>(6, Tier::kHost));
  CHECK(p.MatchAndVerify(Prompt(99, 4)) == 4);
}

TEST_CASE("Tiers: a DISK block is reported without a lease and promoted with one", "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 16, 64);
  const auto prompt = Prompt(2, 5);
  p.Publish(prompt);
  REQUIRE(p.pool->SwapOut("ns", 5)->demoted_blocks == 5);
  CHECK(p.Tiers(prompt) == std::vector<Tier>(5, Tier::kDisk));
  std::fill(p.memory.get(), p.memory.get() + 16 * kBlockBytes, uint8_t{0xee});

  auto peek = p.pool->Match("ns", PromptView::Tokens(prompt), 0, false, 0);
  REQUIRE(peek.ok());
  CHECK(peek->matched_blocks == 5);
  for (const auto& b : peek->blocks) {
    CHECK(b.tier == Tier::kDisk);
    CHECK(b.handle == 0);
  }
  CHECK(p.MatchAndVerify(prompt) == 5);
  CHECK(p.Tiers(prompt) == std::vector<Tier>(5, Tier::kHost));
  const auto stats = p.pool->GetNamespace("ns")->stats;
  CHECK(stats.promoted_blocks == 5);
  CHECK(stats.demoted_blocks == 5);
  CHECK(stats.disk_blocks == 5);  // the SSD tier keeps its copies
  // Demoting again writes nothing new.
  const uint64_t used = p.store->used_bytes();
  REQUIRE(p.pool->SwapOut("ns", 5)->demoted_blocks == 5);
  CHECK(p.store->used_bytes() == used);
  CHECK(p.MatchAndVerify(prompt) == 5);
}

TEST_CASE("Tiers: host pressure demotes instead of dropping, until the SSD tier is full",
          "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 8, 8);
  std::vector<std::vector<uint32_t>> prompts;
  for (uint32_t i = 0; i < 4; ++i) {
    prompts.push_back(Prompt(10 + i, 4));
    p.Publish(prompts.back());
  }
  // 16 blocks published, 8 fit in memory, 8 on the SSD tier: nothing lost yet.
  for (const auto& prompt : prompts) {
    for (Tier t : p.Tiers(prompt)) CHECK(t != Tier::kNone);
  }
  CHECK(p.pool->GetStats().disk_used_bytes == 8 * kBlockBytes);
  // One more prompt: the SSD tier drops its coldest blocks (the first prompt's).
  p.Publish(Prompt(20, 4));
  CHECK(p.Tiers(prompts[0]) == std::vector<Tier>(4, Tier::kNone));
  for (size_t i = 0; i < prompts.size(); ++i) CHECK(p.MatchAndVerify(prompts[i]) <= 4);
  CHECK(p.MatchAndVerify(Prompt(20, 4)) == 4);
}

TEST_CASE("Tiers: the prefix property holds under randomised mixed-tier eviction", "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 16, 24);
  std::mt19937 rng(20260611);
  std::vector<std::vector<uint32_t>> prompts;
  for (uint32_t i = 0; i < 16; ++i) {
    std::vector<uint32_t> t;
    if (!prompts.empty() && rng() % 2 == 0) {
      const auto& base = prompts[rng() % prompts.size()];
      const size_t keep = (1 + rng() % (base.size() / kBlockTokens)) * kBlockTokens;
      t.assign(base.begin(), base.begin() + static_cast<ptrdiff_t>(keep));
    }
    const size_t extra = 1 + rng() % 5;
    for (size_t j = 0; j < extra * kBlockTokens; ++j) t.push_back(i * 1'000'000 + rng() % 1000);
    prompts.push_back(std::move(t));
  }
  for (int step = 0; step < 400; ++step) {
    const auto& prompt = prompts[rng() % prompts.size()];
    switch (rng() % 5) {
      case 0:
      case 1:
        p.Publish(prompt);
        for (Tier t : p.Tiers(prompt)) REQUIRE(t == Tier::kHost);
        break;
      case 2:
        p.MatchAndVerify(prompt);
        break;
      case 3:
        REQUIRE(p.pool->SwapOut("ns", 1 + rng() % 4).ok());
        break;
      default:
        REQUIRE(p.pool->Evict("", 1 + rng() % 3).ok());
        break;
    }
    // Along every prompt: no hole, and HOST blocks before DISK ones.
    for (const auto& q : prompts) {
      const auto tiers = p.Tiers(q);
      for (size_t i = 1; i < tiers.size(); ++i) {
        INFO("step " << step << " block " << i);
        if (tiers[i - 1] == Tier::kNone) REQUIRE(tiers[i] == Tier::kNone);
        if (tiers[i - 1] == Tier::kDisk) REQUIRE(tiers[i] != Tier::kHost);
      }
    }
    REQUIRE(p.pool->GetStats().disk_used_bytes <= 24 * kBlockBytes);
  }
  for (const auto& q : prompts) p.MatchAndVerify(q);
}

TEST_CASE("Tiers: reads stay byte-exact while the same blocks are demoted concurrently",
          "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 16, 64);
  const auto prompt = Prompt(3, 8);
  p.Publish(prompt);
  std::atomic<bool> stop{false};
  std::thread demoter([&] {
    while (!stop.load(std::memory_order_relaxed)) {
      p.pool->SwapOut("ns", 8).status().IgnoreError();
      std::this_thread::yield();
    }
  });
  const auto hashes = BlockHasher("ns", "", kBlockTokens).HashPrompt(prompt);
  int full_matches = 0;
  for (int i = 0; i < 300; ++i) {
    auto m = p.pool->Match("ns", PromptView::Tokens(prompt), 0, true, 0);
    REQUIRE(m.ok());
    if (m->lease.id == 0) continue;
    // Pinned: the demoter cannot take these blocks until the lease is released.
    std::vector<BlockHandle> handles;
    for (const auto& b : m->blocks) handles.push_back(b.handle);
    auto resolved = p.pool->ResolveLeased(m->lease.id, handles, BlockAccess::kRead, true);
    REQUIRE(resolved.ok());
    for (size_t j = 0; j < handles.size(); ++j) {
      const auto content = ContentOf(hashes[j]);
      REQUIRE(resolved->checksums[j] == BlockChecksum(content.data(), content.size()));
    }
    full_matches += m->matched_blocks == 8 ? 1 : 0;
    REQUIRE(p.pool->Release(m->lease.id).ok());
  }
  stop = true;
  demoter.join();
  CHECK(full_matches == 300);
}

TEST_CASE("Tiers: concurrent matches promote without the lock, byte-exact, leaking nothing",
          "[storage]") {
  // Three threads match (promoting DISK blocks, read without the pool's lock) while the main
  // thread demotes, swaps in, deletes and republishes the same prompts.
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 64, 256);
  std::vector<std::vector<uint32_t>> prompts;
  for (uint32_t i = 0; i < 6; ++i) {
    prompts.push_back(Prompt(40 + i, 4));
    p.Publish(prompts.back());
  }
  REQUIRE(p.pool->SwapOut("ns", 24).ok());
  std::atomic<bool> stop{false};
  std::atomic<int> wrong_bytes{0}, errors{0}, full_matches{0};
  auto matcher = [&](uint32_t seed) {
    std::mt19937 rng(seed);
    while (!stop.load(std::memory_order_relaxed)) {
      const auto& prompt = prompts[rng() % prompts.size()];
      const auto hashes = BlockHasher("ns", "", kBlockTokens).HashPrompt(prompt);
      auto m = p.pool->Match("ns", PromptView::Tokens(prompt), 0, true, 0);
      if (!m.ok()) {
        ++errors;
        continue;
      }
      for (uint32_t i = 0; i < m->matched_blocks; ++i) {
        const auto content = ContentOf(hashes[i]);
        if (m->blocks[i].tier != Tier::kHost ||
            !std::equal(content.begin(), content.end(), p.memory.get() + m->blocks[i].offset)) {
          ++wrong_bytes;
        }
      }
      full_matches += m->matched_blocks == 4 ? 1 : 0;
      if (m->lease.id != 0 && !p.pool->Release(m->lease.id).ok()) ++errors;
    }
  };
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 3; ++t) threads.emplace_back(matcher, t);
  std::mt19937 rng(99);
  for (int step = 0; step < 300; ++step) {
    const auto& prompt = prompts[rng() % prompts.size()];
    if (rng() % 3 == 0) {
      REQUIRE(p.pool->Delete("ns", PromptView::Tokens(prompt)).ok());
      p.Publish(prompt);
    }
    REQUIRE(p.pool->SwapOut("ns", 1 + rng() % 8).ok());
    // SwapIn promotes the same way, leaving its blocks unpinned.
    if (rng() % 4 == 0) REQUIRE(p.pool->SwapIn("ns", PromptView::Tokens(prompt), 0).ok());
  }
  stop = true;
  for (auto& t : threads) t.join();
  CHECK(wrong_bytes.load() == 0);
  CHECK(errors.load() == 0);
  CHECK(full_matches.load() > 0);
  // Every slot a promotion took is cached or free again, and every pin was released.
  const auto stats = p.pool->GetNamespace("ns")->stats;
  CHECK(stats.allocated_blocks == 0);
  CHECK(stats.pinned_blocks == 0);
  CHECK(stats.used_bytes == stats.cached_blocks * kBlockBytes);
  for (const auto& prompt : prompts) CHECK(p.MatchAndVerify(prompt) == 4);
}

TEST_CASE("Tiers: tier changes are events and snapshots name each block's tier", "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 16, 64);
  RecordingSink sink;
  p.pool->SetEventSink(&sink);
  const auto prompt = Prompt(4, 3);
  p.Publish(prompt);
  REQUIRE(p.pool->SwapOut("ns", 2)->demoted_blocks == 2);
  auto snapshot = p.pool->Snapshot();
  REQUIRE(snapshot.namespaces.size() == 1);
  std::map<Tier, int> count;
  for (Tier t : snapshot.namespaces[0].tiers) ++count[t];
  CHECK(count[Tier::kHost] == 1);
  CHECK(count[Tier::kDisk] == 2);
  CHECK(p.MatchAndVerify(prompt) == 3);
  p.pool->SetEventSink(nullptr);
  REQUIRE(sink.events.size() >= 3);
  CHECK(sink.events[0].kind == PoolEvent::Kind::kStored);
  CHECK(sink.events[1].kind == PoolEvent::Kind::kTierChanged);
  CHECK(sink.events[1].tier == Tier::kDisk);
  CHECK(sink.events[1].hashes.size() == 2);
  CHECK(sink.events.back().kind == PoolEvent::Kind::kTierChanged);
  CHECK(sink.events.back().tier == Tier::kHost);
  CHECK(snapshot.last_event == 2);
}

TEST_CASE("Tiers: the index comes back from the SSD tier after a restart", "[storage]") {
  ScratchDir dir;
  const auto a = Prompt(5, 4);
  const auto b = Prompt(6, 3);
  std::vector<Tier> before;
  {
    TierPool p(dir.File("ssd"), 16, 64);
    p.Publish(b, /*durable=*/true);  // synced, without a shutdown demotion
    p.Publish(a);
    REQUIRE(p.pool->SwapOut("ns", 2)->demoted_blocks == 2);  // b's last two: the coldest
    before = p.Tiers(a);
    CHECK(before == std::vector<Tier>(4, Tier::kHost));
  }
  {
    // Opened as kvpoold opens it: AttachStore's one scan also counts the stored bytes.
    TierPool p(dir.File("ssd"), 16, 64, /*count_on_open=*/false);
    CHECK(p.recovery.namespaces == 1);
    CHECK(p.recovery.blocks == 3);  // b only: a was never written
    CHECK(p.recovery.bytes == 3 * kBlockBytes);
    CHECK(p.store->used_bytes() == 3 * kBlockBytes);
    CHECK(p.Tiers(a) == std::vector<Tier>(4, Tier::kNone));
    CHECK(p.Tiers(b) == std::vector<Tier>(3, Tier::kDisk));
    CHECK(p.MatchAndVerify(b) == 3);
    p.Publish(a);
    auto demoted = p.pool->DemoteAll();
    REQUIRE(demoted.ok());
    CHECK(*demoted == 4);  // b's blocks are there already
  }
  TierPool p(dir.File("ssd"), 16, 64);
  CHECK(p.recovery.blocks == 7);
  CHECK(p.recovery.bytes == 7 * kBlockBytes);
  CHECK(p.Tiers(a) == std::vector<Tier>(4, Tier::kDisk));
  CHECK(p.MatchAndVerify(a) == 4);
  CHECK(p.MatchAndVerify(b) == 3);
  // The namespace came back with its spec: another spec is a conflict.
  CHECK(p.pool->CreateNamespace(NamespaceSpec{"ns", 8, kBlockBytes, ""}).status().code() ==
        StatusCode::kAlreadyExists);
}

TEST_CASE("Tiers: a corrupt stored block is dropped with its DISK descendants, never served",
          "[storage]") {
  ScratchDir dir;
  TierPool p(dir.File("ssd"), 16, 64);
  const auto prompt = Prompt(7, 5);
  p.Publish(prompt);
  REQUIRE(p.pool->SwapOut("ns", 5)->demoted_blocks == 5);
  const auto hashes = BlockHasher("ns", "", kBlockTokens).HashPrompt(prompt);
  std::vector<uint8_t> garbage(kBlockBytes, 0x42);
  REQUIRE(p.store->OverwriteBytesForTesting("ns", hashes[2], garbage).ok());
  CHECK(p.MatchAndVerify(prompt) == 2);
  CHECK(p.Tiers(prompt) == std::vector<Tier>{Tier::kHost, Tier::kHost, Tier::kNone,
                                             Tier::kNone, Tier::kNone});
  CHECK(!p.store->Contains("ns", hashes[3]));
}

TEST_CASE("Tiers: durable inserts and swaps need an SSD tier", "[storage]") {
  MemPoolOptions o;
  o.capacity_bytes = 16 * kBlockBytes;
  o.huge_pages = false;
  ManualClock clock;
  auto pool = MemPool::Create(o, &clock);
  REQUIRE(pool.ok());
  REQUIRE((*pool)->CreateNamespace(NamespaceSpec{"ns", kBlockTokens, kBlockBytes, ""}).ok());
  auto alloc = (*pool)->AllocMem("ns", 1, Tier::kHost, 0);
  REQUIRE(alloc.ok());
  const auto prompt = Prompt(8, 1);
  const BlockHandle h = alloc->blocks[0].handle;
  auto ins = (*pool)->Insert("ns", PromptView::Tokens(prompt), 0, std::span(&h, 1),
                             alloc->lease.id, false, /*durable=*/true);
  CHECK(ins.status().code() == StatusCode::kFailedPrecondition);
  CHECK((*pool)->Exists("ns", PromptView::Tokens(prompt))->present_blocks == 0);
  CHECK((*pool)->SwapOut("ns", 1).status().code() == StatusCode::kFailedPrecondition);
  CHECK((*pool)->SwapIn("ns", PromptView::Tokens(prompt), 0).status().code() ==
        StatusCode::kFailedPrecondition);
  CHECK((*pool)->SwapOut("ns", 0).status().code() == StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kvpool::node
