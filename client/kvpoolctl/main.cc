// kvpoolctl: admin CLI for kvpoold. `kvpoolctl --help` lists the commands.
#include <CLI/CLI.hpp>
#include <iostream>

#include "client/kvpoolctl/commands.h"
#include "client/kvpoolctl/drain_command.h"
#include "client/kvpoolctl/metrics_command.h"
#include "client/kvpoolctl/scheduler_commands.h"
#include "client/kvpoolctl/swap_commands.h"
#include "kvpool/client.h"
#include "kvpool/scheduler_client.h"

int main(int argc, char** argv) {
  using namespace kvpool;
  ctl::GlobalFlags flags;
  CLI::App app{"kvpoolctl: administer a kvpool node (kvpoold) over gRPC", "kvpoolctl"};
  app.require_subcommand(1);
  app.fallthrough();  // global flags may also follow the subcommand
  app.add_option("-a,--address", flags.address, "kvpoold address host:port")->capture_default_str();
  app.add_flag("--json", flags.json, "Print JSON instead of tables");
  app.add_option("--timeout-ms", flags.timeout_ms, "Deadline of each call (ms)")->capture_default_str();

  std::string scheduler_address = "127.0.0.1:7800";
  app.add_option("--scheduler", scheduler_address,
                 "kvpool-scheduler address host:port (nodes, lookup, route)")
      ->capture_default_str();

  ClientOptions options;
  std::string token_file;
  app.add_flag("--tls", options.tls, "Connect with TLS (system CA roots unless --tls-ca)");
  app.add_option("--tls-ca", options.tls_ca_file, "PEM CA of the server's certificate (turns TLS on)");
  app.add_option("--tls-cert", options.tls_cert_file,
                 "PEM client certificate, for servers that require mutual TLS");
  app.add_option("--tls-key", options.tls_key_file, "PEM private key of --tls-cert");
  app.add_option("--token-file", token_file,
                 "File holding the bearer token to send (the admin token for evict, "
                 "delete-namespace, drain and undrain)");

  std::string metrics_target;
  auto* metrics_cmd = app.add_subcommand(
      "metrics", "Scrape a daemon's Prometheus /metrics and summarise it (no gRPC)");
  metrics_cmd->add_option("--target", metrics_target, "The daemon's --metrics-listen host:port")
      ->required();

  auto* status = app.add_subcommand("status", "Health and a summary of the node");
  auto* namespaces = app.add_subcommand("namespaces", "List namespaces");
  auto* stats = app.add_subcommand("stats", "Per-namespace counters: hits, misses, evictions");

  NamespaceSpec spec;
  auto* create = app.add_subcommand("create-namespace", "Create a namespace (idempotent)");
  create->add_option("name", spec.name, "Namespace name [A-Za-z0-9._-]")->required();
  create->add_option("--block-tokens", spec.block_tokens, "Tokens per block")->required();
  create->add_option("--block-bytes", spec.block_bytes, "Bytes of KV per block")->required();
  create->add_option("--salt", spec.salt, "Tenant salt: equal tokens under other salts never match");

  std::string delete_name;
  auto* del = app.add_subcommand("delete-namespace", "Delete a namespace and its blocks");
  del->add_option("name", delete_name, "Namespace name")->required();

  ctl::MatchFlags match;
  auto* match_cmd = app.add_subcommand("match", "Longest cached prefix of a prompt");
  match_cmd->add_option("namespace", match.ns, "Namespace name")->required();
  match_cmd->add_option("--tokens-file", match.tokens_file,
                        "File of token ids separated by spaces, commas or newlines (- for stdin)");
  match_cmd->add_option("--hashes", match.hashes, "Comma-separated 32-hex-digit block hashes");
  match_cmd->add_option("--start-block", match.start_block, "First block to match from");
  match_cmd->add_flag("--blocks", match.show_blocks, "Also list the matched blocks");

  std::string evict_ns;
  uint64_t evict_blocks = 0;
  auto* evict = app.add_subcommand("evict", "Evict cold unleased blocks");
  evict->add_option("n_blocks", evict_blocks, "How many blocks")->required();
  evict->add_option("--namespace", evict_ns, "Only this namespace (default: any)");

  ctl::DrainFlags drain_flags;
  CLI::App* drain_cmd = nullptr;
  CLI::App* undrain_cmd = nullptr;
  ctl::AddDrainCommands(app, &drain_flags, &drain_cmd, &undrain_cmd);

  ctl::SwapFlags swap_flags;
  CLI::App* swap_out_cmd = nullptr;
  CLI::App* swap_in_cmd = nullptr;
  ctl::AddSwapCommands(app, &swap_flags, &swap_out_cmd, &swap_in_cmd);

  auto* nodes_cmd = app.add_subcommand("nodes", "The pool's nodes as kvpool-scheduler sees them");
  auto* instances_cmd =
      app.add_subcommand("instances", "Inference instances and their load (scheduler)");
  uint32_t tree_top = 10;
  auto* tree_cmd = app.add_subcommand(
      "tree", "Global index: blocks, per node and namespace, memory, most replicated blocks");
  tree_cmd->add_option("--top", tree_top, "How many of the most replicated blocks to list")
      ->capture_default_str();
  auto add_prompt = [](CLI::App* cmd, ctl::PromptFlags* p) {
    cmd->add_option("namespace", p->ns, "Namespace name")->required();
    cmd->add_option("--tokens-file", p->tokens_file,
                    "File of token ids separated by spaces, commas or newlines (- for stdin)");
    cmd->add_option("--hashes", p->hashes, "Comma-separated 32-hex-digit block hashes");
    cmd->add_option("--block-tokens", p->block_tokens, "Tokens per block (hashing tokens)")
        ->capture_default_str();
    cmd->add_option("--salt", p->salt, "Namespace salt (hashing tokens)");
  };
  ctl::PromptFlags lookup;
  auto* lookup_cmd =
      app.add_subcommand("lookup", "Which nodes of the pool hold a prompt's blocks (scheduler)");
  add_prompt(lookup_cmd, &lookup);
  ctl::RouteFlags route;
  auto* route_cmd = app.add_subcommand("route", "Rank inference instances for a prompt (scheduler)");
  add_prompt(route_cmd, &route.prompt);
  route_cmd->add_option("--role", route.role, "prefill, decode or colocated (default: colocated)");
  route_cmd->add_option("--policy", route.policy,
                        "round_robin, least_loaded, prefix, cost or cache_aware (default: the "
                        "scheduler's)");
  route_cmd->add_option("--candidates", route.candidates, "Comma-separated instance ids");
  route_cmd->add_flag("--explain", route.explain, "Show why each instance ranks where it does");

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e) == 0 ? 0 : 2;
  }

  if (metrics_cmd->parsed()) return ctl::RunMetrics(flags, metrics_target);
  if (!token_file.empty()) {
    Result<std::string> token = ctl::ReadBearerToken(token_file);
    if (!token.ok()) return ctl::ReportError(flags, token.status());
    options.auth_token = *token;
  }
  options.timeout_ms = flags.timeout_ms;
  options.connect_timeout_ms = flags.timeout_ms;
  if (nodes_cmd->parsed() || instances_cmd->parsed() || tree_cmd->parsed() || lookup_cmd->parsed() ||
      route_cmd->parsed()) {
    Result<std::unique_ptr<SchedulerClient>> sched =
        SchedulerClient::Connect(scheduler_address, options);
    if (!sched.ok()) return ctl::ReportError(flags, sched.status());
    if (nodes_cmd->parsed()) return ctl::RunNodes(**sched, flags);
    if (instances_cmd->parsed()) return ctl::RunInstances(**sched, flags);
    if (tree_cmd->parsed()) return ctl::RunTree(**sched, flags, tree_top);
    if (lookup_cmd->parsed()) return ctl::RunLookup(**sched, flags, lookup);
    return ctl::RunRoute(**sched, flags, route);
  }
  Result<std::unique_ptr<Client>> client = Client::Connect(flags.address, options);
  if (!client.ok()) return ctl::ReportError(flags, client.status());
  Client& c = **client;

  if (status->parsed()) return ctl::RunStatus(c, flags);
  if (namespaces->parsed()) return ctl::RunNamespaces(c, flags);
  if (stats->parsed()) return ctl::RunStats(c, flags);
  if (create->parsed()) return ctl::RunCreateNamespace(c, flags, spec);
  if (del->parsed()) return ctl::RunDeleteNamespace(c, flags, delete_name);
  if (match_cmd->parsed()) return ctl::RunMatch(c, flags, match);
  if (evict->parsed()) return ctl::RunEvict(c, flags, evict_ns, evict_blocks);
  if (drain_cmd->parsed()) return ctl::RunDrain(c, flags, drain_flags);
  if (undrain_cmd->parsed()) return ctl::RunUndrain(c, flags);
  if (swap_out_cmd->parsed()) return ctl::RunSwapOut(c, flags, swap_flags);
  if (swap_in_cmd->parsed()) return ctl::RunSwapIn(c, flags, swap_flags);
  std::cerr << app.help() << std::endl;
  return 2;
}
