#include "daemon/metrics_node.h"

#include <string>
#include <utility>
#include <vector>

#include "common/metrics.h"

namespace kvpool::daemon {
namespace {

using metrics::FamilyBuilder;

class PoolCollector final : public prometheus::Collectable {
 public:
  explicit PoolCollector(std::function<PoolStats()> stats) : stats_(std::move(stats)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const PoolStats s = stats_();
    std::vector<prometheus::MetricFamily> out;
    // Host memory always; the SSD and GPU tiers when the node has them.
    const metrics::Labels host{{"tier", "host"}};
    const metrics::Labels disk{{"tier", "disk"}};
    const metrics::Labels gpu{{"tier", "gpu"}};
    FamilyBuilder capacity =
        FamilyBuilder::Gauge("kvpool_pool_capacity_bytes", "Pool capacity, by tier");
    capacity.Add(host, static_cast<double>(s.capacity_bytes));
    FamilyBuilder used = FamilyBuilder::Gauge(
        "kvpool_pool_used_bytes", "Bytes of live blocks (disk: block data stored), by tier");
    used.Add(host, static_cast<double>(s.used_bytes));
    if (s.disk_capacity_bytes > 0) {
      capacity.Add(disk, static_cast<double>(s.disk_capacity_bytes));
      used.Add(disk, static_cast<double>(s.disk_used_bytes));
    }
    if (s.gpu_capacity_bytes > 0) {
      uint64_t gpu_used = 0;
      for (const NamespaceInfo& n : s.namespaces) gpu_used += n.stats.gpu_used_bytes;
      capacity.Add(gpu, static_cast<double>(s.gpu_capacity_bytes));
      used.Add(gpu, static_cast<double>(gpu_used));
    }
    out.push_back(capacity.Build());
    out.push_back(used.Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_pool_reserved_bytes",
                                       "Bytes claimed by namespaces' slabs, by tier")
                      .Add(host, static_cast<double>(s.reserved_bytes))
                      .Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_pool_free_bytes",
                                       "Pool bytes not claimed by any slab, by tier")
                      .Add(host, static_cast<double>(s.free_bytes))
                      .Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_leases_active", "Leases not yet ended")
                      .Add({}, static_cast<double>(s.active_leases))
                      .Build());
    out.push_back(FamilyBuilder::Counter("kvpool_leases_expired_total",
                                         "Leases that reached their deadline")
                      .Add({}, static_cast<double>(s.expired_leases))
                      .Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_uptime_seconds", "Seconds since the pool started")
                      .Add({}, static_cast<double>(s.uptime_ms) / 1000.0)
                      .Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_namespaces", "Namespaces on this node")
                      .Add({}, static_cast<double>(s.namespaces.size()))
                      .Build());

