// kvpool-scheduler's command line and config file -> Options.
#pragma once

#include <cstdint>
#include <optional>
#include <string>

#include "common/logging.h"
#include "daemon/ops_options.h"
#include "daemon/scheduler_service.h"
#include "kvpool/status.h"

namespace kvpool::daemon {

/// Everything kvpool-scheduler is configured with. Flags and config-file keys share names; a
/// flag given on the command line wins over the file.
struct KvpoolSchedulerOptions {
  /// host:port to serve gRPC on; port 0 picks a free port. Default: "127.0.0.1:7800".
  std::string listen = "127.0.0.1:7800";
  /// If set, the chosen port is written to this file (atomically) once serving. Default: unset.
  std::string port_file;
  /// Largest gRPC message accepted, in bytes (node snapshots are the big ones). Default: 256 MiB.
  uint64_t max_message_bytes = 256ull << 20;
  /// How often dead members are looked for, in ms. Must be > 0. Default: 500.
  uint32_t expire_interval_ms = 500;
  /// How long calls in flight may finish after SIGTERM/SIGINT, in ms. Default: 1000.
  uint32_t shutdown_grace_ms = 1000;
  /// Lowest log level written. Default: info.
  LogLevel log_level = LogLevel::kInfo;
  /// Registry timeouts, routing policy and bandwidths, default namespace model.
  SchedulerServiceOptions service;
  /// /metrics, TLS and tokens (docs/monitoring.md, docs/security.md).
  OpsOptions ops;

  /// OK, or INVALID_ARGUMENT naming the bad field.
  Status Validate() const;
};

/// Parses one --namespace-model value, NAME:BLOCK_TOKENS:BLOCK_BYTES:TOKEN_S:ATTENTION_S
/// (e.g. "llama3-70b:16:5MiB:2e-4:4e-9"); INVALID_ARGUMENT naming the bad part.
Result<std::pair<std::string, scheduler::NamespaceModel>> ParseNamespaceModel(std::string_view text);

/// Parses argv (and the file named by --config). Returns nullopt after printing --help or
/// --version (the caller exits 0); INVALID_ARGUMENT with a readable message for bad input.
Result<std::optional<KvpoolSchedulerOptions>> ParseKvpoolSchedulerArgs(int argc,
                                                                       const char* const* argv);

}  // namespace kvpool::daemon
