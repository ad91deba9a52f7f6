#include "scheduler/registry.h"

#include <cmath>
#include <string>
#include <utility>

namespace kvpool::scheduler {

uint64_t TierBytes::at(Tier tier) const {
  switch (tier) {
    case Tier::kGpu: return gpu;
    case Tier::kHost: return host;
    case Tier::kDisk: return disk;
    case Tier::kNone: break;
  }
  return 0;
}

std::string_view InstanceRoleName(InstanceRole role) {
  switch (role) {
    case InstanceRole::kPrefill: return "prefill";
    case InstanceRole::kDecode: return "decode";
    case InstanceRole::kColocated: return "colocated";
  }
  return "unknown";
}

Result<InstanceRole> ParseInstanceRole(std::string_view name) {
  for (InstanceRole role :
       {InstanceRole::kPrefill, InstanceRole::kDecode, InstanceRole::kColocated}) {
    if (name == InstanceRoleName(role)) return role;
  }
  return InvalidArgumentError("unknown instance role '" + std::string(name) +
                              "'; expected prefill, decode or colocated");
}

Status RegistryOptions::Validate() const {
  if (node_timeout_ms <= 0) {
    return InvalidArgumentError("registry: node_timeout_ms must be > 0, got " +
                                std::to_string(node_timeout_ms));
  }
  if (instance_timeout_ms <= 0) {
    return InvalidArgumentError("registry: instance_timeout_ms must be > 0, got " +
                                std::to_string(instance_timeout_ms));
  }
  return Status::Ok();
}

Registry::Registry(RegistryOptions options, const Clock* clock)
    : options_(std::move(options)), clock_(clock) {
  const RegistryOptions defaults;
  if (options_.node_timeout_ms <= 0) options_.node_timeout_ms = defaults.node_timeout_ms;
  if (options_.instance_timeout_ms <= 0) {
    options_.instance_timeout_ms = defaults.instance_timeout_ms;
  }
}

Result<RegisterOutcome> Registry::RegisterNode(const NodeRegistration& registration) {
  if (registration.id.empty()) return InvalidArgumentError("node registration has an empty id");
  if (registration.address.empty()) {
    return InvalidArgumentError("node '" + registration.id + "' registered an empty address");
  }
  const int64_t now = clock_->NowMs();
  RegisterOutcome outcome;
  auto it = nodes_.find(registration.id);
  if (it == nodes_.end()) {
    it = nodes_.emplace(registration.id, NodeInfo{}).first;
    it->second.registered_ms = now;
  } else {
    const NodeInfo& old = it->second;
    outcome.new_member = false;
    outcome.changed = old.address != registration.address ||
                      old.ucx_worker_address != registration.ucx_worker_address ||
                      old.capacity_bytes != registration.capacity_bytes;
  }
  NodeInfo& node = it->second;
  node.id = registration.id;
  node.address = registration.address;
  node.ucx_worker_address = registration.ucx_worker_address;
  node.capacity_bytes = registration.capacity_bytes;
  node.last_heartbeat_ms = now;
  if (node.draining != registration.draining) {
    node.draining = registration.draining;
    registration.draining ? ++draining_nodes_ : --draining_nodes_;
  }
  return outcome;
}

Status Registry::NodeHeartbeat(std::string_view node_id, std::optional<TierBytes> used_bytes) {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return NotFoundError("node '" + std::string(node_id) + "' is not registered");
  }
  it->second.last_heartbeat_ms = clock_->NowMs();
  if (used_bytes) it->second.used_bytes = used_bytes;
  return Status::Ok();
}

Status Registry::SetNodeDraining(std::string_view node_id, bool draining) {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return NotFoundError("node '" + std::string(node_id) + "' is not registered");
  }
  if (it->second.draining != draining) {
    it->second.draining = draining;
    draining ? ++draining_nodes_ : --draining_nodes_;
  }
  return Status::Ok();
}

Status Registry::SetNodeDiskBandwidth(std::string_view node_id, double disk_read_bytes_per_s) {
  if (!(disk_read_bytes_per_s >= 0) || !std::isfinite(disk_read_bytes_per_s)) {
    return InvalidArgumentError("disk_read_bytes_per_s of node '" + std::string(node_id) +
                                "' must be finite and >= 0, got " +
                                std::to_string(disk_read_bytes_per_s));
  }
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return NotFoundError("node '" + std::string(node_id) + "' is not registered");
  }
  if (disk_read_bytes_per_s > 0) it->second.disk_read_bytes_per_s = disk_read_bytes_per_s;
  return Status::Ok();
}

