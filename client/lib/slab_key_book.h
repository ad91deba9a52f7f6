// The remote keys of the node's pool slabs that a Client has been handed (docs/security.md
// "Remote keys"): a node gives the key of a slab only with blocks of that slab.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/inlined_vector.h"
#include "absl/synchronization/mutex.h"
#include "kvpool/status.h"
#include "kvpool/types.h"
#include "kvpool/v1/mempool.pb.h"
#include "transport/remote_slabs.h"

namespace kvpool::client_internal {

/// The slabs a batch touches: each slab once, and per block the index of its slab.
struct BatchSlabs {
  /// RemoteRegion per slab (address: the node's pool base + the slab's offset).
  absl::InlinedVector<transport::RemoteSlabs::Slab, 1> slabs;
  /// Per block: index into `slabs`; kNoSlab for blocks outside the pool (GPU tier).
  absl::InlinedVector<uint32_t, 4> slab_of;
  static constexpr uint32_t kNoSlab = UINT32_MAX;
};

/// Slab keys learnt from one Client's AllocMem and Match responses (BlockList.slab_keys),
/// shared (shared_ptr) with the DataPlanes connected through that Client. Keys a node replaced
/// (it unmapped the slab and mapped a new one) are kept aside for the DataPlane to drop from
/// its engine, which would otherwise keep the old memory mapped.
///
/// Thread-safe.
class SlabKeyBook {
 public:
  /// Records the slab keys of a response.
  void Learn(const v1::BlockList& blocks);
  /// Sets the node's pool base (GetDataPlane's region_base), which the slabs' addresses add
  /// to their offsets. Default: 0.
  void SetPoolBase(uint64_t pool_base);
  /// The slabs of `blocks`' HOST blocks; also moves the keys replaced since the last call to
  /// `*replaced` (one lock for both: this runs on every transfer). FAILED_PRECONDITION naming
  /// the first block whose slab key this client was never handed (blocks not from this
  /// Client's responses).
  Result<BatchSlabs> Find(std::span<const BlockLocation> blocks,
                          std::vector<std::string>* replaced);
  /// Forgets every key (the node restarted).
  void Clear();
  size_t size() const;

 private:
  mutable absl::Mutex mu_;
  transport::RemoteSlabs slabs_ ABSL_GUARDED_BY(mu_);
  std::vector<std::string> replaced_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvpool::client_internal
