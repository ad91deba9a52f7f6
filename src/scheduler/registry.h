// The scheduler's registry of pool nodes (kvpoold) and inference instances, with heartbeats
// (DESIGN.md "Global scheduler": Registry).
#pragma once

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "common/clock.h"
#include "kvpool/status.h"
#include "kvpool/types.h"

namespace kvpool::scheduler {

/// Bytes per tier.
struct TierBytes {
  uint64_t gpu = 0;
  uint64_t host = 0;
  uint64_t disk = 0;

  /// The bytes of `tier` (0 for kNone).
  uint64_t at(Tier tier) const;
  uint64_t total() const { return gpu + host + disk; }

  friend bool operator==(const TierBytes&, const TierBytes&) = default;
};

/// What a kvpoold tells the scheduler when it registers.
struct NodeRegistration {
  /// Unique node id; must not be empty.
  std::string id;
  /// The node's MemPool gRPC address ("host:port"); must not be empty.
  std::string address;
  /// The node's UCX worker address (opaque bytes other nodes connect to). Default: empty.
  std::string ucx_worker_address;
  /// Pool capacity per tier.
  TierBytes capacity_bytes;
  /// The node is being drained (kvpoolctl drain): Place skips it and Route skips instances on
  /// it. Default: false.
  bool draining = false;
};

/// A registered node.
struct NodeInfo {
  std::string id;
  std::string address;
  std::string ucx_worker_address;
  TierBytes capacity_bytes;
  /// Bytes in use per tier as of the last heartbeat that reported it; nullopt when none did.
  std::optional<TierBytes> used_bytes;
  int64_t registered_ms = 0;
  int64_t last_heartbeat_ms = 0;
  /// As last reported (registration or heartbeat): no new placements, no routes to its
  /// instances.
  bool draining = false;
  /// Read bandwidth of its SSD tier as last reported (measured by the node), in bytes/s; 0
  /// while it reported none (no tier, nothing read yet). Route prices its DISK blocks with it.
  double disk_read_bytes_per_s = 0;
};

/// What an inference instance does.
enum class InstanceRole : uint8_t {
  kPrefill = 0,
  kDecode = 1,
  kColocated = 2,  ///< prefill and decode in one instance
};
/// "prefill", "decode" or "colocated".
std::string_view InstanceRoleName(InstanceRole role);
/// Parses InstanceRoleName's output; INVALID_ARGUMENT names anything else.
Result<InstanceRole> ParseInstanceRole(std::string_view name);

/// An instance's own report of its load.
struct InstanceLoad {
  /// Prompt tokens waiting to be prefilled.
  uint64_t queued_prompt_tokens = 0;
  /// Requests being served (prefilling or decoding).
  uint32_t running_requests = 0;
  /// The instance's own estimate of the seconds until its queued prefills are done; 0 = not
  /// estimated (Route then prices the queue as queued_prompt_tokens x the model's token_s).
  double queued_prefill_s = 0;

  friend bool operator==(const InstanceLoad&, const InstanceLoad&) = default;
};

/// What an inference instance tells the scheduler when it registers.
struct InstanceRegistration {
  /// Unique instance id; must not be empty.
  std::string id;
  InstanceRole role = InstanceRole::kColocated;
  /// The pool node on the instance's host (its local kvpoold), or empty when it has none.
  std::string node_id;
  /// Most requests it serves at once; 0 = not stated. Informational. Default: 0.
  uint32_t max_running_requests = 0;
};

/// A registered instance.
struct InstanceInfo {
  std::string id;
  InstanceRole role = InstanceRole::kColocated;
  std::string node_id;
  uint32_t max_running_requests = 0;
  /// Load as of the last report.
  InstanceLoad reported;
  /// Routed to it since that report (NoteRouted); cleared by the next report.
  uint64_t routed_tokens_since_report = 0;
  uint32_t routed_requests_since_report = 0;
  /// Estimated prefill seconds of what was routed since (NoteRouted's `prefill_s`).
  double routed_prefill_s_since_report = 0;
  int64_t registered_ms = 0;
  int64_t last_report_ms = 0;

  /// The reported load plus what was routed since: the anti-herding estimate.
  InstanceLoad EstimatedLoad() const {
    return InstanceLoad{reported.queued_prompt_tokens + routed_tokens_since_report,
                        reported.running_requests + routed_requests_since_report,
                        reported.queued_prefill_s > 0
                            ? reported.queued_prefill_s + routed_prefill_s_since_report
                            : 0};
  }
};

struct RegistryOptions {
  /// A node whose last heartbeat is older than this is dead. Must be > 0. Default: 10000.
  int64_t node_timeout_ms = 10'000;
  /// An instance whose last load report is older than this is dead. Must be > 0.
  /// Default: 10000.
  int64_t instance_timeout_ms = 10'000;

