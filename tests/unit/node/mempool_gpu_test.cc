// The GPU tier of MemPool on the emulated device (device.h): allocation, tiers in Match, Exists
// and events, per-tier eviction, checksums of device bytes, demotion to the SSD tier; and the
// same on a real CUDA device where there is one ([gpu]).
#include <catch2/catch.hpp>
#include <algorithm>
#include <cstring>
#include <filesystem>
#include <numeric>

#include "common/clock.h"
#include "kvpool/block_hash.h"
#include "node/mempool.h"
#include "storage/block_store.h"

namespace kvpool::node {
namespace {

constexpr uint32_t kBlockTokens = 4;
constexpr uint64_t kBlockBytes = 4096;

struct Events : EventSink {
  void OnEvent(PoolEvent event) override { events.push_back(std::move(event)); }
  std::vector<PoolEvent> events;
};

// 16 host blocks and `gpu_blocks` GPU blocks of 4 KiB, namespace "ns" (with a host quota of
// `quota_blocks` blocks unless 0).
struct GpuFixture {
  explicit GpuFixture(std::unique_ptr<memory::DeviceRuntime> device, uint64_t gpu_blocks = 8,
                      uint64_t quota_blocks = 0) {
    MemPoolOptions o;
    o.default_namespace_quota_bytes = quota_blocks * kBlockBytes;
    o.capacity_bytes = 16 * kBlockBytes;
    o.huge_pages = false;
    o.slab_bytes = 4 * kBlockBytes;
    o.max_request_blocks = 1024;
    auto created = MemPool::Create(o, &clock);
    REQUIRE(created.ok());
    pool = std::move(created).value();
    pool->SetEventSink(&sink);
    REQUIRE(pool->CreateNamespace(NamespaceSpec{"ns", kBlockTokens, kBlockBytes, ""}).ok());
    REQUIRE(pool->AttachGpu(std::move(device), gpu_blocks * kBlockBytes).ok());
  }

  // Allocates `tier` blocks, fills block i with byte (seed + i) on the device, inserts them as
  // the prompt's blocks and releases the lease.
  std::vector<BlockLocation> Publish(const std::vector<uint32_t>& tokens, Tier tier,
                                     uint8_t seed) {
    const uint32_t n = static_cast<uint32_t>(tokens.size() / kBlockTokens);
    auto alloc = pool->AllocMem("ns", n, tier, 0);
    REQUIRE(alloc.ok());
    std::vector<BlockHandle> handles;
    std::vector<uint8_t> bytes(kBlockBytes);
    for (uint32_t i = 0; i < n; ++i) {
      const BlockLocation& b = alloc->blocks[i];
      CHECK(b.tier == tier);
      handles.push_back(b.handle);
      if (tier == Tier::kGpu) {
        std::memset(bytes.data(), seed + i, bytes.size());
        REQUIRE(pool->device()->CopySync(pool->gpu_base() + b.offset, bytes.data(), kBlockBytes)
                    .ok());
      }
    }
    auto ins = pool->Insert("ns", PromptView::Tokens(tokens), 0, handles, alloc->lease.id, false);
    REQUIRE(ins.ok());
    REQUIRE(pool->Release(alloc->lease.id).ok());
    return alloc->blocks;
  }

  static std::vector<uint32_t> Tokens(uint32_t blocks, uint32_t first) {
    std::vector<uint32_t> t(blocks * kBlockTokens);
    std::iota(t.begin(), t.end(), first);
    return t;
  }

