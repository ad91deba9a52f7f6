#include "scheduler/router.h"

#include <algorithm>
#include <cmath>
#include <charconv>
#include <system_error>
#include <utility>

namespace kvpool::scheduler {
namespace {

bool PositiveFinite(double v) { return v > 0 && std::isfinite(v); }

bool RoleQualifies(InstanceRole instance_role, InstanceRole wanted) {
  return instance_role == wanted || instance_role == InstanceRole::kColocated;
}

// Builds reason strings with std::to_chars: Route may explain every candidate on every call,
// and snprintf's float formatting would cost more than the routing itself.
class ReasonBuilder {
 public:
  // Longer than most reasons, so a reason costs one allocation.
  static constexpr size_t kTypicalBytes = 192;

  explicit ReasonBuilder(std::string* out) : out_(out) {
    out_->clear();
    out_->reserve(kTypicalBytes);
  }
  ReasonBuilder& operator<<(std::string_view s) {
    out_->append(s);
    return *this;
  }
  ReasonBuilder& operator<<(uint64_t v) {
    char buf[24];
    auto r = std::to_chars(buf, buf + sizeof(buf), v);
    out_->append(buf, r.ptr);
    return *this;
  }
  ReasonBuilder& operator<<(uint32_t v) { return *this << uint64_t{v}; }
  /// Milliseconds with three decimals, from seconds.
  ReasonBuilder& Ms(double seconds) {
    char buf[48];
    auto r = std::to_chars(buf, buf + sizeof(buf), seconds * 1e3, std::chars_format::fixed, 3);
    out_->append(buf, r.ec == std::errc() ? r.ptr : buf);
    return *this;
  }