  /// INVALID_ARGUMENT naming the field when an option is out of range.
  Status Validate() const;
};

/// What a (re-)registration did.
struct RegisterOutcome {
  /// False when the id was registered already (a reconnect): the entry was updated.
  bool new_member = true;
  /// For a reconnect: whether address, UCX address or capacity (nodes), or role or node
  /// (instances) differ from the previous registration.
  bool changed = false;
};

/// Members removed by ExpireDead, sorted by id.
struct ExpiredMembers {
  std::vector<std::string> nodes;
  std::vector<std::string> instances;
};

/// Nodes and instances, with heartbeats measured on an injected Clock.
///
/// Liveness: a member is alive while now - last heartbeat (node) or last load report (instance)
/// <= its timeout. ExpireDead removes the dead; the caller then drops dead nodes from the
/// GlobalIndex (GlobalIndex::DropNode). A removed member comes back by registering again.
///
/// Not thread-safe; owned by the scheduler service, which serialises access.
class Registry {
 public:
  template <typename T>
  using ById = std::map<std::string, T, std::less<>>;

  /// `clock` is borrowed and must outlive the registry. `options` should be valid (Validate);
  /// out-of-range timeouts are replaced by their defaults.
  Registry(RegistryOptions options, const Clock* clock);

  // ---- Nodes ----

  /// Registers a node, or updates it when the id is known (a reconnect, possibly with a
  /// different capacity or address), and counts as a heartbeat. A reconnect keeps used_bytes.
  /// INVALID_ARGUMENT for an empty id or address.
  Result<RegisterOutcome> RegisterNode(const NodeRegistration& registration);
  /// Records a heartbeat, with the node's usage when it reports it.
  /// NOT_FOUND when the node is not registered (it must register first).
  Status NodeHeartbeat(std::string_view node_id,
                       std::optional<TierBytes> used_bytes = std::nullopt);
  /// Sets whether a node is draining (its heartbeats carry the flag). NOT_FOUND when it is not
  /// registered.
  Status SetNodeDraining(std::string_view node_id, bool draining);
  /// Registered nodes that are draining. O(1).
  size_t draining_nodes() const { return draining_nodes_; }
  /// True when `node_id` is registered and draining.
  bool IsDraining(std::string_view node_id) const {
    if (draining_nodes_ == 0) return false;
    const NodeInfo* node = FindNode(node_id);
    return node != nullptr && node->draining;
  }
  /// Records the node's measured SSD-tier read bandwidth (bytes/s, from its heartbeat); 0
  /// keeps the last figure. INVALID_ARGUMENT for a negative or not finite value (naming it);
  /// NOT_FOUND when the node is not registered.
  Status SetNodeDiskBandwidth(std::string_view node_id, double disk_read_bytes_per_s);
  /// Removes a node (graceful leave). NOT_FOUND when it is not registered.
  Status RemoveNode(std::string_view node_id);
  /// The node, or nullptr. Valid until the next mutating call.
  const NodeInfo* FindNode(std::string_view node_id) const;
  /// Every registered node (alive or not yet expired), by id.
  const ById<NodeInfo>& nodes() const { return nodes_; }
  bool IsAlive(const NodeInfo& node, int64_t now_ms) const {
    return now_ms - node.last_heartbeat_ms <= options_.node_timeout_ms;
  }

  // ---- Instances ----

  /// Registers an instance, or updates it when the id is known; counts as a load report of
  /// zero load (a restarted instance starts empty). INVALID_ARGUMENT for an empty id or an
  /// unknown role.
  Result<RegisterOutcome> RegisterInstance(const InstanceRegistration& registration);
  /// Records an instance's load report (its heartbeat); clears what NoteRouted added since the
  /// previous report. NOT_FOUND when the instance is not registered; INVALID_ARGUMENT, naming
  /// the value, when queued_prefill_s is negative or not finite.
  Status ReportLoad(std::string_view instance_id, const InstanceLoad& load);
  /// Notes that a request with `new_tokens` tokens to prefill, estimated at `prefill_s` seconds
  /// of the instance's time (RouteCandidate: cost.compute_s + cost.transfer_s), was routed to
  /// the instance, so its estimated load grows until its next report (anti-herding). NOT_FOUND
  /// when unknown.
  Status NoteRouted(std::string_view instance_id, uint64_t new_tokens, double prefill_s = 0);
  /// Removes an instance (graceful leave). NOT_FOUND when it is not registered.
  Status RemoveInstance(std::string_view instance_id);
  /// The instance, or nullptr. Valid until the next mutating call.
  const InstanceInfo* FindInstance(std::string_view instance_id) const;
  /// Every registered instance (alive or not yet expired), by id.
  const ById<InstanceInfo>& instances() const { return instances_; }
  bool IsAlive(const InstanceInfo& instance, int64_t now_ms) const {
    return now_ms - instance.last_report_ms <= options_.instance_timeout_ms;
  }

  // ---- Liveness ----

  /// Removes and returns every member that is not alive at `now_ms`.
  ExpiredMembers ExpireDead(int64_t now_ms);
  /// ExpireDead at the clock's current time.
  ExpiredMembers ExpireDead() { return ExpireDead(clock_->NowMs()); }

  int64_t NowMs() const { return clock_->NowMs(); }
  const RegistryOptions& options() const { return options_; }

 private:
  RegistryOptions options_;
  const Clock* clock_;
  ById<NodeInfo> nodes_;
  ById<InstanceInfo> instances_;
  size_t draining_nodes_ = 0;
};

}  // namespace kvpool::scheduler
