#include "bench/scheduler_bench.h"

#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <optional>
#include <random>
#include <thread>

#include "bench/bench_stats.h"
#include "common/table.h"
#include "kvpool/client.h"
#include "kvpool/scheduler_client.h"
#include "launch/local_kvpoold.h"
#include "launch/loopback_daemon.h"

namespace kvpool::bench {
namespace {

constexpr const char* kNamespace = "bench-sched";
constexpr uint32_t kBlockTokens = 16;
constexpr uint32_t kPromptBlocks = 128;
constexpr uint32_t kInstances = 4;

struct GrpcRouteResult {
  Summary route_ns;
  uint64_t indexed_blocks = 0;
};

// A kvpool-scheduler and one kvpoold streaming its events to it; prompts are published through
// the node, then Route is timed through the scheduler's gRPC API.
Result<GrpcRouteResult> RunGrpcRoutes(const SchedulerBenchOptions& opt, bool quiet) {
  const std::string work = (std::filesystem::temp_directory_path() /
                            ("kvpool-bench-scheduler-" + std::to_string(::getpid())))
                               .string();
  KVPOOL_ASSIGN_OR_RETURN(
      launch::LoopbackDaemon sched,
      launch::StartOnLoopback("kvpool-scheduler",
                              {opt.scheduler_binary, "--log-level=warning",
                               "--block-tokens=" + std::to_string(kBlockTokens)},
                              work + "/scheduler", 15'000));
  launch::LocalKvpooldOptions node_options;
  node_options.binary = opt.kvpoold_binary;
  node_options.work_dir = work + "/node";
  node_options.capacity = "1GiB";
  node_options.extra_args = {"--log-level=warning", "--node-id=bench-node",
                             "--scheduler=" + sched.address, "--scheduler-heartbeat-ms=200"};
  KVPOOL_ASSIGN_OR_RETURN(auto node, launch::LocalKvpoold::Start(node_options));
  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<Client> pool, Client::Connect(node->address()));
  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<SchedulerClient> scheduler,
                          SchedulerClient::Connect(sched.address));
  KVPOOL_RETURN_IF_ERROR(pool->CreateNamespace({kNamespace, kBlockTokens, 1024, ""}).status());
  for (uint32_t i = 0; i < kInstances; ++i) {
    KVPOOL_RETURN_IF_ERROR(
        scheduler->RegisterInstance("bench-" + std::to_string(i), "colocated", "bench-node"));
  }

  if (!quiet) std::cerr << "scheduler (gRPC): publishing " << opt.grpc_prompts << " prompts ..." << std::endl;
  std::mt19937 rng(3);
  std::uniform_int_distribution<uint32_t> vocab(0, 128'255);
  const BlockHasher hasher(kNamespace, "", kBlockTokens);
  std::vector<std::vector<BlockHash>> prompts;
  for (uint32_t p = 0; p < opt.grpc_prompts; ++p) {
    std::vector<uint32_t> tokens(kPromptBlocks * kBlockTokens);
    for (auto& t : tokens) t = vocab(rng);
    prompts.push_back(hasher.HashPrompt(tokens));
    KVPOOL_ASSIGN_OR_RETURN(Allocation alloc, pool->AllocMem(kNamespace, kPromptBlocks));
    std::vector<BlockHandle> handles;
    for (const auto& b : alloc.blocks) handles.push_back(b.handle);
    KVPOOL_RETURN_IF_ERROR(
        pool->Insert(kNamespace, PromptView::Hashes(prompts.back()), 0, handles, alloc.lease.id)
            .status());
    KVPOOL_RETURN_IF_ERROR(pool->Release(alloc.lease.id).status());
  }
  // The events reach the scheduler asynchronously: wait until the last prompt is indexed.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(20);
  for (;;) {
    KVPOOL_ASSIGN_OR_RETURN(PoolLookupResult last, scheduler->Lookup(kNamespace, prompts.back()));
    if (last.pooled_prefix_blocks == kPromptBlocks) break;
    if (std::chrono::steady_clock::now() > deadline) {
      return DeadlineExceededError("the scheduler did not index the published prompts in 20 s");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }

  if (!quiet) std::cerr << "scheduler (gRPC): " << opt.grpc_routes << " routes ..." << std::endl;
  std::vector<double> route_ns;
  RouteQuery query;
  query.ns = kNamespace;
  for (uint32_t i = 0; i < opt.grpc_routes; ++i) {
    query.hashes = prompts[i % prompts.size()];
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(RouteAnswer answer, scheduler->Route(query));
    route_ns.push_back(NanosSince(t0));
    if (answer.pooled_prefix_blocks != kPromptBlocks) {
      return InternalError("Route saw a partial prefix of a fully indexed prompt");
    }
  }
  KVPOOL_ASSIGN_OR_RETURN(std::vector<PoolNode> nodes, scheduler->ListNodes());
  GrpcRouteResult out;
  out.route_ns = Summarize(route_ns);
  for (const PoolNode& n : nodes) out.indexed_blocks += n.indexed_blocks.total();
  std::error_code ec;
  std::filesystem::remove_all(work, ec);
  return out;
}

}  // namespace

Result<nlohmann::json> RunSchedulerBench(const SchedulerBenchOptions& opt, bool quiet) {
  const scheduler::RouteBenchOptions& in = opt.in_process;
  if (!quiet) {
    std::cerr << "scheduler (in-process): indexing " << in.indexed_blocks << " blocks on "
              << in.nodes << " nodes, then " << in.routes << " routes ..." << std::endl;
  }
  const scheduler::RouteBenchResult r = scheduler::RunRouteBench(in);
  nlohmann::json result = {{"benchmark", "scheduler"},
                           {"in_process",
                            {{"nodes", in.nodes},
                             {"prompt_blocks", in.prompt_blocks},
                             {"explain", in.explain},
                             {"indexed_blocks", r.indexed_blocks},
                             {"block_copies", r.block_copies},
                             {"index_bytes", r.index_bytes},
                             {"bytes_per_block", r.bytes_per_block},
                             {"event_blocks_per_s", r.event_blocks_per_s},
                             {"routes", r.routes},
                             {"routes_per_s", r.routes_per_s},
                             {"route_p50_us", r.route_p50_us},
                             {"route_p99_us", r.route_p99_us},
                             {"route_max_us", r.route_max_us},
                             {"mean_pooled_prefix_blocks", r.mean_pooled_prefix_blocks}}}};
  std::optional<GrpcRouteResult> grpc;
  if (!opt.scheduler_binary.empty() && !opt.kvpoold_binary.empty()) {
    KVPOOL_ASSIGN_OR_RETURN(GrpcRouteResult g, RunGrpcRoutes(opt, quiet));
    result["grpc"] = {{"instances", kInstances},
                      {"prompt_blocks", kPromptBlocks},
                      {"indexed_blocks", g.indexed_blocks},
                      {"route_ns", ToJson(g.route_ns)}};
    grpc = g;
  }
  if (!quiet) {
    std::cout << "\nscheduler: Route (cost policy). in-process: " << in.nodes
              << " nodes/instances, " << in.prompt_blocks << "-block prompts, "
              << (in.explain ? "with" : "without") << " reason strings\n";
    TextTable t({"PATH", "INDEXED BLOCKS", "INDEX B/blk", "EVENTS blk/s", "ROUTES/s", "p50 us",
                 "p99 us"});
    t.AddRow({"in-process", std::to_string(r.indexed_blocks), FormatFixed(r.bytes_per_block, 1),
              FormatFixed(r.event_blocks_per_s, 0), FormatFixed(r.routes_per_s, 0),
              FormatFixed(r.route_p50_us, 2), FormatFixed(r.route_p99_us, 2)});
    if (grpc) {
      const double per_s = grpc->route_ns.mean > 0 ? 1e9 / grpc->route_ns.mean : 0;
      t.AddRow({"gRPC (1 client, " + std::to_string(kInstances) + " instances)",
                std::to_string(grpc->indexed_blocks), "-", "-", FormatFixed(per_s, 0),
                FormatFixed(grpc->route_ns.p50 / 1e3, 1), FormatFixed(grpc->route_ns.p99 / 1e3, 1)});
    }
    t.Print(std::cout);
    std::cout << "targets (DESIGN.md): >= 100k routes/s, p99 <= 100 us in-process with 1M blocks; "
                 "<= 96 B/block\n";
  }
  return result;
}

}  // namespace kvpool::bench
