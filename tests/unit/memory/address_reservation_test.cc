// An arena over reserved address space whose extents are backed one by one (kvpoold's pool
// slabs, each its own UCX allocation with its own remote key: docs/security.md).
#include "memory/address_reservation.h"
#include "memory/host_arena.h"

#include <sys/mman.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <vector>

namespace kvpool::memory {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

// Backs an extent with a read-write anonymous mapping over the reservation, as UCX's
// fixed-address allocation does, and keeps a released one for its owner, as kvpoold does.
class MmapBacking final : public ExtentBacking {
 public:
  explicit MmapBacking(AddressReservation* reservation) : reservation_(reservation) {}
  Status Back(const Extent& extent, uint64_t owner) override {
    if (fail_next || refused_offsets.count(extent.offset) != 0) {
      fail_next = false;
      return ResourceExhaustedError("backing refused");
    }
    backed.push_back({extent, owner});
    if (idle_owner.count(extent.offset) != 0 && idle_owner[extent.offset] == owner) {
      idle_owner.erase(extent.offset);
      return Status::Ok();  // the owner's memory, kept
    }
    idle_owner.erase(extent.offset);
    void* p = mmap(reservation_->base() + extent.offset, extent.bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) return InternalError("mmap failed");
    return Status::Ok();
  }
  void Release(const Extent& extent) override {
    released.push_back(extent);
    idle_owner[extent.offset] = owner_of_last_back(extent.offset);
  }
  std::optional<uint64_t> Preferred(uint64_t bytes, uint64_t owner) override {
    for (const auto& [offset, o] : idle_owner) {
      if (o == owner && bytes == 2 * kMiB) return offset;
    }
    return std::nullopt;
  }
  uint64_t owner_of_last_back(uint64_t offset) const {
    uint64_t owner = 0;
    for (const auto& [extent, o] : backed) {
      if (extent.offset == offset) owner = o;
    }
    return owner;
  }
  bool fail_next = false;
  std::set<uint64_t> refused_offsets;  // always refused
  std::vector<std::pair<Extent, uint64_t>> backed;
  std::vector<Extent> released;
  std::map<uint64_t, uint64_t> idle_owner;  // released extents by offset -> owner

