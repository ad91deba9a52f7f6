// An arena over reserved address space whose extents are backed one by one (kvpoold's pool
// slabs, each its own UCX allocation with its own remote key: docs/security.md).
#include "memory/address_reservation.h"
#include "memory/host_arena.h"

#include <sys/mman.h>

#include <catch2/catch.hpp>

#include <cstring>
#include <vector>

namespace kvpool::memory {
namespace {

constexpr uint64_t kMiB = 1ull << 20;

// Backs an extent with a read-write anonymous mapping over the reservation, as UCX's
// fixed-address allocation does, and unmaps it (leaving a hole) on release.
class MmapBacking final : public ExtentBacking {
 public:
  explicit MmapBacking(AddressReservation* reservation) : reservation_(reservation) {}
  Status Back(const Extent& extent) override {
    if (fail_next) {
      fail_next = false;
      return ResourceExhaustedError("backing refused");
    }
    void* p = mmap(reservation_->base() + extent.offset, extent.bytes, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED, -1, 0);
    if (p == MAP_FAILED) return InternalError("mmap failed");
    backed.push_back(extent);
    return Status::Ok();
  }
  Released Release(const Extent& extent) override {
    if (busy) return Released::kLater;
    released.push_back(extent);
    munmap(reservation_->base() + extent.offset, extent.bytes);
    if (steal_hole) {
      // Another mapping takes the hole before it is reserved again.
      stolen = mmap(reservation_->base() + extent.offset, 4096, PROT_READ,
                    MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
    }
    return reservation_->Restore(extent.offset, extent.bytes) ? Released::kYes : Released::kLost;
  }
  bool fail_next = false;
  bool busy = false;
  bool steal_hole = false;
  void* stolen = MAP_FAILED;
  std::vector<Extent> backed;
  std::vector<Extent> released;

 private:
  AddressReservation* reservation_;
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

TEST_CASE("HostArena over a reservation: extents are backed when claimed, released when freed",
          "[memory]") {
  auto reservation = AddressReservation::Create(8 * kMiB, 2 * kMiB);
  REQUIRE(reservation.ok());
  MmapBacking backing(&*reservation);
  auto arena = HostArena::Adopt(reservation->base(), reservation->size_bytes(), &backing, 2 * kMiB);
  REQUIRE(arena.ok());
  CHECK((*arena)->alignment_bytes() == 2 * kMiB);

  auto a = (*arena)->Allocate(3 * kMiB);  // rounded to 4 MiB
  REQUIRE(a.ok());
  CHECK(a->bytes == 4 * kMiB);
  REQUIRE(backing.backed.size() == 1);
  CHECK(backing.backed[0].offset == a->offset);
  std::memset((*arena)->base() + a->offset, 0x5a, a->bytes);  // backed: writable

  // A refused backing fails the allocation and leaves the extent free.
  backing.fail_next = true;
  auto refused = (*arena)->Allocate(2 * kMiB);
  CHECK(refused.status().code() == StatusCode::kResourceExhausted);
  CHECK((*arena)->free_bytes() == 4 * kMiB);

  // Still busy (a transfer runs on it): neither free nor lost until the backing lets it go.
  backing.busy = true;
  (*arena)->Free(*a);
  CHECK((*arena)->deferred_bytes() == 4 * kMiB);
  CHECK((*arena)->free_bytes() == 4 * kMiB);
  (*arena)->Reclaim();
  CHECK((*arena)->deferred_bytes() == 4 * kMiB);
  backing.busy = false;
  (*arena)->Reclaim();
  REQUIRE(backing.released.size() == 1);
  CHECK((*arena)->deferred_bytes() == 0);
  CHECK((*arena)->free_bytes() == 8 * kMiB);
  CHECK((*arena)->lost_bytes() == 0);

  // Claimed again: backed anew, by fresh (zeroed) memory, not the old bytes. (A busy extent is
  // also taken back by the next Allocate itself.)
  auto again = (*arena)->Allocate(4 * kMiB);
  REQUIRE(again.ok());
  CHECK(again->offset == a->offset);
  CHECK((*arena)->base()[again->offset] == 0);

  // A hole another mapping took before the reservation was restored is lost for good.
  backing.steal_hole = true;
  (*arena)->Free(*again);
  REQUIRE(backing.stolen != MAP_FAILED);
  CHECK((*arena)->lost_bytes() == 4 * kMiB);
  CHECK((*arena)->free_bytes() == 4 * kMiB);
  // The reservation leaves the stolen range alone when it goes (it is not ours to unmap).
  munmap(backing.stolen, 4096);
}

}  // namespace
}  // namespace kvpool::memory
