// `kvpool-bench replay`: a request trace replayed through a real local cluster (kvpool-scheduler
// and kvpoold nodes on loopback), once per caching mode and routing policy, side by side.
//
// Every pool operation is real (Route, ReportLoad, Lookup, Match, Get, PutAndInsert,
// TransferWithInsert, with their measured latency); GPU time is modelled
// (workload::ModelProfile) on a virtual clock, so a 1,000 s trace replays in seconds to minutes.
// KV bytes per token are the model's divided by kv_scale so the working set fits in memory;
// capacity is counted in tokens or blocks, so the scaling does not change hit rates.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvpool/status.h"
#include "workload/trace_gen.h"

namespace kvpool::bench {

struct ReplayOptions {
  /// Mooncake-format trace to replay; empty: generate one with `gen`. Default: "".
  std::string trace_path;
  workload::TraceGenOptions gen;
  /// Replay only the first this many requests; 0: all. Default: 0.
  uint32_t max_requests = 0;

  /// Binaries and the cluster's work dir (logs, data). Required.
  std::string kvpoold_binary;
  std::string scheduler_binary;
  std::string work_dir;
  /// kvpoold nodes and colocated instances (instance i lives on node i % nodes). Default: 4, 8.
  uint32_t nodes = 4;
  uint32_t instances = 8;
  /// Instances per role in `pd` runs: prefill instances come first (0, 1, ...), then decode
  /// ones, each on node i % nodes. 0: half of `instances` (rounded down) prefill, the rest
  /// decode. Defaults: 0, 0.
  uint32_t prefill_instances = 0;
  uint32_t decode_instances = 0;
  /// UCX transports of the data plane ("" : UCX's choice). Default: "".
  std::string ucx_tls;

  /// Compute profile (workload::ProfileByName). Default: "llama3-8b".
  std::string model = "llama3-8b";
  /// Pool block bytes = model KV bytes per token * block_tokens / kv_scale. Default: 1024.
  uint32_t kv_scale = 1024;
  /// Tokens per pool block. Default: 512 (the trace's hash-id granularity).
  uint32_t block_tokens = 512;
  /// Total pool capacity, split evenly over the nodes: in tokens (rounded up to whole blocks,
  /// so the same token count gives the same hit rates at any kv_scale), or in blocks, or as a
  /// fraction of the trace's distinct blocks. The first of capacity_tokens, capacity_blocks
  /// that is > 0 wins; else the fraction. Defaults: 0, 0, 0.10.
  uint64_t capacity_tokens = 0;
  uint64_t capacity_blocks = 0;
  double capacity_fraction = 0.10;
  /// SSD tier of each node, as a multiple of its host capacity (kvpoold --disk-capacity, in
  /// the node's data dir): cold blocks are demoted there instead of dropped, and DISK hits are
  /// priced with the tier's measured read bandwidth by the scheduler and the planner. 0: no
  /// SSD tier. Default: 0.
  double disk_capacity_factor = 0;
  /// With an SSD tier: each kvpoold's --write-behind (bytes, e.g. "64MiB"; "0": off); empty:
  /// kvpoold's default.
  std::string write_behind;
  /// Arrivals are compressed (or stretched) so that, if every prompt hit the cache as often as
  /// in one global LRU of the pool's capacity, instances would be busy this fraction of the
  /// time; time_scale > 0 sets the factor on timestamps directly. Defaults: 0.8, 0.
  double utilization = 0.8;
  double time_scale = 0;
  /// Modelled links: host memory to GPU on the instance's node, and node to node; bytes/s. And
  /// a fixed latency per load, in seconds. Defaults: 25e9, 12.5e9 (100 Gb/s), 20e-6.
  double local_bandwidth = 25e9;
  double link_bandwidth = 12.5e9;
  double load_latency_s = 20e-6;

  /// Caching modes and scheduler policies ("round_robin", "least_loaded", "prefix", "cost",
  /// "cache_aware") to compare; every pair runs. Modes: "no-cache"; "local" (an instance reads
  /// only its own node's blocks); "pooled" (and then the rest of the pooled prefix from any
  /// node); "pd" (disaggregated, MemServe's PD-caching: prefill_instances prefill with pooled
  /// caching, decode_instances decode; the prompt's KV moves to the decode instance's node with
  /// TransferWithInsert, which also caches it there, and once the decode ends the blocks its
  /// output completed go back to the prefill instance's node the same way). In every caching
  /// mode the decoding instance publishes those blocks (workload::DecodedBlockIds) on its node.
  std::vector<std::string> modes = {"no-cache", "local", "pooled", "pd"};
  std::vector<std::string> policies = {"round_robin", "least_loaded", "prefix", "cost",
                                       "cache_aware"};
  /// Write a gnuplot chart (hit rate and TTFT p90 per configuration) here; "" : none.
  std::string plot_path;
  /// Progress bar on stderr. Default: true.
  bool progress = true;

  /// Prefill and decode instance counts of `pd` runs, defaults applied.
  uint32_t PdPrefillInstances() const;
  uint32_t PdDecodeInstances() const;

  /// INVALID_ARGUMENT naming the bad field.
  Status Validate() const;
};

/// Runs every configuration; prints tables unless `quiet`; returns everything as JSON.
Result<nlohmann::json> RunReplay(const ReplayOptions& options, bool quiet);

}  // namespace kvpool::bench
