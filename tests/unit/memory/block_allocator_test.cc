#include "memory/block_allocator.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstring>
#include <random>
#include <set>
#include <utility>
#include <vector>

#include "memory/host_arena.h"
#include "test_arena.h"

namespace kvpool::memory {
namespace {

constexpr uint64_t kKiB = 1ull << 10;

std::unique_ptr<BlockAllocator> MakeAllocator(HostArena* arena, uint64_t block_bytes,
                                              uint64_t slab_bytes, uint32_t spare_slabs) {
  BlockAllocatorOptions options;
  options.block_bytes = block_bytes;
  options.slab_bytes = slab_bytes;
  options.spare_slabs = spare_slabs;
  auto allocator = BlockAllocator::Create(arena, options);
  REQUIRE(allocator.ok());
  return std::move(allocator).value();
}

// Checks that the blocks' byte ranges lie inside the arena and do not overlap.
void CheckDisjointAndInside(const HostArena& arena,
                            const std::vector<std::pair<uint64_t, uint64_t>>& ranges) {
  std::vector<std::pair<uint64_t, uint64_t>> sorted = ranges;
  std::sort(sorted.begin(), sorted.end());
  for (size_t i = 0; i < sorted.size(); ++i) {
    CHECK(sorted[i].first + sorted[i].second <= arena.capacity_bytes());
    if (i > 0) CHECK(sorted[i - 1].first + sorted[i - 1].second <= sorted[i].first);
  }
}

std::vector<std::pair<uint64_t, uint64_t>> Ranges(const BlockAllocator& allocator,
                                                  const std::vector<Slot>& slots) {
  std::vector<std::pair<uint64_t, uint64_t>> ranges;
  for (const Slot slot : slots) {
    ranges.emplace_back(allocator.ArenaOffset(slot), allocator.block_bytes());
  }
  return ranges;
}

// Fills each block with a byte derived from its slot, then reads every block back: a block that
// overlapped another would have been partly overwritten.
void WriteAndVerifyPatterns(const BlockAllocator& allocator, const std::vector<Slot>& slots) {
  for (const Slot slot : slots) {
    std::memset(allocator.Address(slot), static_cast<int>(slot * 37 + 11) & 0xff,
                allocator.block_bytes());
  }
  for (const Slot slot : slots) {
    const uint8_t expected = static_cast<uint8_t>(slot * 37 + 11);
    const uint8_t* p = allocator.Address(slot);
    bool intact = true;
    for (uint64_t i = 0; i < allocator.block_bytes(); ++i) intact = intact && p[i] == expected;
    INFO("slot " << slot);
    CHECK(intact);
  }
}

TEST_CASE("BlockAllocator: zero block_bytes and null arena are INVALID_ARGUMENT", "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  BlockAllocatorOptions options;
  auto zero = BlockAllocator::Create(arena.get(), options);
  REQUIRE_FALSE(zero.ok());
  CHECK(zero.status().code() == StatusCode::kInvalidArgument);

  options.block_bytes = 4 * kKiB;
  auto null_arena = BlockAllocator::Create(nullptr, options);
  REQUIRE_FALSE(null_arena.ok());
  CHECK(null_arena.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("BlockAllocator: a slab that cannot fit the arena is INVALID_ARGUMENT", "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  BlockAllocatorOptions options;
  options.block_bytes = 4 * kKiB;
  options.slab_bytes = 128 * kKiB;
  auto allocator = BlockAllocator::Create(arena.get(), options);
  REQUIRE_FALSE(allocator.ok());
  CHECK(allocator.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(allocator.status().message(), Catch::Contains("131072"));
}

TEST_CASE("BlockAllocator: blocks_per_slab follows slab_bytes and is at least one",
          "[memory]") {
  auto arena = MakePlainArena(1024 * kKiB);
  CHECK(MakeAllocator(arena.get(), 4 * kKiB, 64 * kKiB, 1)->blocks_per_slab() == 16);
  CHECK(MakeAllocator(arena.get(), 3000, 16 * kKiB, 1)->blocks_per_slab() == 5);
  CHECK(MakeAllocator(arena.get(), 100 * kKiB, 32 * kKiB, 1)->blocks_per_slab() == 1);
}

TEST_CASE("BlockAllocator: zero blocks is OK and allocates nothing", "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 1);
  std::vector<Slot> slots;
  REQUIRE(allocator->Allocate(0, &slots).ok());
  CHECK(slots.empty());
  CHECK(allocator->slabs() == 0);
  CHECK(arena->free_bytes() == 64 * kKiB);
}

TEST_CASE("BlockAllocator: blocks are distinct, inside the arena and do not overlap",
          "[memory]") {
  // 3000-byte blocks: 5 per slab, so slabs are 15000 bytes rounded up to 16 KiB extents and
  // blocks are not page aligned; catches any mix-up between slab and block arithmetic.
  auto arena = MakePlainArena(256 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 3000, 16 * kKiB, 1);
  std::vector<Slot> slots;
  REQUIRE(allocator->Allocate(73, &slots).ok());
  REQUIRE(slots.size() == 73);
  CHECK(allocator->used_blocks() == 73);
  CHECK(allocator->slabs() == 15);
  CHECK(allocator->reserved_blocks() == 75);
  CHECK(std::set<Slot>(slots.begin(), slots.end()).size() == 73);
  for (const Slot slot : slots) {
    CHECK(slot < allocator->slot_limit());
    CHECK(allocator->IsAllocated(slot));
    CHECK(allocator->Address(slot) == arena->base() + allocator->ArenaOffset(slot));
  }
  CheckDisjointAndInside(*arena, Ranges(*allocator, slots));
  WriteAndVerifyPatterns(*allocator, slots);
  CHECK(arena->free_bytes() == 256 * kKiB - 15 * 16 * kKiB);
}

TEST_CASE("BlockAllocator: Allocate appends to the output vector", "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 1);
  std::vector<Slot> slots = {12345};
  REQUIRE(allocator->Allocate(3, &slots).ok());
  REQUIRE(slots.size() == 4);
  CHECK(slots[0] == 12345);
  CHECK(allocator->used_blocks() == 3);
}

TEST_CASE("BlockAllocator: exhaustion is all or nothing", "[memory]") {
  // Room for exactly 4 slabs of 4 blocks.
  auto arena = MakePlainArena(64 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 1);
  std::vector<Slot> slots;
  REQUIRE(allocator->Allocate(10, &slots).ok());
  CHECK(allocator->slabs() == 3);
  const uint64_t arena_free_before = arena->free_bytes();
  CHECK(arena_free_before == 16 * kKiB);

  // 2 free in slabs + 1 more slab = 6 < 8: the one slab that could be claimed must go back.
  const Status status = allocator->Allocate(8, &slots);
  REQUIRE_FALSE(status.ok());
  CHECK(status.code() == StatusCode::kResourceExhausted);
  CHECK_THAT(status.message(), Catch::Contains("8 blocks of 4096 bytes"));
  CHECK_THAT(status.message(), Catch::Contains("2 free in slabs"));
  CHECK(slots.size() == 10);
  CHECK(allocator->used_blocks() == 10);
  CHECK(allocator->slabs() == 3);
  CHECK(allocator->reserved_blocks() == 12);
  CHECK(arena->free_bytes() == arena_free_before);

  // Exactly what is left still fits.
  REQUIRE(allocator->Allocate(6, &slots).ok());
  CHECK(allocator->used_blocks() == 16);
  CHECK(arena->free_bytes() == 0);
  CHECK(allocator->Allocate(1, &slots).code() == StatusCode::kResourceExhausted);
  CHECK(slots.size() == 16);
  CheckDisjointAndInside(*arena, Ranges(*allocator, slots));
}

TEST_CASE("BlockAllocator: a failed claim gives back the slabs already claimed", "[memory]") {
  // Free runs of 16, 8 and 8 KiB: enough bytes for two 16 KiB slabs, so the cheap byte-count
  // check passes; the first slab is claimed from the 16 KiB run and the second claim fails, so
  // the first must go back.
  auto arena = MakePlainArena(64 * kKiB);
  std::vector<Extent> parts;
  for (const uint64_t kib : {16, 8, 8, 8, 8, 16}) {
    auto e = arena->Allocate(kib * kKiB);
    REQUIRE(e.ok());
    parts.push_back(*e);
  }
  arena->Free(parts[0]);
  arena->Free(parts[2]);
  arena->Free(parts[4]);
  REQUIRE(arena->free_bytes() == 32 * kKiB);
  REQUIRE(arena->largest_free_extent_bytes() == 16 * kKiB);

  auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 1);
  std::vector<Slot> slots;
  const Status status = allocator->Allocate(5, &slots);
  CHECK(status.code() == StatusCode::kResourceExhausted);
  CHECK_THAT(status.message(), Catch::Contains("5 blocks"));
  CHECK_THAT(status.message(), Catch::Contains("at most 16384"));
  CHECK(slots.empty());
  CHECK(allocator->slabs() == 0);
  CHECK(allocator->used_blocks() == 0);
  CHECK(arena->free_bytes() == 32 * kKiB);
  CHECK(arena->largest_free_extent_bytes() == 16 * kKiB);

  // The slab that was given back is claimable again.
  REQUIRE(allocator->Allocate(4, &slots).ok());
  CHECK(allocator->slabs() == 1);
  CHECK(arena->free_bytes() == 16 * kKiB);
  allocator.reset();
  arena->Free(parts[1]);
  arena->Free(parts[3]);
  arena->Free(parts[5]);
  CHECK(arena->largest_free_extent_bytes() == arena->capacity_bytes());
}

TEST_CASE("BlockAllocator: empty slabs beyond spare_slabs go back to the arena", "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 1);
  std::vector<Slot> slots;
  REQUIRE(allocator->Allocate(8, &slots).ok());
  REQUIRE(allocator->slabs() == 2);
  const uint64_t arena_free = arena->free_bytes();
  CHECK(arena_free == 32 * kKiB);

  std::vector<Slot> slab0;
  std::vector<Slot> slab1;
  for (const Slot slot : slots) (slot < 4 ? slab0 : slab1).push_back(slot);
  REQUIRE(slab0.size() == 4);
  REQUIRE(slab1.size() == 4);

  // The first empty slab is kept as the one spare.
  allocator->Free(slab1);
  CHECK(allocator->slabs() == 2);
  CHECK(allocator->reserved_blocks() == 8);
  CHECK(arena->free_bytes() == arena_free);

  // A second empty slab is one too many: one goes back at once.
  allocator->Free(slab0);
  CHECK(allocator->used_blocks() == 0);
  CHECK(allocator->slabs() == 1);
  CHECK(arena->free_bytes() == arena_free + 16 * kKiB);

  // The spare kept is the lower slab, so ids stay low and the next block comes from it.
  std::vector<Slot> one;
  REQUIRE(allocator->Allocate(1, &one).ok());
  CHECK(one[0] < 4);
  CHECK(allocator->slabs() == 1);
  CHECK(arena->free_bytes() == arena_free + 16 * kKiB);
  allocator->Free(one[0]);

  CHECK(allocator->ReleaseEmptySlabs() == 1);
  CHECK(allocator->slabs() == 0);
  CHECK(arena->free_bytes() == arena->capacity_bytes());
  CHECK(allocator->ReleaseEmptySlabs() == 0);
  CHECK(allocator->double_frees() == 0);
}

TEST_CASE("BlockAllocator: spare_slabs zero returns a slab as soon as it empties",
          "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 0);
  std::vector<Slot> slots;
  REQUIRE(allocator->Allocate(3, &slots).ok());
  allocator->Free(std::span<const Slot>(slots).first(2));
  CHECK(allocator->slabs() == 1);
  allocator->Free(slots[2]);
  CHECK(allocator->slabs() == 0);
  CHECK(arena->free_bytes() == arena->capacity_bytes());
}

TEST_CASE("BlockAllocator: lowest-slab preference lets a high slab drain", "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 0);
  std::vector<Slot> slots;
  REQUIRE(allocator->Allocate(12, &slots).ok());
  REQUIRE(allocator->slabs() == 3);
  const uint64_t arena_free = arena->free_bytes();

  // Two holes in each slab.
  std::vector<Slot> live;
  for (const Slot slot : slots) {
    if (slot % 4 < 2) {
      allocator->Free(slot);
    } else {
      live.push_back(slot);
    }
  }
  CHECK(allocator->used_blocks() == 6);
  CHECK(allocator->slabs() == 3);

  // New blocks fill the holes of slabs 0 and 1 and leave slab 2 alone.
  std::vector<Slot> fresh;
  REQUIRE(allocator->Allocate(4, &fresh).ok());
  for (const Slot slot : fresh) CHECK(slot / allocator->blocks_per_slab() < 2);

  // So when slab 2's last blocks are freed it empties and goes back to the arena.
  for (const Slot slot : live) {
    if (slot / allocator->blocks_per_slab() == 2) allocator->Free(slot);
  }
  CHECK(allocator->slabs() == 2);
  CHECK(arena->free_bytes() == arena_free + 16 * kKiB);
}

TEST_CASE("BlockAllocator: a released slab's ids are reused and stay below slot_limit",
          "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 0);
  std::vector<Slot> slots;
  REQUIRE(allocator->Allocate(12, &slots).ok());
  CHECK(allocator->slot_limit() == 12);

  std::vector<Slot> middle;
  for (const Slot slot : slots) {
    if (slot / 4 == 1) middle.push_back(slot);
  }
  REQUIRE(middle.size() == 4);
  allocator->Free(middle);
  CHECK(allocator->slabs() == 2);
  for (const Slot slot : middle) CHECK_FALSE(allocator->IsAllocated(slot));

  std::vector<Slot> again;
  REQUIRE(allocator->Allocate(4, &again).ok());
  CHECK(allocator->slabs() == 3);
  CHECK(allocator->slot_limit() == 12);
  std::sort(again.begin(), again.end());
  CHECK(again == std::vector<Slot>{4, 5, 6, 7});
  for (const Slot slot : again) {
    CHECK(slot < allocator->slot_limit());
    CHECK(allocator->IsAllocated(slot));
  }

  // Churning one slab's worth many times never grows the id space.
  for (int round = 0; round < 50; ++round) {
    allocator->Free(again);
    again.clear();
    REQUIRE(allocator->Allocate(4, &again).ok());
  }
  CHECK(allocator->slot_limit() == 12);
  for (const Slot slot : again) CHECK(slot < 12);
}

TEST_CASE("BlockAllocator: a double free is counted and ignored", "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 1);
  std::vector<Slot> slots;
  REQUIRE(allocator->Allocate(2, &slots).ok());
  allocator->Free(slots[0]);
  CHECK(allocator->double_frees() == 0);
  allocator->Free(slots[0]);
  CHECK(allocator->double_frees() == 1);
  CHECK(allocator->used_blocks() == 1);
  CHECK(allocator->IsAllocated(slots[1]));

  // Never-issued ids, in range of the slab and far beyond it.
  allocator->Free(slots[1] + 1);
  allocator->Free(1000000);
  CHECK(allocator->double_frees() == 3);
  CHECK_FALSE(allocator->IsAllocated(1000000));
  CHECK(allocator->used_blocks() == 1);

  // A slot of a slab already returned to the arena.
  allocator->Free(slots[1]);
  CHECK(allocator->ReleaseEmptySlabs() == 1);
  allocator->Free(slots[1]);
  CHECK(allocator->double_frees() == 4);
  CHECK(allocator->used_blocks() == 0);
  CHECK(arena->free_bytes() == arena->capacity_bytes());

  // The state is still sound: the next allocation works and is counted once.
  std::vector<Slot> more;
  REQUIRE(allocator->Allocate(4, &more).ok());
  CHECK(allocator->used_blocks() == 4);
  CHECK(std::set<Slot>(more.begin(), more.end()).size() == 4);
}

TEST_CASE("BlockAllocator: two allocators of different block sizes share one arena",
          "[memory]") {
  auto arena = MakePlainArena(512 * kKiB);
  auto small = MakeAllocator(arena.get(), 1 * kKiB, 8 * kKiB, 1);
  auto large = MakeAllocator(arena.get(), 10000, 32 * kKiB, 1);
  REQUIRE(large->blocks_per_slab() == 3);

  std::vector<Slot> small_slots;
  std::vector<Slot> large_slots;
  for (int round = 0; round < 5; ++round) {
    REQUIRE(small->Allocate(13, &small_slots).ok());
    REQUIRE(large->Allocate(4, &large_slots).ok());
  }
  auto ranges = Ranges(*small, small_slots);
  for (const auto& r : Ranges(*large, large_slots)) ranges.push_back(r);
  CheckDisjointAndInside(*arena, ranges);
  WriteAndVerifyPatterns(*small, small_slots);
  WriteAndVerifyPatterns(*large, large_slots);
  // The small blocks' patterns must have survived the large blocks' writes.
  for (const Slot slot : small_slots) {
    const uint8_t* p = small->Address(slot);
    const uint8_t expected = static_cast<uint8_t>(slot * 37 + 11);
    CHECK(std::count(p, p + small->block_bytes(), expected) ==
          static_cast<std::ptrdiff_t>(small->block_bytes()));
  }

  const uint64_t used_by_both = small->slabs() * 8 * kKiB + large->slabs() * 32 * kKiB;
  CHECK(arena->free_bytes() == arena->capacity_bytes() - used_by_both);
  small.reset();
  CHECK(arena->free_bytes() == arena->capacity_bytes() - large->slabs() * 32 * kKiB);
  large.reset();
  CHECK(arena->free_bytes() == arena->capacity_bytes());
}

TEST_CASE("BlockAllocator: destruction returns every slab, allocated blocks included",
          "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  {
    auto allocator = MakeAllocator(arena.get(), 4 * kKiB, 16 * kKiB, 1);
    std::vector<Slot> slots;
    REQUIRE(allocator->Allocate(9, &slots).ok());
    CHECK(arena->free_bytes() == 16 * kKiB);
  }
  CHECK(arena->free_bytes() == arena->capacity_bytes());
  CHECK(arena->largest_free_extent_bytes() == arena->capacity_bytes());
}

TEST_CASE("BlockAllocator: 10k blocks round trip in batches", "[memory]") {
  auto arena = MakePlainArena(4096 * kKiB);
  auto allocator = MakeAllocator(arena.get(), 256, 64 * kKiB, 1);
  REQUIRE(allocator->blocks_per_slab() == 256);

  std::vector<Slot> slots;
  for (int batch = 0; batch < 100; ++batch) {
    REQUIRE(allocator->Allocate(100, &slots).ok());
  }
  REQUIRE(slots.size() == 10000);
  CHECK(allocator->used_blocks() == 10000);
  CHECK(allocator->slabs() == 40);
  CHECK(std::set<Slot>(slots.begin(), slots.end()).size() == 10000);
  CheckDisjointAndInside(*arena, Ranges(*allocator, slots));
  WriteAndVerifyPatterns(*allocator, slots);

  // Free in random order, in batches, then allocate everything again.
  std::mt19937 rng(42);
  std::shuffle(slots.begin(), slots.end(), rng);
  for (size_t i = 0; i < slots.size(); i += 250) {
    allocator->Free(std::span<const Slot>(slots).subspan(i, 250));
  }
  CHECK(allocator->used_blocks() == 0);
  CHECK(allocator->slabs() == 1);
  CHECK(allocator->double_frees() == 0);
  for (const Slot slot : slots) CHECK_FALSE(allocator->IsAllocated(slot));

  std::vector<Slot> again;
  REQUIRE(allocator->Allocate(10000, &again).ok());
  CHECK(std::set<Slot>(again.begin(), again.end()).size() == 10000);
  for (const Slot slot : again) CHECK(slot < allocator->slot_limit());
  CHECK(allocator->slot_limit() <= 40 * 256);
  allocator->Free(again);
  CHECK(allocator->ReleaseEmptySlabs() == 1);
  CHECK(arena->free_bytes() == arena->capacity_bytes());
}

}  // namespace
}  // namespace kvpool::memory
