#include "bench/route_bench_cmd.h"

#include <iostream>

#include "common/table.h"

namespace kvpool::bench {

nlohmann::json RunRouteBenchCommand(const scheduler::RouteBenchOptions& opt, bool quiet) {
  if (!quiet) {
    std::cerr << "route: indexing " << opt.indexed_blocks << " blocks on " << opt.nodes
              << " nodes, then " << opt.routes << " routes ..." << std::endl;
  }
  const scheduler::RouteBenchResult r = scheduler::RunRouteBench(opt);
  if (!quiet) {
    std::cout << "\nroute: in-process scheduler, " << opt.nodes << " nodes/instances, "
              << opt.prompt_blocks << "-block prompts of " << opt.block_tokens << " tokens, "
              << (opt.explain ? "with" : "without") << " reason strings\n";
    TextTable t({"INDEXED BLOCKS", "COPIES", "INDEX B/blk", "EVENTS blk/s", "ROUTES/s", "p50 us",
                 "p99 us", "MAX us", "POOLED PREFIX"});
    t.AddRow({std::to_string(r.indexed_blocks), std::to_string(r.block_copies),
              FormatFixed(r.bytes_per_block, 1), FormatFixed(r.event_blocks_per_s, 0),
              FormatFixed(r.routes_per_s, 0), FormatFixed(r.route_p50_us, 2),
              FormatFixed(r.route_p99_us, 2), FormatFixed(r.route_max_us, 1),
              FormatFixed(r.mean_pooled_prefix_blocks, 1)});
    t.Print(std::cout);
    std::cout << "targets (DESIGN.md): >= 100k routes/s, p99 <= 100 us with 1M blocks; "
                 "<= 96 B/block\n";
  }
  return {{"benchmark", "route"},
          {"nodes", opt.nodes},
          {"prompt_blocks", opt.prompt_blocks},
          {"explain", opt.explain},
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
          {"mean_pooled_prefix_blocks", r.mean_pooled_prefix_blocks}};
}

}  // namespace kvpool::bench