 private:
  AddressReservation* reservation_;
};

// 8 MiB of reserved addresses in 2 MiB extents, backed by an MmapBacking.
struct BackedArena {
  BackedArena() : reservation(*AddressReservation::Create(8 * kMiB, 2 * kMiB)) {
    auto adopted =
        HostArena::Adopt(reservation.base(), reservation.size_bytes(), &backing, 2 * kMiB);
    REQUIRE(adopted.ok());
    arena = *std::move(adopted);
  }
  AddressReservation reservation;
  MmapBacking backing{&reservation};
  std::unique_ptr<HostArena> arena;
};

TEST_CASE("AddressReservation: an aligned range, refusals by name", "[memory]") {
  auto r = AddressReservation::Create(5 * kMiB + 1, 2 * kMiB);
  REQUIRE(r.ok());
  CHECK(reinterpret_cast<uintptr_t>(r->base()) % (2 * kMiB) == 0);
  CHECK(r->size_bytes() == 5 * kMiB + 4096);
  CHECK(AddressReservation::Create(0).status().code() == StatusCode::kInvalidArgument);
  CHECK(AddressReservation::Create(kMiB, 3000).status().code() == StatusCode::kInvalidArgument);
  // Restore refuses ranges outside the reservation or unaligned.
  CHECK_FALSE(r->Restore(6 * kMiB, 4096));
  CHECK_FALSE(r->Restore(100, 4096));
}

TEST_CASE("HostArena over a reservation: extents are backed for their owner, and an owner's "
          "released extent is preferred for its next claim",
          "[memory]") {
  BackedArena fixture;
  MmapBacking& backing = fixture.backing;
  std::unique_ptr<HostArena>* arena = &fixture.arena;
  CHECK((*arena)->alignment_bytes() == 2 * kMiB);

  auto a = (*arena)->Allocate(1 * kMiB, /*owner=*/1);  // rounded to 2 MiB
  REQUIRE(a.ok());
  CHECK(a->bytes == 2 * kMiB);
  auto b = (*arena)->Allocate(2 * kMiB, /*owner=*/2);
  REQUIRE(b.ok());
  REQUIRE(backing.backed.size() == 2);
  CHECK(backing.backed[1].second == 2);
  std::memset((*arena)->base() + b->offset, 0x5a, b->bytes);  // backed: writable

  // A refused backing fails that extent; with no other, the allocation fails and nothing is
  // taken.
  backing.fail_next = true;
  auto refused = (*arena)->Allocate(4 * kMiB, 3);
  CHECK(refused.status().code() == StatusCode::kResourceExhausted);
  CHECK(refused.status().message() == "backing refused");
  CHECK((*arena)->free_bytes() == 4 * kMiB);
  // With another candidate, the next one is tried.
  (*arena)->Free(*a);
  backing.fail_next = true;
  auto next = (*arena)->Allocate(2 * kMiB, 3);
  REQUIRE(next.ok());
  CHECK(next->offset != a->offset);
  (*arena)->Free(*next);

  // Owner 2 frees its extent; owner 2's next claim gets it back (the kept memory), although
  // first fit would pick the lower offset; a new owner 4 gets first fit.
  (*arena)->Free(*b);
  CHECK((*arena)->free_bytes() == 8 * kMiB);
  auto again = (*arena)->Allocate(2 * kMiB, 2);
  REQUIRE(again.ok());
  CHECK(again->offset == b->offset);
  CHECK(static_cast<uint8_t>((*arena)->base()[again->offset]) == 0x5a);
  auto other = (*arena)->Allocate(2 * kMiB, 4);
  REQUIRE(other.ok());
  CHECK(other->offset == 0);
  CHECK(static_cast<uint8_t>((*arena)->base()[0]) == 0);  // fresh memory, not owner 1's
  CHECK((*arena)->free_bytes() == 4 * kMiB);
}

TEST_CASE("HostArena over a reservation: where the backing refuses the start of a free run, "
          "the rest of the run is tried",
          "[memory]") {
  BackedArena f;
  // One free run, [0, 8 MiB), whose first two extents the backing cannot use now (kvpoold: a
  // range another mapping took, an idle slab a transfer still reads).
  f.backing.refused_offsets = {0, 2 * kMiB};
  auto a = f.arena->Allocate(2 * kMiB, 1);
  REQUIRE(a.ok());
  CHECK(a->offset == 4 * kMiB);
  // Refused everywhere: the backing's error, and nothing taken.
  f.backing.refused_offsets = {0, 2 * kMiB, 6 * kMiB};
  auto none = f.arena->Allocate(2 * kMiB, 1);
  CHECK(none.status().code() == StatusCode::kResourceExhausted);
  CHECK(none.status().message() == "backing refused");
  CHECK(f.arena->free_bytes() == 6 * kMiB);
  // Once the range is usable again, first fit finds it.
  f.backing.refused_offsets.clear();
  auto b = f.arena->Allocate(2 * kMiB, 1);
  REQUIRE(b.ok());
  CHECK(b->offset == 0);
}

TEST_CASE("AddressReservation: with a guard gap above it, later mmaps of the process go "
          "there rather than into a hole of the range",
          "[memory]") {
  // Without the gap, the kernel puts an mmap of 1 MiB or more into such a hole: it is the
  // highest free gap that fits.
  auto reservation = AddressReservation::Create(64 * kMiB, 4096, 64ull << 30);
  REQUIRE(reservation.ok());
  uint8_t* base = reservation->base();
  std::vector<std::pair<void*, uint64_t>> others;
  for (const uint64_t bytes : {uint64_t{4096}, 1 * kMiB, 8 * kMiB, 32 * kMiB}) {
    REQUIRE(munmap(base + 16 * kMiB, 32 * kMiB) == 0);  // a slab was unmapped here
    void* other = mmap(nullptr, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    REQUIRE(other != MAP_FAILED);
    others.emplace_back(other, bytes);
    const auto* at = static_cast<uint8_t*>(other);
    CAPTURE(bytes);
    CHECK((at + bytes <= base || at >= base + reservation->size_bytes()));
    CHECK(reservation->Restore(16 * kMiB, 32 * kMiB));
  }
  for (const auto& [other, bytes] : others) munmap(other, bytes);
}

TEST_CASE("AddressReservation: a hole another mapping took is never reserved over", "[memory]") {
  auto reservation = AddressReservation::Create(4 * kMiB);
  REQUIRE(reservation.ok());
  uint8_t* base = reservation->base();
  REQUIRE(munmap(base + 2 * kMiB, 2 * kMiB) == 0);  // a slab was unmapped here
  CHECK(reservation->Restore(2 * kMiB, 2 * kMiB));   // and reserved again at once
  REQUIRE(munmap(base + 2 * kMiB, 2 * kMiB) == 0);
  void* stolen = mmap(base + 2 * kMiB, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
                      MAP_FIXED_NOREPLACE, -1, 0);
  REQUIRE(stolen != MAP_FAILED);
  CHECK_FALSE(reservation->Restore(2 * kMiB, 2 * kMiB));
  // The stolen page is intact (readable) after the refusal.
  CHECK(static_cast<volatile uint8_t*>(stolen)[0] == 0);
  // Once that mapping is gone, the range can be reserved again.
  REQUIRE(munmap(stolen, 4096) == 0);
  CHECK(reservation->Restore(2 * kMiB, 2 * kMiB));
  // And the reservation holds it again: nothing else can be mapped there without replacing.
  void* again = mmap(base + 2 * kMiB, 4096, PROT_READ, MAP_PRIVATE | MAP_ANONYMOUS |
                     MAP_FIXED_NOREPLACE, -1, 0);
  CHECK(again == MAP_FAILED);
  if (again != MAP_FAILED) munmap(again, 4096);
}

}  // namespace
}  // namespace kvpool::memory
