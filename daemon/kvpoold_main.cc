// kvpoold: the per-node MemPool daemon. Wiring only: options -> MemPool -> gRPC server.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <filesystem>
#include <iostream>
#include <memory>
#include <optional>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "common/malloc_tuning.h"
#include "common/metrics.h"
#include "common/logging.h"
#include "common/units.h"
#include "daemon/event_publisher.h"
#include "daemon/kvpoold_options.h"
#include "daemon/mempool_service.h"
#include "daemon/metrics_node.h"
#include "daemon/ops_setup.h"
#include "daemon/node_transfer.h"
#include "daemon/peer_directory.h"
#include "transport/pool_memory.h"
#include "daemon/server_support.h"
#include "daemon/shutdown_signal.h"
#include "memory/device.h"
#include "memory/host_arena.h"
#include "node/mempool.h"
#include "storage/block_store.h"
#include "rpc/server_security.h"
#include "transport/staged_copier.h"
#include "transport/transfer_engine.h"

namespace kvpool::daemon {
namespace {

// How often the write-behind thread looks for blocks to write (docs/storage.md).
constexpr uint32_t kWriteBehindIntervalMs = 10;

Status PrepareDataDir(const std::string& dir) {
  if (dir.empty()) return Status::Ok();
  std::error_code ec;
  std::filesystem::create_directories(dir, ec);
  if (ec) return InvalidArgumentError("cannot create data-dir '" + dir + "': " + ec.message());
  return Status::Ok();
}


// Opens the SSD tier in data_dir/ssd and rebuilds the pool's DISK index and namespaces from it.
Status AttachSsdTier(const KvpooldOptions& opts, node::MemPool* pool) {
  storage::BlockStoreOptions sopts;
  sopts.path = (std::filesystem::path(opts.data_dir) / "ssd").string();
  sopts.capacity_bytes = opts.disk_capacity_bytes;
  sopts.count_on_open = false;  // AttachStore's recovery scan counts the bytes
  const auto start = std::chrono::steady_clock::now();
  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<storage::BlockStore> store,
                          storage::BlockStore::Open(sopts));
  KVPOOL_ASSIGN_OR_RETURN(node::RecoveryStats recovered, pool->AttachStore(std::move(store)));
  const auto ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                      std::chrono::steady_clock::now() - start).count();
  KVPOOL_LOG(INFO) << "SSD tier at " << sopts.path
                   << ": capacity=" << FormatBytes(opts.disk_capacity_bytes)
                   << " used=" << FormatBytes(recovered.bytes) << " recovered namespaces=" << recovered.namespaces
                   << " blocks=" << recovered.blocks << " dropped=" << recovered.dropped_blocks
                   << " in " << ms << " ms";
  return Status::Ok();
}

// Attaches the GPU tier when asked for and a device is there; otherwise says in one line why the
// node runs host-only. With a data plane, GPU blocks move through pinned staging (*staging).
void AttachGpuTier(const KvpooldOptions& opts, node::MemPool* pool,
                   transport::TransferEngine* engine,
                   std::unique_ptr<transport::StagedCopier>* staging) {
  Result<std::unique_ptr<memory::DeviceRuntime>> device =
      opts.gpu_emulate ? memory::NewEmulatedDevice() : memory::OpenCudaDevice(opts.gpu_device);
  if (!device.ok()) {
    KVPOOL_LOG(WARNING) << "GPU tier off, running host-only: " << device.status().message();
    return;
  }
  memory::DeviceRuntime* runtime = device->get();
  if (Status st = pool->AttachGpu(std::move(*device), opts.gpu_capacity_bytes); !st.ok()) {
    KVPOOL_LOG(WARNING) << "GPU tier off, running host-only: " << st;
    return;
  }
  if (engine == nullptr) return;
  // Debian's UCX has no CUDA transport: device bytes go through pinned host buffers. (A UCX
  // that reaches CUDA memory could register the device arena instead; see docs/gpu.md.)
  KVPOOL_LOG(INFO) << "GPU tier data path: "
                   << (engine->ReachesCudaMemory() ? "UCX reaches CUDA memory; staging anyway"
                                                   : "pinned staging (UCX has no CUDA transport)");
  Result<std::unique_ptr<transport::StagedCopier>> copier =
      transport::StagedCopier::Create(engine, runtime, transport::StagingOptions{});
  if (!copier.ok()) {
    KVPOOL_LOG(WARNING) << "GPU blocks cannot be transferred (no staging buffers): "
                        << copier.status();
    return;
  }
  *staging = std::move(*copier);
}

