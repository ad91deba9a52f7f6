// kvpoold's pool memory on the data plane: one remote key per slab, so that a key reaches only
// the slab it was handed out for (docs/security.md "Remote keys").
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/functional/any_invocable.h"
#include "absl/synchronization/mutex.h"
#include "kvpool/status.h"
#include "memory/address_reservation.h"
#include "memory/host_arena.h"
#include "transport/transfer_engine.h"

namespace kvpool::transport {

/// The remote key of one slab of the pool: what peers need to reach blocks inside it.
struct SlabKey {
  /// Pool offset of the slab's first byte. Default: 0.
  uint64_t offset = 0;
  /// Bytes of the slab. Default: 0.
  uint64_t bytes = 0;
  /// Packed UCX remote key of the slab (opaque).
  std::string rkey;
};

/// The pool's address range, reserved up front (PROT_NONE), with each slab mapped into it as
/// its own UCX allocation (at a fixed address, so block offsets do not change, and in shared
/// memory that same-host peers map directly) when a namespace claims it. A slab's key is handed
/// only with blocks of that slab, to clients allowed to use its namespace.
///
/// A slab given back stays mapped, idle, for its namespace's next claim (no new mapping, no
/// new key for its clients to learn). When another namespace claims the range, the idle slab
/// is unmapped and the range mapped anew: its old key, and any peer's shared-memory mapping of
/// it, no longer reach the memory the new owner gets.
///
/// It is the ExtentBacking of the arena it creates (Arena()); also owns a one-page probe
/// region, holding nothing, whose key GetDataPlane hands out for the UCX handshake.
///
/// Thread-safe: Back, Release and Preferred run under the pool's lock, KeysFor from any RPC
/// thread. The engine must outlive it; the arena (and the pool owning it) must go first.
class PoolMemory final : public memory::ExtentBacking {
 public:
  /// Reserves `capacity_bytes` (rounded up to alignment()) of address space and allocates the
  /// probe region. Errors of the reservation and of the engine.
  static Result<std::unique_ptr<PoolMemory>> Create(TransferEngine* engine,
                                                    uint64_t capacity_bytes);
  /// Unmaps slabs still mapped (the arena should have released them), then the probe.
  ~PoolMemory() override;
  PoolMemory(const PoolMemory&) = delete;
  PoolMemory& operator=(const PoolMemory&) = delete;

  /// A HostArena over the reserved range, backed by this object.
  Result<std::unique_ptr<memory::HostArena>> Arena();

  /// Address of pool offset 0 in this process.
  uint64_t base_address() const { return reinterpret_cast<uint64_t>(reservation_.base()); }
  uint64_t capacity_bytes() const { return reservation_.size_bytes(); }
  /// Slabs start at and span multiples of this: 2 MiB when the host has huge pages reserved
  /// (vm.nr_hugepages > 0), since UCX then may allocate a slab in huge pages and round its
  /// length up to 2 MiB, which must not reach past the slab; else 4 KiB.
  uint64_t alignment() const { return alignment_; }
  /// The probe region (for GetDataPlane).
  RemoteRegion probe() const { return probe_.Describe(); }

  /// The keys of the slabs that hold [offsets[i], + block_bytes), each slab once, in offset
  /// order. Offsets outside any mapped slab are skipped (the caller hands out only blocks its
  /// lease holds, whose slabs are mapped).
  std::vector<SlabKey> KeysFor(std::span<const uint64_t> offsets, uint64_t block_bytes) const;
  /// Slabs in use by a namespace now (for tests and logs).
  size_t mapped_slabs() const;
  /// Counts over the pool's life (for metrics, tests and logs): slabs mapped, idle slabs
  /// reused by their namespace, slabs unmapped; and now: slabs idle, bytes of ranges another
  /// mapping holds.
  struct Counts {
    uint64_t maps = 0;
    uint64_t reuses = 0;
    uint64_t unmaps = 0;
    uint64_t idle_slabs = 0;
    uint64_t lost_bytes = 0;
  };
  Counts counts() const;

  /// Tests only: called with each hole an unmapped idle slab leaves, before it is reserved
  /// again (a test maps something there to play the other thread's mmap that takes it).
  void SetUnmapHookForTesting(absl::AnyInvocable<void(uint8_t* hole, uint64_t bytes)> hook) {
    unmap_hook_ = std::move(hook);
  }

  // memory::ExtentBacking. Back fails (and the arena tries another extent) when an idle slab
  // in the way is still used by a transfer of this node, or another mapping holds the range.
  // Preferred: the owner's idle slab of that size, else the never-mapped space above every
  // slab mapped so far.
  Status Back(const memory::Extent& extent, uint64_t owner) override;
  void Release(const memory::Extent& extent) override;
  std::optional<uint64_t> Preferred(uint64_t bytes, uint64_t owner) override;

 private:
  struct Slab {
    uint64_t bytes = 0;
    RegionId region{};
    std::string rkey;
    uint64_t owner = 0;
  };
  PoolMemory(TransferEngine* engine, memory::AddressReservation reservation, uint64_t alignment)
      : engine_(engine), reservation_(std::move(reservation)), alignment_(alignment) {}
  // Unmaps the idle slabs overlapping [offset, + bytes) and reserves their ranges again.
  Status ClearIdle(uint64_t offset, uint64_t bytes);
  // Reserves again the lost ranges overlapping [offset, + bytes) whose other mapping is gone;
  // RESOURCE_EXHAUSTED while one is still taken.
  Status ReclaimLost(uint64_t offset, uint64_t bytes);

  TransferEngine* const engine_;
  memory::AddressReservation reservation_;
  const uint64_t alignment_;
  LocalRegion probe_;
  absl::AnyInvocable<void(uint8_t*, uint64_t)> unmap_hook_;
  mutable absl::Mutex mu_;
  std::map<uint64_t, Slab> slabs_ ABSL_GUARDED_BY(mu_);  // in use, by pool offset
  Counts counts_ ABSL_GUARDED_BY(mu_);
  // Touched only by Back, Release and Preferred (one at a time, by the arena's owner).
  std::map<uint64_t, Slab> idle_;  // released, still mapped for their owner; no keys handed out
  uint64_t mapped_end_ = 0;        // end of the highest slab ever mapped
  // offset -> bytes another mapping took while a slab there was unmapped: unused until
  // ReclaimLost finds it free again.
  std::map<uint64_t, uint64_t> lost_;
};

}  // namespace kvpool::transport
