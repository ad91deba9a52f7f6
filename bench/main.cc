// kvpool-bench: kvpool's benchmarks. Each subcommand prints a readable table, or JSON with --json.
//   kvpool-bench index            in-process prompt tree and node: Insert/Match, bytes per block
//   kvpool-bench control          gRPC control plane against a real kvpoold on loopback
//   kvpool-bench scheduler        the global scheduler's Route: in-process (1M blocks) and gRPC
//   kvpool-bench transfer         data plane Put/Get vs ucx_perftest and memcpy, per transport
//   kvpool-bench gen-trace        write a generated Mooncake-format trace and summarise it
//   kvpool-bench cluster up|down|status   a scheduler and N kvpoold on loopback, detached
//   kvpool-bench replay           a trace through a real local cluster, per caching mode and policy
//   kvpool-bench soak             every operation from many clients against a local cluster, with
//                                 RSS/fd slopes and an end-of-run accounting check
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "bench/cluster_command.h"
#include "bench/control_bench.h"
#include "bench/gen_trace_command.h"
#include "bench/index_bench.h"
#include "bench/replay/replay_command.h"
#include "bench/scheduler_bench.h"
#include "bench/gpu_bench.h"
#include "bench/tiers_bench.h"
#include "bench/soak/soak_command.h"
#include "bench/transfer_bench.h"
#include "common/malloc_tuning.h"
#include "common/units.h"

namespace {
// kvpoold is installed and built next to kvpool-bench.
std::string SiblingBinary(const char* name) {
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  if (ec) return name;
  const auto beside = self.parent_path() / name;
  if (std::filesystem::exists(beside)) return beside.string();
  const auto in_daemon_dir = self.parent_path().parent_path() / "daemon" / name;
  if (std::filesystem::exists(in_daemon_dir)) return in_daemon_dir.string();
  return name;
}
}  // namespace

