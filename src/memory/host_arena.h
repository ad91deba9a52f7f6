// The host-memory arena of a node: one large mapping that the block allocators carve up.
#pragma once

#include <cstdint>
#include <memory>
#include <string_view>
#include <vector>

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
/// reaches only its slab (docs/security.md). Calls come from the arena's owner, one at a time.
class ExtentBacking {
 public:
  virtual ~ExtentBacking() = default;
  /// Makes [arena base + extent.offset, + extent.bytes) usable; called by Allocate before it
  /// returns the extent. An error fails that Allocate (the extent stays free).
  virtual Status Back(const Extent& extent) = 0;
  enum class Released {
    kYes,    ///< the extent may be handed out again
    kLater,  ///< still busy: the arena asks again before its next allocations
    kLost,   ///< could not be restored: the arena never hands the range out again
  };
  /// Called by Free before the extent rejoins the free runs (and again for kLater).
  virtual Released Release(const Extent& extent) = 0;
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

  /// Claims at least `bytes` (rounded up to alignment_bytes()). RESOURCE_EXHAUSTED when no free
  /// run is large enough; INVALID_ARGUMENT for 0; the backing's error when it cannot back it.
  Result<Extent> Allocate(uint64_t bytes);
  /// Returns an extent obtained from Allocate (exactly as returned).
  void Free(const Extent& extent);

  uint64_t free_bytes() const;
  uint64_t largest_free_extent_bytes() const;
  /// Bytes the backing could not restore after a Free (never handed out again).
  uint64_t lost_bytes() const { return lost_bytes_; }
  /// Freed bytes the backing could not release yet (neither free nor in use).
  uint64_t deferred_bytes() const;
  /// Asks the backing again for those (Allocate does so itself first).
  void Reclaim() {
    if (!deferred_.empty()) RetryDeferred();
  }

 private:
  struct FreeList;
  HostArena(uint8_t* base, uint64_t capacity_bytes, uint64_t alignment_bytes, PageMode mode,
            bool owns_mapping);

  uint8_t* base_;
  uint64_t capacity_bytes_;
  uint64_t alignment_bytes_;
  PageMode page_mode_;
  bool owns_mapping_;  // false for adopted memory: the caller unmaps it
  // Asks the backing again for the deferred extents; those released join the free runs.
  void RetryDeferred();
  // Adds a freed extent to the free runs (coalescing).
  void InsertFree(const Extent& extent);

  ExtentBacking* backing_ = nullptr;
  uint64_t lost_bytes_ = 0;
  std::vector<Extent> deferred_;  // freed, backing said kLater
  std::unique_ptr<FreeList> free_;
};

}  // namespace kvpool::memory
