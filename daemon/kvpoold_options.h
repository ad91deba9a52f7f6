// kvpoold's command line and config file -> Options.
#pragma once

#include <cstdint>
#include <map>
#include <optional>
#include <string>

#include "common/logging.h"
#include "daemon/ops_options.h"
#include "kvpool/status.h"
#include "node/options.h"

namespace kvpool::daemon {

/// Everything kvpoold is configured with. Flags and config-file keys share names
/// (docs/configuration.md); a flag given on the command line wins over the file.
struct KvpooldOptions {
  /// host:port to serve gRPC on; port 0 picks a free port. Default: "127.0.0.1:7700".
  std::string listen = "127.0.0.1:7700";
  /// host:port peers and the scheduler use to reach this node: what it registers with the
  /// scheduler. Must name a real host (not 0.0.0.0 or ::) and a port in 1..65535. Default:
  /// unset: `listen` with the bound port, or, when `listen` is a wildcard address, this host's
  /// name with the bound port (AdvertisedAddress).
  std::string advertise_address;
  /// If set, the chosen port is written to this file (atomically) once serving. Default: unset.
  std::string port_file;
  /// Directory for the node's persistent state (created if missing); the SSD tier lives in
  /// data_dir/ssd. Default: unset (none).
  std::string data_dir;
  /// Bytes of block data the SSD tier may hold (docs/storage.md); 0: no SSD tier. Needs
  /// data_dir. Default: 0.
  uint64_t disk_capacity_bytes = 0;
  /// Bytes of device memory for the GPU tier (docs/gpu.md); 0: none. Without a CUDA device or
  /// driver (or in a build without CUDA) kvpoold logs why and runs host-only. Default: 0.
  uint64_t gpu_capacity_bytes = 0;
  /// CUDA device ordinal of the GPU tier. Default: 0.
  int gpu_device = 0;
  /// Testing aid: the GPU tier's "device" memory is host RAM (memory::NewEmulatedDevice), so
  /// every code path of the tier runs on a machine without a GPU. Not for production. Default:
  /// false.
  bool gpu_emulate = false;
  /// On SIGTERM/SIGINT, write the HOST blocks to the SSD tier before exiting. Default: true.
  bool demote_on_shutdown = true;
  /// Largest gRPC message accepted, in bytes. Default: 64 MiB.
  uint64_t max_message_bytes = 64ull << 20;
  /// How often expired leases are swept when the pool is idle, in ms. Default: 1000.
  uint32_t lease_sweep_interval_ms = 1000;
  /// How long calls in flight may finish after SIGTERM/SIGINT, in ms. Default: 1000.
  uint32_t shutdown_grace_ms = 1000;
  /// Lowest log level written. Default: info.
  LogLevel log_level = LogLevel::kInfo;
  /// kvpool-scheduler to register with and stream KV events to, host:port. Default: unset
  /// (the node works alone).
  std::string scheduler;
  /// Interval between heartbeats to the scheduler, in ms. Must be > 0. Default: 1000.
  uint32_t scheduler_heartbeat_ms = 1000;
  /// Run a UCX data plane: the pool arena is allocated through a transport::TransferEngine and
  /// published by GetDataPlane so clients Put/Get block bytes one-sided. Default: true.
  bool data_plane = true;
  /// UCX transports of the data plane, as UCX_TLS names them ("tcp", "shm", ...). Empty: UCX_TLS
  /// from the environment, else UCX's choice. Other UCX_* variables always pass through.
  /// Default: "" (empty).
  std::string ucx_tls;
  /// Other kvpoold nodes this node transfers to, node id -> host:port (--peer ID=HOST:PORT,
  /// repeatable). Nodes not listed are looked up at the scheduler. Default: none.
  std::map<std::string, std::string> peers;
  /// Time a Transfer or TransferWithInsert may take when the request gives none, in ms. Must
  /// be > 0. Default: 30000.
  uint32_t transfer_timeout_ms = 30'000;
  /// Fault injection (tests only): see NodeTransferOptions::fault_pause_before_insert_ms.
  /// Default: 0.
  uint32_t fault_pause_before_insert_ms = 0;
  /// The pool itself.
  node::MemPoolOptions pool;
  /// /metrics, TLS and tokens (docs/monitoring.md, docs/security.md).
  OpsOptions ops;

  /// OK, or INVALID_ARGUMENT naming the bad field.
  Status Validate() const;
};

/// The address this node registers with the scheduler once it listens on `bound_port`:
/// advertise_address if set, else `listen` with the bound port, else (listen on a wildcard
/// address) this host's name with the bound port.
std::string AdvertisedAddress(const KvpooldOptions& options, int bound_port);
/// True for a listen address on every interface (0.0.0.0, [::], ::, *, or an empty host).
bool IsWildcardAddress(const std::string& address);

/// Parses argv (and the file named by --config). Returns nullopt after printing --help or
/// --version (the caller exits 0); INVALID_ARGUMENT with a readable message for bad input.
Result<std::optional<KvpooldOptions>> ParseKvpooldArgs(int argc, const char* const* argv);

}  // namespace kvpool::daemon