 private:
  std::string* out_;
};

}  // namespace

std::string_view RoutePolicyName(RoutePolicy policy) {
  switch (policy) {
    case RoutePolicy::kRoundRobin: return "round_robin";
    case RoutePolicy::kLeastLoaded: return "least_loaded";
    case RoutePolicy::kPrefix: return "prefix";
    case RoutePolicy::kCost: return "cost";
    case RoutePolicy::kCacheAware: return "cache_aware";
  }
  return "unknown";
}

Result<RoutePolicy> ParseRoutePolicy(std::string_view name) {
  for (RoutePolicy p : {RoutePolicy::kRoundRobin, RoutePolicy::kLeastLoaded, RoutePolicy::kPrefix,
                        RoutePolicy::kCost, RoutePolicy::kCacheAware}) {
    if (name == RoutePolicyName(p)) return p;
  }
  return InvalidArgumentError("unknown route policy '" + std::string(name) +
                              "'; expected round_robin, least_loaded, prefix, cost or cache_aware");
}

Status RouterOptions::Validate() const {
  auto bad = [](const char* field, double v, const char* want) {
    return InvalidArgumentError(std::string("router: ") + field + " must be " + want + ", got " +
                                std::to_string(v));
  };
  if (!PositiveFinite(local_bandwidth_bytes_per_s)) {
    return bad("local_bandwidth_bytes_per_s", local_bandwidth_bytes_per_s, "> 0");
  }
  if (!PositiveFinite(remote_bandwidth_bytes_per_s)) {
    return bad("remote_bandwidth_bytes_per_s", remote_bandwidth_bytes_per_s, "> 0");
  }
  if (!PositiveFinite(disk_bandwidth_bytes_per_s)) {
    return bad("disk_bandwidth_bytes_per_s", disk_bandwidth_bytes_per_s, "> 0");
  }
  if (!(running_request_s >= 0) || !std::isfinite(running_request_s)) {
    return bad("running_request_s", running_request_s, ">= 0");
  }
  if (!(cache_aware_balance_rel >= 1) || !std::isfinite(cache_aware_balance_rel)) {
    return bad("cache_aware_balance_rel", cache_aware_balance_rel, ">= 1");
  }
  if (!(cache_aware_cache_threshold >= 0 && cache_aware_cache_threshold <= 1)) {
    return bad("cache_aware_cache_threshold", cache_aware_cache_threshold, "in [0, 1]");
  }
  switch (default_policy) {
    case RoutePolicy::kRoundRobin:
    case RoutePolicy::kLeastLoaded:
    case RoutePolicy::kPrefix:
    case RoutePolicy::kCost:
    case RoutePolicy::kCacheAware:
      return Status::Ok();
  }
  return InvalidArgumentError("router: unknown default_policy " +
                              std::to_string(static_cast<int>(default_policy)));
}

Router::Router(RouterOptions options, const GlobalIndex* index, const Registry* registry,
               const NamespaceModels* models)
    : options_(std::move(options)), index_(index), registry_(registry), models_(models) {
  if (!options_.Validate().ok()) options_ = RouterOptions{};
}

bool Router::RankCacheAware(uint32_t prompt_blocks) {
  auto& v = scored_;
  uint32_t min_running = v.front().load.running_requests, max_running = min_running;
  uint32_t best_prefix = 0;
  for (const Scored& c : v) {
    min_running = std::min(min_running, c.load.running_requests);
    max_running = std::max(max_running, c.load.running_requests);
    best_prefix = std::max(best_prefix, c.local_prefix_blocks);
  }
  const bool imbalanced =
      max_running - min_running > options_.cache_aware_balance_abs_requests &&
      static_cast<double>(max_running) >
          options_.cache_aware_balance_rel * static_cast<double>(min_running);
  const bool by_prefix =
      !imbalanced && prompt_blocks > 0 &&
      static_cast<double>(best_prefix) >
          options_.cache_aware_cache_threshold * static_cast<double>(prompt_blocks);
  std::sort(v.begin(), v.end(), [&](const Scored& a, const Scored& b) {
    if (by_prefix && a.local_prefix_blocks != b.local_prefix_blocks) {
      return a.local_prefix_blocks > b.local_prefix_blocks;
    }
    if (a.load.running_requests != b.load.running_requests) {
      return a.load.running_requests < b.load.running_requests;
    }
    if (a.load.queued_prompt_tokens != b.load.queued_prompt_tokens) {
      return a.load.queued_prompt_tokens < b.load.queued_prompt_tokens;
    }
    return a.instance->id < b.instance->id;
  });
  return by_prefix;
}

void Router::Rank(RoutePolicy policy, InstanceRole role, uint32_t prompt_blocks) {
  // Every order ends with the id, so ties go to the smaller id. `scored_` starts in id order.
  auto& v = scored_;
  auto by_id = [](const Scored& a, const Scored& b) { return a.instance->id < b.instance->id; };
  switch (policy) {
    case RoutePolicy::kRoundRobin: {
      const size_t shift = round_robin_cursor_[static_cast<size_t>(role)]++ % v.size();
      std::rotate(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(shift), v.end());
      return;
    }
    case RoutePolicy::kLeastLoaded:
      std::sort(v.begin(), v.end(), [&](const Scored& a, const Scored& b) {
        if (a.queued_prefill_s != b.queued_prefill_s) {
          return a.queued_prefill_s < b.queued_prefill_s;
        }
        if (a.load.running_requests != b.load.running_requests) {
          return a.load.running_requests < b.load.running_requests;
        }
        return by_id(a, b);
      });
      return;
    case RoutePolicy::kPrefix:
      std::sort(v.begin(), v.end(), [&](const Scored& a, const Scored& b) {
        if (a.local_prefix_blocks != b.local_prefix_blocks) {
          return a.local_prefix_blocks > b.local_prefix_blocks;
        }
        if (a.queued_prefill_s != b.queued_prefill_s) {
          return a.queued_prefill_s < b.queued_prefill_s;
        }
        if (a.load.running_requests != b.load.running_requests) {
          return a.load.running_requests < b.load.running_requests;
        }
        return by_id(a, b);
      });
      return;
    case RoutePolicy::kCost:
      std::sort(v.begin(), v.end(), [&](const Scored& a, const Scored& b) {
        const double ca = a.cost.total_s(), cb = b.cost.total_s();
        if (ca != cb) return ca < cb;
        return by_id(a, b);
      });
      return;
    case RoutePolicy::kCacheAware:
      cache_aware_by_prefix_ = RankCacheAware(prompt_blocks);
      return;
  }
}

void Router::Explain(RoutePolicy policy, bool by_prefix, size_t position, size_t candidates,
                     uint32_t prompt_blocks, RouteCandidate* candidate) {
  const RouteCandidate& c = *candidate;
  ReasonBuilder r(&candidate->reason);
  switch (policy) {
    case RoutePolicy::kRoundRobin:
      r << "round_robin: turn " << uint64_t{position + 1} << " of " << uint64_t{candidates};
      return;
    case RoutePolicy::kLeastLoaded:
      r << "least_loaded: queued prefill ";
      r.Ms(c.queued_prefill_s) << " ms (" << c.load.queued_prompt_tokens << " prompt tokens), "
                               << c.load.running_requests << " running requests";
      return;
    case RoutePolicy::kPrefix:
      r << "prefix: its node holds " << c.local_prefix_blocks << " of " << prompt_blocks
        << " blocks from the start; queued prefill ";
      r.Ms(c.queued_prefill_s) << " ms";
      return;
    case RoutePolicy::kCost:
      r << "cost: ";
      r.Ms(c.cost.total_s()) << " ms = queue ";
      r.Ms(c.cost.queue_wait_s) << " + compute ";
      r.Ms(c.cost.compute_s) << " + transfer ";
      r.Ms(c.cost.transfer_s) << "; cached " << c.cached_blocks << " of " << prompt_blocks
                              << " blocks (" << c.cached_blocks - c.remote_blocks
                              << " on its node, " << c.remote_blocks
                              << " pulled from the pool), " << c.new_tokens
                              << " tokens to prefill";
      return;
    case RoutePolicy::kCacheAware:
      r << (by_prefix ? "cache_aware (prefix): its node holds "
                      : "cache_aware (load): its node holds ")
        << c.local_prefix_blocks << " of " << prompt_blocks << " blocks from the start; "
        << c.load.running_requests << " running requests";
      return;
  }
}

Result<RouteResult> Router::Route(const RouteRequest& request) {
  if (request.ns.empty()) return InvalidArgumentError("route: empty namespace");
  const NamespaceModel& model = models_->Get(request.ns);
  const uint64_t hashed_tokens = uint64_t{request.hashes.size()} * model.block_tokens;
  const uint64_t prompt_tokens = request.prompt_tokens == 0 ? hashed_tokens : request.prompt_tokens;
  if (prompt_tokens < hashed_tokens) {
    return InvalidArgumentError("route: prompt_tokens " + std::to_string(prompt_tokens) +
                                " is less than the " + std::to_string(request.hashes.size()) +
                                " hashed blocks of " + std::to_string(model.block_tokens) +
                                " tokens in namespace '" + std::string(request.ns) + "'");
  }
  const RoutePolicy policy = request.policy.value_or(options_.default_policy);
  if (policy != RoutePolicy::kRoundRobin && policy != RoutePolicy::kLeastLoaded &&
      policy != RoutePolicy::kPrefix && policy != RoutePolicy::kCost &&
      policy != RoutePolicy::kCacheAware) {
    return InvalidArgumentError("route: unknown policy " +
                                std::to_string(static_cast<int>(policy)));
  }

  // Eligible instances, in id order (deterministic ranking and round robin).
  const int64_t now = registry_->NowMs();
  size_t dead = 0, other_role = 0, draining = 0;
  eligible_.clear();
  auto consider = [&](const InstanceInfo& instance) {
    if (!registry_->IsAlive(instance, now)) {
      ++dead;
    } else if (!RoleQualifies(instance.role, request.role)) {
      ++other_role;
    } else if (!instance.node_id.empty() && registry_->IsDraining(instance.node_id)) {
      ++draining;  // its node is going down for maintenance: no new requests
    } else {
      eligible_.push_back(&instance);
    }
  };
  if (request.candidates.empty()) {
    for (const auto& [id, instance] : registry_->instances()) consider(instance);
  } else {
    for (const std::string& id : request.candidates) {
      const InstanceInfo* instance = registry_->FindInstance(id);
      if (instance == nullptr) {
        return NotFoundError("route: candidate instance '" + id + "' is not registered");
      }
      consider(*instance);
    }
    std::sort(eligible_.begin(), eligible_.end(),
              [](const InstanceInfo* a, const InstanceInfo* b) { return a->id < b->id; });
    eligible_.erase(std::unique(eligible_.begin(), eligible_.end()), eligible_.end());
  }
  if (eligible_.empty()) {
    return UnavailableError("route: no live " + std::string(InstanceRoleName(request.role)) +
                            " instance (" + std::to_string(dead) + " dead, " +
                            std::to_string(other_role) + " of another role" +
                            (draining > 0 ? ", " + std::to_string(draining) +
                                                " on draining nodes"
                                          : std::string()) +
                            (request.candidates.empty() ? "" : ", among the named candidates") +
                            ")");
  }

  const double block_bytes = static_cast<double>(model.block_bytes);
  const double local_s = block_bytes / options_.local_bandwidth_bytes_per_s;
  const double remote_s = block_bytes / options_.remote_bandwidth_bytes_per_s;
  const double default_disk_s = block_bytes / options_.disk_bandwidth_bytes_per_s;
  // Each node's SSD tier at its own measured bandwidth (the option while it reported none).
  disk_block_s_.assign(index_->node_slots(), default_disk_s);
  for (const auto& named : registry_->nodes()) {
    const NodeInfo& node = named.second;
    if (node.disk_read_bytes_per_s <= 0) continue;
    if (std::optional<NodeIndex> n = index_->FindNode(node.id)) {
      disk_block_s_[*n] = block_bytes / node.disk_read_bytes_per_s;
    }
  }
  scanner_.Scan(*index_, request.ns, request.hashes, disk_block_s_, default_disk_s);
  const uint32_t pooled = scanner_.pooled_prefix_blocks();

  scored_.clear();
  for (const InstanceInfo* instance : eligible_) {
    Scored c;
    c.instance = instance;
    c.load = instance->EstimatedLoad();
    std::optional<NodeIndex> node = instance->node_id.empty()
                                        ? std::nullopt
                                        : index_->FindNode(instance->node_id);
    const NodePrefixStats& s = node ? scanner_.node(*node) : NodePrefixStats{};
    c.local_prefix_blocks = s.leading_blocks;
    const NodeInfo* node_info =
        instance->node_id.empty() ? nullptr : registry_->FindNode(instance->node_id);
    c.disk_read_bytes_per_s = node_info != nullptr && node_info->disk_read_bytes_per_s > 0
                                  ? node_info->disk_read_bytes_per_s
                                  : options_.disk_bandwidth_bytes_per_s;
    const double disk_s = block_bytes / c.disk_read_bytes_per_s;

    // Plan "pull": the whole pooled prefix, from this node where it has the blocks.
    const uint32_t remote = pooled - s.fast_blocks - s.disk_blocks;
    const uint32_t remote_fast = scanner_.fast_blocks() - s.held_with_fast_copy;
    const uint32_t remote_disk = remote - remote_fast;
    const uint64_t pull_prefix_tokens =
        std::min<uint64_t>(uint64_t{pooled} * model.block_tokens, prompt_tokens);
    // Disk-only blocks of other nodes: read on the fastest SSD tier holding each, then moved.
    const double remote_disk_read_s = std::max(0.0, scanner_.disk_only_s() - s.disk_only_held_s);
    const double pull_transfer = s.fast_blocks * local_s + s.disk_blocks * disk_s +
                                 remote_fast * remote_s + remote_disk * remote_s +
                                 remote_disk_read_s;
    const double pull_compute =
        model.ComputeSeconds(pull_prefix_tokens, prompt_tokens - pull_prefix_tokens);
    // Plan "local": only the node's own leading blocks; recompute the rest.
    const uint32_t lead = s.leading_blocks;
    const uint64_t local_prefix_tokens =
        std::min<uint64_t>(uint64_t{lead} * model.block_tokens, prompt_tokens);
    const double local_transfer =
        (lead - s.leading_disk_blocks) * local_s + s.leading_disk_blocks * disk_s;
    const double local_compute =
        model.ComputeSeconds(local_prefix_tokens, prompt_tokens - local_prefix_tokens);
    if (remote > 0 && local_transfer + local_compute < pull_transfer + pull_compute) {
      c.cached_blocks = lead;
      c.remote_blocks = 0;
      c.new_tokens = prompt_tokens - local_prefix_tokens;
      c.cost.transfer_s = local_transfer;
      c.cost.compute_s = local_compute;
    } else {
      c.cached_blocks = pooled;
      c.remote_blocks = remote;
      c.new_tokens = prompt_tokens - pull_prefix_tokens;
      c.cost.transfer_s = pull_transfer;
      c.cost.compute_s = pull_compute;
    }
    c.queued_prefill_s = c.load.queued_prefill_s > 0
                             ? c.load.queued_prefill_s
                             : static_cast<double>(c.load.queued_prompt_tokens) * model.token_s;
    c.cost.queue_wait_s =
        c.queued_prefill_s + c.load.running_requests * options_.running_request_s;
    scored_.push_back(c);
  }
  Rank(policy, request.role, static_cast<uint32_t>(request.hashes.size()));

  RouteResult result;
  result.policy = policy;
  result.prompt_blocks = static_cast<uint32_t>(request.hashes.size());
  result.pooled_prefix_blocks = pooled;
  const size_t keep = request.max_results > 0 ? std::min(request.max_results, scored_.size())
                                              : scored_.size();
  result.ranked.resize(keep);
  for (size_t i = 0; i < keep; ++i) {
    const Scored& from = scored_[i];
    RouteCandidate& c = result.ranked[i];
    c.instance_id = from.instance->id;
    c.node_id = from.instance->node_id;
    c.local_prefix_blocks = from.local_prefix_blocks;
    c.cached_blocks = from.cached_blocks;
    c.remote_blocks = from.remote_blocks;
    c.new_tokens = from.new_tokens;
    c.load = from.load;
    c.queued_prefill_s = from.queued_prefill_s;
    c.disk_read_bytes_per_s = from.disk_read_bytes_per_s;
    c.cost = from.cost;
    if (request.explain) {
      Explain(policy, cache_aware_by_prefix_, i, scored_.size(), result.prompt_blocks, &c);
    }
  }
  return result;
}

}  // namespace kvpool::scheduler
