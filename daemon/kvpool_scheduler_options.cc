#include "daemon/kvpool_scheduler_options.h"

#include <CLI/CLI.hpp>
#include <cstdlib>
#include <string_view>
#include <vector>
#include <iostream>

#include "common/units.h"
#include "daemon/server_support.h"

namespace kvpool::daemon {

Status KvpoolSchedulerOptions::Validate() const {
  KVPOOL_RETURN_IF_ERROR(ValidateListenAddress(listen));
  KVPOOL_RETURN_IF_ERROR(ValidateMaxMessageBytes(max_message_bytes));
  if (expire_interval_ms == 0) return InvalidArgumentError("expire-interval-ms must be > 0");
  KVPOOL_RETURN_IF_ERROR(ops.Validate());
  KVPOOL_RETURN_IF_ERROR(service.registry.Validate());
  KVPOOL_RETURN_IF_ERROR(service.router.Validate());
  return service.default_model.Validate();
}

Result<std::pair<std::string, scheduler::NamespaceModel>> ParseNamespaceModel(std::string_view text) {
  const std::string quoted = "'" + std::string(text) + "'";
  std::vector<std::string> parts;
  size_t start = 0;
  for (size_t colon; (colon = text.find(':', start)) != std::string_view::npos; start = colon + 1) {
    parts.emplace_back(text.substr(start, colon - start));
  }
  parts.emplace_back(text.substr(start));
  if (parts.size() != 5) {
    return InvalidArgumentError("namespace-model " + quoted +
                                " must be NAME:BLOCK_TOKENS:BLOCK_BYTES:TOKEN_S:ATTENTION_S");
  }
  scheduler::NamespaceModel model;
  auto number = [&](const std::string& part, const char* what, double* out) -> Status {
    char* end = nullptr;
    *out = std::strtod(part.c_str(), &end);
    if (part.empty() || end != part.c_str() + part.size()) {
      return InvalidArgumentError(std::string(what) + " '" + part + "' in namespace-model " +
                                  quoted + " is not a number");
    }
    return Status::Ok();
  };
  double block_tokens = 0;
  KVPOOL_RETURN_IF_ERROR(number(parts[1], "BLOCK_TOKENS", &block_tokens));
  if (block_tokens < 1 || block_tokens > 1'000'000 || block_tokens != static_cast<uint32_t>(block_tokens)) {
    return InvalidArgumentError("BLOCK_TOKENS '" + parts[1] + "' in namespace-model " + quoted +
                                " must be a whole number >= 1");
  }
  model.block_tokens = static_cast<uint32_t>(block_tokens);
  KVPOOL_ASSIGN_OR_RETURN(model.block_bytes, ParseBytes(parts[2]));
  KVPOOL_RETURN_IF_ERROR(number(parts[3], "TOKEN_S", &model.token_s));
  KVPOOL_RETURN_IF_ERROR(number(parts[4], "ATTENTION_S", &model.attention_s));
  if (parts[0].empty()) return InvalidArgumentError("namespace-model " + quoted + " has no NAME");
  KVPOOL_RETURN_IF_ERROR(model.Validate().WithContext("namespace-model " + quoted));
  return std::make_pair(parts[0], model);
}

Result<std::optional<KvpoolSchedulerOptions>> ParseKvpoolSchedulerArgs(int argc,
                                                                       const char* const* argv) {
  KvpoolSchedulerOptions opts;
  CLI::App app{"kvpool-scheduler: the kvpool global scheduler (registry, global prompt index, "
               "routing, placement)",
               "kvpool-scheduler"};
  app.set_config("--config", "",
                 "Read options from this file (TOML: key = value; keys are the long flag names)");
  // A misspelt key in a config file is an error, not silently ignored (CLI11's default).
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.set_version_flag("--version", "kvpool-scheduler 0.1.0");
  std::string max_message = "256MiB", log_level = "info", policy = "cost", block_bytes = "2MiB";
  int64_t heartbeat_timeout_ms = opts.service.registry.node_timeout_ms;
  int64_t instance_timeout_ms = opts.service.registry.instance_timeout_ms;
  double remote_bandwidth = opts.service.router.remote_bandwidth_bytes_per_s;
  double local_bandwidth = opts.service.router.local_bandwidth_bytes_per_s;
  double disk_bandwidth = opts.service.router.disk_bandwidth_bytes_per_s;
  app.add_option("--listen", opts.listen, "gRPC address host:port (port 0: pick a free port)")
      ->capture_default_str();
  app.add_option("--port-file", opts.port_file, "Write the chosen port to this file once serving");
  app.add_option("--heartbeat-timeout-ms", heartbeat_timeout_ms,
                 "A node silent this long is dead and its blocks leave the index (ms)")
      ->capture_default_str();
  app.add_option("--instance-timeout-ms", instance_timeout_ms,
                 "An instance without a load report this long is dead (ms)")
      ->capture_default_str();
  app.add_option("--expire-interval-ms", opts.expire_interval_ms,
                 "How often dead members are looked for (ms)")
      ->capture_default_str();
  app.add_option("--default-policy", policy,
                 "round_robin, least_loaded, prefix, cost or cache_aware")
      ->capture_default_str();
  app.add_option("--link-bandwidth", remote_bandwidth,
                 "Bandwidth between nodes, bytes/s (pulling blocks from another node)")
      ->capture_default_str();
  app.add_option("--local-bandwidth", local_bandwidth,
                 "Bandwidth from an instance's own node, bytes/s")
      ->capture_default_str();
  app.add_option("--disk-bandwidth", disk_bandwidth, "Disk tier read bandwidth, bytes/s")
      ->capture_default_str();
  app.add_option("--block-tokens", opts.service.default_model.block_tokens,
                 "Tokens per block of namespaces not configured otherwise")
      ->capture_default_str();
  app.add_option("--block-bytes", block_bytes,
                 "Bytes per block of namespaces not configured otherwise")
      ->capture_default_str();
  app.add_option("--token-s", opts.service.default_model.token_s,
                 "Prefill seconds per new token of namespaces not configured otherwise")
      ->capture_default_str();
  app.add_option("--attention-s", opts.service.default_model.attention_s,
                 "Prefill seconds per new token per context token (quadratic term), default model")
      ->capture_default_str();
  std::vector<std::string> namespace_models;
  app.add_option("--namespace-model", namespace_models,
                 "Cost model of one namespace, NAME:BLOCK_TOKENS:BLOCK_BYTES:TOKEN_S:ATTENTION_S "
                 "(repeatable)");
  app.add_option("--max-message", max_message, "Largest gRPC message accepted (bytes)")
      ->capture_default_str();
  app.add_option("--shutdown-grace-ms", opts.shutdown_grace_ms,
                 "After SIGTERM/SIGINT, how long calls in flight may finish (ms)")
      ->capture_default_str();
  app.add_option("--log-level", log_level, "debug, info, warning or error")->capture_default_str();
  AddOpsFlags(app, &opts.ops);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app.exit(e);  // prints --help / --version
      return std::optional<KvpoolSchedulerOptions>();
    }
    return InvalidArgumentError(e.what());
  }

  KVPOOL_ASSIGN_OR_RETURN(opts.max_message_bytes, ParseBytes(max_message));
  for (const std::string& text : namespace_models) {
    KVPOOL_ASSIGN_OR_RETURN(auto named, ParseNamespaceModel(text));
    opts.service.namespace_models.push_back(std::move(named));
  }
  KVPOOL_ASSIGN_OR_RETURN(opts.service.default_model.block_bytes, ParseBytes(block_bytes));
  if (!ParseLogLevel(log_level, &opts.log_level)) {
    return InvalidArgumentError("log-level must be debug, info, warning or error, got '" +
                                log_level + "'");
  }
  KVPOOL_ASSIGN_OR_RETURN(opts.service.router.default_policy, scheduler::ParseRoutePolicy(policy));
  opts.service.registry.node_timeout_ms = heartbeat_timeout_ms;
  opts.service.registry.instance_timeout_ms = instance_timeout_ms;
  opts.service.router.remote_bandwidth_bytes_per_s = remote_bandwidth;
  opts.service.router.local_bandwidth_bytes_per_s = local_bandwidth;
  opts.service.router.disk_bandwidth_bytes_per_s = disk_bandwidth;
  KVPOOL_RETURN_IF_ERROR(opts.Validate());
  return std::optional<KvpoolSchedulerOptions>(std::move(opts));
}

}  // namespace kvpool::daemon
