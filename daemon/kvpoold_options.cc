#include "daemon/kvpoold_options.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <iostream>
#include <string>
#include <vector>

#include "common/units.h"
#include "daemon/server_support.h"

namespace kvpool::daemon {
namespace {

std::string Hostname() {
  char buf[256] = {};
  if (gethostname(buf, sizeof(buf) - 1) != 0) return "kvpoold";
  return buf;
}

std::string HostOf(const std::string& address) {
  const auto colon = address.rfind(':');
  return colon == std::string::npos ? address : address.substr(0, colon);
}

// NAME=BYTES of --namespace-quota.
Status ParseQuota(const std::string& text, std::map<std::string, uint64_t>* out) {
  const auto eq = text.find('=');
  if (eq == std::string::npos || eq == 0 || eq + 1 == text.size()) {
    return InvalidArgumentError("namespace-quota must be NAMESPACE=BYTES, got '" + text + "'");
  }
  const std::string name = text.substr(0, eq);
  KVPOOL_ASSIGN_OR_RETURN(uint64_t bytes, ParseBytes(text.substr(eq + 1)));
  if (!out->emplace(name, bytes).second) {
    return InvalidArgumentError("namespace-quota of '" + name + "' is given twice");
  }
  return Status::Ok();
}

}  // namespace

bool IsWildcardAddress(const std::string& address) {
  const std::string host = HostOf(address);
  return host.empty() || host == "0.0.0.0" || host == "[::]" || host == "::" || host == "*" ||
         host == "[::0]" || host == "[0:0:0:0:0:0:0:0]";
}

std::string AdvertisedAddress(const KvpooldOptions& options, int bound_port) {
  if (!options.advertise_address.empty()) return options.advertise_address;
  if (IsWildcardAddress(options.listen)) return Hostname() + ":" + std::to_string(bound_port);
  return WithPort(options.listen, bound_port);
}

Status KvpooldOptions::Validate() const {
  if (!advertise_address.empty()) {
    const auto colon = advertise_address.rfind(':');
    const std::string port =
        colon == std::string::npos ? "" : advertise_address.substr(colon + 1);
    const bool numeric = !port.empty() && port.size() <= 5 &&
                         port.find_first_not_of("0123456789") == std::string::npos;
    if (colon == std::string::npos || colon == 0 || !numeric || std::stoi(port) == 0 ||
        std::stoi(port) > 65535) {
      return InvalidArgumentError("advertise-address must be HOST:PORT with a port in 1..65535, "
                                  "got '" + advertise_address + "'");
    }
    if (IsWildcardAddress(advertise_address)) {
      return InvalidArgumentError("advertise-address '" + advertise_address +
                                  "' is a wildcard address; give one peers can dial (the "
                                  "node's IP or DNS name)");
    }
    if (advertise_address.find_first_of(" \t/") != std::string::npos) {
      return InvalidArgumentError("advertise-address '" + advertise_address +
                                  "' is not HOST:PORT");
    }
  }
  if (disk_capacity_bytes > 0 && data_dir.empty()) {
    return InvalidArgumentError("disk-capacity " + std::to_string(disk_capacity_bytes) +
                                " needs a data-dir for the SSD tier");
  }
  KVPOOL_RETURN_IF_ERROR(ValidateListenAddress(listen));
  KVPOOL_RETURN_IF_ERROR(ValidateMaxMessageBytes(max_message_bytes));
  if (lease_sweep_interval_ms == 0) return InvalidArgumentError("lease-sweep-ms must be > 0");
  if (scheduler_heartbeat_ms == 0) {
    return InvalidArgumentError("scheduler-heartbeat-ms must be > 0");
  }
  if (!scheduler.empty()) {
    const auto sched_colon = scheduler.rfind(':');
    if (sched_colon == std::string::npos || sched_colon == 0 || sched_colon + 1 == scheduler.size()) {
      return InvalidArgumentError("scheduler must be host:port, got '" + scheduler + "'");
    }
  }
  if (transfer_timeout_ms == 0) return InvalidArgumentError("transfer-timeout-ms must be > 0");
  for (const auto& [id, address] : peers) {
    if (id.empty()) return InvalidArgumentError("peer '=" + address + "' has an empty node id");
    if (id == pool.node_id) {
      return InvalidArgumentError("peer '" + id + "' is this node's own --node-id");
    }
    const auto colon = address.rfind(':');
    if (colon == std::string::npos || colon == 0 || colon + 1 == address.size()) {
      return InvalidArgumentError("peer '" + id + "' must be ID=HOST:PORT, got address '" +
                                  address + "'");
    }
  }
  KVPOOL_RETURN_IF_ERROR(ops.Validate());
  return pool.Validate();
}

Result<std::optional<KvpooldOptions>> ParseKvpooldArgs(int argc, const char* const* argv) {
  KvpooldOptions opts;
  CLI::App app{"kvpoold: the kvpool node daemon (host-memory KV-block pool with a prompt-tree index)",
               "kvpoold"};
  app.set_config("--config", "", "Read options from this file (TOML: key = value; keys are the long flag names)");
  // A misspelt key in a config file is an error, not silently ignored (CLI11's default).
  app.allow_config_extras(CLI::config_extras_mode::error);
  app.set_version_flag("--version", "kvpoold 0.1.0");
  std::string capacity = "1GiB", slab = "auto", max_message = "64MiB", log_level = "info";
  std::string node_id;
  bool no_huge_pages = false;
  app.add_option("--listen", opts.listen, "gRPC address host:port (port 0: pick a free port)")
      ->capture_default_str();
  app.add_option("--advertise-address", opts.advertise_address,
                 "host:port peers and the scheduler dial to reach this node (default: --listen, "
                 "or the hostname when --listen is a wildcard address)")
      ->envname("KVPOOLD_ADVERTISE_ADDRESS");
  app.add_option("--port-file", opts.port_file, "Write the chosen port to this file once serving");
  app.add_option("--data-dir", opts.data_dir, "Directory for persistent state (created if missing)");
  std::string disk_capacity = "0";
  app.add_option("--disk-capacity", disk_capacity,
                 "Bytes of block data the SSD tier in --data-dir may hold (0: no SSD tier)")
      ->capture_default_str();
  std::string gpu_capacity = "0";
  app.add_option("--gpu-capacity", gpu_capacity,
                 "Bytes of CUDA device memory for the GPU tier (0: none; no device: host-only)")
      ->capture_default_str();
  app.add_option("--gpu-device", opts.gpu_device, "CUDA device ordinal of the GPU tier")
      ->capture_default_str()
      ->check(CLI::NonNegativeNumber);
  app.add_flag("--gpu-emulate", opts.gpu_emulate,
               "Testing aid: emulate the GPU tier's device memory in host RAM (no GPU needed)");
  std::string write_behind = "64MiB";
  app.add_option("--write-behind", write_behind,
                 "Bytes at the head of each namespace's eviction order kept written to the SSD "
                 "tier ahead of eviction, so that evicting them writes nothing (0: off)")
      ->capture_default_str();
  app.add_flag("--demote-on-shutdown,!--no-demote-on-shutdown", opts.demote_on_shutdown,
               "On SIGTERM/SIGINT, write host-memory blocks to the SSD tier first (default on)");
  // The last --node-id wins, so a launcher's default can be overridden by extra flags.
  app.add_option("--node-id", node_id, "Name of this node in stats (default: the hostname)")
      ->multi_option_policy(CLI::MultiOptionPolicy::TakeLast);
  app.add_option("--capacity", capacity, "Pool size in bytes (e.g. 4GiB)")->capture_default_str();
  app.add_flag("--no-huge-pages", no_huge_pages, "Do not try huge pages for the pool");
  app.add_option("--slab", slab,
                 "Slab size: the unit in which namespaces claim pool memory (auto: 32MiB, or "
                 "capacity/1024 when larger)")
      ->capture_default_str();
  app.add_option("--lease-ttl-ms", opts.pool.default_lease_ttl_ms,
                 "Lease time-to-live when a request gives none (ms)")
      ->capture_default_str();
  app.add_option("--max-lease-ttl-ms", opts.pool.max_lease_ttl_ms, "Longest lease a client may ask for (ms)")
      ->capture_default_str();
  app.add_option("--max-request-blocks", opts.pool.max_request_blocks,
                 "Most blocks one request may name")
      ->capture_default_str();
  app.add_option("--max-namespaces", opts.pool.max_namespaces, "Most namespaces at once")
      ->capture_default_str();
  app.add_option("--max-message", max_message, "Largest gRPC message accepted (bytes)")
      ->capture_default_str();
  app.add_option("--lease-sweep-ms", opts.lease_sweep_interval_ms,
                 "How often expired leases are swept (ms)")
      ->capture_default_str();
  app.add_option("--shutdown-grace-ms", opts.shutdown_grace_ms,
                 "After SIGTERM/SIGINT, how long calls in flight may finish (ms)")
      ->capture_default_str();
  app.add_option("--scheduler", opts.scheduler,
                 "kvpool-scheduler host:port to register with and stream KV events to");
  app.add_option("--scheduler-heartbeat-ms", opts.scheduler_heartbeat_ms,
                 "Interval between heartbeats to the scheduler (ms)")
      ->capture_default_str();
  bool no_data_plane = false;
  app.add_flag("--no-data-plane", no_data_plane,
               "Run without the UCX data plane (GetDataPlane then fails; plain pool memory)");
  app.add_option("--ucx-tls", opts.ucx_tls,
                 "UCX transports of the data plane, as UCX_TLS (e.g. tcp, shm); empty: UCX's choice");
  std::vector<std::string> peers;
  app.add_option("--peer", peers,
                 "Another kvpoold to transfer to, ID=HOST:PORT (repeatable; others are looked "
                 "up at the scheduler)");
  app.add_option("--transfer-timeout-ms", opts.transfer_timeout_ms,
                 "Time a node-to-node transfer may take when the request gives none (ms)")
      ->capture_default_str();
  app.add_option("--fault-pause-before-insert-ms", opts.fault_pause_before_insert_ms,
                 "Fault injection for tests: pause TransferWithInsert between the copy and the "
                 "destination's Insert (ms)")
      ->group("Fault injection");
  app.add_option("--log-level", log_level, "debug, info, warning or error")->capture_default_str();
  std::vector<std::string> quotas;
  app.add_option("--namespace-quota", quotas,
                 "Most host memory one namespace's blocks may hold, NAMESPACE=BYTES (repeatable; "
                 "0: no quota)");
  std::string default_quota = "0";
  app.add_option("--default-namespace-quota", default_quota,
                 "Quota of namespaces without a --namespace-quota (0: none)")
      ->capture_default_str();
  AddOpsFlags(app, &opts.ops);
  AddNamespaceTokensFlag(app, &opts.ops);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    if (e.get_exit_code() == 0) {
      app.exit(e);  // prints --help / --version
      return std::optional<KvpooldOptions>();
    }
    return InvalidArgumentError(e.what());
  }

