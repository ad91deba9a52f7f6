#include "scheduler/router.h"

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

namespace kvpool::scheduler {
namespace {

bool PositiveFinite(double v) { return v > 0 && std::isfinite(v); }

bool RoleQualifies(InstanceRole instance_role, InstanceRole wanted) {
  return instance_role == wanted || instance_role == InstanceRole::kColocated;
}

std::string Format(const char* fmt, auto... args) {
  char buf[256];
  int n = std::snprintf(buf, sizeof(buf), fmt, args...);
  if (n < 0) return std::string();
  return std::string(buf, std::min(static_cast<size_t>(n), sizeof(buf) - 1));
}

}  // namespace

std::string_view RoutePolicyName(RoutePolicy policy) {
  switch (policy) {
    case RoutePolicy::kRoundRobin: return "round_robin";
    case RoutePolicy::kLeastLoaded: return "least_loaded";
    case RoutePolicy::kPrefix: return "prefix";
    case RoutePolicy::kCost: return "cost";
  }
  return "unknown";
}

Result<RoutePolicy> ParseRoutePolicy(std::string_view name) {
  for (RoutePolicy p : {RoutePolicy::kRoundRobin, RoutePolicy::kLeastLoaded, RoutePolicy::kPrefix,
                        RoutePolicy::kCost}) {
    if (name == RoutePolicyName(p)) return p;
  }
  return InvalidArgumentError("unknown route policy '" + std::string(name) +
                              "'; expected round_robin, least_loaded, prefix or cost");
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
  switch (default_policy) {
    case RoutePolicy::kRoundRobin:
    case RoutePolicy::kLeastLoaded:
    case RoutePolicy::kPrefix:
    case RoutePolicy::kCost:
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

  // Eligible instances, in id order (deterministic ranking and round robin).
  const int64_t now = registry_->NowMs();
  size_t dead = 0, other_role = 0;
  eligible_.clear();
  auto consider = [&](const InstanceInfo& instance) {
    if (!registry_->IsAlive(instance, now)) {
      ++dead;
    } else if (!RoleQualifies(instance.role, request.role)) {
      ++other_role;
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
                            (request.candidates.empty() ? "" : ", among the named candidates") +
                            ")");
  }

  scanner_.Scan(*index_, request.ns, request.hashes);
  const uint32_t pooled = scanner_.pooled_prefix_blocks();
  const double block_bytes = static_cast<double>(model.block_bytes);
  const double local_s = block_bytes / options_.local_bandwidth_bytes_per_s;
  const double remote_s = block_bytes / options_.remote_bandwidth_bytes_per_s;
  const double disk_s = block_bytes / options_.disk_bandwidth_bytes_per_s;

  RouteResult result;
  result.policy = policy;
  result.prompt_blocks = static_cast<uint32_t>(request.hashes.size());
  result.pooled_prefix_blocks = pooled;
  result.ranked.reserve(eligible_.size());
  for (const InstanceInfo* instance : eligible_) {
    RouteCandidate c;
    c.instance_id = instance->id;
    c.node_id = instance->node_id;
    c.load = instance->EstimatedLoad();
    std::optional<NodeIndex> node = instance->node_id.empty()
                                        ? std::nullopt
                                        : index_->FindNode(instance->node_id);
    const NodePrefixStats& s = node ? scanner_.node(*node) : NodePrefixStats{};
    c.local_prefix_blocks = s.leading_blocks;

    // Plan "pull": the whole pooled prefix, from this node where it has the blocks.
    const uint32_t remote = pooled - s.fast_blocks - s.disk_blocks;
    const uint32_t remote_fast = scanner_.fast_blocks() - s.held_with_fast_copy;
    const uint32_t remote_disk = remote - remote_fast;
    const uint64_t pull_prefix_tokens =
        std::min<uint64_t>(uint64_t{pooled} * model.block_tokens, prompt_tokens);
    const double pull_transfer = s.fast_blocks * local_s + s.disk_blocks * disk_s +
                                 remote_fast * remote_s + remote_disk * (disk_s + remote_s);
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
    c.cost.queue_wait_s = static_cast<double>(c.load.queued_prompt_tokens) * model.token_s +
                          c.load.running_requests * options_.running_request_s;
    result.ranked.push_back(std::move(c));
  }

  // `ranked` is in id order, and the sorts are stable: ties go to the smaller id.
  auto& ranked = result.ranked;
  switch (policy) {
    case RoutePolicy::kRoundRobin: {
      const size_t shift = round_robin_cursor_++ % ranked.size();
      std::rotate(ranked.begin(), ranked.begin() + static_cast<std::ptrdiff_t>(shift),
                  ranked.end());
      break;
    }
    case RoutePolicy::kLeastLoaded:
      std::stable_sort(ranked.begin(), ranked.end(),
                       [](const RouteCandidate& a, const RouteCandidate& b) {
                         if (a.load.queued_prompt_tokens != b.load.queued_prompt_tokens) {
                           return a.load.queued_prompt_tokens < b.load.queued_prompt_tokens;
                         }
                         return a.load.running_requests < b.load.running_requests;
                       });
      break;
    case RoutePolicy::kPrefix:
      std::stable_sort(ranked.begin(), ranked.end(),
                       [](const RouteCandidate& a, const RouteCandidate& b) {
                         if (a.local_prefix_blocks != b.local_prefix_blocks) {
                           return a.local_prefix_blocks > b.local_prefix_blocks;
                         }
                         if (a.load.queued_prompt_tokens != b.load.queued_prompt_tokens) {
                           return a.load.queued_prompt_tokens < b.load.queued_prompt_tokens;
                         }
                         return a.load.running_requests < b.load.running_requests;
                       });
      break;
    case RoutePolicy::kCost:
      std::stable_sort(ranked.begin(), ranked.end(),
                       [](const RouteCandidate& a, const RouteCandidate& b) {
                         return a.cost.total_s() < b.cost.total_s();
                       });
      break;
  }
  if (request.max_results > 0 && ranked.size() > request.max_results) {
    ranked.resize(request.max_results);
  }

  if (request.explain) {
    const uint32_t blocks = result.prompt_blocks;
    for (size_t i = 0; i < ranked.size(); ++i) {
      RouteCandidate& c = ranked[i];
      const CostEstimate& e = c.cost;
      switch (policy) {
        case RoutePolicy::kRoundRobin:
          c.reason = Format("round_robin: turn %zu of %zu", i + 1, eligible_.size());
          break;
        case RoutePolicy::kLeastLoaded:
          c.reason = Format("least_loaded: %llu queued prompt tokens, %u running requests",
                            static_cast<unsigned long long>(c.load.queued_prompt_tokens),
                            c.load.running_requests);
          break;
        case RoutePolicy::kPrefix:
          c.reason = Format("prefix: its node holds %u of %u blocks from the start; "
                            "%llu queued prompt tokens",
                            c.local_prefix_blocks, blocks,
                            static_cast<unsigned long long>(c.load.queued_prompt_tokens));
          break;
        case RoutePolicy::kCost:
          c.reason = Format("cost: %.3f ms = queue %.3f + compute %.3f + transfer %.3f; "
                            "cached %u of %u blocks (%u on its node, %u pulled from the pool), "
                            "%llu tokens to prefill",
                            e.total_s() * 1e3, e.queue_wait_s * 1e3, e.compute_s * 1e3,
                            e.transfer_s * 1e3, c.cached_blocks, blocks,
                            c.cached_blocks - c.remote_blocks, c.remote_blocks,
                            static_cast<unsigned long long>(c.new_tokens));
          break;
      }
    }
  }
  return result;
}

}  // namespace kvpool::scheduler
