#include "bench/soak/soak_command.h"

#include <CLI/CLI.hpp>
#include <iostream>

namespace kvpool::bench {

void AddSoakOptions(CLI::App* sub, SoakOptions* o) {
  sub->add_option("--duration", o->duration_s, "Seconds of mixed load")->capture_default_str();
  sub->add_option("--clients", o->clients, "Client threads (a Client, DataPlane and scheduler "
                  "client each)")->capture_default_str();
  sub->add_option("--nodes", o->nodes, "kvpoold nodes (>= 2)")->capture_default_str();
  sub->add_option("--capacity", o->node_capacity, "Pool capacity per node")->capture_default_str();
  sub->add_option("--block-tokens", o->block_tokens, "Tokens per block")->capture_default_str();
  sub->add_option("--block-bytes", o->block_bytes, "Bytes per block")->capture_default_str();
  sub->add_option("--prompts", o->prompts, "Distinct prompts in the working set")
      ->capture_default_str();
  sub->add_option("--max-prompt-blocks", o->max_prompt_blocks, "Longest prompt, in blocks")
      ->capture_default_str();
  sub->add_option("--tls", o->ucx_tls, "UCX transports of nodes and clients ('' : UCX's choice)")
      ->capture_default_str();
  sub->add_option("--lease-ttl-ms", o->lease_ttl_ms, "The nodes' default lease TTL")
      ->capture_default_str();
  sub->add_option("--sample-ms", o->sample_interval_ms, "RSS/fd sampling and progress interval")
      ->capture_default_str();
  sub->add_option("--warmup", o->warmup_fraction, "Fraction of the run left out of the slopes")
      ->capture_default_str();
  sub->add_option("--seed", o->seed, "Seed of the operation mix")->capture_default_str();
  sub->add_option("--work-dir", o->work_dir, "Directory of the local cluster")
      ->capture_default_str();
}

int RunSoakCommand(const SoakOptions& opts, bool json) {
  Result<nlohmann::json> result = RunSoak(opts, json);
  if (!result.ok()) {
    std::cerr << "kvpool-bench soak: " << result.status() << std::endl;
    return 1;
  }
  if (json) std::cout << result->dump(2) << std::endl;
  return (*result)["ok"].get<bool>() ? 0 : 3;
}

}  // namespace kvpool::bench
