// The host-memory arena of a node: one large mapping that the block allocators carve up.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string_view>

#include "kvpool/status.h"

namespace kvpool::memory {

/// How the arena's pages are backed.
enum class PageMode {
  kHugeTlb,          ///< MAP_HUGETLB: reserved 2 MiB huge pages (needs vm.nr_hugepages).
  kTransparentHuge,  ///< plain mapping with madvise(MADV_HUGEPAGE).
  kPlain,            ///< plain 4 KiB pages.
  kExternal,         ///< memory the caller provided (HostArena::Adopt), e.g. allocated by UCX.
};
std::string_view PageModeName(PageMode mode);

/// A contiguous run of the arena: [offset, offset + bytes).
struct Extent {
  uint64_t offset = 0;
  uint64_t bytes = 0;
};

/// Memory that comes and goes with an adopted arena's extents instead of existing up front:
/// kvpoold maps each pool slab as its own UCX allocation with its own remote key, so a key
/// reaches only its slab (docs/security.md). Extents are claimed for an owner (a namespace): a
/// backing may keep a released extent's memory for the same owner's next claim, and must give
/// any other owner fresh memory. Calls come from the arena's owner, one at a time.
class ExtentBacking {
 public:
  virtual ~ExtentBacking() = default;
  /// Makes [arena base + extent.offset, + extent.bytes) usable for `owner`; called by Allocate
  /// before it returns the extent. An error fails that extent (Allocate tries the next).
  virtual Status Back(const Extent& extent, uint64_t owner) = 0;
  /// Called by Free before the extent rejoins the free runs. The backing may keep its memory
  /// for the same owner (Preferred) until another owner's Back needs the range.
  virtual void Release(const Extent& extent) = 0;
  /// The offset of a free extent of `bytes` the backing would rather back for `owner` (memory
  /// it still keeps for that owner, say), which Allocate then tries before first fit.
  /// Default: none.
  virtual std::optional<uint64_t> Preferred(uint64_t /*bytes*/, uint64_t /*owner*/) {
    return std::nullopt;
  }
};

struct HostArenaOptions {
  /// Size of the mapping in bytes; rounded up to alignment_bytes(). Must be > 0.
  /// Default: 0 (invalid: the caller must choose).
  uint64_t capacity_bytes = 0;
  /// Try MAP_HUGETLB first, then transparent huge pages, then plain pages. Default: true.
  bool try_huge_pages = true;
};

/// One anonymous private mapping of `capacity_bytes`, handed out as page-aligned extents with a
/// first-fit allocator that coalesces neighbours on free. Extents are claimed rarely (a slab of
/// many blocks at a time): Allocate is O(free runs), Free O(log free runs). Freeing an extent
/// that was not allocated is a programming error: it asserts in debug builds and is ignored in
/// release builds (the free list is never corrupted).
///
/// Huge pages: MAP_HUGETLB is tried without MAP_NORESERVE, because with it the mapping succeeds
/// even when no huge pages are reserved and the first touch of a page then kills the process
/// with SIGBUS; without it a shortage fails cleanly at start-up and the arena falls back.
///
/// A mapping the arena created is released in the destructor (adopted memory is not); every extent must have been freed by then or is
/// released with it. Not thread-safe; owned by the node's block manager.
class HostArena {
 public:
  /// Maps the arena. RESOURCE_EXHAUSTED when the kernel refuses the mapping;
  /// INVALID_ARGUMENT when capacity_bytes is 0.
  static Result<std::unique_ptr<HostArena>> Create(const HostArenaOptions& options);
  /// Manages caller-provided memory [base, base + capacity_bytes) with the same extent allocator
  /// (4 KiB alignment; page_mode() kExternal). The arena never unmaps it: the caller owns the
  /// memory and must keep it mapped until the arena is destroyed. INVALID_ARGUMENT for a null or
  /// not 4 KiB-aligned base, or a capacity that is not a positive multiple of 4 KiB.
  /// With `backing` (borrowed; it must outlive the arena), the range need not be usable memory
  /// up front: each extent is backed when allocated and released when freed. `alignment_bytes`
  /// (a power of two >= 4096, dividing base and capacity) sets alignment_bytes().
  static Result<std::unique_ptr<HostArena>> Adopt(void* base, uint64_t capacity_bytes,
                                                  ExtentBacking* backing = nullptr,
                                                  uint64_t alignment_bytes = 4096);
  ~HostArena();
  HostArena(const HostArena&) = delete;
  HostArena& operator=(const HostArena&) = delete;

  /// Start of the mapping; extent offsets are relative to it.
  uint8_t* base() const { return base_; }
  uint64_t capacity_bytes() const { return capacity_bytes_; }
  /// Extents are multiples of, and aligned to, this (4 KiB, or 2 MiB with huge pages).
  uint64_t alignment_bytes() const { return alignment_bytes_; }
  PageMode page_mode() const { return page_mode_; }

  /// Claims at least `bytes` (rounded up to alignment_bytes()) for `owner` (see ExtentBacking;
  /// ignored without one). RESOURCE_EXHAUSTED when no free run is large enough; INVALID_ARGUMENT
  /// for 0; the backing's last error when it backed none of the candidate extents (the
  /// preferred one, then each extent-sized step of every free run, 64 refusals at most).
  Result<Extent> Allocate(uint64_t bytes, uint64_t owner = 0);
  /// Returns an extent obtained from Allocate (exactly as returned).
  void Free(const Extent& extent);

  uint64_t free_bytes() const;
  uint64_t largest_free_extent_bytes() const;

 private:
  struct FreeList;
  HostArena(uint8_t* base, uint64_t capacity_bytes, uint64_t alignment_bytes, PageMode mode,
            bool owns_mapping);

  uint8_t* base_;
  uint64_t capacity_bytes_;
  uint64_t alignment_bytes_;
  PageMode page_mode_;
  bool owns_mapping_;  // false for adopted memory: the caller unmaps it
  // Adds a freed extent to the free runs (coalescing).
  void InsertFree(const Extent& extent);
  // The free run holding all of [offset, + bytes), or the runs' end.
  std::map<uint64_t, uint64_t>::iterator FreeRunCovering(uint64_t offset, uint64_t bytes);
  // Takes [offset, + bytes), which must be free, out of the free runs.
  void TakeFree(uint64_t offset, uint64_t bytes);

  ExtentBacking* backing_ = nullptr;
  std::unique_ptr<FreeList> free_;
};

}  // namespace kvpool::memory
