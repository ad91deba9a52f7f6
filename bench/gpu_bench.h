// `kvpool-bench gpu`: the GPU tier's data path in one process: device memory to and from pool
// memory through pinned staging (StagedCopier over UCX), against cudaMemcpy between device and
// pinned host memory (the PCIe ceiling) and a UCX put of pinned host memory alone.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "kvpool/status.h"

namespace kvpool::bench {

struct GpuBenchOptions {
  /// Bytes per block. Default: 256 KiB.
  uint64_t block_bytes = 256 * 1024;
  /// Blocks per batch (one KV cache of a 16K-token prompt of a small model). Default: 64.
  uint32_t blocks = 64;
  /// Timed batches per direction. Default: 20.
  uint32_t rounds = 20;
  /// UCX transports between the device side and the pool. Default: "shm".
  std::string tls = "shm";
  /// CUDA device ordinal. Default: 0.
  int device = 0;
  /// Use the emulated device (host memory) instead of CUDA: exercises the path without a GPU;
  /// its figures are not GPU figures. Default: false.
  bool emulate = false;
  /// Staging chunk bytes and chunks in flight (StagingOptions). Defaults: 1 MiB, 4.
  uint64_t chunk_bytes = 1 << 20;
  uint32_t chunks_in_flight = 4;
};

/// Runs the benchmark; prints a table to stdout unless `quiet`; returns the results as JSON.
/// UNAVAILABLE without a CUDA device (unless emulate).
Result<nlohmann::json> RunGpuBench(const GpuBenchOptions& options, bool quiet);

}  // namespace kvpool::bench
