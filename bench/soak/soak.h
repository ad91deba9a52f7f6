// `kvpool-bench soak`: many concurrent clients mixing every operation against a local cluster
// for a fixed time, with the daemons' memory and file descriptors sampled over the run and the
// pool's accounting checked at the end.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "kvpool/status.h"

namespace kvpool::bench {

struct SoakOptions {
  /// Paths of the binaries. Required.
  std::string kvpoold_binary;
  std::string scheduler_binary;
  /// Work directory of the local cluster (logs, state). Required.
  std::string work_dir;
  /// Length of the mixed load, in seconds. Default: 30.
  double duration_s = 30;
  /// Client threads, each with its own Client, DataPlane and SchedulerClient. Default: 8.
  uint32_t clients = 8;
  /// kvpoold nodes (>= 2: transfers need a second node). Default: 3.
  uint32_t nodes = 3;
  /// Pool capacity of each node (kvpoold --capacity). Small, so eviction runs. Default: "96MiB".
  std::string node_capacity = "96MiB";
  /// Tokens per block. Default: 16.
  uint32_t block_tokens = 16;
  /// Bytes per block. Default: 64 KiB.
  uint64_t block_bytes = 64 * 1024;
  /// Distinct prompts in the working set; they share prefixes in groups of 8. Default: 512.
  uint32_t prompts = 512;
  /// Longest prompt, in blocks (>= 5). Default: 16.
  uint32_t max_prompt_blocks = 16;
  /// kvpoold --ucx-tls and the clients' transports ("" : UCX's choice). Default: "".
  std::string ucx_tls;
  /// The nodes' default lease TTL (kvpoold --lease-ttl-ms), in ms: how long a lease left
  /// behind by a failed call lives. Default: 5000.
  uint32_t lease_ttl_ms = 5000;
  /// How often each daemon's RSS and fds are sampled and a progress line printed, in ms.
  /// Default: 1000.
  uint32_t sample_interval_ms = 1000;
  /// Samples of the first `warmup_fraction` of the run are left out of the slopes. Default: 0.2.
  double warmup_fraction = 0.2;
  /// Seed of the operation mix. Default: 1.
  uint64_t seed = 1;
  /// Progress lines on stderr. Default: true.
  bool progress = true;
};

/// Starts a cluster in options.work_dir, runs the load, stops the cluster, prints the tables
/// (unless `quiet`) and returns everything as JSON. The JSON's "ok" is false when the end-of-run
/// accounting differs anywhere or an unexpected error occurred (expected: RESOURCE_EXHAUSTED
/// of an allocation while the pool is full of pinned blocks). INVALID_ARGUMENT for bad options;
/// the cluster's start errors otherwise. Not reentrant (one soak per work_dir).
Result<nlohmann::json> RunSoak(const SoakOptions& options, bool quiet);

}  // namespace kvpool::bench
