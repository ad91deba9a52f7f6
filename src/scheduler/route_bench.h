// An in-process micro-benchmark of the scheduler: builds a global index from KV events with
// realistic prefix sharing, then times Route. Called by kvpool-bench; no main here, and nothing
// in the tests asserts its timings.
#pragma once

#include <cstddef>
#include <cstdint>

#include "scheduler/router.h"

namespace kvpool::scheduler {

struct RouteBenchOptions {
  /// Distinct blocks to index (one namespace). Default: 1,000,000.
  uint64_t indexed_blocks = 1'000'000;
  /// Pool nodes; one instance per node. Default: 16.
  uint32_t nodes = 16;
  /// Tokens per block. Default: 16.
  uint32_t block_tokens = 16;
  /// Blocks per prompt (stored and routed). Default: 128 (2K tokens of 16-token blocks).
  uint32_t prompt_blocks = 128;
  /// Distinct shared prefixes ("system prompts"), picked with Zipf(1) popularity. Default: 256.
  uint32_t shared_prefixes = 256;
  /// Blocks of each shared prefix. Default: 32.
  uint32_t shared_prefix_blocks = 32;
  /// Each shared prefix is stored on this many nodes. Default: 3.
  uint32_t prefix_replicas = 3;
  /// Fraction of stored prompts whose body is split across two nodes (a segment pulled and
  /// republished elsewhere). Default: 0.2.
  double split_fraction = 0.2;
  /// Fraction of routed prompts that repeat a stored prompt (full hit); the rest share only a
  /// prefix. Default: 0.7.
  double repeat_fraction = 0.7;
  /// Timed Route calls. Default: 200,000.
  uint32_t routes = 200'000;
  RoutePolicy policy = RoutePolicy::kCost;
  /// RouteRequest::explain (reason strings for every candidate). Default: false.
  bool explain = false;
  /// Default: 1.
  uint64_t seed = 1;
};

struct RouteBenchResult {
  uint64_t indexed_blocks = 0;
  uint64_t block_copies = 0;
  uint64_t index_bytes = 0;
  /// index_bytes / indexed_blocks.
  double bytes_per_block = 0;
  /// Block events applied per second while building (Stored events in batches of one prompt).
  double event_blocks_per_s = 0;
  uint64_t routes = 0;
  double routes_per_s = 0;
  double route_p50_us = 0;
  double route_p99_us = 0;
  double route_max_us = 0;
  /// Mean pooled prefix of the routed prompts, in blocks.
  double mean_pooled_prefix_blocks = 0;
};

/// Runs the benchmark single-threaded. Takes seconds and ~100 MB at the defaults.
RouteBenchResult RunRouteBench(const RouteBenchOptions& options);

}  // namespace kvpool::scheduler