// Creates the UCX engine and the pool's memory: an address range in which each slab is mapped,
// when a namespace claims it, as its own UCX allocation with its own remote key (UCX may place
// it in shared memory that same-host peers map directly); then builds the pool on it.
Result<std::unique_ptr<node::MemPool>> CreateDataPlanePool(
    const KvpooldOptions& opts, std::unique_ptr<transport::TransferEngine>* engine,
    std::unique_ptr<transport::PoolMemory>* memory, std::optional<DataPlaneEndpoint>* endpoint) {
  transport::TransferEngineOptions eopts;
  eopts.tls = opts.ucx_tls;
  eopts.name = "kvpoold-" + opts.pool.node_id;
  KVPOOL_ASSIGN_OR_RETURN(*engine, transport::TransferEngine::Create(eopts));
  KVPOOL_ASSIGN_OR_RETURN(*memory,
                          transport::PoolMemory::Create(engine->get(), opts.pool.capacity_bytes));
  KVPOOL_ASSIGN_OR_RETURN(auto arena, (*memory)->Arena());
  const transport::RemoteRegion probe = (*memory)->probe();
  *endpoint = DataPlaneEndpoint{(*engine)->worker_address(), (*memory)->base_address(),
                                (*memory)->capacity_bytes(), probe.address, probe.size_bytes,
                                probe.rkey, memory->get()};
  KVPOOL_LOG(INFO) << "data plane: UCX tls=" << (opts.ucx_tls.empty() ? "(default)" : opts.ucx_tls)
                   << " pool=" << FormatBytes((*memory)->capacity_bytes())
                   << " reserved; slabs allocated through UCX, one remote key each";
  return node::MemPool::Create(opts.pool, SteadyClock::Default(), std::move(arena));
}

