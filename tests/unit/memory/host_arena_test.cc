#include "memory/host_arena.h"
#include "test_arena.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

namespace kvpool::memory {
namespace {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;

TEST_CASE("HostArena: plain arena reports 4 KiB alignment and rounds capacity up", "[memory]") {
  auto arena = MakePlainArena(5000);
  CHECK(arena->page_mode() == PageMode::kPlain);
  CHECK(arena->alignment_bytes() == 4 * kKiB);
  CHECK(arena->capacity_bytes() == 8 * kKiB);
  CHECK(arena->free_bytes() == 8 * kKiB);
  CHECK(arena->largest_free_extent_bytes() == 8 * kKiB);
  CHECK(arena->base() != nullptr);
  CHECK(reinterpret_cast<uintptr_t>(arena->base()) % (4 * kKiB) == 0);
}

TEST_CASE("HostArena: huge page request reports a mode consistent with its alignment",
          "[memory]") {
  HostArenaOptions options;
  options.capacity_bytes = 3 * kMiB;
  auto created = HostArena::Create(options);
  REQUIRE(created.ok());
  const auto& arena = *created;
  INFO("page mode " << PageModeName(arena->page_mode()));
  const uint64_t expected_alignment =
      arena->page_mode() == PageMode::kHugeTlb ? 2 * kMiB : 4 * kKiB;
  CHECK(arena->alignment_bytes() == expected_alignment);
  CHECK(arena->capacity_bytes() >= 3 * kMiB);
  CHECK(arena->capacity_bytes() % expected_alignment == 0);
  CHECK(reinterpret_cast<uintptr_t>(arena->base()) % expected_alignment == 0);
  // Whatever backs it, every byte must be usable.
  auto extent = arena->Allocate(arena->capacity_bytes());
  REQUIRE(extent.ok());
  std::memset(arena->base() + extent->offset, 0x5a, extent->bytes);
  CHECK(arena->base()[extent->bytes - 1] == 0x5a);
  arena->Free(*extent);
}

TEST_CASE("HostArena: page modes have distinct names", "[memory]") {
  CHECK(PageModeName(PageMode::kHugeTlb) == "hugetlb");
  CHECK(PageModeName(PageMode::kTransparentHuge) == "transparent_huge");
  CHECK(PageModeName(PageMode::kPlain) == "plain");
  CHECK(PageModeName(PageMode::kExternal) == "external");
}

TEST_CASE("HostArena: Adopt manages caller memory with the same allocator and never unmaps it",
          "[memory]") {
  constexpr uint64_t kBytes = 64 * kKiB;
  // The caller's memory, 4 KiB-aligned, outliving the arena.
  std::vector<uint8_t> storage(kBytes + 4 * kKiB);
  const uintptr_t raw = reinterpret_cast<uintptr_t>(storage.data());
  uint8_t* base = storage.data() + ((4 * kKiB - raw % (4 * kKiB)) % (4 * kKiB));
  {
    auto adopted = HostArena::Adopt(base, kBytes);
    REQUIRE(adopted.ok());
    auto& arena = *adopted;
    CHECK(arena->base() == base);
    CHECK(arena->page_mode() == PageMode::kExternal);
    CHECK(arena->alignment_bytes() == 4 * kKiB);
    CHECK(arena->capacity_bytes() == kBytes);
    auto a = arena->Allocate(5000);
    REQUIRE(a.ok());
    CHECK(a->offset == 0);
    CHECK(a->bytes == 8 * kKiB);
    auto b = arena->Allocate(kBytes - 8 * kKiB);
    REQUIRE(b.ok());
    CHECK(arena->Allocate(1).status().code() == StatusCode::kResourceExhausted);
    std::memset(arena->base() + b->offset, 0x7e, b->bytes);
    arena->Free(*a);
    arena->Free(*b);
    CHECK(arena->free_bytes() == kBytes);
    CHECK(arena->largest_free_extent_bytes() == kBytes);
  }
  // The arena is gone; the caller's memory is still mapped and holds what was written.
  CHECK(base[kBytes - 1] == 0x7e);
}

TEST_CASE("HostArena: Adopt refuses null, misaligned and badly sized memory", "[memory]") {
  std::vector<uint8_t> storage(16 * kKiB);
  const uintptr_t raw = reinterpret_cast<uintptr_t>(storage.data());
  uint8_t* base = storage.data() + ((4 * kKiB - raw % (4 * kKiB)) % (4 * kKiB));
  CHECK(HostArena::Adopt(nullptr, 4 * kKiB).status().code() == StatusCode::kInvalidArgument);
  CHECK(HostArena::Adopt(base + 1, 4 * kKiB).status().code() == StatusCode::kInvalidArgument);
  CHECK(HostArena::Adopt(base, 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(HostArena::Adopt(base, 5000).status().code() == StatusCode::kInvalidArgument);
  CHECK(HostArena::Adopt(base, 8 * kKiB).ok());
}

TEST_CASE("HostArena: zero capacity is INVALID_ARGUMENT", "[memory]") {
  HostArenaOptions options;
  auto arena = HostArena::Create(options);
  REQUIRE_FALSE(arena.ok());
  CHECK(arena.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(arena.status().message(), Catch::Contains("0"));
}

TEST_CASE("HostArena: a mapping the kernel cannot provide is RESOURCE_EXHAUSTED", "[memory]") {
  // 2^62 bytes exceeds the 47-bit user address space, so even MAP_NORESERVE cannot map it.
  HostArenaOptions options;
  options.capacity_bytes = 1ull << 62;
  options.try_huge_pages = false;
  auto arena = HostArena::Create(options);
  REQUIRE_FALSE(arena.ok());
  CHECK(arena.status().code() == StatusCode::kResourceExhausted);
  CHECK_THAT(arena.status().message(), Catch::Contains("mmap"));
}

TEST_CASE("HostArena: zero-byte extent is INVALID_ARGUMENT", "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  auto extent = arena->Allocate(0);
  REQUIRE_FALSE(extent.ok());
  CHECK(extent.status().code() == StatusCode::kInvalidArgument);
  CHECK(arena->free_bytes() == 64 * kKiB);
}

TEST_CASE("HostArena: extents are rounded, aligned and handed out until exhausted",
          "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  std::vector<Extent> extents;
  for (int i = 0; i < 16; ++i) {
    auto extent = arena->Allocate(1);
    REQUIRE(extent.ok());
    CHECK(extent->bytes == 4 * kKiB);
    CHECK(extent->offset % (4 * kKiB) == 0);
    CHECK(extent->offset + extent->bytes <= arena->capacity_bytes());
    extents.push_back(*extent);
  }
  // First fit by offset from an empty arena lays them out back to back.
  for (size_t i = 0; i < extents.size(); ++i) CHECK(extents[i].offset == i * 4 * kKiB);
  CHECK(arena->free_bytes() == 0);
  CHECK(arena->largest_free_extent_bytes() == 0);

  auto more = arena->Allocate(1);
  REQUIRE_FALSE(more.ok());
  CHECK(more.status().code() == StatusCode::kResourceExhausted);
  CHECK(arena->free_bytes() == 0);

  for (const Extent& e : extents) arena->Free(e);
  CHECK(arena->free_bytes() == 64 * kKiB);
  CHECK(arena->largest_free_extent_bytes() == 64 * kKiB);
}

TEST_CASE("HostArena: a request larger than any free run fails even with enough free bytes",
          "[memory]") {
  auto arena = MakePlainArena(3 * 64 * kKiB);
  auto a = arena->Allocate(64 * kKiB);
  auto b = arena->Allocate(64 * kKiB);
  auto c = arena->Allocate(64 * kKiB);
  REQUIRE((a.ok() && b.ok() && c.ok()));
  arena->Free(*a);
  arena->Free(*c);
  CHECK(arena->free_bytes() == 128 * kKiB);
  CHECK(arena->largest_free_extent_bytes() == 64 * kKiB);

  auto big = arena->Allocate(128 * kKiB);
  REQUIRE_FALSE(big.ok());
  CHECK(big.status().code() == StatusCode::kResourceExhausted);
  CHECK_THAT(big.status().message(), Catch::Contains("131072"));
  CHECK_THAT(big.status().message(), Catch::Contains("at most 65536"));
  arena->Free(*b);
}

TEST_CASE("HostArena: freeing the middle extent coalesces both neighbours", "[memory]") {
  auto arena = MakePlainArena(3 * 64 * kKiB);
  auto a = arena->Allocate(64 * kKiB);
  auto b = arena->Allocate(64 * kKiB);
  auto c = arena->Allocate(64 * kKiB);
  REQUIRE((a.ok() && b.ok() && c.ok()));
  CHECK(a->offset == 0);
  CHECK(b->offset == 64 * kKiB);
  CHECK(c->offset == 128 * kKiB);

  arena->Free(*a);
  arena->Free(*c);
  arena->Free(*b);
  CHECK(arena->free_bytes() == arena->capacity_bytes());
  CHECK(arena->largest_free_extent_bytes() == arena->capacity_bytes());
  auto whole = arena->Allocate(arena->capacity_bytes());
  REQUIRE(whole.ok());
  CHECK(whole->offset == 0);
  arena->Free(*whole);
}

TEST_CASE("HostArena: freeing in address order coalesces with the left neighbour",
          "[memory]") {
  auto arena = MakePlainArena(4 * 16 * kKiB);
  std::vector<Extent> extents;
  for (int i = 0; i < 4; ++i) {
    auto e = arena->Allocate(16 * kKiB);
    REQUIRE(e.ok());
    extents.push_back(*e);
  }
  arena->Free(extents[0]);
  arena->Free(extents[1]);
  CHECK(arena->largest_free_extent_bytes() == 32 * kKiB);
  arena->Free(extents[3]);
  CHECK(arena->largest_free_extent_bytes() == 32 * kKiB);
  arena->Free(extents[2]);
  CHECK(arena->largest_free_extent_bytes() == 64 * kKiB);
}

TEST_CASE("HostArena: first fit reuses the lowest free run", "[memory]") {
  auto arena = MakePlainArena(64 * kKiB);
  auto a = arena->Allocate(8 * kKiB);
  auto b = arena->Allocate(8 * kKiB);
  REQUIRE((a.ok() && b.ok()));
  arena->Free(*a);
  auto small = arena->Allocate(4 * kKiB);
  REQUIRE(small.ok());
  CHECK(small->offset == 0);
  // Too big for the 4 KiB hole left at 4 KiB, so it goes after b.
  auto bigger = arena->Allocate(8 * kKiB);
  REQUIRE(bigger.ok());
  CHECK(bigger->offset == 16 * kKiB);
  arena->Free(*small);
  arena->Free(*bigger);
  arena->Free(*b);
  CHECK(arena->largest_free_extent_bytes() == 64 * kKiB);
}

TEST_CASE("HostArena: every byte of an extent is writable and keeps its value", "[memory]") {
  auto arena = MakePlainArena(2 * kMiB);
  auto a = arena->Allocate(kMiB);
  auto b = arena->Allocate(kMiB);
  REQUIRE((a.ok() && b.ok()));
  uint8_t* pa = arena->base() + a->offset;
  uint8_t* pb = arena->base() + b->offset;
  std::memset(pa, 0xa1, a->bytes);
  std::memset(pb, 0xb2, b->bytes);
  std::vector<uint8_t> expect_a(a->bytes, 0xa1);
  std::vector<uint8_t> expect_b(b->bytes, 0xb2);
  CHECK(std::memcmp(pa, expect_a.data(), a->bytes) == 0);
  CHECK(std::memcmp(pb, expect_b.data(), b->bytes) == 0);
  arena->Free(*a);
  arena->Free(*b);
}

}  // namespace
}  // namespace kvpool::memory
