#include "memory/host_arena.h"

#include <sys/mman.h>

#include <cassert>
#include <cerrno>
#include <cstdint>
#include <iterator>
#include <limits>
#include <map>
#include <string>
#include <system_error>

namespace kvpool::memory {
namespace {

constexpr uint64_t kSmallPageBytes = 4ull << 10;
constexpr uint64_t kHugePageBytes = 2ull << 20;

// Callers guarantee value <= max - (alignment - 1), so this cannot overflow.
uint64_t RoundUp(uint64_t value, uint64_t alignment) {
  return (value + alignment - 1) / alignment * alignment;
}

std::string ErrnoText(int err) { return std::generic_category().message(err); }

}  // namespace

std::string_view PageModeName(PageMode mode) {
  switch (mode) {
    case PageMode::kHugeTlb: return "hugetlb";
    case PageMode::kTransparentHuge: return "transparent_huge";
    case PageMode::kPlain: return "plain";
    case PageMode::kExternal: return "external";
  }
  return "unknown";
}

// Free runs keyed by offset. Ordered by offset so that first fit prefers low addresses (keeping
// the top of the arena free in large runs) and so that both neighbours of a freed extent are
// one step away for coalescing. Not thread-safe; owned by its HostArena.
struct HostArena::FreeList {
  std::map<uint64_t, uint64_t> runs;  // offset -> bytes; never adjacent, never overlapping.
  uint64_t free_bytes = 0;
};

Result<std::unique_ptr<HostArena>> HostArena::Create(const HostArenaOptions& options) {
  if (options.capacity_bytes == 0) {
    return InvalidArgumentError("host arena capacity_bytes must be > 0, got 0");
  }
  // Leaves room for rounding up to the largest alignment without overflow.
  constexpr uint64_t kMaxCapacity = std::numeric_limits<uint64_t>::max() - kHugePageBytes;
  if (options.capacity_bytes > kMaxCapacity) {
    return InvalidArgumentError("host arena capacity_bytes " +
                                std::to_string(options.capacity_bytes) + " is too large");
  }

  constexpr int kProt = PROT_READ | PROT_WRITE;
  constexpr int kAnon = MAP_PRIVATE | MAP_ANONYMOUS;

  if (options.try_huge_pages) {
    // No MAP_NORESERVE here: with it the kernel maps hugetlb memory it does not have (e.g. with
    // vm.nr_hugepages == 0) and the first touch dies with SIGBUS. Reserving at mmap time turns a
    // shortage into a clean failure, and we fall back to small pages.
    const uint64_t capacity = RoundUp(options.capacity_bytes, kHugePageBytes);
    void* p = mmap(nullptr, capacity, kProt, kAnon | MAP_HUGETLB, -1, 0);
    if (p != MAP_FAILED) {
      return std::unique_ptr<HostArena>(
          new HostArena(static_cast<uint8_t*>(p), capacity, kHugePageBytes, PageMode::kHugeTlb,
                        /*owns_mapping=*/true));
    }
  }

  // MAP_NORESERVE: the pool is sized for the node's DRAM, and a heuristic overcommit policy must
  // not refuse it up front; pages are committed as blocks are first written.
  const uint64_t capacity = RoundUp(options.capacity_bytes, kSmallPageBytes);
  void* p = mmap(nullptr, capacity, kProt, kAnon | MAP_NORESERVE, -1, 0);
  if (p == MAP_FAILED) {
    const int err = errno;
    return ResourceExhaustedError("cannot map a host arena of " + std::to_string(capacity) +
                                  " bytes: mmap failed: " + ErrnoText(err));
  }
  PageMode mode = PageMode::kPlain;
  // Best effort: huge TLB entries matter for multi-GiB pools, but small pages still work.
  if (options.try_huge_pages && madvise(p, capacity, MADV_HUGEPAGE) == 0) {
    mode = PageMode::kTransparentHuge;
  }
  return std::unique_ptr<HostArena>(
      new HostArena(static_cast<uint8_t*>(p), capacity, kSmallPageBytes, mode,
                    /*owns_mapping=*/true));
}

Result<std::unique_ptr<HostArena>> HostArena::Adopt(void* base, uint64_t capacity_bytes,
                                                    ExtentBacking* backing,
                                                    uint64_t alignment_bytes) {
  if (alignment_bytes < kSmallPageBytes || (alignment_bytes & (alignment_bytes - 1)) != 0) {
    return InvalidArgumentError("adopted host arena alignment " + std::to_string(alignment_bytes) +
                                " is not a power of two >= 4096");
  }
  if (base == nullptr) return InvalidArgumentError("cannot adopt a host arena at a null address");
  if (reinterpret_cast<uintptr_t>(base) % alignment_bytes != 0) {
    return InvalidArgumentError("cannot adopt a host arena at " +
                                std::to_string(reinterpret_cast<uintptr_t>(base)) +
                                ": not aligned to " + std::to_string(alignment_bytes) + " bytes");
  }
  if (capacity_bytes == 0 || capacity_bytes % alignment_bytes != 0) {
    return InvalidArgumentError("adopted host arena capacity_bytes must be a positive multiple "
                                "of " + std::to_string(alignment_bytes) + ", got " +
                                std::to_string(capacity_bytes));
  }
  if (capacity_bytes > std::numeric_limits<uintptr_t>::max() - reinterpret_cast<uintptr_t>(base)) {
    return InvalidArgumentError("adopted host arena of " + std::to_string(capacity_bytes) +
                                " bytes wraps the address space");
  }
  auto arena = std::unique_ptr<HostArena>(new HostArena(static_cast<uint8_t*>(base),
                                                        capacity_bytes, alignment_bytes,
                                                        PageMode::kExternal,
                                                        /*owns_mapping=*/false));
  arena->backing_ = backing;
  return arena;
}

HostArena::HostArena(uint8_t* base, uint64_t capacity_bytes, uint64_t alignment_bytes,
                     PageMode mode, bool owns_mapping)
    : base_(base),
      capacity_bytes_(capacity_bytes),
      alignment_bytes_(alignment_bytes),
      page_mode_(mode),
      owns_mapping_(owns_mapping),
      free_(std::make_unique<FreeList>()) {
  free_->runs.emplace(0, capacity_bytes);
  free_->free_bytes = capacity_bytes;
}

HostArena::~HostArena() {
  // Nothing useful can be done if munmap fails on a mapping we created; the address range simply
  // stays reserved until the process exits.
  if (owns_mapping_) munmap(base_, capacity_bytes_);
}

Result<Extent> HostArena::Allocate(uint64_t bytes, uint64_t owner) {
  if (bytes == 0) {
    return InvalidArgumentError("cannot allocate an extent of 0 bytes");
  }
  // Checked before rounding so that the rounding cannot overflow (capacity is aligned).
  if (bytes > free_->free_bytes) {
    return ResourceExhaustedError("cannot allocate an extent of " + std::to_string(bytes) +
                                  " bytes: arena has " + std::to_string(free_->free_bytes) +
                                  " free bytes of " + std::to_string(capacity_bytes_));
  }
  const uint64_t rounded = RoundUp(bytes, alignment_bytes_);
  Status backing_error = Status::Ok();
  // Backs [offset, + rounded) for the owner and takes it out of the free runs; false when the
  // backing refuses it.
  auto claim = [&](uint64_t offset) {
    if (backing_ != nullptr) {
      if (Status st = backing_->Back(Extent{offset, rounded}, owner); !st.ok()) {
        backing_error = std::move(st);
        return false;
      }
    }
    TakeFree(offset, rounded);
    return true;
  };
  // The owner's own former extent first: its backing memory is still there.
  if (backing_ != nullptr) {
    std::optional<uint64_t> preferred = backing_->Preferred(rounded, owner);
    if (preferred.has_value() && FreeRunCovering(*preferred, rounded) != free_->runs.end() &&
        claim(*preferred)) {
      return Extent{*preferred, rounded};
    }
  }
  // First fit. Where the backing refuses an offset (a range it cannot use just now), the rest
  // of the run is tried too, an extent further at a time, up to kMaxRefusals in all.
  constexpr int kMaxRefusals = 64;
  int refusals = 0;
  for (const auto& [run_offset, run_bytes] : free_->runs) {
    const uint64_t run_end = run_offset + run_bytes;  // copies: claim erases the run
    for (uint64_t offset = run_offset; run_end - offset >= rounded; offset += rounded) {
      if (claim(offset)) return Extent{offset, rounded};
      if (++refusals == kMaxRefusals) return backing_error;
    }
  }
  if (!backing_error.ok()) return backing_error;
  return ResourceExhaustedError("cannot allocate an extent of " + std::to_string(rounded) +
                                " bytes: arena has " + std::to_string(free_->free_bytes) +
                                " free bytes in extents of at most " +
                                std::to_string(largest_free_extent_bytes()));
}

std::map<uint64_t, uint64_t>::iterator HostArena::FreeRunCovering(uint64_t offset,
                                                                  uint64_t bytes) {
  auto& runs = free_->runs;
  auto it = runs.upper_bound(offset);
  if (it == runs.begin()) return runs.end();
  it = std::prev(it);
  return offset + bytes <= it->first + it->second ? it : runs.end();
}

void HostArena::TakeFree(uint64_t offset, uint64_t bytes) {
  auto& runs = free_->runs;
  auto it = FreeRunCovering(offset, bytes);
  assert(it != runs.end() && "HostArena::TakeFree: range not free");
  const uint64_t run_start = it->first;
  const uint64_t run_end = it->first + it->second;
  runs.erase(it);
  if (offset > run_start) runs.emplace(run_start, offset - run_start);
  if (run_end > offset + bytes) runs.emplace(offset + bytes, run_end - offset - bytes);
  free_->free_bytes -= bytes;
}

void HostArena::Free(const Extent& extent) {
  // A malformed extent is a caller bug. Debug builds stop here; release builds ignore it rather
  // than corrupt the free list (a leaked extent is recoverable, a doubly-owned one is not).
  const bool in_range = extent.bytes > 0 && extent.offset < capacity_bytes_ &&
                        extent.bytes <= capacity_bytes_ - extent.offset &&
                        extent.offset % alignment_bytes_ == 0 &&
                        extent.bytes % alignment_bytes_ == 0;
  assert(in_range && "HostArena::Free: extent outside the arena or misaligned");
  if (!in_range) return;

  auto& runs = free_->runs;
  auto next = runs.lower_bound(extent.offset);
  const uint64_t end = extent.offset + extent.bytes;
  const bool overlaps_next = next != runs.end() && next->first < end;
  const bool overlaps_prev =
      next != runs.begin() && [&] {
        const auto prev = std::prev(next);
        return prev->first + prev->second > extent.offset;
      }();
  assert(!overlaps_next && !overlaps_prev && "HostArena::Free: extent is already free");
  if (overlaps_next || overlaps_prev) return;
  if (backing_ != nullptr) backing_->Release(extent);
  InsertFree(extent);
}

void HostArena::InsertFree(const Extent& extent) {
  auto& runs = free_->runs;
  auto next = runs.lower_bound(extent.offset);
  const uint64_t end = extent.offset + extent.bytes;
  uint64_t offset = extent.offset;
  uint64_t bytes = extent.bytes;
  if (next != runs.begin()) {
    const auto prev = std::prev(next);
    if (prev->first + prev->second == offset) {
      offset = prev->first;
      bytes += prev->second;
      runs.erase(prev);
    }
  }
  if (next != runs.end() && next->first == end) {
    bytes += next->second;
    runs.erase(next);
  }
  runs.emplace(offset, bytes);
  free_->free_bytes += extent.bytes;
}

uint64_t HostArena::free_bytes() const { return free_->free_bytes; }

uint64_t HostArena::largest_free_extent_bytes() const {
  uint64_t largest = 0;
  for (const auto& run : free_->runs) {
    if (run.second > largest) largest = run.second;
  }
  return largest;
}

}  // namespace kvpool::memory
