#include "daemon/metrics_scheduler.h"

#include <string>
#include <utility>
#include <vector>

#include "common/metrics.h"

namespace kvpool::daemon {
namespace {

using metrics::FamilyBuilder;

double D(uint64_t v) { return static_cast<double>(v); }

class SchedulerCollector final : public prometheus::Collectable {
 public:
  explicit SchedulerCollector(std::function<SchedulerServiceStats()> stats)
      : stats_(std::move(stats)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    const SchedulerServiceStats s = stats_();
    std::vector<prometheus::MetricFamily> out;
    out.push_back(FamilyBuilder::Counter("kvpool_scheduler_kv_events_applied_total",
                                         "KV events in batches the global index applied")
                      .Add({}, D(s.events_applied))
                      .Build());
    out.push_back(FamilyBuilder::Counter("kvpool_scheduler_kv_event_blocks_applied_total",
                                         "Block changes made by applied KV events")
                      .Add({}, D(s.event_blocks_applied))
                      .Build());
    out.push_back(FamilyBuilder::Counter("kvpool_scheduler_event_batches_total",
                                         "KV event batches not applied, by outcome")
                      .Add({{"outcome", "stale"}}, D(s.stale_batches))
                      .Add({{"outcome", "resync_needed"}}, D(s.resyncs_requested))
                      .Build());
    out.push_back(FamilyBuilder::Counter("kvpool_scheduler_resyncs_total",
                                         "Resyncs the scheduler asked nodes for (sequence gap)")
                      .Add({}, D(s.resyncs_requested))
                      .Build());
    out.push_back(FamilyBuilder::Counter("kvpool_scheduler_snapshots_applied_total",
                                         "Full node snapshots applied (first sync and resyncs)")
                      .Add({}, D(s.snapshots_applied))
                      .Build());
    FamilyBuilder routes = FamilyBuilder::Counter("kvpool_scheduler_route_decisions_total",
                                                  "Route calls answered, by policy");
    for (const auto& [policy, n] : s.routes_by_policy) routes.Add({{"policy", policy}}, D(n));
    out.push_back(routes.Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_scheduler_index_blocks",
                                       "Distinct blocks in the global index")
                      .Add({}, D(s.index_blocks))
                      .Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_scheduler_index_copies",
                                       "(block, node) copies in the global index")
                      .Add({}, D(s.index_copies))
                      .Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_scheduler_index_memory_bytes",
                                       "Memory of the global index")
                      .Add({}, D(s.index_memory_bytes))
                      .Build());
    FamilyBuilder per_ns = FamilyBuilder::Gauge("kvpool_scheduler_index_namespace_blocks",
                                                "Distinct blocks in the index, by namespace");
    for (const auto& [ns, n] : s.index_blocks_by_namespace) per_ns.Add({{"namespace", ns}}, D(n));
    out.push_back(per_ns.Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_scheduler_nodes", "Registered kvpoold nodes")
                      .Add({{"state", "alive"}}, D(s.nodes_alive))
                      .Add({{"state", "dead"}}, D(s.nodes_dead))
                      .Build());
    out.push_back(FamilyBuilder::Gauge("kvpool_scheduler_instances",
                                       "Registered inference instances")
                      .Add({{"state", "alive"}}, D(s.instances_alive))
                      .Add({{"state", "dead"}}, D(s.instances_dead))
                      .Build());
    return out;
  }

 private:
  std::function<SchedulerServiceStats()> stats_;
};

}  // namespace

std::shared_ptr<prometheus::Collectable> MakeSchedulerCollector(
    std::function<SchedulerServiceStats()> stats) {
  return std::make_shared<SchedulerCollector>(std::move(stats));
}

}  // namespace kvpool::daemon