    struct Field {
      const char* name;
      const char* help;
      bool counter;
      uint64_t (*get)(const NamespaceInfo&);
    };
    static const Field kFields[] = {
        {"kvpool_namespace_cached_blocks", "Blocks in the namespace's prompt tree", false,
         [](const NamespaceInfo& n) { return n.stats.cached_blocks; }},
        {"kvpool_namespace_allocated_blocks", "Blocks allocated and not yet inserted", false,
         [](const NamespaceInfo& n) { return n.stats.allocated_blocks; }},
        {"kvpool_namespace_pinned_blocks", "Cached blocks held by at least one read lease", false,
         [](const NamespaceInfo& n) { return n.stats.pinned_blocks; }},
        {"kvpool_namespace_used_bytes", "Bytes of the namespace's live blocks", false,
         [](const NamespaceInfo& n) { return n.stats.used_bytes; }},
        {"kvpool_namespace_reserved_bytes", "Bytes of the namespace's slabs", false,
         [](const NamespaceInfo& n) { return n.stats.reserved_bytes; }},
        {"kvpool_namespace_index_bytes", "Memory of the namespace's prompt tree", false,
         [](const NamespaceInfo& n) { return n.stats.index_bytes; }},
        {"kvpool_namespace_hit_blocks_total", "Blocks Match found", true,
         [](const NamespaceInfo& n) { return n.stats.hit_blocks; }},
        {"kvpool_namespace_miss_blocks_total", "Blocks Match asked for and did not find", true,
         [](const NamespaceInfo& n) { return n.stats.miss_blocks; }},
        {"kvpool_namespace_hit_tokens_total", "Tokens in the blocks Match found", true,
         [](const NamespaceInfo& n) { return n.stats.hit_blocks * n.spec.block_tokens; }},
        {"kvpool_namespace_miss_tokens_total", "Tokens in the full blocks Match did not find",
         true, [](const NamespaceInfo& n) { return n.stats.miss_blocks * n.spec.block_tokens; }},
        {"kvpool_namespace_match_requests_total", "Match calls", true,
         [](const NamespaceInfo& n) { return n.stats.match_requests; }},
        {"kvpool_namespace_inserted_blocks_total", "Blocks published by Insert", true,
         [](const NamespaceInfo& n) { return n.stats.inserted_blocks; }},
        {"kvpool_namespace_deduplicated_blocks_total",
         "Inserted blocks already cached (the new copy was freed)", true,
         [](const NamespaceInfo& n) { return n.stats.deduplicated_blocks; }},
        {"kvpool_namespace_evicted_blocks_total", "Cached blocks evicted to make room", true,
         [](const NamespaceInfo& n) { return n.stats.evicted_blocks; }},
        {"kvpool_namespace_deleted_blocks_total", "Cached blocks removed by Delete", true,
         [](const NamespaceInfo& n) { return n.stats.deleted_blocks; }},
        {"kvpool_namespace_disk_blocks", "Blocks the SSD tier stores (some also in host memory)",
         false, [](const NamespaceInfo& n) { return n.stats.disk_blocks; }},
        {"kvpool_namespace_demoted_blocks_total", "Host blocks moved to the SSD tier", true,
         [](const NamespaceInfo& n) { return n.stats.demoted_blocks; }},
        {"kvpool_namespace_promoted_blocks_total", "SSD-tier blocks read back into host memory",
         true, [](const NamespaceInfo& n) { return n.stats.promoted_blocks; }},
        {"kvpool_namespace_written_behind_blocks_total",
         "Host blocks written to the SSD tier ahead of eviction (write-behind)", true,
         [](const NamespaceInfo& n) { return n.stats.written_behind_blocks; }},
    };
    for (const Field& f : kFields) {
      FamilyBuilder b = f.counter ? FamilyBuilder::Counter(f.name, f.help)
                                  : FamilyBuilder::Gauge(f.name, f.help);
      for (const NamespaceInfo& ns : s.namespaces) {
        b.Add({{"namespace", ns.spec.name}}, static_cast<double>(f.get(ns)));
      }
      out.push_back(b.Build());
    }
    return out;
  }

 private:
  std::function<PoolStats()> stats_;
};

class DrainCollector final : public prometheus::Collectable {
 public:
  explicit DrainCollector(std::function<bool()> draining) : draining_(std::move(draining)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    std::vector<prometheus::MetricFamily> out;
    out.push_back(FamilyBuilder::Gauge("kvpool_node_draining",
                                       "1 while the node is draining (kvpoolctl drain), else 0")
                      .Add({}, draining_() ? 1.0 : 0.0)
                      .Build());
    return out;
  }

 private:
  std::function<bool()> draining_;
};

class SlabCollector final : public prometheus::Collectable {
 public:
  explicit SlabCollector(std::function<SlabCounts()> counts) : counts_(std::move(counts)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const SlabCounts c = counts_();
    std::vector<prometheus::MetricFamily> out;
    out.push_back(FamilyBuilder::Gauge("kvpool_pool_slabs",
                                       "Slabs of the pool mapped as UCX allocations, by state")
                      .Add({{"state", "in_use"}}, static_cast<double>(c.in_use))
                      .Add({{"state", "idle"}}, static_cast<double>(c.idle))
                      .Build());
    out.push_back(FamilyBuilder::Counter("kvpool_pool_slab_maps_total",
                                         "Slabs mapped, each with a fresh remote key")
                      .Add({}, static_cast<double>(c.maps))
                      .Build());
    out.push_back(FamilyBuilder::Counter("kvpool_pool_slab_reuses_total",
                                         "Idle slabs claimed again by their namespace")
                      .Add({}, static_cast<double>(c.reuses))
                      .Build());
    out.push_back(FamilyBuilder::Counter("kvpool_pool_slab_unmaps_total",
                                         "Idle slabs unmapped for another namespace")
                      .Add({}, static_cast<double>(c.unmaps))
                      .Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_pool_lost_bytes",
                                       "Pool bytes another mapping of the process holds")
                      .Add({}, static_cast<double>(c.lost_bytes))
                      .Build());
    return out;
  }

 private:
  std::function<SlabCounts()> counts_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeSlabCollector(std::function<SlabCounts()> counts) {
  return std::make_shared<SlabCollector>(std::move(counts));
}

std::shared_ptr<prometheus::Collectable> MakeDrainCollector(std::function<bool()> draining) {
  return std::make_shared<DrainCollector>(std::move(draining));
}

std::shared_ptr<prometheus::Collectable> MakePoolCollector(std::function<PoolStats()> stats) {
  return std::make_shared<PoolCollector>(std::move(stats));
}

}  // namespace kvpool::daemon