Status Registry::RemoveNode(std::string_view node_id) {
  auto it = nodes_.find(node_id);
  if (it == nodes_.end()) {
    return NotFoundError("node '" + std::string(node_id) + "' is not registered");
  }
  if (it->second.draining) --draining_nodes_;
  nodes_.erase(it);
  return Status::Ok();
}

const NodeInfo* Registry::FindNode(std::string_view node_id) const {
  auto it = nodes_.find(node_id);
  return it == nodes_.end() ? nullptr : &it->second;
}

Result<RegisterOutcome> Registry::RegisterInstance(const InstanceRegistration& registration) {
  if (registration.id.empty()) {
    return InvalidArgumentError("instance registration has an empty id");
  }
  if (registration.role != InstanceRole::kPrefill && registration.role != InstanceRole::kDecode &&
      registration.role != InstanceRole::kColocated) {
    return InvalidArgumentError("instance '" + registration.id + "' registered unknown role " +
                                std::to_string(static_cast<int>(registration.role)));
  }
  const int64_t now = clock_->NowMs();
  RegisterOutcome outcome;
  auto it = instances_.find(registration.id);
  if (it == instances_.end()) {
    it = instances_.emplace(registration.id, InstanceInfo{}).first;
  } else {
    const InstanceInfo& old = it->second;
    outcome.new_member = false;
    outcome.changed = old.role != registration.role || old.node_id != registration.node_id ||
                      old.max_running_requests != registration.max_running_requests;
  }
  InstanceInfo& instance = it->second;
  instance = InstanceInfo{};
  instance.id = registration.id;
  instance.role = registration.role;
  instance.node_id = registration.node_id;
  instance.max_running_requests = registration.max_running_requests;
  instance.registered_ms = now;
  instance.last_report_ms = now;
  return outcome;
}

Status Registry::ReportLoad(std::string_view instance_id, const InstanceLoad& load) {
  auto it = instances_.find(instance_id);
  if (it == instances_.end()) {
    return NotFoundError("instance '" + std::string(instance_id) + "' is not registered");
  }
  if (!(load.queued_prefill_s >= 0) || !std::isfinite(load.queued_prefill_s)) {
    return InvalidArgumentError("instance '" + std::string(instance_id) +
                                "': queued_prefill_s must be finite and >= 0, got " +
                                std::to_string(load.queued_prefill_s));
  }
  InstanceInfo& instance = it->second;
  instance.reported = load;
  instance.routed_tokens_since_report = 0;
  instance.routed_requests_since_report = 0;
  instance.routed_prefill_s_since_report = 0;
  instance.last_report_ms = clock_->NowMs();
  return Status::Ok();
}

Status Registry::NoteRouted(std::string_view instance_id, uint64_t new_tokens, double prefill_s) {
  auto it = instances_.find(instance_id);
  if (it == instances_.end()) {
    return NotFoundError("instance '" + std::string(instance_id) + "' is not registered");
  }
  it->second.routed_tokens_since_report += new_tokens;
  ++it->second.routed_requests_since_report;
  if (prefill_s > 0 && std::isfinite(prefill_s)) {
    it->second.routed_prefill_s_since_report += prefill_s;
  }
  return Status::Ok();
}

Status Registry::RemoveInstance(std::string_view instance_id) {
  auto it = instances_.find(instance_id);
  if (it == instances_.end()) {
    return NotFoundError("instance '" + std::string(instance_id) + "' is not registered");
  }
  instances_.erase(it);
  return Status::Ok();
}

const InstanceInfo* Registry::FindInstance(std::string_view instance_id) const {
  auto it = instances_.find(instance_id);
  return it == instances_.end() ? nullptr : &it->second;
}

ExpiredMembers Registry::ExpireDead(int64_t now_ms) {
  ExpiredMembers expired;
  for (auto it = nodes_.begin(); it != nodes_.end();) {
    if (IsAlive(it->second, now_ms)) {
      ++it;
      continue;
    }
    expired.nodes.push_back(it->first);
    if (it->second.draining) --draining_nodes_;
    it = nodes_.erase(it);
  }
  for (auto it = instances_.begin(); it != instances_.end();) {
    if (IsAlive(it->second, now_ms)) {
      ++it;
      continue;
    }
    expired.instances.push_back(it->first);
    it = instances_.erase(it);
  }
  return expired;
}

}  // namespace kvpool::scheduler
