#include "scheduler/lookup.h"

#include <algorithm>
#include <limits>
#include <utility>

namespace kvpool::scheduler {
namespace {

// How many blocks ahead the scans prefetch: enough to overlap a few cache misses, few enough
// not to waste bandwidth past a prefix's end.
constexpr size_t kPrefetchDistance = 8;

uint32_t TierRank(Tier tier) {
  switch (tier) {
    case Tier::kGpu: return 0;
    case Tier::kHost: return 1;
    case Tier::kDisk: return 2;
    case Tier::kNone: break;
  }
  return 3;
}

// A plan's cost, compared lexicographically: segments first, then the sum of tier ranks.
struct PlanCost {
  uint32_t segments = std::numeric_limits<uint32_t>::max();
  uint64_t tier_ranks = 0;

  friend bool operator<(const PlanCost& a, const PlanCost& b) {
    return a.segments != b.segments ? a.segments < b.segments : a.tier_ranks < b.tier_ranks;
  }
};

}  // namespace

LookupResult Lookup(const GlobalIndex& index, std::string_view ns,
                    std::span<const BlockHash> hashes) {
  LookupResult result;
  result.prompt_blocks = static_cast<uint32_t>(hashes.size());
  const NamespaceIndex* nsi = index.FindNamespace(ns);
  if (nsi == nullptr || hashes.empty()) return result;

  // Holders of every block, as sorted holder codes (sorted so plans are deterministic).
  std::vector<uint32_t> offsets(hashes.size() + 1, 0);
  std::vector<uint16_t> codes;
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (i + kPrefetchDistance < hashes.size()) nsi->Prefetch(hashes[i + kPrefetchDistance]);
    if (const HolderSet* set = nsi->Find(hashes[i])) {
      size_t first = codes.size();
      set->ForEach(nsi->pool(), [&](Holder h) { codes.push_back(HolderSet::Encode(h.node, h.tier)); });
      std::sort(codes.begin() + static_cast<std::ptrdiff_t>(first), codes.end());
    }
    offsets[i + 1] = static_cast<uint32_t>(codes.size());
  }
  auto holders_of = [&](size_t i) {
    return std::span<const uint16_t>(codes.data() + offsets[i], offsets[i + 1] - offsets[i]);
  };

  // Per-node runs.
  constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  std::vector<uint32_t> slot_of(index.node_slots(), kNone);  // NodeIndex -> result.nodes index
  std::vector<BlockRun> open_run;                              // Per result.nodes index.
  auto close_run = [&](size_t n) {
    BlockRun run = open_run[n];
    if (run.length == 0) return;
    NodeLookup& node = result.nodes[n];
    if (run.start == 0) {
      node.leading_blocks = run.length;
    } else {
      node.runs.push_back(run);
    }
  };
  bool pooled = true;
  for (size_t i = 0; i < hashes.size(); ++i) {
    auto holders = holders_of(i);
    if (holders.empty()) {
      pooled = false;
      continue;
    }
    ++result.held_blocks;
    if (pooled) result.pooled_prefix_blocks = static_cast<uint32_t>(i + 1);
    for (uint16_t code : holders) {
      Holder h = HolderSet::Decode(code);
      uint32_t& slot = slot_of[h.node];
      if (slot == kNone) {
        slot = static_cast<uint32_t>(result.nodes.size());
        result.nodes.push_back(NodeLookup{index.node_id(h.node), 0, {}, {}});
        open_run.push_back(BlockRun{});
      }
      NodeLookup& node = result.nodes[slot];
      ++node.held.mutable_at(h.tier);
      BlockRun& run = open_run[slot];
      if (run.length > 0 && run.start + run.length == i) {
        ++run.length;
      } else {
        close_run(slot);
        run = BlockRun{static_cast<uint32_t>(i), 1};
      }
    }
  }
  for (size_t n = 0; n < result.nodes.size(); ++n) close_run(n);
  std::sort(result.nodes.begin(), result.nodes.end(), [](const NodeLookup& a, const NodeLookup& b) {
    if (a.leading_blocks != b.leading_blocks) return a.leading_blocks > b.leading_blocks;
    if (a.held.total() != b.held.total()) return a.held.total() > b.held.total();
    return a.node_id < b.node_id;
  });

