#include "scheduler/route_bench.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <random>
#include <string>
#include <vector>

#include "common/clock.h"
#include "scheduler/global_index.h"
#include "scheduler/kv_event.h"
#include "scheduler/namespace_models.h"
#include "scheduler/registry.h"

namespace kvpool::scheduler {
namespace {

using BenchClock = std::chrono::steady_clock;

constexpr const char* kNamespace = "bench-model";

double Seconds(BenchClock::duration d) { return std::chrono::duration<double>(d).count(); }

// Zipf(1) over [0, n) by inverse CDF on precomputed cumulative weights.
class Zipf {
 public:
  explicit Zipf(uint32_t n) : cdf_(std::max<uint32_t>(n, 1)) {
    double sum = 0;
    for (size_t i = 0; i < cdf_.size(); ++i) cdf_[i] = (sum += 1.0 / static_cast<double>(i + 1));
    for (double& c : cdf_) c /= sum;
  }
  uint32_t operator()(std::mt19937_64& rng) const {
    double u = std::uniform_real_distribution<double>(0, 1)(rng);
    return static_cast<uint32_t>(std::lower_bound(cdf_.begin(), cdf_.end(), u) - cdf_.begin());
  }

 private:
  std::vector<double> cdf_;
};

BlockHash RandomHash(std::mt19937_64& rng) { return BlockHash{rng(), rng()}; }

}  // namespace

RouteBenchResult RunRouteBench(const RouteBenchOptions& o) {
  RouteBenchResult result;
  std::mt19937_64 rng(o.seed);
  const uint32_t nodes = std::max<uint32_t>(o.nodes, 1);
  const uint32_t prompt_blocks = std::max<uint32_t>(o.prompt_blocks, 2);
  const uint32_t prefix_blocks = std::min(o.shared_prefix_blocks, prompt_blocks - 1);
  auto node_name = [](uint32_t n) { return "node-" + std::to_string(n); };

  ManualClock clock;
  Registry registry(RegistryOptions{}, &clock);
  GlobalIndex index;
  NamespaceModels models;
  NamespaceModel model;
  model.block_tokens = o.block_tokens == 0 ? 16 : o.block_tokens;
  models.Set(kNamespace, model).IgnoreError();  // The model is valid by construction.
  std::vector<uint64_t> seq(nodes, 0);
  for (uint32_t n = 0; n < nodes; ++n) {
    registry.RegisterNode({node_name(n), "127.0.0.1:" + std::to_string(7000 + n), "", {}})
        .status()
        .IgnoreError();
    registry.RegisterInstance({"instance-" + std::to_string(n), InstanceRole::kColocated,
                               node_name(n), 0})
        .status()
        .IgnoreError();
    registry.ReportLoad("instance-" + std::to_string(n), {rng() % 4096, uint32_t(rng() % 8)})
        .IgnoreError();
    index.ReplaceNode(NodeSnapshot{node_name(n), 1, 0, {}}).IgnoreError();
  }

  // Shared prefixes, each stored on `prefix_replicas` nodes.
  std::vector<std::vector<BlockHash>> prefixes(std::max<uint32_t>(o.shared_prefixes, 1));
  std::vector<KvEventBatch> batches;
  auto store = [&](uint32_t node, std::vector<BlockHash> hashes) {
    KvEventBatch batch{node_name(node), 1, ++seq[node], {}};
    batch.events.push_back(KvEvent::Stored(kNamespace, std::nullopt, std::move(hashes),
                                           Tier::kHost));
    batches.push_back(std::move(batch));
  };
  for (auto& prefix : prefixes) {
    for (uint32_t i = 0; i < prefix_blocks; ++i) prefix.push_back(RandomHash(rng));
    for (uint32_t r = 0; r < std::max<uint32_t>(o.prefix_replicas, 1); ++r) {
      store(static_cast<uint32_t>(rng() % nodes), prefix);
    }
  }
  // Prompts: a Zipf-popular shared prefix, then a unique body on one node, or split across two.
  Zipf zipf(static_cast<uint32_t>(prefixes.size()));
  std::vector<std::vector<BlockHash>> prompts;
  uint64_t distinct = uint64_t{prefixes.size()} * prefix_blocks;
  std::uniform_real_distribution<double> unit(0, 1);
  while (distinct < o.indexed_blocks) {
    std::vector<BlockHash> prompt = prefixes[zipf(rng)];
    for (uint32_t i = prefix_blocks; i < prompt_blocks; ++i) prompt.push_back(RandomHash(rng));
    distinct += prompt_blocks - prefix_blocks;
    const uint32_t node = static_cast<uint32_t>(rng() % nodes);
    std::vector<BlockHash> body(prompt.begin() + prefix_blocks, prompt.end());
    if (unit(rng) < o.split_fraction && body.size() > 1) {
      const size_t cut = body.size() / 2;
      store(node, std::vector<BlockHash>(body.begin(), body.begin() + cut));
      store((node + 1) % nodes, std::vector<BlockHash>(body.begin() + cut, body.end()));
    } else {
      store(node, std::move(body));
    }
    prompts.push_back(std::move(prompt));
  }

  uint64_t event_blocks = 0;
  for (const auto& b : batches) event_blocks += b.events[0].hashes.size();
  const auto build_start = BenchClock::now();
  for (const KvEventBatch& b : batches) index.Apply(b).status().IgnoreError();
  const double build_s = Seconds(BenchClock::now() - build_start);
  batches.clear();
  batches.shrink_to_fit();

  result.indexed_blocks = index.blocks();
  result.block_copies = index.copies();
  result.index_bytes = index.MemoryBytes();
  result.bytes_per_block =
      result.indexed_blocks == 0 ? 0
                                 : static_cast<double>(result.index_bytes) / result.indexed_blocks;
  result.event_blocks_per_s = build_s > 0 ? static_cast<double>(event_blocks) / build_s : 0;

  // Queries, prepared up front so the timed loop only routes.
  const uint32_t query_pool = 4096;
  std::vector<std::vector<BlockHash>> queries;
  queries.reserve(query_pool);
  for (uint32_t q = 0; q < query_pool && !prompts.empty(); ++q) {
    if (unit(rng) < o.repeat_fraction) {
      queries.push_back(prompts[rng() % prompts.size()]);
    } else {
      std::vector<BlockHash> prompt = prefixes[zipf(rng)];
      while (prompt.size() < prompt_blocks) prompt.push_back(RandomHash(rng));
      queries.push_back(std::move(prompt));
    }
  }
  if (queries.empty()) return result;

  Router router(RouterOptions{}, &index, &registry, &models);
  std::vector<double> latencies_us;
  latencies_us.reserve(o.routes);
  uint64_t pooled_sum = 0;
  const auto start = BenchClock::now();
  for (uint32_t r = 0; r < o.routes; ++r) {
    RouteRequest request;
    request.ns = kNamespace;
    request.hashes = queries[r % queries.size()];
    request.policy = o.policy;
    request.explain = o.explain;
    const auto t0 = BenchClock::now();
    Result<RouteResult> routed = router.Route(request);
    latencies_us.push_back(std::chrono::duration<double, std::micro>(BenchClock::now() - t0).count());
    if (routed.ok()) pooled_sum += routed->pooled_prefix_blocks;
  }
  const double total_s = Seconds(BenchClock::now() - start);

  std::sort(latencies_us.begin(), latencies_us.end());
  auto pct = [&](double p) {
    return latencies_us[std::min(latencies_us.size() - 1,
                                 static_cast<size_t>(p * static_cast<double>(latencies_us.size())))];
  };
  result.routes = o.routes;
  if (o.routes > 0) {
    result.routes_per_s = total_s > 0 ? o.routes / total_s : 0;
    result.route_p50_us = pct(0.50);
    result.route_p99_us = pct(0.99);
    result.route_max_us = latencies_us.back();
    result.mean_pooled_prefix_blocks = static_cast<double>(pooled_sum) / o.routes;
  }
  return result;
}

}  // namespace kvpool::scheduler
