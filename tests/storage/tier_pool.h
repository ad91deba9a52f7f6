// Test helpers of the MemPool's DISK tier: a pool on memory the test can read, with an SSD
// tier on a real BlockStore, and prompts whose blocks have known contents.
#pragma once

#include <catch2/catch.hpp>

#include <cstdlib>
#include <functional>
#include <memory>
#include <random>
#include <string>
#include <vector>

#include "common/clock.h"
#include "memory/host_arena.h"
#include "node/mempool.h"
#include "storage/block_store.h"
#include "temp_dir.h"

namespace kvpool::node::testing {

using storage::testing::ScratchDir;

constexpr uint32_t kBlockTokens = 4;
constexpr uint64_t kBlockBytes = 4096;

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

inline std::vector<uint8_t> ContentOf(const BlockHash& hash) {
  std::mt19937_64 rng(hash.lo ^ hash.hi);
  std::vector<uint8_t> out(kBlockBytes);
  for (size_t i = 0; i < out.size(); i += 8) {
    const uint64_t v = rng();
    for (size_t j = 0; j < 8; ++j) out[i + j] = static_cast<uint8_t>(v >> (8 * j));
  }
  return out;
}

class RecordingSink final : public EventSink {
 public:
  void OnEvent(PoolEvent event) override { events.push_back(std::move(event)); }
  std::vector<PoolEvent> events;
};

// A pool of `host_blocks` 4 KiB blocks on memory the test can read, with an SSD tier of
// `disk_blocks` blocks in `dir`, and a namespace "ns".
struct TierPool {
  TierPool(const std::string& dir, uint64_t host_blocks, uint64_t disk_blocks,
           bool count_on_open = true,
           const std::function<void(MemPoolOptions&)>& tweak = nullptr) {
    const uint64_t bytes = host_blocks * kBlockBytes;
    memory.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)));
    MemPoolOptions o;
    if (tweak) tweak(o);
    o.huge_pages = false;
    o.slab_bytes = 2 * kBlockBytes;
    o.max_request_blocks = 1024;
    auto arena = memory::HostArena::Adopt(memory.get(), bytes);
    REQUIRE(arena.ok());
    auto created = MemPool::Create(o, &clock, std::move(*arena));
    REQUIRE(created.ok());
    pool = std::move(*created);
    storage::BlockStoreOptions so;
    so.path = dir;
    so.capacity_bytes = disk_blocks * kBlockBytes;
    so.count_on_open = count_on_open;
    auto opened = storage::BlockStore::Open(so);
    REQUIRE(opened.ok());
    store = opened->get();
    auto recovered = pool->AttachStore(std::move(*opened));
    REQUIRE(recovered.ok());
    recovery = *recovered;
    REQUIRE(pool->CreateNamespace(NamespaceSpec{"ns", kBlockTokens, kBlockBytes, ""}).ok());
  }

  // Allocates, fills with ContentOf(hash) and inserts a whole prompt into `ns` (a namespace of
  // the same block size as "ns").
  void Publish(const std::vector<uint32_t>& tokens, bool durable = false,
               const std::string& ns = "ns") {
    const auto hashes = BlockHasher(ns, "", kBlockTokens).HashPrompt(tokens);
    auto alloc = pool->AllocMem(ns, static_cast<uint32_t>(hashes.size()), Tier::kHost, 0);
    REQUIRE(alloc.ok());
    std::vector<BlockHandle> handles;
    for (size_t i = 0; i < hashes.size(); ++i) {
      const auto content = ContentOf(hashes[i]);
      std::copy(content.begin(), content.end(), memory.get() + alloc->blocks[i].offset);
      handles.push_back(alloc->blocks[i].handle);
    }
    auto ins = pool->Insert(ns, PromptView::Tokens(tokens), 0, handles, alloc->lease.id, false,
                            durable);
    REQUIRE(ins.ok());
    REQUIRE(pool->Release(alloc->lease.id).ok());
  }

  std::vector<Tier> Tiers(const std::vector<uint32_t>& tokens) {
    auto e = pool->Exists("ns", PromptView::Tokens(tokens));
    REQUIRE(e.ok());
    return e->tiers;
  }

  // Match with a lease and compare every returned block's bytes with its content. Returns the
  // matched count.
  uint32_t MatchAndVerify(const std::vector<uint32_t>& tokens) {
    const auto hashes = BlockHasher("ns", "", kBlockTokens).HashPrompt(tokens);
    auto m = pool->Match("ns", PromptView::Tokens(tokens), 0, true, 0);
    REQUIRE(m.ok());
    for (uint32_t i = 0; i < m->matched_blocks; ++i) {
      const BlockLocation& b = m->blocks[i];
      REQUIRE(b.tier == Tier::kHost);
      const auto content = ContentOf(hashes[i]);
      REQUIRE(std::equal(content.begin(), content.end(), memory.get() + b.offset));
    }
    if (m->lease.id != 0) REQUIRE(pool->Release(m->lease.id).ok());
    return m->matched_blocks;
  }

  ManualClock clock;
  std::unique_ptr<uint8_t, FreeDeleter> memory;
  std::unique_ptr<MemPool> pool;
  storage::BlockStore* store = nullptr;  // owned by the pool
  RecoveryStats recovery;
};

inline std::vector<uint32_t> Prompt(uint32_t seed, size_t blocks) {
  std::vector<uint32_t> t(blocks * kBlockTokens);
  for (size_t i = 0; i < t.size(); ++i) t[i] = seed * 100'000 + static_cast<uint32_t>(i);
  return t;
}

}  // namespace kvpool::node::testing
