// `kvpool-bench gen-trace`: writes a Mooncake-format trace made by kvpool's own generator
// (src/workload/trace_gen.h) and summarises it, so demos need no external trace file.
#pragma once

#include <string>

#include "workload/trace_gen.h"

namespace CLI {
class App;
}  // namespace CLI

namespace kvpool::bench {

/// Adds gen-trace's options to the subcommand `sub`, bound to `*opts` and `*out` (the trace
/// file path, required), with their defaults shown in --help. `opts` and `out` are borrowed
/// and must outlive parsing. Not thread-safe (CLI11 wiring).
void AddGenTraceOptions(CLI::App* sub, workload::TraceGenOptions* opts, std::string* out);

/// Generates the trace of `opts`, writes it to `out_path`, and prints a summary on stdout:
/// requests, duration, mean input/output tokens, distinct blocks, the reusable fraction (the
/// infinite-cache token hit rate), and the LRU and Belady hit rates at 10% of the distinct
/// blocks; a JSON object with `json`. Errors go to stderr. Returns the exit code: 0, 1 when
/// writing fails, 2 when the options are invalid.
int RunGenTrace(const workload::TraceGenOptions& opts, const std::string& out_path, bool json);

}  // namespace kvpool::bench
