#include "memory/address_reservation.h"

#include <sys/mman.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <string>

namespace kvpool::memory {
namespace {

constexpr uint64_t kPage = 4096;

// Reserves [address, + bytes) without replacing anything; true when the range is ours.
bool ReserveExactly(uint8_t* address, uint64_t bytes) {
  void* p = mmap(address, bytes, PROT_NONE,
                 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE | MAP_FIXED_NOREPLACE, -1, 0);
  if (p == MAP_FAILED) return false;
  if (p != address) {  // a kernel older than 4.17 treats the flag as a hint
    munmap(p, bytes);
    return false;
  }
  return true;
}

}  // namespace

Result<AddressReservation> AddressReservation::Create(uint64_t bytes, uint64_t alignment,
                                                      uint64_t guard_gap_bytes) {
  if (bytes == 0) return InvalidArgumentError("cannot reserve 0 bytes of address space");
  if (alignment < kPage || (alignment & (alignment - 1)) != 0) {
    return InvalidArgumentError("address reservation alignment " + std::to_string(alignment) +
                                " is not a power of two >= 4096");
  }
  bytes = (bytes + kPage - 1) / kPage * kPage;
  // Over-reserve by the alignment and the guard gap, then trim both ends: what is trimmed
  // above the range is the gap.
  guard_gap_bytes = (guard_gap_bytes + kPage - 1) / kPage * kPage;
  uint64_t padded = bytes + alignment + guard_gap_bytes;
  void* p = mmap(nullptr, padded, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED && guard_gap_bytes > 0) {
    padded = bytes + alignment;
    p = mmap(nullptr, padded, PROT_NONE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
  }
  if (p == MAP_FAILED) {
    return ResourceExhaustedError("cannot reserve " + std::to_string(bytes) +
                                  " bytes of address space: " + std::strerror(errno));
  }
  auto* raw = static_cast<uint8_t*>(p);
  auto* aligned = reinterpret_cast<uint8_t*>(
      (reinterpret_cast<uintptr_t>(raw) + alignment - 1) & ~(uintptr_t{alignment} - 1));
  if (aligned > raw) munmap(raw, static_cast<size_t>(aligned - raw));
  uint8_t* end = aligned + bytes;
  if (raw + padded > end) munmap(end, static_cast<size_t>(raw + padded - end));
  AddressReservation r;
  r.base_ = aligned;
  r.size_bytes_ = bytes;
  return r;
}

AddressReservation& AddressReservation::operator=(AddressReservation&& other) noexcept {
  if (this != &other) {
    this->~AddressReservation();
    base_ = std::exchange(other.base_, nullptr);
    size_bytes_ = std::exchange(other.size_bytes_, 0);
    lost_ = std::move(other.lost_);
    other.lost_.clear();
  }
  return *this;
}

AddressReservation::~AddressReservation() {
  if (base_ == nullptr) return;
  // Unmap what is ours, stepping around ranges other mappings took.
  std::sort(lost_.begin(), lost_.end(),
            [](const Range& a, const Range& b) { return a.offset < b.offset; });
  uint64_t from = 0;
  for (const Range& lost : lost_) {
    if (lost.offset > from) munmap(base_ + from, lost.offset - from);
    from = std::max(from, lost.offset + lost.bytes);
  }
  if (size_bytes_ > from) munmap(base_ + from, size_bytes_ - from);
  base_ = nullptr;
}

bool AddressReservation::Restore(uint64_t offset, uint64_t bytes) {
  if (bytes == 0 || offset % kPage != 0 || bytes % kPage != 0 || offset > size_bytes_ ||
      bytes > size_bytes_ - offset) {
    return false;
  }
  auto lost = std::find_if(lost_.begin(), lost_.end(), [&](const Range& r) {
    return r.offset == offset && r.bytes == bytes;
  });
  if (ReserveExactly(base_ + offset, bytes)) {
    if (lost != lost_.end()) lost_.erase(lost);  // the other mapping has gone: ours again
    return true;
  }
  // Another mapping took (part of) the hole first: the range is its for now.
  if (lost == lost_.end()) lost_.push_back(Range{offset, bytes});
  return false;
}

}  // namespace kvpool::memory