  // Pull plan over the pooled prefix: a shortest path where staying on the same (node, tier)
  // is free and every switch opens a segment. cost[k] and back[k] follow codes[k].
  const uint32_t prefix = result.pooled_prefix_blocks;
  if (prefix == 0) return result;
  std::vector<PlanCost> cost(offsets[prefix]);
  std::vector<uint32_t> back(offsets[prefix], kNone);  // Index into codes of the previous block.
  for (uint32_t i = 0; i < prefix; ++i) {
    // Cheapest way to end block i - 1 on any holder: the base for opening a segment at i.
    PlanCost best_prev{0, 0};
    uint32_t best_prev_k = kNone;
    if (i > 0) {
      best_prev = PlanCost{};
      for (uint32_t k = offsets[i - 1]; k < offsets[i]; ++k) {
        if (cost[k] < best_prev) {
          best_prev = cost[k];
          best_prev_k = k;
        }
      }
    }
    for (uint32_t k = offsets[i]; k < offsets[i + 1]; ++k) {
      const uint64_t rank = TierRank(HolderSet::Decode(codes[k]).tier);
      PlanCost open{best_prev.segments + 1, best_prev.tier_ranks + rank};
      cost[k] = open;
      back[k] = best_prev_k;
      if (i == 0) continue;
      for (uint32_t p = offsets[i - 1]; p < offsets[i]; ++p) {
        if (codes[p] != codes[k]) continue;
        PlanCost stay{cost[p].segments, cost[p].tier_ranks + rank};
        if (!(open < stay)) {  // Prefer staying on ties: fewer switches for equal cost.
          cost[k] = stay;
          back[k] = p;
        }
        break;
      }
    }
  }
  uint32_t k = kNone;
  PlanCost best;
  for (uint32_t j = offsets[prefix - 1]; j < offsets[prefix]; ++j) {
    if (cost[j] < best) {
      best = cost[j];
      k = j;
    }
  }
  // Walk back, block by block, merging equal consecutive holders into segments.
  std::vector<uint16_t> chosen(prefix);
  for (uint32_t i = prefix; i-- > 0;) {
    chosen[i] = codes[k];
    k = back[k];
  }
  for (uint32_t i = 0; i < prefix; ++i) {
    if (i > 0 && chosen[i] == chosen[i - 1]) {
      ++result.segments.back().length;
      continue;
    }
    Holder h = HolderSet::Decode(chosen[i]);
    result.segments.push_back(PullSegment{i, 1, index.node_id(h.node), h.tier});
  }
  return result;
}

void PrefixScanner::Scan(const GlobalIndex& index, std::string_view ns,
                         std::span<const BlockHash> hashes, std::span<const double> disk_block_s,
                         double default_disk_block_s) {
  for (NodeIndex n : touched_) stats_[n] = NodePrefixStats{};
  touched_.clear();
  pooled_prefix_blocks_ = 0;
  fast_blocks_ = 0;
  disk_only_s_ = 0;
  auto disk_s = [&](NodeIndex n) {
    return n < disk_block_s.size() ? disk_block_s[n] : default_disk_block_s;
  };
  const NamespaceIndex* nsi = index.FindNamespace(ns);
  if (nsi == nullptr) return;
  if (stats_.size() < index.node_slots()) stats_.resize(index.node_slots());

  const size_t warm = std::min(kPrefetchDistance, hashes.size());
  for (size_t i = 0; i < warm; ++i) nsi->Prefetch(hashes[i]);
  const HolderOverflowPool& pool = nsi->pool();
  for (size_t i = 0; i < hashes.size(); ++i) {
    if (i + kPrefetchDistance < hashes.size()) nsi->Prefetch(hashes[i + kPrefetchDistance]);
    const HolderSet* set = nsi->Find(hashes[i]);
    if (set == nullptr) break;
    const uint32_t pos = static_cast<uint32_t>(i);
    bool any_fast = false;
    double cheapest_disk_s = std::numeric_limits<double>::infinity();
    set->ForEach(pool, [&](Holder h) {
      NodePrefixStats& s = stats_[h.node];
      if (s.fast_blocks == 0 && s.disk_blocks == 0) touched_.push_back(h.node);
      if (s.leading_blocks == pos) {
        ++s.leading_blocks;
        if (h.tier == Tier::kDisk) ++s.leading_disk_blocks;
      }
      if (h.tier == Tier::kDisk) {
        ++s.disk_blocks;
        cheapest_disk_s = std::min(cheapest_disk_s, disk_s(h.node));
      } else {
        ++s.fast_blocks;
        any_fast = true;
      }
    });
    if (any_fast) {
      ++fast_blocks_;
      set->ForEach(pool, [&](Holder h) { ++stats_[h.node].held_with_fast_copy; });
    } else {
      // On disk only: whoever needs it reads it from the fastest SSD tier holding it.
      disk_only_s_ += cheapest_disk_s;
      set->ForEach(pool, [&](Holder h) { stats_[h.node].disk_only_held_s += cheapest_disk_s; });
    }
    pooled_prefix_blocks_ = pos + 1;
  }
}

}  // namespace kvpool::scheduler
