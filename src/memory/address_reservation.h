// A reserved range of address space with no memory behind it, for memory mapped in later.
#pragma once

#include <cstdint>
#include <utility>
#include <vector>

#include "kvpool/status.h"

namespace kvpool::memory {

/// A range of address space held by one PROT_NONE mapping: it costs no memory, and the kernel
/// maps nothing else into it. kvpoold reserves its pool's range once and maps each slab into it
/// at a fixed address (ExtentBacking), so block offsets stay valid across slabs.
///
/// Unmapping a mapping inside the range leaves a hole that any later mmap of the process could
/// take; Restore re-reserves it at once. Unmapped in the destructor (except ranges Restore found
/// taken by someone else). Move-only; not thread-safe.
class AddressReservation {
 public:
  /// Reserves `bytes` (rounded up to 4 KiB) starting at a multiple of `alignment` (a power of
  /// two >= 4096), with `guard_gap_bytes` of address space left free right above it where the
  /// address space allows (else none). The kernel puts a new mapping in the highest free gap
  /// that fits, so the process's later mmaps fill that gap rather than a hole inside the range
  /// (see Restore). INVALID_ARGUMENT for 0 bytes or a bad alignment; RESOURCE_EXHAUSTED when the
  /// kernel refuses the mapping.
  static Result<AddressReservation> Create(uint64_t bytes, uint64_t alignment = 4096,
                                           uint64_t guard_gap_bytes = 0);
  AddressReservation() = default;
  ~AddressReservation();
  AddressReservation(AddressReservation&& other) noexcept { *this = std::move(other); }
  AddressReservation& operator=(AddressReservation&& other) noexcept;
  AddressReservation(const AddressReservation&) = delete;
  AddressReservation& operator=(const AddressReservation&) = delete;

  uint8_t* base() const { return base_; }
  uint64_t size_bytes() const { return size_bytes_; }

  /// Reserves [base + offset, + bytes) again after the mapping there was removed (the whole
  /// range must be a hole). Never maps over anything (MAP_FIXED_NOREPLACE): false when anything
  /// is mapped in the range (another mapping took the hole first: the range is left to it, and
  /// Restore may be called again for the same range once that mapping is gone), or for a range
  /// outside the reservation or not page-aligned.
  bool Restore(uint64_t offset, uint64_t bytes);

 private:
  struct Range {
    uint64_t offset;
    uint64_t bytes;
  };
  uint8_t* base_ = nullptr;
  uint64_t size_bytes_ = 0;
  std::vector<Range> lost_;  // taken by other mappings: never unmapped by us
};

}  // namespace kvpool::memory