  ManualClock clock;
  Events sink;
  std::unique_ptr<MemPool> pool;
};

void CheckGpuTier(std::unique_ptr<memory::DeviceRuntime> device) {
  GpuFixture f(std::move(device));
  const auto prompt = GpuFixture::Tokens(3, 100);
  f.Publish(prompt, Tier::kGpu, 10);
  // Match reports GPU blocks, with offsets inside the GPU tier; Exists agrees.
  auto m = f.pool->Match("ns", PromptView::Tokens(prompt), 0, /*lease=*/true, 0);
  REQUIRE(m.ok());
  REQUIRE(m->matched_blocks == 3);
  std::vector<BlockHandle> handles;
  for (const BlockLocation& b : m->blocks) {
    CHECK(b.tier == Tier::kGpu);
    CHECK(b.offset + b.length <= 8 * kBlockBytes);
    handles.push_back(b.handle);
  }
  auto exists = f.pool->Exists("ns", PromptView::Tokens(prompt));
  REQUIRE(exists.ok());
  CHECK(exists->tiers == std::vector<Tier>(3, Tier::kGpu));
  // Checksums read the device bytes.
  auto resolved = f.pool->ResolveLeased(m->lease.id, handles, BlockAccess::kRead, true);
  REQUIRE(resolved.ok());
  std::vector<uint8_t> expect(kBlockBytes);
  for (size_t i = 0; i < 3; ++i) {
    std::memset(expect.data(), 10 + static_cast<int>(i), expect.size());
    CHECK(resolved->checksums[i] == BlockChecksum(expect.data(), expect.size()));
  }
  REQUIRE(f.pool->Release(m->lease.id).ok());
  // The KV event names the GPU tier; the snapshot too.
  REQUIRE_FALSE(f.sink.events.empty());
  CHECK(f.sink.events.back().kind == PoolEvent::Kind::kStored);
  CHECK(f.sink.events.back().tier == Tier::kGpu);
  PoolSnapshot snap = f.pool->Snapshot();
  REQUIRE(snap.namespaces.size() == 1);
  CHECK(snap.namespaces[0].tiers == std::vector<Tier>(3, Tier::kGpu));
  // Stats count the GPU tier apart from host memory.
  PoolStats stats = f.pool->GetStats();
  CHECK(stats.gpu_capacity_bytes == 8 * kBlockBytes);
  CHECK_FALSE(stats.gpu_device.empty());
  CHECK(stats.namespaces[0].stats.gpu_used_bytes == 3 * kBlockBytes);
  CHECK(stats.namespaces[0].stats.used_bytes == 0);
}

TEST_CASE("MemPool GPU tier: allocate, insert, match and checksum GPU blocks (emulated)",
          "[node]") {
  CheckGpuTier(memory::NewEmulatedDevice());
}

TEST_CASE("MemPool GPU tier: the same on a CUDA device", "[gpu]") {
  Result<std::unique_ptr<memory::DeviceRuntime>> device = memory::OpenCudaDevice(0);
  if (!device.ok()) {
    WARN("skipping [gpu] test: " << device.status().ToString());
    return;
  }
  CheckGpuTier(std::move(device).value());
}

TEST_CASE("MemPool GPU tier: GPU pressure evicts GPU blocks only and host pressure host only",
          "[node]") {
  GpuFixture f(memory::NewEmulatedDevice(), /*gpu_blocks=*/4);
  const auto host_prompt = GpuFixture::Tokens(4, 1000);
  f.Publish(host_prompt, Tier::kHost, 0);
  const auto gpu_a = GpuFixture::Tokens(4, 2000);
  f.Publish(gpu_a, Tier::kGpu, 1);
  // A second GPU prompt fills the GPU tier again: gpu_a leaves it (down to HOST, which has
  // room), the host blocks stay.
  const auto gpu_b = GpuFixture::Tokens(4, 3000);
  f.Publish(gpu_b, Tier::kGpu, 2);
  auto exists = f.pool->Exists("ns", PromptView::Tokens(gpu_a));
  REQUIRE(exists.ok());
  CHECK(exists->tiers == std::vector<Tier>(4, Tier::kHost));
  auto host = f.pool->Exists("ns", PromptView::Tokens(host_prompt));
  REQUIRE(host.ok());
  CHECK(host->tiers == std::vector<Tier>(4, Tier::kHost));
  // Host pressure (16 host blocks: 4 used, ask 16) evicts the host prompt, never GPU blocks.
  auto big = f.pool->AllocMem("ns", 16, Tier::kHost, 0);
  REQUIRE(big.ok());
  auto gpu = f.pool->Exists("ns", PromptView::Tokens(gpu_b));
  REQUIRE(gpu.ok());
  CHECK(gpu->tiers == std::vector<Tier>(4, Tier::kGpu));
  REQUIRE(f.pool->Release(big->lease.id).ok());
  // More GPU blocks than the tier has: RESOURCE_EXHAUSTED naming the tier.
  auto too_many = f.pool->AllocMem("ns", 5, Tier::kGpu, 0);
  CHECK(too_many.status().code() == StatusCode::kResourceExhausted);
  CHECK(too_many.status().message().find("gpu") != std::string::npos);
}

TEST_CASE("MemPool GPU tier: a mixed HOST then GPU prompt matches across both tiers", "[node]") {
  GpuFixture f(memory::NewEmulatedDevice());
  const auto prompt = GpuFixture::Tokens(4, 500);
  // Blocks 0-1 on HOST, blocks 2-3 on GPU (an engine that keeps the tail in HBM).
  auto host = f.pool->AllocMem("ns", 2, Tier::kHost, 0);
  auto gpu = f.pool->AllocMem("ns", 2, Tier::kGpu, 0);
  REQUIRE(host.ok());
  REQUIRE(gpu.ok());
  REQUIRE(f.pool->Insert("ns", PromptView::Tokens(prompt), 0,
                         std::vector<BlockHandle>{host->blocks[0].handle, host->blocks[1].handle},
                         host->lease.id, false)
              .ok());
  REQUIRE(f.pool->Insert("ns", PromptView::Tokens(prompt), 2,
                         std::vector<BlockHandle>{gpu->blocks[0].handle, gpu->blocks[1].handle},
                         gpu->lease.id, false)
              .ok());
  auto m = f.pool->Match("ns", PromptView::Tokens(prompt), 0, true, 0);
  REQUIRE(m.ok());
  REQUIRE(m->matched_blocks == 4);
  CHECK(m->blocks[0].tier == Tier::kHost);
  CHECK(m->blocks[3].tier == Tier::kGpu);
  // Pinned by the lease: neither tier's pressure evicts them.
  CHECK(f.pool->AllocMem("ns", 8, Tier::kGpu, 0).status().code() ==
        StatusCode::kResourceExhausted);
  REQUIRE(f.pool->Release(m->lease.id).ok());
}

TEST_CASE("MemPool GPU tier: refusals name the tier", "[node]") {
  ManualClock clock;
  MemPoolOptions o;
  o.capacity_bytes = 16 * kBlockBytes;
  o.huge_pages = false;
  auto pool = MemPool::Create(o, &clock);
  REQUIRE(pool.ok());
  REQUIRE((*pool)->CreateNamespace(NamespaceSpec{"ns", kBlockTokens, kBlockBytes, ""}).ok());
  auto no_gpu = (*pool)->AllocMem("ns", 1, Tier::kGpu, 0);
  CHECK(no_gpu.status().code() == StatusCode::kFailedPrecondition);
  CHECK(no_gpu.status().message().find("--gpu-capacity") != std::string::npos);
  CHECK((*pool)->AllocMem("ns", 1, Tier::kDisk, 0).status().code() ==
        StatusCode::kFailedPrecondition);
  CHECK((*pool)->AttachGpu(memory::NewEmulatedDevice(), 100).code() ==
        StatusCode::kInvalidArgument);
  // Attached after the namespace exists: that namespace gets GPU blocks too.
  REQUIRE((*pool)->AttachGpu(memory::NewEmulatedDevice(), 4 * kBlockBytes).ok());
  CHECK((*pool)->AllocMem("ns", 1, Tier::kGpu, 0).ok());
  CHECK((*pool)->AttachGpu(memory::NewEmulatedDevice(), 4 * kBlockBytes).code() ==
        StatusCode::kFailedPrecondition);
}

TEST_CASE("MemPool GPU tier: evicted GPU blocks are demoted to the SSD tier byte-exact",
          "[node]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kvpool-gpu-demote-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  {
    GpuFixture f(memory::NewEmulatedDevice(), /*gpu_blocks=*/2);
    storage::BlockStoreOptions so;
    so.path = dir.string();
    so.capacity_bytes = 64 * kBlockBytes;
    auto store = storage::BlockStore::Open(so);
    REQUIRE(store.ok());
    REQUIRE(f.pool->AttachStore(std::move(store).value()).ok());
    const auto prompt = GpuFixture::Tokens(2, 40);
    f.Publish(prompt, Tier::kGpu, 50);
    // HOST is full of leased blocks, so filling the GPU tier again sends the first prompt down
    // to DISK, not away.
    auto host = f.pool->AllocMem("ns", 16, Tier::kHost, 0);
    REQUIRE(host.ok());
    f.Publish(GpuFixture::Tokens(2, 90), Tier::kGpu, 60);
    REQUIRE(f.pool->Release(host->lease.id).ok());
    auto exists = f.pool->Exists("ns", PromptView::Tokens(prompt));
    REQUIRE(exists.ok());
    CHECK(exists->tiers == std::vector<Tier>(2, Tier::kDisk));
    CHECK(f.pool->GetStats().namespaces[0].stats.demoted_blocks == 2);
    // Match with a lease promotes to HOST; the bytes are the ones written on the device.
    auto m = f.pool->Match("ns", PromptView::Tokens(prompt), 0, true, 0);
    REQUIRE(m.ok());
    REQUIRE(m->matched_blocks == 2);
    const std::vector<BlockHandle> handles{m->blocks[0].handle, m->blocks[1].handle};
    auto resolved = f.pool->ResolveLeased(m->lease.id, handles, BlockAccess::kRead, true);
    REQUIRE(resolved.ok());
    std::vector<uint8_t> expect(kBlockBytes);
    for (int i = 0; i < 2; ++i) {
      CHECK(m->blocks[i].tier == Tier::kHost);
      std::memset(expect.data(), 50 + i, expect.size());
      CHECK(resolved->checksums[i] == BlockChecksum(expect.data(), expect.size()));
    }
    REQUIRE(f.pool->Release(m->lease.id).ok());
  }
  std::filesystem::remove_all(dir);
}

// The checksums of `n` blocks of `prompt` read through a lease, which must match all of them.
std::vector<uint64_t> MatchedChecksums(MemPool& pool, const std::vector<uint32_t>& prompt,
                                       uint32_t n, std::vector<Tier>* tiers) {
  auto m = pool.Match("ns", PromptView::Tokens(prompt), 0, true, 0);
  REQUIRE(m.ok());
  REQUIRE(m->matched_blocks == n);
  std::vector<BlockHandle> handles;
  tiers->clear();
  for (const BlockLocation& b : m->blocks) {
    handles.push_back(b.handle);
    tiers->push_back(b.tier);
  }
  auto resolved = pool.ResolveLeased(m->lease.id, handles, BlockAccess::kRead, true);
  REQUIRE(resolved.ok());
  REQUIRE(pool.Release(m->lease.id).ok());
  return resolved->checksums;
}

uint64_t FilledChecksum(int byte) {
  std::vector<uint8_t> expect(kBlockBytes);
  std::memset(expect.data(), byte, expect.size());
  return BlockChecksum(expect.data(), expect.size());
}

// The hashes of the TIER_CHANGED events to `tier` since event `first`, in order.
std::vector<BlockHash> TierChanges(const Events& sink, size_t first, Tier tier) {
  std::vector<BlockHash> out;
  for (size_t i = first; i < sink.events.size(); ++i) {
    const PoolEvent& e = sink.events[i];
    if (e.kind == PoolEvent::Kind::kTierChanged && e.tier == tier) {
      out.insert(out.end(), e.hashes.begin(), e.hashes.end());
    }
  }
  return out;
}

size_t CountRemoved(const Events& sink, size_t first) {
  size_t n = 0;
  for (size_t i = first; i < sink.events.size(); ++i) {
    if (sink.events[i].kind == PoolEvent::Kind::kRemoved) n += sink.events[i].hashes.size();
  }
  return n;
}

TEST_CASE("MemPool GPU tier: GPU pressure demotes the coldest GPU blocks to HOST byte-exact",
          "[node]") {
  GpuFixture f(memory::NewEmulatedDevice(), /*gpu_blocks=*/4);
  const auto prompt = GpuFixture::Tokens(4, 700);
  f.Publish(prompt, Tier::kGpu, 20);
  REQUIRE(f.sink.events.back().kind == PoolEvent::Kind::kStored);
  const std::vector<BlockHash> hashes = f.sink.events.back().hashes;
  REQUIRE(hashes.size() == 4);

  // Two GPU blocks wanted: the prompt's two deepest blocks (the coldest leaves) go to HOST,
  // their parents stay on GPU where they are.
  size_t first = f.sink.events.size();
  auto two = f.pool->AllocMem("ns", 2, Tier::kGpu, 0);
  REQUIRE(two.ok());
  auto exists = f.pool->Exists("ns", PromptView::Tokens(prompt));
  REQUIRE(exists.ok());
  CHECK(exists->tiers == std::vector<Tier>{Tier::kGpu, Tier::kGpu, Tier::kHost, Tier::kHost});
  std::vector<BlockHash> moved = TierChanges(f.sink, first, Tier::kHost);
  std::sort(moved.begin(), moved.end());
  std::vector<BlockHash> expect_moved{hashes[2], hashes[3]};
  std::sort(expect_moved.begin(), expect_moved.end());
  CHECK(moved == expect_moved);
  CHECK(CountRemoved(f.sink, first) == 0);
  NamespaceStats st = f.pool->GetStats().namespaces[0].stats;
  CHECK(st.demoted_blocks == 2);
  CHECK(st.evicted_blocks == 0);
  CHECK(st.cached_blocks == 4);
  CHECK(st.used_bytes == 2 * kBlockBytes);
  CHECK(st.gpu_used_bytes == 4 * kBlockBytes);  // 2 cached + 2 allocated

  // Two more: the GPU parents have only HOST children now, and go down too.
  first = f.sink.events.size();
  auto more = f.pool->AllocMem("ns", 2, Tier::kGpu, 0);
  REQUIRE(more.ok());
  exists = f.pool->Exists("ns", PromptView::Tokens(prompt));
  REQUIRE(exists.ok());
  CHECK(exists->tiers == std::vector<Tier>(4, Tier::kHost));
  moved = TierChanges(f.sink, first, Tier::kHost);
  std::sort(moved.begin(), moved.end());
  expect_moved = {hashes[0], hashes[1]};
  std::sort(expect_moved.begin(), expect_moved.end());
  CHECK(moved == expect_moved);

  // Match finds the whole prompt on HOST with the bytes written on the device.
  std::vector<Tier> tiers;
  const std::vector<uint64_t> sums = MatchedChecksums(*f.pool, prompt, 4, &tiers);
  CHECK(tiers == std::vector<Tier>(4, Tier::kHost));
  for (int i = 0; i < 4; ++i) CHECK(sums[i] == FilledChecksum(20 + i));
  PoolSnapshot snap = f.pool->Snapshot();
  REQUIRE(snap.namespaces.size() == 1);
  CHECK(snap.namespaces[0].tiers == std::vector<Tier>(4, Tier::kHost));
  st = f.pool->GetStats().namespaces[0].stats;
  CHECK(st.demoted_blocks == 4);
  CHECK(st.evicted_blocks == 0);
  CHECK(st.cached_blocks == 4);
  CHECK(st.used_bytes == 4 * kBlockBytes);
  CHECK(st.gpu_used_bytes == 4 * kBlockBytes);
  REQUIRE(f.pool->Release(two->lease.id).ok());
  REQUIRE(f.pool->Release(more->lease.id).ok());
  CHECK(f.pool->GetStats().namespaces[0].stats.gpu_used_bytes == 0);

  // The demoted blocks are ordinary HOST blocks: host pressure evicts them.
  auto host = f.pool->AllocMem("ns", 16, Tier::kHost, 0);
  REQUIRE(host.ok());
  exists = f.pool->Exists("ns", PromptView::Tokens(prompt));
  REQUIRE(exists.ok());
  CHECK(exists->tiers == std::vector<Tier>(4, Tier::kNone));
  st = f.pool->GetStats().namespaces[0].stats;
  CHECK(st.cached_blocks == 0);
  CHECK(st.used_bytes == 16 * kBlockBytes);
  REQUIRE(f.pool->Release(host->lease.id).ok());
}

TEST_CASE("MemPool GPU tier: a full HOST tier or a quota drops evicted GPU blocks without an SSD",
          "[node]") {
  SECTION("HOST full of leased blocks") {
    GpuFixture f(memory::NewEmulatedDevice(), /*gpu_blocks=*/4);
    const auto prompt = GpuFixture::Tokens(4, 800);
    f.Publish(prompt, Tier::kGpu, 30);
    auto host = f.pool->AllocMem("ns", 16, Tier::kHost, 0);
    REQUIRE(host.ok());
    const size_t first = f.sink.events.size();
    auto gpu = f.pool->AllocMem("ns", 4, Tier::kGpu, 0);
    REQUIRE(gpu.ok());
    auto exists = f.pool->Exists("ns", PromptView::Tokens(prompt));
    REQUIRE(exists.ok());
    CHECK(exists->tiers == std::vector<Tier>(4, Tier::kNone));
    CHECK(TierChanges(f.sink, first, Tier::kHost).empty());
    CHECK(CountRemoved(f.sink, first) == 4);
    const NamespaceStats st = f.pool->GetStats().namespaces[0].stats;
    CHECK(st.demoted_blocks == 0);
    CHECK(st.evicted_blocks == 4);
    CHECK(st.cached_blocks == 0);
    CHECK(st.used_bytes == 16 * kBlockBytes);
    CHECK(st.gpu_used_bytes == 4 * kBlockBytes);
  }
  SECTION("the namespace's host quota") {
    // A quota of 3 host blocks, 2 of them leased: one GPU block fits under it, the rest drop.
    GpuFixture f(memory::NewEmulatedDevice(), /*gpu_blocks=*/4, /*quota_blocks=*/3);
    const auto prompt = GpuFixture::Tokens(4, 900);
    f.Publish(prompt, Tier::kGpu, 40);
    auto host = f.pool->AllocMem("ns", 2, Tier::kHost, 0);
    REQUIRE(host.ok());
    const size_t first = f.sink.events.size();
    auto gpu = f.pool->AllocMem("ns", 4, Tier::kGpu, 0);
    REQUIRE(gpu.ok());
    auto exists = f.pool->Exists("ns", PromptView::Tokens(prompt));
    REQUIRE(exists.ok());
    // Parents go first: block 0 takes the free quota slot, the rest are dropped.
    CHECK(exists->tiers == std::vector<Tier>{Tier::kHost, Tier::kNone, Tier::kNone, Tier::kNone});
    CHECK(TierChanges(f.sink, first, Tier::kHost).size() == 1);
    CHECK(CountRemoved(f.sink, first) == 3);
    const NamespaceStats st = f.pool->GetStats().namespaces[0].stats;
    CHECK(st.demoted_blocks == 1);
    CHECK(st.evicted_blocks == 3);
    CHECK(st.used_bytes == 3 * kBlockBytes);
    std::vector<Tier> tiers;
    const std::vector<uint64_t> sums = MatchedChecksums(*f.pool, prompt, 1, &tiers);
    CHECK(sums[0] == FilledChecksum(40));
  }
}

TEST_CASE("MemPool GPU tier: a full HOST tier makes room for demoted GPU blocks by host eviction",
          "[node]") {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / ("kvpool-gpu-room-" + std::to_string(getpid()));
  std::filesystem::remove_all(dir);
  {
    const bool ssd = GENERATE(false, true);
    CAPTURE(ssd);
    GpuFixture f(memory::NewEmulatedDevice(), /*gpu_blocks=*/4);
    if (ssd) {
      storage::BlockStoreOptions so;
      so.path = dir.string();
      so.capacity_bytes = 64 * kBlockBytes;
      auto store = storage::BlockStore::Open(so);
      REQUIRE(store.ok());
      REQUIRE(f.pool->AttachStore(std::move(store).value()).ok());
    }
    // HOST full of cached blocks: the coldest is the last block of `prefix` (2 blocks), whose
    // only child is the GPU block published under it.
    const auto prompt = GpuFixture::Tokens(3, 5000);
    const std::vector<uint32_t> prefix(prompt.begin(), prompt.begin() + 2 * kBlockTokens);
    f.Publish(prefix, Tier::kHost, 0);
    const auto filler = GpuFixture::Tokens(14, 6000);
    f.Publish(filler, Tier::kHost, 0);
    auto alloc = f.pool->AllocMem("ns", 1, Tier::kGpu, 0);
    REQUIRE(alloc.ok());
    std::vector<uint8_t> bytes(kBlockBytes, 77);
    REQUIRE(f.pool->device()
                ->CopySync(f.pool->gpu_base() + alloc->blocks[0].offset, bytes.data(),
                           kBlockBytes)
                .ok());
    const BlockHandle handle = alloc->blocks[0].handle;
    REQUIRE(f.pool
                ->Insert("ns", PromptView::Tokens(prompt), 2, std::span(&handle, 1),
                         alloc->lease.id, false)
                .ok());
    REQUIRE(f.pool->Release(alloc->lease.id).ok());
    f.Publish(GpuFixture::Tokens(3, 7000), Tier::kGpu, 90);
    REQUIRE(f.pool->GetStats().namespaces[0].stats.used_bytes == 16 * kBlockBytes);

    // One GPU block wanted: the GPU block under `prefix` is the coldest GPU leaf and goes to
    // HOST; host eviction makes it room from the filler's last block, never from its own
    // parent, though that was the colder HOST leaf.
    const size_t first = f.sink.events.size();
    auto gpu = f.pool->AllocMem("ns", 1, Tier::kGpu, 0);
    REQUIRE(gpu.ok());
    auto exists = f.pool->Exists("ns", PromptView::Tokens(prompt));
    REQUIRE(exists.ok());
    CHECK(exists->tiers == std::vector<Tier>(3, Tier::kHost));
    exists = f.pool->Exists("ns", PromptView::Tokens(filler));
    REQUIRE(exists.ok());
    std::vector<Tier> expect(13, Tier::kHost);
    expect.push_back(ssd ? Tier::kDisk : Tier::kNone);
    CHECK(exists->tiers == expect);
    CHECK(TierChanges(f.sink, first, Tier::kHost).size() == 1);
    CHECK(TierChanges(f.sink, first, Tier::kDisk).size() == (ssd ? 1 : 0));
    CHECK(CountRemoved(f.sink, first) == (ssd ? 0 : 1));
    const NamespaceStats st = f.pool->GetStats().namespaces[0].stats;
    CHECK(st.demoted_blocks == (ssd ? 2 : 1));
    CHECK(st.evicted_blocks == (ssd ? 0 : 1));
    CHECK(st.used_bytes == 16 * kBlockBytes);
    CHECK(st.cached_blocks == 2 + 14 + 3);  // prompt, filler less one, the other GPU prompt
    CHECK(st.gpu_used_bytes == 4 * kBlockBytes);
    REQUIRE(f.pool->Release(gpu->lease.id).ok());
    std::vector<Tier> tiers;
    const std::vector<uint64_t> sums = MatchedChecksums(*f.pool, prompt, 3, &tiers);
    CHECK(tiers == std::vector<Tier>(3, Tier::kHost));
    CHECK(sums[2] == FilledChecksum(77));
  }
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvpool::node
