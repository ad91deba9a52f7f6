// libkvpool: a client of kvpool-scheduler (the global scheduler): where blocks live across the
// pool (Lookup), which inference instance should serve a prompt (Route), the pool's nodes
// (ListNodes), and instance registration and load reports.
//
//   auto sched = kvpool::SchedulerClient::Connect("127.0.0.1:7800");
//   auto hit = (*sched)->Lookup("llama3-8b", hashes);   // per node: leading blocks held
//
// Only std and kvpool types appear here: no gRPC, protobuf or absl.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/client.h"
#include "kvpool/status.h"
#include "kvpool/types.h"

namespace kvpool {

/// Blocks per tier.
struct SchedulerTierCounts {
  uint64_t gpu = 0;
  uint64_t host = 0;
  uint64_t disk = 0;
  uint64_t total() const { return gpu + host + disk; }
};

/// Blocks [start, start + length) of a prompt.
struct SchedulerBlockRun {
  uint32_t start = 0;
  uint32_t length = 0;
};

/// What one node holds of a prompt.
struct NodeHolding {
  std::string node_id;
  /// The node holds blocks [0, leading_blocks).
  uint32_t leading_blocks = 0;
  /// Runs of blocks it holds further in, in prompt order.
  std::vector<SchedulerBlockRun> runs;
  /// Blocks of the prompt it holds anywhere, by tier.
  SchedulerTierCounts held;
};

/// A stretch of the pooled prefix to pull from one node.
struct PoolSegment {
  uint32_t start = 0;
  uint32_t length = 0;
  std::string node_id;
  Tier tier = Tier::kNone;
};

struct PoolLookupResult {
  uint32_t prompt_blocks = 0;
  /// The union of all nodes holds blocks [0, pooled_prefix_blocks).
  uint32_t pooled_prefix_blocks = 0;
  /// Blocks held by some node anywhere in the prompt.
  uint32_t held_blocks = 0;
  /// Every node holding a block of the prompt, best first.
  std::vector<NodeHolding> nodes;
  /// Where to pull each segment of the pooled prefix from.
  std::vector<PoolSegment> segments;
};

/// One Route call.
struct RouteQuery {
  std::string ns;
  /// The prompt's chained block hashes from block 0.
  std::vector<BlockHash> hashes;
  /// Tokens of the prompt; 0 = blocks x block_tokens.
  uint64_t prompt_tokens = 0;
  /// "prefill", "decode" or "colocated"; empty = colocated.
  std::string role;
  /// Instance ids to choose from; empty = all.
  std::vector<std::string> candidates;
  /// "round_robin", "least_loaded", "prefix" or "cost"; empty = the scheduler's default.
  std::string policy;
  /// Fill each candidate's reason. Default: false.
  bool explain = false;
  /// Keep only the best this many; 0 = all. Default: 0.
  uint32_t max_results = 0;
  /// Count the request against the best instance's load until its next report. Default: false.
  bool commit = false;
};

/// One instance as Route rates it.
struct RoutedInstance {
  std::string instance_id;
  std::string node_id;
  uint32_t local_prefix_blocks = 0;
  uint32_t cached_blocks = 0;
  uint32_t remote_blocks = 0;
  uint64_t new_tokens = 0;
  uint64_t queued_prompt_tokens = 0;
  uint32_t running_requests = 0;
  double queue_wait_s = 0;
  double compute_s = 0;
  double transfer_s = 0;
  std::string reason;
  /// Read bandwidth of its node's SSD tier the estimate used, bytes/s: the node's measured
  /// figure, else the scheduler's --disk-bandwidth (ComputeLoadModel::disk_read_bytes_per_s).
  double disk_read_bytes_per_s = 0;
  double total_s() const { return queue_wait_s + compute_s + transfer_s; }
};

struct RouteAnswer {
  std::string policy;
  uint32_t prompt_blocks = 0;
  uint32_t pooled_prefix_blocks = 0;
  /// Best first.
  std::vector<RoutedInstance> ranked;
};

/// A node as the scheduler sees it.
struct PoolNode {
  std::string node_id;
  std::string address;
  uint64_t capacity_host_bytes = 0;
  /// Host bytes in use as of the last heartbeat (0 when none reported).
  uint64_t used_host_bytes = 0;
  bool alive = false;
  /// The index holds a synced event stream of the node.
  bool synced = false;
  /// The node is draining (kvpoolctl drain): no new placements, no routes to its instances.
  bool draining = false;
  int64_t last_heartbeat_age_ms = 0;
  /// The read bandwidth of its SSD tier as it last measured and reported it, bytes/s; 0: none.
  double disk_read_bytes_per_s = 0;
  /// Blocks the global index shows on the node.
  SchedulerTierCounts indexed_blocks;
};

/// An inference instance as the scheduler sees it.
struct PoolInstance {
  std::string instance_id;
  std::string role;  ///< prefill, decode or colocated
  std::string node_id;
  uint32_t max_running_requests = 0;
  /// Load as last reported by the instance.
  uint64_t queued_prompt_tokens = 0;
  uint32_t running_requests = 0;
  /// Load as the scheduler estimates it: the report plus requests routed to it since.
  uint64_t estimated_queued_prompt_tokens = 0;
  uint32_t estimated_running_requests = 0;
  bool alive = false;
  int64_t last_report_age_ms = 0;
  /// Seconds until its queued prefills are done, as reported and as estimated (the report
  /// plus the estimated prefill time of what was routed since); 0 when the instance reports
  /// no such estimate.
  double queued_prefill_s = 0;
  double estimated_queued_prefill_s = 0;
};

/// Where the scheduler would store new blocks.
struct Placement {
  std::string node_id;
  uint64_t free_bytes = 0;    ///< free bytes of the chosen node in the tier
  uint64_t needed_bytes = 0;  ///< n_blocks x the namespace's block bytes
  std::string reason;
};

/// A summary of the scheduler's global index (kvpoolctl tree).
struct PoolIndexStats {
  uint64_t blocks = 0;        ///< distinct blocks held by at least one node
  uint64_t copies = 0;        ///< block copies (sum of holder counts)
  uint64_t memory_bytes = 0;  ///< heap bytes of the global index
  std::vector<std::pair<std::string, uint64_t>> namespace_blocks;
  std::vector<std::pair<std::string, SchedulerTierCounts>> node_blocks;
  struct Replicated {
    std::string ns;
    BlockHash hash;
    std::vector<std::string> node_ids;
  };
  /// The blocks held by the most nodes, most first.
  std::vector<Replicated> most_replicated;
};

/// A connection to kvpool-scheduler.
///
/// Every call is a blocking unary RPC returning the scheduler's status unchanged:
/// INVALID_ARGUMENT for malformed input (the message names the value), NOT_FOUND for unknown
/// instances, UNAVAILABLE when no live instance can serve a Route or the scheduler cannot be
/// reached, DEADLINE_EXCEEDED after ClientOptions::timeout_ms.
///
/// Thread-safe: one SchedulerClient may be shared by many threads.
class SchedulerClient {
 public:
  /// Connects to `address` (host:port). UNAVAILABLE if it does not answer within
  /// connect_timeout_ms.
  static Result<std::unique_ptr<SchedulerClient>> Connect(std::string_view address,
                                                          const ClientOptions& options = {});
  ~SchedulerClient();
  SchedulerClient(const SchedulerClient&) = delete;
  SchedulerClient& operator=(const SchedulerClient&) = delete;

