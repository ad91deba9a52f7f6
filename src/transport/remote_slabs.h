// The remote keys of a kvpoold node's pool slabs, as a peer learns them.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "transport/transfer_engine.h"

namespace kvpool::transport {

/// A node hands out one remote key per slab of its pool, with the blocks of that slab
/// (BlockList.slab_keys; docs/security.md "Remote keys"). This map finds the slab that holds a
/// block, as the RemoteRegion a Put or Get into that block needs. Regions are shared and
/// immutable, so a caller can keep one past later changes of the map.
///
/// A plain value type; not thread-safe.
class RemoteSlabs {
 public:
  using Slab = std::shared_ptr<const RemoteRegion>;

  /// `pool_base`: the address of pool offset 0 in the node's process (GetDataPlane's
  /// region_base).
  explicit RemoteSlabs(uint64_t pool_base = 0) : pool_base_(pool_base) {}

  /// Records the key of the slab [offset, + bytes). Slabs it overlaps are forgotten (the node
  /// unmapped them and mapped this one since). Returns the keys it replaced (for the caller to
  /// drop from its engine's cache); none when the same key was known already.
  std::vector<std::string> Learn(uint64_t offset, uint64_t bytes, std::string rkey);
  /// The slab holding pool range [offset, + length), as a RemoteRegion (address: pool_base +
  /// the slab's offset), or null when no known slab holds all of it.
  const Slab* Find(uint64_t offset, uint64_t length) const;
  /// Moves every slab to a new pool base (the node's region_base, learnt after its keys).
  void Rebase(uint64_t pool_base);
  void Clear() { by_offset_.clear(); }
  size_t size() const { return by_offset_.size(); }
  uint64_t pool_base() const { return pool_base_; }

 private:
  uint64_t pool_base_;
  std::map<uint64_t, Slab> by_offset_;  // by slab offset
};

}  // namespace kvpool::transport
