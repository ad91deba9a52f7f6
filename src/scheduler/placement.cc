#include "scheduler/placement.h"

#include <algorithm>
#include <cstdint>
#include <vector>

namespace kvpool::scheduler {

Placer::Placer(const Registry* registry, const GlobalIndex* index, const NamespaceModels* models)
    : registry_(registry), index_(index), models_(models) {}

uint64_t Placer::FreeBytes(const NodeInfo& node, Tier tier) const {
  uint64_t indexed = 0;
  for (const std::string& ns : index_->Namespaces()) {
    indexed += index_->NodeBlocks(ns, node.id).at(tier) * models_->Get(ns).block_bytes;
  }
  const uint64_t reported = node.used_bytes ? node.used_bytes->at(tier) : 0;
  const uint64_t used = std::max(indexed, reported);
  const uint64_t capacity = node.capacity_bytes.at(tier);
  return capacity > used ? capacity - used : 0;
}

Result<PlacementDecision> Placer::PlaceBlocks(const PlacementRequest& request) const {
  if (request.ns.empty()) return InvalidArgumentError("placement: empty namespace");
  if (request.n_blocks == 0) return InvalidArgumentError("placement: n_blocks must be > 0");
  if (request.tier != Tier::kGpu && request.tier != Tier::kHost && request.tier != Tier::kDisk) {
    return InvalidArgumentError("placement: tier " + std::string(TierName(request.tier)) +
                                " is not gpu, host or disk");
  }
  std::vector<const NodeInfo*> nodes;
  if (request.allowed_nodes.empty()) {
    for (const auto& [id, node] : registry_->nodes()) nodes.push_back(&node);
  } else {
    for (const std::string& id : request.allowed_nodes) {
      const NodeInfo* node = registry_->FindNode(id);
      if (node == nullptr) {
        return NotFoundError("placement: allowed node '" + id + "' is not registered");
      }
      nodes.push_back(node);
    }
    std::sort(nodes.begin(), nodes.end(),
              [](const NodeInfo* a, const NodeInfo* b) { return a->id < b->id; });
  }

  const uint64_t block_bytes = models_->Get(request.ns).block_bytes;
  if (block_bytes > 0 && request.n_blocks > UINT64_MAX / block_bytes) {
    return InvalidArgumentError("placement: " + std::to_string(request.n_blocks) +
                                " blocks of " + std::to_string(block_bytes) +
                                " bytes overflow 64 bits");
  }
  const uint64_t needed = request.n_blocks * block_bytes;
  const int64_t now = registry_->NowMs();
  const NodeInfo* best = nullptr;
  uint64_t best_free = 0;
  size_t alive = 0;
  size_t draining = 0;
  for (const NodeInfo* node : nodes) {
    if (!registry_->IsAlive(*node, now)) continue;
    if (node->draining) {  // kvpoolctl drain: no new blocks for it
      ++draining;
      continue;
    }
    ++alive;
    const uint64_t free = FreeBytes(*node, request.tier);
    if (best == nullptr || free > best_free) {
      best = node;
      best_free = free;
    }
  }
  const std::string tier_name(TierName(request.tier));
  if (best == nullptr) {
    return UnavailableError(
        "placement: no live node" +
        std::string(request.allowed_nodes.empty() ? "" : " among the allowed") +
        (draining > 0 ? " that is not draining (" + std::to_string(draining) + " draining)"
                      : std::string()));
  }
  if (best_free < needed) {
    return ResourceExhaustedError("placement: no node has " + std::to_string(needed) +
                                  " free bytes in tier " + tier_name + " for " +
                                  std::to_string(request.n_blocks) + " blocks; the most is " +
                                  std::to_string(best_free) + " on node '" + best->id + "'");
  }
  PlacementDecision decision;
  decision.node_id = best->id;
  decision.free_bytes = best_free;
  decision.needed_bytes = needed;
  decision.reason = "most free " + tier_name + " bytes (" + std::to_string(best_free) + ") of " +
                    std::to_string(alive) + " live node(s)";
  return decision;
}

}  // namespace kvpool::scheduler
