// Placement: which node should store newly published blocks (DESIGN.md "Global scheduler":
// Placement).
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>

#include "kvpool/status.h"
#include "kvpool/types.h"
#include "scheduler/global_index.h"
#include "scheduler/namespace_models.h"
#include "scheduler/registry.h"

namespace kvpool::scheduler {

/// One PlaceBlocks call. Views are borrowed for the duration of the call.
struct PlacementRequest {
  /// Namespace of the blocks; must not be empty (its model gives block_bytes).
  std::string_view ns;
  /// Blocks to store; must be > 0.
  uint64_t n_blocks = 0;
  /// Node ids allowed; empty = every registered node.
  std::span<const std::string> allowed_nodes;
  /// Tier to store them in: kGpu, kHost or kDisk. Default: kHost.
  Tier tier = Tier::kHost;
};

struct PlacementDecision {
  std::string node_id;
  /// The node's free bytes in the tier before these blocks.
  uint64_t free_bytes = 0;
  /// n_blocks x block_bytes.
  uint64_t needed_bytes = 0;
  std::string reason;
};

/// Chooses the node with the most free capacity in a tier.
///
/// A node's used bytes in a tier: the larger of its last reported usage (heartbeat) and the
/// blocks the global index shows it holding there (per namespace, times that namespace's
/// block_bytes); the index side reacts to KV events between heartbeats. Free = capacity - used.
///
/// Not thread-safe (reads the registry and index, which are not); owned by the scheduler
/// service. Borrows the registry, index and models, which must outlive it.
class Placer {
 public:
  Placer(const Registry* registry, const GlobalIndex* index, const NamespaceModels* models);

  /// The live node that is not draining, among the allowed ones, with the most free bytes in `request.tier` that
  /// can take all the blocks (ties go to the smaller id).
  /// Returns INVALID_ARGUMENT for an empty namespace, n_blocks == 0 or a tier other than
  /// gpu/host/disk; NOT_FOUND when an allowed node is not registered; UNAVAILABLE when no
  /// allowed node is alive and not draining; RESOURCE_EXHAUSTED when none has room (the
  /// message names the largest free space).
  Result<PlacementDecision> PlaceBlocks(const PlacementRequest& request) const;

  /// Free bytes of `node` in `tier` as PlaceBlocks counts them.
  uint64_t FreeBytes(const NodeInfo& node, Tier tier) const;

 private:
  const Registry* registry_;
  const GlobalIndex* index_;
  const NamespaceModels* models_;
};

}  // namespace kvpool::scheduler