int Run(const KvpooldOptions& opts) {
  SetLogLevel(opts.log_level);
  // Before any channel is made: peers and the scheduler are called with this identity.
  Result<std::unique_ptr<OpsSetup>> ops =
      OpsSetup::Create(opts.ops, "kvpoold", rpc::MemPoolAdminMethods());
  if (!ops.ok()) {
    KVPOOL_LOG(ERROR) << ops.status();
    return 1;
  }
  if (Status st = PrepareDataDir(opts.data_dir); !st.ok()) {
    KVPOOL_LOG(ERROR) << st;
    return 1;
  }
  // Declared before the pool: the engine and the pool memory back the arena and must outlive
  // the pool.
  std::unique_ptr<transport::TransferEngine> engine;
  std::unique_ptr<transport::PoolMemory> pool_memory;
  std::optional<DataPlaneEndpoint> endpoint;
  Result<std::unique_ptr<node::MemPool>> pool = InvalidArgumentError("unset");
  if (opts.data_plane) {
    Result<std::unique_ptr<node::MemPool>> created =
        CreateDataPlanePool(opts, &engine, &pool_memory, &endpoint);
    if (!created.ok()) {
      KVPOOL_LOG(ERROR) << "cannot create the data plane: " << created.status()
                        << " (run with --no-data-plane to serve without one)";
      return 1;
    }
    pool = std::move(created);
  } else {
    pool = node::MemPool::Create(opts.pool, SteadyClock::Default());
  }
  if (!pool.ok()) {
    KVPOOL_LOG(ERROR) << "cannot create the pool: " << pool.status();
    return 1;
  }
  if (opts.disk_capacity_bytes > 0) {
    if (Status st = AttachSsdTier(opts, pool->get()); !st.ok()) {
      KVPOOL_LOG(ERROR) << "cannot open the SSD tier: " << st;
      return 1;
    }
  }
  std::unique_ptr<transport::StagedCopier> staging;
  if (opts.gpu_capacity_bytes > 0) AttachGpuTier(opts, pool->get(), engine.get(), &staging);
  // Node-to-node transfers: peers from --peer, else from the scheduler.
  std::unique_ptr<PeerDirectory> peers;
  std::unique_ptr<NodeTransfer> transfer;
  if (engine != nullptr) {
    PeerDirectoryOptions peer_options;
    peer_options.self_node_id = opts.pool.node_id;
    peer_options.static_peers = opts.peers;
    peer_options.scheduler_address = opts.scheduler;
    peers = std::make_unique<PeerDirectory>(std::move(peer_options), engine.get());
    NodeTransferOptions transfer_options;
    transfer_options.default_timeout_ms = opts.transfer_timeout_ms;
    transfer_options.fault_pause_before_insert_ms = opts.fault_pause_before_insert_ms;
    transfer = std::make_unique<NodeTransfer>(transfer_options, pool->get(), engine.get(),
                                              endpoint->region_base, peers.get(), staging.get());
  }
  MemPoolService service(pool->get(), endpoint, transfer.get());
  // The collectors read the pool, its memory and the service, declared before them: they stop
  // being served before those go.
  metrics::MetricsServer* metrics_server = (*ops)->metrics_server();
  std::vector<metrics::ScopedCollectable> collectors;
  if (metrics_server != nullptr) {
    collectors.emplace_back(metrics_server,
                            MakePoolCollector([p = pool->get()] { return p->GetStats(); }));
    collectors.emplace_back(metrics_server,
                            MakeDrainCollector([d = &service.drain()] { return d->draining(); }));
    if (pool_memory != nullptr) {
      collectors.emplace_back(metrics_server, MakeSlabCollector([m = pool_memory.get()] {
                                const transport::PoolMemory::Counts c = m->counts();
                                return SlabCounts{m->mapped_slabs(), c.idle_slabs, c.maps,
                                                  c.reuses, c.unmaps, c.lost_bytes};
                              }));
    }
  }
  // With a data dir, a drain survives a restart (the scheduler is told once it is connected).
  if (!opts.data_dir.empty()) {
    service.drain().PersistIn((std::filesystem::path(opts.data_dir) / "DRAINING").string());
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  // gRPC sets SO_REUSEPORT by default: a second daemon on a busy port would then start, and the
  // kernel would split clients between two pools. Binding must fail instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  builder.AddListeningPort(opts.listen, (*ops)->server_credentials(), &port);
  (*ops)->Instrument(builder);
  builder.SetMaxReceiveMessageSize(static_cast<int>(opts.max_message_bytes));
  builder.SetMaxSendMessageSize(static_cast<int>(opts.max_message_bytes));
  builder.RegisterService(&service);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (!server || port == 0) {
    KVPOOL_LOG(ERROR) << "cannot listen on " << opts.listen
                      << " (address in use, or not a valid host:port)";
    return 1;
  }
  const PoolStats stats = (*pool)->GetStats();
  const std::string advertised = AdvertisedAddress(opts, port);
  if (!opts.scheduler.empty() && opts.advertise_address.empty() &&
      IsWildcardAddress(opts.listen)) {
    KVPOOL_LOG(WARNING) << "listening on " << opts.listen << ": registering as " << advertised
                        << " with the scheduler; set --advertise-address to the address peers "
                           "should dial";
  }
  KVPOOL_LOG(INFO) << "kvpoold serving node_id=" << opts.pool.node_id
                   << " address=" << WithPort(opts.listen, port)
                   << (advertised != WithPort(opts.listen, port) ? " advertised=" + advertised
                                                                  : std::string())
                   << " capacity=" << FormatBytes(stats.capacity_bytes)
                   << " pages=" << stats.page_mode << " security=" << (*ops)->mode();
  std::cout << "kvpoold listening on " << WithPort(opts.listen, port) << std::endl;
  if ((*ops)->metrics_server() != nullptr) {
    KVPOOL_LOG(INFO) << "metrics at http://"
                     << WithPort(opts.ops.metrics_listen, (*ops)->metrics_server()->port())
                     << "/metrics";
  }
  if (!opts.port_file.empty()) {
    if (Status st = WritePortFile(opts.port_file, port); !st.ok()) {
      KVPOOL_LOG(ERROR) << st;
      server->Shutdown();
      return 1;
    }
  }

  {
    // Releases expired leases of an idle pool; operations also expire leases lazily.
    PeriodicTask sweeper(opts.lease_sweep_interval_ms, [pool = pool->get()] {
      if (size_t n = pool->ExpireLeases(); n > 0) KVPOOL_LOG(DEBUG) << "expired leases=" << n;
    });
    // Write-behind: keeps the blocks host eviction takes next written to the SSD tier, so that
    // allocations evict without disk writes (docs/storage.md). Each tick writes until nothing
    // is left to write or 100 ms have passed, so that shutdown never waits long for it.
    std::optional<PeriodicTask> write_behind;
    if ((*pool)->has_store() && opts.pool.write_behind_bytes > 0) {
      write_behind.emplace(kWriteBehindIntervalMs, [pool = pool->get(), last_error = Status()]() mutable {
        const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(100);
        while (std::chrono::steady_clock::now() < until) {
          Result<uint64_t> written = pool->WriteBehind();
          if (!written.ok()) {
            // Logged when it changes, not on every tick of a full tier.
            if (written.status().message() != last_error.message()) {
              KVPOOL_LOG(WARNING) << "write-behind: " << written.status();
            }
            last_error = written.status();
            break;
          }
          last_error = Status();
          if (*written == 0) break;
        }
      });
    }
    std::unique_ptr<EventPublisher> publisher;
    if (!opts.scheduler.empty()) {
      EventPublisherOptions popts;
      popts.scheduler_address = opts.scheduler;
      popts.node_id = opts.pool.node_id;
      popts.node_address = advertised;
      popts.capacity_bytes = opts.pool.capacity_bytes;
      popts.disk_capacity_bytes = opts.disk_capacity_bytes;
      if (endpoint.has_value()) popts.ucx_worker_address = endpoint->worker_address;
      popts.heartbeat_interval_ms = opts.scheduler_heartbeat_ms;
      publisher = std::make_unique<EventPublisher>(std::move(popts), pool->get());
      service.drain().SetReporter([p = publisher.get()](bool draining, uint32_t timeout_ms) {
        return p->ReportDraining(draining, timeout_ms);
      });
    }
    // The reporter goes before the publisher it calls (Drain calls have ended by then).
    struct ClearReporter {
      NodeDrain* drain;
      ~ClearReporter() { drain->SetReporter({}); }
    } clear_reporter{&service.drain()};
    const int signal_number = WaitForShutdownSignal();
    KVPOOL_LOG(INFO) << "received signal " << signal_number << ", shutting down";
    // New calls are refused at once; calls in flight get the grace period. gRPC also waits
    // that long for connected clients to go away, so the grace is kept short.
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(opts.shutdown_grace_ms));
    server->Wait();
    // No call can insert any more: every HOST block the SSD tier lacks is written to it (they
    // stay HOST until the process ends; the publisher then deregisters the node).
    write_behind.reset();
    if (opts.demote_on_shutdown && (*pool)->has_store()) {
      Result<uint64_t> demoted = (*pool)->DemoteAll();
      if (demoted.ok()) {
        KVPOOL_LOG(INFO) << "shutdown demotion: " << *demoted << " blocks written to the SSD tier";
      } else {
        KVPOOL_LOG(ERROR) << "shutdown demotion failed: " << demoted.status();
      }
    }
  }
  KVPOOL_LOG(INFO) << "kvpoold stopped";
  return 0;
}

}  // namespace
}  // namespace kvpool::daemon

int main(int argc, char** argv) {
  // Block the shutdown signals before any thread starts so that only sigwait sees them.
  kvpool::daemon::BlockShutdownSignals();
  // Debian builds abseil without NDEBUG, which leaves Mutex deadlock detection on: a lock-order
  // graph update on every acquisition. Tests keep it; the daemon does not pay for it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Block-sized read buffers (SSD tier promotions) reuse heap pages instead of faulting in
  // fresh ones each time.
  kvpool::TuneMallocForBlockBuffers();
  auto parsed = kvpool::daemon::ParseKvpooldArgs(argc, argv);
  if (!parsed.ok()) {
    std::cerr << "kvpoold: " << parsed.status().message() << "\nRun with --help for usage.\n";
    return 2;
  }
  if (!parsed->has_value()) return 0;
  return kvpool::daemon::Run(**parsed);
}