  KVPOOL_ASSIGN_OR_RETURN(opts.pool.capacity_bytes, ParseBytes(capacity));
  if (slab == "auto") {
    opts.pool.slab_bytes = 0;
  } else {
    KVPOOL_ASSIGN_OR_RETURN(opts.pool.slab_bytes, ParseBytes(slab));
    if (opts.pool.slab_bytes == 0) {
      return InvalidArgumentError("--slab must be above 0 bytes, or auto; got '" + slab + "'");
    }
  }
  KVPOOL_ASSIGN_OR_RETURN(opts.disk_capacity_bytes, ParseBytes(disk_capacity));
  KVPOOL_ASSIGN_OR_RETURN(opts.pool.write_behind_bytes, ParseBytes(write_behind));
  KVPOOL_ASSIGN_OR_RETURN(opts.gpu_capacity_bytes, ParseBytes(gpu_capacity));
  KVPOOL_ASSIGN_OR_RETURN(opts.max_message_bytes, ParseBytes(max_message));
  KVPOOL_ASSIGN_OR_RETURN(opts.pool.default_namespace_quota_bytes, ParseBytes(default_quota));
  for (const std::string& q : quotas) {
    KVPOOL_RETURN_IF_ERROR(ParseQuota(q, &opts.pool.namespace_quota_bytes));
  }
  if (!ParseLogLevel(log_level, &opts.log_level)) {
    return InvalidArgumentError("log-level must be debug, info, warning or error, got '" +
                                log_level + "'");
  }
  opts.pool.huge_pages = !no_huge_pages;
  opts.data_plane = !no_data_plane;
  opts.pool.node_id = node_id.empty() ? Hostname() : node_id;
  for (const std::string& peer : peers) {
    const auto eq = peer.find('=');
    if (eq == std::string::npos) {
      return InvalidArgumentError("peer must be ID=HOST:PORT, got '" + peer + "'");
    }
    const std::string id = peer.substr(0, eq);
    if (!opts.peers.emplace(id, peer.substr(eq + 1)).second) {
      return InvalidArgumentError("peer '" + id + "' is given twice");
    }
  }
  KVPOOL_RETURN_IF_ERROR(opts.Validate());
  return std::optional<KvpooldOptions>(std::move(opts));
}

}  // namespace kvpool::daemon
