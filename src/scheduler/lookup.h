// Reading a prompt against the global index: which node holds which blocks (Lookup, for clients
// and kvpoolctl), and a lean prefix scan for the router's hot path.
#pragma once

#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/types.h"
#include "scheduler/global_index.h"

namespace kvpool::scheduler {

/// Blocks [start, start + length) of a prompt.
struct BlockRun {
  uint32_t start = 0;
  uint32_t length = 0;

  friend bool operator==(const BlockRun&, const BlockRun&) = default;
};

/// What one node holds of a prompt.
struct NodeLookup {
  std::string node_id;
  /// The node holds blocks [0, leading_blocks) (Dynamo's find_matches, LMCache's lookup).
  uint32_t leading_blocks = 0;
  /// Maximal runs of blocks it holds further in (segments without the prompt's beginning, see
  /// DESIGN.md "Pooled, segment-level placement"), in prompt order; the leading run is not
  /// repeated here.
  std::vector<BlockRun> runs;
  /// Blocks of the prompt it holds, anywhere, by tier.
  TierCounts held;
};

/// A stretch of the pooled prefix to pull from one node, where it lives in one tier.
struct PullSegment {
  uint32_t start = 0;
  uint32_t length = 0;
  std::string node_id;
  Tier tier = Tier::kNone;

  friend bool operator==(const PullSegment&, const PullSegment&) = default;
};

struct LookupResult {
  /// Blocks in the prompt (hashes given).
  uint32_t prompt_blocks = 0;
  /// The union of all nodes holds blocks [0, pooled_prefix_blocks).
  uint32_t pooled_prefix_blocks = 0;
  /// Blocks held by at least one node anywhere in the prompt (also after holes).
  uint32_t held_blocks = 0;
  /// Every node holding at least one block, by leading_blocks, then held blocks (both
  /// descending), then id.
  std::vector<NodeLookup> nodes;
  /// A plan covering [0, pooled_prefix_blocks) in order: the fewest segments (a segment is one
  /// node at one tier), then among those the fastest tiers (gpu, then host, then disk); remaining
  /// ties are broken deterministically (lowest NodeIndex). Empty when nothing is pooled.
  std::vector<PullSegment> segments;
};

/// Looks `hashes` (a prompt's chained hashes from block 0) up in namespace `ns`. An unknown
/// namespace holds nothing. O(prompt blocks x holders per block).
LookupResult Lookup(const GlobalIndex& index, std::string_view ns,
                    std::span<const BlockHash> hashes);

/// Per-node counts of a PrefixScanner pass.
struct NodePrefixStats {
  /// The node holds blocks [0, leading_blocks).
  uint32_t leading_blocks = 0;
  /// Of those, the blocks it holds on disk.
  uint32_t leading_disk_blocks = 0;
  /// Blocks of the pooled prefix the node holds in gpu or host memory.
  uint32_t fast_blocks = 0;
  /// Blocks of the pooled prefix the node holds on disk.
  uint32_t disk_blocks = 0;
  /// Blocks of the pooled prefix the node holds (any tier) that some node holds in gpu or host.
  uint32_t held_with_fast_copy = 0;
  /// Of the pooled prefix's blocks that no node holds in gpu or host memory, those this node
  /// holds: the sum of each one's cheapest disk read (Scan's `disk_block_s`), in seconds.
  double disk_only_held_s = 0;
};

/// The router's hot path: one pass over a prompt's pooled prefix gathering, per node, what
/// Route's estimates need, with no allocation after warm-up. It stops at the first block no node
/// holds (Route counts only the pooled prefix as cached).
///
/// Not thread-safe; owned by one Router (reusable scratch).
class PrefixScanner {
 public:
  /// Scans `hashes` of namespace `ns`; results stay valid until the next Scan.
  /// `disk_block_s[n]` is the time to read one block from the SSD tier of the node of NodeIndex
  /// n (its measured bandwidth); nodes past its end read in `default_disk_block_s`. They only
  /// price the blocks held on disk alone (disk_only_s).
  void Scan(const GlobalIndex& index, std::string_view ns, std::span<const BlockHash> hashes,
            std::span<const double> disk_block_s = {}, double default_disk_block_s = 0);

  uint32_t pooled_prefix_blocks() const { return pooled_prefix_blocks_; }
  /// Blocks of the pooled prefix that some node holds in gpu or host memory.
  uint32_t fast_blocks() const { return fast_blocks_; }
  /// Over the pooled prefix's blocks that no node holds in gpu or host memory: the sum of the
  /// cheapest holder's disk read time (seconds). Minus a node's disk_only_held_s, it prices the
  /// disk-only blocks that node must fetch from others' SSD tiers.
  double disk_only_s() const { return disk_only_s_; }
  /// The stats of `node` (all zero for a node that holds none of the pooled prefix).
  const NodePrefixStats& node(NodeIndex node) const {
    return node < stats_.size() ? stats_[node] : kEmpty;
  }

 private:
  static constexpr NodePrefixStats kEmpty{};
  uint32_t pooled_prefix_blocks_ = 0;
  uint32_t fast_blocks_ = 0;
  double disk_only_s_ = 0;
  std::vector<NodePrefixStats> stats_;  // Indexed by NodeIndex.
  std::vector<NodeIndex> touched_;
};

}  // namespace kvpool::scheduler