  const std::string& address() const;

  /// Per node, which blocks of the prompt (`hashes`, chained, from block 0) it holds.
  Result<PoolLookupResult> Lookup(std::string_view ns, std::span<const BlockHash> hashes);
  /// Instances ranked for a prompt.
  Result<RouteAnswer> Route(const RouteQuery& query);
  /// Every registered node, by id.
  Result<std::vector<PoolNode>> ListNodes();
  /// The node that should store `n_blocks` new blocks of `ns`: the live node with the most free
  /// capacity in `tier` among `allowed_nodes` (empty: all). UNAVAILABLE when none is live.
  Result<Placement> Place(std::string_view ns, uint64_t n_blocks,
                          std::span<const std::string> allowed_nodes = {},
                          Tier tier = Tier::kHost);
  /// Every registered inference instance, by id.
  Result<std::vector<PoolInstance>> ListInstances();
  /// Size of the global index, per namespace and node, and its `top` most replicated blocks
  /// (0: 10; INVALID_ARGUMENT above 1000).
  Result<PoolIndexStats> GetIndexStats(uint32_t top = 0);
  /// Registers (or re-registers) an inference instance. `role`: prefill, decode or colocated.
  Status RegisterInstance(std::string_view instance_id, std::string_view role,
                          std::string_view node_id, uint32_t max_running_requests = 0);
  /// Reports an instance's load (its heartbeat): prompt tokens waiting to be prefilled,
  /// requests running, and, when the engine can estimate it, the seconds until its queued
  /// prefills are done (0: not estimated; the scheduler then prices the queue by tokens).
  /// INVALID_ARGUMENT for a negative or non-finite `queued_prefill_s`.
  Status ReportLoad(std::string_view instance_id, uint64_t queued_prompt_tokens,
                    uint32_t running_requests, double queued_prefill_s = 0);
  /// Removes an instance at once (graceful leave; otherwise it is dropped after missing
  /// reports). NOT_FOUND when it is not registered.
  Status DeregisterInstance(std::string_view instance_id);

 private:
  struct Impl;
  explicit SchedulerClient(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvpool
