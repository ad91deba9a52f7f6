#include "bench/replay/replay_command.h"

#include <CLI/CLI.hpp>

#include "bench/cluster_command.h"

namespace kvpool::bench {

void AddReplayOptions(CLI::App* sub, ReplayOptions* opts) {
  sub->add_option("--trace", opts->trace_path,
                  "Mooncake-format trace (JSON lines); default: generate one (--gen-*)");
  sub->add_option("--max-requests", opts->max_requests, "Replay only the first N requests (0: all)")
      ->capture_default_str();
  sub->add_option("--gen-requests", opts->gen.requests, "Generated trace: requests")
      ->capture_default_str();
  sub->add_option("--gen-seed", opts->gen.seed, "Generated trace: seed")->capture_default_str();
  sub->add_option("--gen-rate", opts->gen.requests_per_s, "Generated trace: requests/s")
      ->capture_default_str();
  sub->add_option("--dir", opts->work_dir, "Work dir of the replay's cluster")
      ->capture_default_str();
  sub->add_option("--nodes", opts->nodes, "kvpoold nodes")->capture_default_str();
  sub->add_option("--instances", opts->instances, "Colocated instances (instance i on node i % nodes)")
      ->capture_default_str();
  sub->add_option("--prefill-instances", opts->prefill_instances,
                  "pd mode: prefill instances (0: half of --instances)")
      ->capture_default_str();
  sub->add_option("--decode-instances", opts->decode_instances,
                  "pd mode: decode instances (0: the rest of --instances)")
      ->capture_default_str();
  sub->add_option("--ucx-tls", opts->ucx_tls, "UCX transports of the data plane (empty: UCX's choice)");
  sub->add_option("--model", opts->model, "Compute profile: llama3-8b or llama2-13b")
      ->capture_default_str();
  sub->add_option("--kv-scale", opts->kv_scale, "Divide the model's KV bytes per token by this")
      ->capture_default_str();
  sub->add_option("--block-tokens", opts->block_tokens, "Tokens per pool block (divides 512)")
      ->capture_default_str();
  auto* fraction = sub->add_option("--capacity-fraction", opts->capacity_fraction,
                                   "Total pool capacity as a fraction of the trace's distinct "
                                   "blocks")
                       ->capture_default_str();
  auto* tokens = sub->add_option("--capacity-tokens", opts->capacity_tokens,
                                 "Total pool capacity in tokens (any --kv-scale gives the same "
                                 "hit rates)");
  auto* blocks = sub->add_option("--capacity-blocks", opts->capacity_blocks,
                                 "Total pool capacity in blocks of --block-tokens");
  tokens->excludes(blocks)->excludes(fraction);
  blocks->excludes(fraction);
  sub->add_option("--disk-capacity-factor", opts->disk_capacity_factor,
                  "Give each node an SSD tier this many times its host capacity (0: none)")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  sub->add_option("--write-behind", opts->write_behind,
                  "With --disk-capacity-factor: each node's kvpoold --write-behind (bytes; 0: "
                  "off; default: kvpoold's)");
  sub->add_option("--utilization", opts->utilization,
                  "Compress arrivals so instances would be busy this fraction of the time with "
                  "an infinite cache")
      ->capture_default_str();
  sub->add_option("--time-scale", opts->time_scale,
                  "Multiply trace timestamps by this instead (overrides --utilization)");
  sub->add_option("--local-bandwidth", opts->local_bandwidth,
                  "Modelled host-to-GPU bandwidth, bytes/s")
      ->capture_default_str();
  sub->add_option("--link-bandwidth", opts->link_bandwidth, "Modelled node-to-node bandwidth, bytes/s")
      ->capture_default_str();
  sub->add_option("--modes", opts->modes, "Caching modes: no-cache, local, pooled, pd")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--policies", opts->policies,
                  "Scheduler policies: round_robin, least_loaded, prefix, cost, cache_aware")
      ->delimiter(',')
      ->capture_default_str();
  sub->add_option("--plot", opts->plot_path, "Write a PNG chart (needs gnuplot)");
  sub->add_flag_callback("--no-progress", [opts] { opts->progress = false; },
                         "No progress bar on stderr");
}

void AddClusterOptions(CLI::App* sub, launch::LocalClusterOptions* opts) {
  sub->require_subcommand(1);
  auto* up = sub->add_subcommand("up", "Start a scheduler and N kvpoold on loopback, detached");
  up->add_option("--nodes", opts->nodes, "kvpoold nodes")->capture_default_str();
  up->add_option("--capacity", opts->node_capacity, "Pool capacity per node")->capture_default_str();
  up->add_option("--ucx-tls", opts->ucx_tls, "UCX transports of the data plane (empty: UCX's choice)");
  for (CLI::App* cmd : {up, sub->add_subcommand("down", "Stop the cluster recorded in --dir"),
                        sub->add_subcommand("status", "Show the cluster recorded in --dir")}) {
    cmd->add_option("--dir", opts->work_dir, "Work dir holding the cluster's state, logs, data")
        ->capture_default_str();
  }
}

}  // namespace kvpool::bench
