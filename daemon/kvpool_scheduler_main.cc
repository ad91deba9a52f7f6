// kvpool-scheduler: the global scheduler. Wiring only: options -> SchedulerService -> gRPC
// server, plus a thread that expires members whose heartbeats stopped.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>

#include <chrono>
#include <iostream>

#include "absl/synchronization/mutex.h"
#include "common/logging.h"
#include "daemon/kvpool_scheduler_options.h"
#include "daemon/metrics_scheduler.h"
#include "daemon/ops_setup.h"
#include "rpc/server_security.h"
#include "daemon/scheduler_service.h"
#include "daemon/server_support.h"
#include "daemon/shutdown_signal.h"

namespace kvpool::daemon {
namespace {


int Run(const KvpoolSchedulerOptions& opts) {
  SetLogLevel(opts.log_level);
  SchedulerService service(opts.service, SteadyClock::Default());
  Result<std::unique_ptr<OpsSetup>> ops =
      OpsSetup::Create(opts.ops, "kvpool-scheduler", rpc::SchedulerAdminMethods());
  if (!ops.ok()) {
    KVPOOL_LOG(ERROR) << ops.status();
    return 1;
  }
  if ((*ops)->metrics_server() != nullptr) {
    (*ops)->metrics_server()->Add(MakeSchedulerCollector([&service] { return service.Stats(); }));
  }

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  // gRPC sets SO_REUSEPORT by default: a second scheduler on a busy port would then start and
  // split the nodes between two indexes. Binding must fail instead.
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
  KVPOOL_LOG(INFO) << "kvpool-scheduler serving address=" << WithPort(opts.listen, port)
                   << " heartbeat_timeout_ms=" << opts.service.registry.node_timeout_ms
                   << " default_policy="
                   << scheduler::RoutePolicyName(opts.service.router.default_policy)
                   << " security=" << (*ops)->mode();
  std::cout << "kvpool-scheduler listening on " << WithPort(opts.listen, port) << std::endl;
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
    // Expires dead nodes and instances; a dead node's blocks leave the index.
    PeriodicTask expirer(opts.expire_interval_ms, [&service] {
      const scheduler::ExpiredMembers expired = service.ExpireDead();
      for (const std::string& node : expired.nodes) {
        KVPOOL_LOG(WARNING) << "node " << node << " missed its heartbeats: removed, blocks dropped";
      }
      for (const std::string& inst : expired.instances) {
        KVPOOL_LOG(WARNING) << "instance " << inst << " stopped reporting load: removed";
      }
    });
    const int signal_number = WaitForShutdownSignal();
    KVPOOL_LOG(INFO) << "received signal " << signal_number << ", shutting down";
    server->Shutdown(std::chrono::system_clock::now() +
                     std::chrono::milliseconds(opts.shutdown_grace_ms));
    server->Wait();
  }
  KVPOOL_LOG(INFO) << "kvpool-scheduler stopped";
  return 0;
}

}  // namespace
}  // namespace kvpool::daemon

int main(int argc, char** argv) {
  // Block the shutdown signals before any thread starts so that only sigwait sees them.
  kvpool::daemon::BlockShutdownSignals();
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  auto parsed = kvpool::daemon::ParseKvpoolSchedulerArgs(argc, argv);
  if (!parsed.ok()) {
    std::cerr << "kvpool-scheduler: " << parsed.status().message()
              << "\nRun with --help for usage.\n";
    return 2;
  }
  if (!parsed->has_value()) return 0;
  return kvpool::daemon::Run(**parsed);
}
