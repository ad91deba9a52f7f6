// `kvpool-bench scheduler`: the global scheduler's Route, in-process over a 1M-block index and
// through gRPC against a real kvpool-scheduler fed by a real kvpoold.
#pragma once

#include <cstdint>
#include <string>

#include <nlohmann/json.hpp>

#include "kvpool/status.h"
#include "scheduler/route_bench.h"

namespace kvpool::bench {

struct SchedulerBenchOptions {
  /// The in-process part (index size, nodes, prompts, routes, policy, explain).
  scheduler::RouteBenchOptions in_process;
  /// Binaries for the gRPC part; default: next to kvpool-bench. Empty skips the gRPC part.
  std::string scheduler_binary;
  std::string kvpoold_binary;
  /// Prompts published through the kvpoold for the gRPC part. Default: 200.
  uint32_t grpc_prompts = 200;
  /// Timed Route calls through gRPC. Default: 2000.
  uint32_t grpc_routes = 2000;
};

/// Runs both parts; prints a table unless `quiet`; returns JSON or the error that stopped it.
Result<nlohmann::json> RunSchedulerBench(const SchedulerBenchOptions& options, bool quiet);

}  // namespace kvpool::bench
