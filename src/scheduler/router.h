// Route: which inference instance should serve a prompt (DESIGN.md "Global scheduler").
#pragma once

#include <cstddef>
#include <array>
#include <cstdint>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/status.h"
#include "scheduler/global_index.h"
#include "scheduler/lookup.h"
#include "scheduler/namespace_models.h"
#include "scheduler/registry.h"

namespace kvpool::scheduler {

enum class RoutePolicy : uint8_t {
  /// Each call starts one instance further along the (sorted) candidate list.
  kRoundRobin = 0,
  /// Shortest estimated prefill queue (RouteCandidate::queued_prefill_s), then fewest running
  /// requests.
  kLeastLoaded = 1,
  /// Longest prefix held on the instance's own node, then least loaded (MemServe). Herds every
  /// request sharing a hot prefix onto its holder: kept for comparison.
  kPrefix = 2,
  /// Lowest estimated time to first token: queue wait + compute of the uncached tokens +
  /// transfer of the cached blocks (default).
  kCost = 3,
  /// SGLang Model Gateway's cache-aware router, for comparison (docs/scheduler.md): while the
  /// instances' running requests are balanced, the longest local prefix if it covers more than
  /// cache_aware_cache_threshold of the prompt, else the fewest running requests; once they are
  /// imbalanced (both balance thresholds exceeded), the fewest running requests.
  kCacheAware = 4,
};
/// "round_robin", "least_loaded", "prefix", "cost" or "cache_aware".
std::string_view RoutePolicyName(RoutePolicy policy);
/// Parses RoutePolicyName's output; INVALID_ARGUMENT names anything else.
Result<RoutePolicy> ParseRoutePolicy(std::string_view name);

struct RouterOptions {
  /// Policy of requests that name none. Default: kCost.
  RoutePolicy default_policy = RoutePolicy::kCost;
  /// Bandwidth from an instance's own node's pool (gpu/host tier) into the instance, in
  /// bytes/s. Must be > 0. Default: 40e9 (same-host shared memory).
  double local_bandwidth_bytes_per_s = 40e9;
  /// Bandwidth from another node's pool (gpu/host tier), in bytes/s. Must be > 0.
  /// Default: 12.5e9 (100 Gb/s).
  double remote_bandwidth_bytes_per_s = 12.5e9;
  /// Read bandwidth of a node's disk tier (a disk block is promoted before it moves) while the
  /// node reports no measured figure of its own (NodeInfo::disk_read_bytes_per_s), in bytes/s.
  /// Must be > 0. Default: 2e9.
  double disk_bandwidth_bytes_per_s = 2e9;
  /// Queue wait added per running request of an instance, in seconds. Must be >= 0.
  /// Default: 0.001.
  double running_request_s = 0.001;
  /// cache_aware: the instances count as imbalanced when the most and the least loaded differ
  /// by more than this many running requests (and by the relative threshold below). Default: 64
  /// (SGLang Model Gateway's balance_abs_threshold).
  uint32_t cache_aware_balance_abs_requests = 64;
  /// cache_aware: ... and the most loaded runs more than this many times the least loaded's
  /// requests. Must be >= 1. Default: 1.5 (balance_rel_threshold).
  double cache_aware_balance_rel = 1.5;
  /// cache_aware: the fraction of the prompt's blocks the best local prefix must exceed to win
  /// over load, in [0, 1]. Default: 0.3 (cache_threshold).
  double cache_aware_cache_threshold = 0.3;

  /// INVALID_ARGUMENT naming the field when an option is out of range.
  Status Validate() const;
};

/// One Route call. Views are borrowed for the duration of the call.
struct RouteRequest {
  /// Namespace of the prompt; must not be empty.
  std::string_view ns;
  /// The prompt's chained block hashes from block 0 (full blocks only).
  std::span<const BlockHash> hashes;
  /// Tokens in the prompt, including a partial last block; 0 = hashes.size() * block_tokens.
  /// Must be >= hashes.size() * block_tokens otherwise.
  uint64_t prompt_tokens = 0;
  /// Role wanted. An instance qualifies when its role is this one, or it is colocated.
  InstanceRole role = InstanceRole::kColocated;
  /// Instance ids to choose from; empty = every registered instance.
  std::span<const std::string> candidates;
  /// Policy; nullopt = RouterOptions::default_policy.
  std::optional<RoutePolicy> policy;
  /// Fill each candidate's human-readable reason. Default: true.
  bool explain = true;
  /// Keep only the best this many; 0 = all. Default: 0.
  size_t max_results = 0;
};

/// Estimated time to first token of a prompt on one instance, in parts.
struct CostEstimate {
  /// Work queued ahead: RouteCandidate::queued_prefill_s + running requests x
  /// running_request_s.
  double queue_wait_s = 0;
  /// Prefill of the tokens not taken from the cache (NamespaceModel::ComputeSeconds).
  double compute_s = 0;
  /// Moving the cached blocks into the instance (local pool, other nodes, disk).
  double transfer_s = 0;