int main(int argc, char** argv) {
  using namespace kvpool::bench;
  // Debian builds abseil without NDEBUG, which leaves Mutex deadlock detection on: a lock-order
  // graph update on every acquisition. The daemons turn it off, and so does an engine built for
  // production (docs/api.md); the benchmarks measure that configuration.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // As kvpoold does (the tiers benchmark runs its MemPool in this process).
  kvpool::TuneMallocForBlockBuffers();
  CLI::App app{"kvpool-bench: kvpool benchmarks (tables, or JSON with --json)", "kvpool-bench"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the subcommand
  bool json = false;
  app.add_flag("--json", json, "Print results as JSON on stdout");

  IndexBenchOptions index_opt;
  auto* index = app.add_subcommand("index", "In-process prompt-tree and node Insert/Match");
  index->add_option("--prompt-tokens", index_opt.prompt_tokens, "Prompt lengths")->capture_default_str();
  index->add_option("--block-tokens", index_opt.block_tokens, "Tokens per block")->capture_default_str();
  index->add_option("--prompts", index_opt.prompts, "Prompts per length")->capture_default_str();
  index->add_option("--rounds", index_opt.match_rounds, "Match rounds")->capture_default_str();

  TiersBenchOptions tiers_opt;
  std::string tiers_block = "1MiB", tiers_total = "256MiB";
  auto* tiers = app.add_subcommand(
      "tiers", "SSD tier in-process: demote/promote GB/s vs pwrite/pread, DISK vs HOST Match");
  tiers->add_option("--dir", tiers_opt.dir, "Directory on the disk to measure")->capture_default_str();
  tiers->add_option("--block-bytes", tiers_block, "Bytes per block")->capture_default_str();
  tiers->add_option("--total-bytes", tiers_total, "Bytes moved per direction")->capture_default_str();
  tiers->add_option("--rounds", tiers_opt.match_rounds, "Match rounds per tier")->capture_default_str();
  tiers->add_option("--pressure-rounds", tiers_opt.pressure_rounds,
                    "Allocations per pressure run (with and without write-behind)")
      ->capture_default_str();
  tiers->add_option("--recovery-blocks", tiers_opt.recovery_blocks, "Blocks for the recovery run")
      ->capture_default_str();

  GpuBenchOptions gpu_opt;
  std::string gpu_block = "256KiB", gpu_chunk = "1MiB";
  auto* gpu = app.add_subcommand(
      "gpu", "GPU tier: device <-> pool through pinned staging vs cudaMemcpy device <-> pinned");
  gpu->add_option("--block-bytes", gpu_block, "Bytes per block")->capture_default_str();
  gpu->add_option("--blocks", gpu_opt.blocks, "Blocks per batch")->capture_default_str();
  gpu->add_option("--rounds", gpu_opt.rounds, "Timed batches per direction")->capture_default_str();
  gpu->add_option("--tls", gpu_opt.tls, "UCX transports")->capture_default_str();
  gpu->add_option("--device", gpu_opt.device, "CUDA device ordinal")->capture_default_str();
  gpu->add_option("--chunk-bytes", gpu_chunk, "Staging chunk bytes")->capture_default_str();
  gpu->add_option("--chunks-in-flight", gpu_opt.chunks_in_flight, "Staging chunks in flight")
      ->capture_default_str();
  gpu->add_flag("--emulate", gpu_opt.emulate,
                "Emulated device (host memory): runs without a GPU, figures are not GPU figures");

  ControlBenchOptions control_opt;
  control_opt.kvpoold_binary = SiblingBinary("kvpoold");
  auto* control = app.add_subcommand("control", "gRPC Insert/Match/AllocMem/FreeMem against kvpoold");
  control->add_option("--address", control_opt.address, "Use this kvpoold instead of starting one");
  control->add_option("--kvpoold", control_opt.kvpoold_binary, "kvpoold binary to start")->capture_default_str();
  control->add_option("--prompt-tokens", control_opt.prompt_tokens, "Tokens per prompt")->capture_default_str();
  control->add_option("--iterations", control_opt.iterations, "Timed Insert/Match calls")->capture_default_str();
  control->add_option("--batch-blocks", control_opt.batch_blocks, "Blocks per batched AllocMem/FreeMem")->capture_default_str();
  control->add_option("--batch-rounds", control_opt.batch_rounds, "Batched rounds")->capture_default_str();

  SchedulerBenchOptions sched_opt;
  sched_opt.scheduler_binary = SiblingBinary("kvpool-scheduler");
  sched_opt.kvpoold_binary = SiblingBinary("kvpoold");
  auto& route_opt = sched_opt.in_process;
  auto* sched = app.add_subcommand("scheduler", "Scheduler Route: in-process over 1M blocks, and via gRPC");
  sched->add_option("--blocks", route_opt.indexed_blocks, "Blocks to index (in-process)")->capture_default_str();
  sched->add_option("--nodes", route_opt.nodes, "Nodes, one instance each (in-process)")->capture_default_str();
  sched->add_option("--prompt-blocks", route_opt.prompt_blocks, "Blocks per prompt (in-process)")->capture_default_str();
  sched->add_option("--routes", route_opt.routes, "Timed Route calls (in-process)")->capture_default_str();
  sched->add_flag("--explain", route_opt.explain, "Build reason strings for every candidate");
  sched->add_option("--grpc-routes", sched_opt.grpc_routes, "Timed Route calls through gRPC")->capture_default_str();
  bool no_grpc = false;
  sched->add_flag("--no-grpc", no_grpc, "Skip the gRPC part (no daemons started)");

  TransferBenchOptions transfer_opt;
  transfer_opt.kvpoold_binary = SiblingBinary("kvpoold");
  std::vector<std::string> transfer_sizes = {"16KiB", "256KiB", "1MiB"};
  bool small_pages = false;
  auto* transfer = app.add_subcommand(
      "transfer", "Data plane Put/Get against kvpoold, next to ucx_perftest and memcpy");
  transfer->add_option("--tls", transfer_opt.tls, "UCX transports, one kvpoold each")
      ->delimiter(',')->capture_default_str();
  transfer->add_option("--sizes", transfer_sizes, "Block sizes (the smallest also for latency)")
      ->delimiter(',')->capture_default_str();
  transfer->add_option("--batch-blocks", transfer_opt.batch_blocks, "Blocks per Put/Get call")
      ->capture_default_str();
  transfer->add_option("--inflight", transfer_opt.inflight_batches, "Batches kept in flight")
      ->capture_default_str();
  transfer->add_option("--seconds", transfer_opt.seconds, "Time per bandwidth measurement")
      ->capture_default_str();
  transfer->add_option("--repeat", transfer_opt.repeat,
                       "Repetitions per bandwidth point (best reported)")->capture_default_str();
  transfer->add_option("--bytes", transfer_opt.max_bytes, "Byte budget per bandwidth measurement")
      ->capture_default_str();
  transfer->add_option("--latency-iterations", transfer_opt.latency_iterations,
                       "One-block Puts and Gets timed")->capture_default_str();
  transfer->add_option("--big-batch-blocks", transfer_opt.big_batch_blocks,
                       "Blocks of the one-call batched Get")->capture_default_str();
  transfer->add_option("--kvpoold", transfer_opt.kvpoold_binary, "kvpoold binary to start")
      ->capture_default_str();
  transfer->add_option("--ucx-perftest", transfer_opt.ucx_perftest_binary,
                       "ucx_perftest binary ('' skips the reference)")->capture_default_str();
  transfer->add_flag("--small-pages", small_pages,
                     "Local buffer without 2 MiB alignment and transparent huge pages");

  kvpool::workload::TraceGenOptions gen_opt;
  std::string gen_out;
  auto* gen = app.add_subcommand("gen-trace", "Write a generated Mooncake-format trace and summarise it");
  AddGenTraceOptions(gen, &gen_opt, &gen_out);

  kvpool::launch::LocalClusterOptions cluster_opt;
  cluster_opt.kvpoold_binary = SiblingBinary("kvpoold");
  cluster_opt.scheduler_binary = SiblingBinary("kvpool-scheduler");
  cluster_opt.work_dir = DefaultClusterDir();
  auto* cluster = app.add_subcommand("cluster", "A local cluster on loopback: up, down, status");
  AddClusterOptions(cluster, &cluster_opt);

  ReplayOptions replay_opt;
  replay_opt.kvpoold_binary = SiblingBinary("kvpoold");
  replay_opt.scheduler_binary = SiblingBinary("kvpool-scheduler");
  replay_opt.work_dir = DefaultClusterDir() + "-replay";
  auto* replay = app.add_subcommand(
      "replay", "Replay a trace through a real local cluster, per caching mode and policy");
  AddReplayOptions(replay, &replay_opt);

  SoakOptions soak_opt;
  soak_opt.kvpoold_binary = SiblingBinary("kvpoold");
  soak_opt.scheduler_binary = SiblingBinary("kvpool-scheduler");
  soak_opt.work_dir = DefaultClusterDir() + "-soak";
  auto* soak = app.add_subcommand(
      "soak", "Many clients mixing every operation against a local cluster; RSS/fd slopes");
  AddSoakOptions(soak, &soak_opt);

  CLI11_PARSE(app, argc, argv);

  if (gen->parsed()) return RunGenTrace(gen_opt, gen_out, json);
  if (soak->parsed()) return RunSoakCommand(soak_opt, json);
  if (cluster->parsed()) {
    kvpool::Result<nlohmann::json> result = kvpool::InvalidArgumentError("no cluster command");
    if (cluster->got_subcommand("up")) result = ClusterUp(cluster_opt, json);
    if (cluster->got_subcommand("down")) result = ClusterDown(cluster_opt.work_dir, json);
    if (cluster->got_subcommand("status")) result = ClusterStatus(cluster_opt.work_dir, json);
    if (!result.ok()) {
      std::cerr << "kvpool-bench cluster: " << result.status() << std::endl;
      return 1;
    }
    if (json) std::cout << result->dump(2) << std::endl;
    return 0;
  }
  if (replay->parsed()) {
    auto result = RunReplay(replay_opt, json);
    if (!result.ok()) {
      std::cerr << "kvpool-bench replay: " << result.status() << std::endl;
      return 1;
    }
    if (json) std::cout << result->dump(2) << std::endl;
    return 0;
  }

  if (transfer->parsed()) {
    transfer_opt.huge_local_buffer = !small_pages;
    transfer_opt.block_sizes_bytes.clear();
    for (const std::string& text : transfer_sizes) {
      auto bytes = kvpool::ParseBytes(text);
      if (!bytes.ok()) {
        std::cerr << "kvpool-bench transfer: --sizes: " << bytes.status() << std::endl;
        return 2;
      }
      transfer_opt.block_sizes_bytes.push_back(*bytes);
    }
    auto result = RunTransferBench(transfer_opt, json);
    if (!result.ok()) {
      std::cerr << "kvpool-bench transfer: " << result.status() << std::endl;
      return 1;
    }
    if (json) std::cout << result->dump(2) << std::endl;
    return 0;
  }

  if (gpu->parsed()) {
    auto block = kvpool::ParseBytes(gpu_block);
    auto chunk = kvpool::ParseBytes(gpu_chunk);
    if (!block.ok() || !chunk.ok()) {
      std::cerr << "kvpool-bench gpu: " << (block.ok() ? chunk.status() : block.status())
                << std::endl;
      return 2;
    }
    gpu_opt.block_bytes = *block;
    gpu_opt.chunk_bytes = *chunk;
    auto result = RunGpuBench(gpu_opt, json);
    if (!result.ok()) {
      std::cerr << "kvpool-bench gpu: " << result.status() << std::endl;
      return 1;
    }
    if (json) std::cout << result->dump(2) << std::endl;
    return 0;
  }
  if (tiers->parsed()) {
    auto block = kvpool::ParseBytes(tiers_block);
    auto total = kvpool::ParseBytes(tiers_total);
    if (!block.ok() || !total.ok()) {
      std::cerr << "kvpool-bench tiers: " << (block.ok() ? total.status() : block.status())
                << std::endl;
      return 2;
    }
    tiers_opt.block_bytes = *block;
    tiers_opt.total_bytes = *total;
    auto result = RunTiersBench(tiers_opt, json);
    if (!result.ok()) {
      std::cerr << "kvpool-bench tiers: " << result.status() << std::endl;
      return 1;
    }
    if (json) std::cout << result->dump(2) << std::endl;
    return 0;
  }
  if (index->parsed()) {
    const auto result = RunIndexBench(index_opt, json);
    if (json) std::cout << result.dump(2) << std::endl;
    return 0;
  }
  if (sched->parsed()) {
    if (no_grpc) sched_opt.scheduler_binary.clear();
    auto result = RunSchedulerBench(sched_opt, json);
    if (!result.ok()) {
      std::cerr << "kvpool-bench scheduler: " << result.status() << std::endl;
      return 1;
    }
    if (json) std::cout << result->dump(2) << std::endl;
    return 0;
  }
  if (control->parsed()) {
    auto result = RunControlBench(control_opt, json);
    if (!result.ok()) {
      std::cerr << "kvpool-bench control: " << result.status() << std::endl;
      return 1;
    }
    if (json) std::cout << result->dump(2) << std::endl;
    return 0;
  }
  return 2;
}