  double total_s() const { return queue_wait_s + compute_s + transfer_s; }
};

/// One instance, as Route rates it.
struct RouteCandidate {
  std::string instance_id;
  std::string node_id;
  /// The instance's own node holds blocks [0, local_prefix_blocks) (the prefix policy's match).
  uint32_t local_prefix_blocks = 0;
  /// Blocks the estimate takes from the cache (from block 0): the pooled prefix when pulling
  /// is worth it, else the local prefix.
  uint32_t cached_blocks = 0;
  /// Of cached_blocks, those pulled from other nodes.
  uint32_t remote_blocks = 0;
  /// Tokens to prefill.
  uint64_t new_tokens = 0;
  /// Load the estimate used: the last report plus what was routed since.
  InstanceLoad load;
  /// Seconds until its queued prefills are done: the instance's own estimate
  /// (InstanceLoad::queued_prefill_s, plus the estimates of what was routed since) when it
  /// reports one, else queued_prompt_tokens x the namespace model's token_s.
  double queued_prefill_s = 0;
  /// Read bandwidth of its node's SSD tier the estimate used (bytes/s): the node's measured
  /// figure, else RouterOptions::disk_bandwidth_bytes_per_s.
  double disk_read_bytes_per_s = 0;
  CostEstimate cost;
  /// Why it ranks where it does (empty unless RouteRequest::explain).
  std::string reason;
};

struct RouteResult {
  RoutePolicy policy = RoutePolicy::kCost;
  uint32_t prompt_blocks = 0;
  /// The union of all nodes holds blocks [0, pooled_prefix_blocks) of the prompt.
  uint32_t pooled_prefix_blocks = 0;
  /// Best first. Never empty on success.
  std::vector<RouteCandidate> ranked;
};

/// Ranks live instances for a prompt.
///
/// Every policy fills every candidate's estimate, so `route --explain` can compare them; the
/// policy only decides the order. The cost policy resists herding: the estimate includes the
/// instance's queue, which grows with each request routed to it (Registry::NoteRouted) until the
/// instance reports again, so once a hot prefix's holder is busy, pulling the prefix from the
/// pool to an idle instance becomes cheaper than waiting.
///
/// Disk blocks: each node's are priced with its own SSD tier's measured read bandwidth (its
/// heartbeat's figure; RouterOptions::disk_bandwidth_bytes_per_s while it reported none), and a
/// block held on disk only, on other nodes, with the fastest of those nodes' figures.
///
/// Cached blocks: the estimate counts the pooled prefix (blocks [0, k) that some node holds);
/// blocks after the first hole are treated as uncached. Each instance is rated under both plans,
/// pull the pooled prefix or use only its own node's prefix, and the cheaper one counts.
///
/// Not thread-safe (the round-robin cursor and scan scratch); owned by the scheduler service.
/// Borrows the index, registry and models, which must outlive it.
class Router {
 public:
  /// `options` should be valid (Validate); out-of-range values are replaced by defaults.
  Router(RouterOptions options, const GlobalIndex* index, const Registry* registry,
         const NamespaceModels* models);

  /// Ranks the live instances of `request.role` (among `request.candidates` if given), leaving
  /// out instances whose node is draining (kvpoolctl drain).
  /// After choosing one, call Registry::NoteRouted(id, candidate.new_tokens,
  /// candidate.cost.compute_s + candidate.cost.transfer_s).
  /// Returns INVALID_ARGUMENT for an empty namespace, prompt_tokens below the hashed blocks or an
  /// unknown policy;
  /// NOT_FOUND when a named candidate is not registered; UNAVAILABLE when no live instance of
  /// the role remains (the message says how many were dead, of another role or on draining
  /// nodes).
  Result<RouteResult> Route(const RouteRequest& request);

  const RouterOptions& options() const { return options_; }

 private:
  RouterOptions options_;
  const GlobalIndex* index_;
  const Registry* registry_;
  const NamespaceModels* models_;
  // A candidate before ranking: RouteCandidate without its strings, cheap to sort.
  struct Scored {
    const InstanceInfo* instance = nullptr;
    uint32_t local_prefix_blocks = 0;
    uint32_t cached_blocks = 0;
    uint32_t remote_blocks = 0;
    uint64_t new_tokens = 0;
    InstanceLoad load;
    double queued_prefill_s = 0;
    double disk_read_bytes_per_s = 0;
    CostEstimate cost;
  };

  void Rank(RoutePolicy policy, InstanceRole role, uint32_t prompt_blocks);
  // cache_aware's order; returns whether it followed the prefix (else the load).
  bool RankCacheAware(uint32_t prompt_blocks);
  static void Explain(RoutePolicy policy, bool by_prefix, size_t position, size_t candidates,
                      uint32_t prompt_blocks, RouteCandidate* candidate);

  PrefixScanner scanner_;
  // One turn counter per requested role: prefill and decode routes of the same requests must not
  // share one (each request's two routes would then always skip the same instances).
  std::array<uint64_t, 3> round_robin_cursor_{};
  // The last cache_aware ranking followed the prefix (for Explain).
  bool cache_aware_by_prefix_ = false;
  // Scratch, reused across calls.
  std::vector<const InstanceInfo*> eligible_;
  std::vector<Scored> scored_;
  // Seconds to read one block from each node's SSD tier, by NodeIndex.
  std::vector<double> disk_block_s_;
};

}  // namespace kvpool::scheduler
