#include "bench/cluster_command.h"

#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <iostream>
#include <map>
#include <thread>

#include "common/table.h"
#include "kvpool/scheduler_client.h"

namespace kvpool::bench {
namespace {

nlohmann::json MemberJson(const launch::ClusterMember& m) {
  return {{"id", m.id},   {"address", m.address}, {"pid", m.pid},
          {"log", m.log_path}, {"running", launch::MemberRunning(m)}};
}

}  // namespace

std::string DefaultClusterDir() {
  const char* tmp = std::getenv("TMPDIR");
  const char* user = std::getenv("USER");
  return std::string(tmp != nullptr && *tmp != '\0' ? tmp : "/tmp") + "/kvpool-cluster-" +
         (user != nullptr && *user != '\0' ? user : std::to_string(::getuid()));
}

Status WaitClusterReady(const std::string& scheduler_address, uint32_t nodes, int timeout_ms) {
  KVPOOL_ASSIGN_OR_RETURN(auto sched, SchedulerClient::Connect(scheduler_address));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  std::string missing;
  for (;;) {
    Result<std::vector<PoolNode>> listed = sched->ListNodes();
    if (listed.ok()) {
      uint32_t ready = 0;
      missing.clear();
      for (const PoolNode& n : *listed) {
        if (n.alive && n.synced) {
          ++ready;
        } else {
          missing += (missing.empty() ? "" : ", ") + n.node_id;
        }
      }
      if (ready >= nodes) return Status::Ok();
      if (missing.empty()) missing = std::to_string(nodes - ready) + " not yet registered";
    }
    if (std::chrono::steady_clock::now() >= deadline) {
      return DeadlineExceededError("the scheduler at " + scheduler_address + " did not show " +
                                   std::to_string(nodes) + " synced nodes within " +
                                   std::to_string(timeout_ms) + " ms (waiting for: " + missing +
                                   ")");
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
}

Result<nlohmann::json> ClusterUp(const launch::LocalClusterOptions& options, bool quiet) {
  launch::LocalClusterOptions opts = options;
  opts.detach = true;
  if (!quiet) {
    std::cerr << "cluster: starting kvpool-scheduler and " << opts.nodes << " kvpoold in "
              << opts.work_dir << " ..." << std::endl;
  }
  KVPOOL_ASSIGN_OR_RETURN(auto cluster, launch::LocalCluster::Start(opts));
  if (Status st = WaitClusterReady(cluster->scheduler_address(), opts.nodes, opts.start_timeout_ms);
      !st.ok()) {
    launch::StopCluster(cluster->state().work_dir).status().IgnoreError();
    return st;
  }
  const launch::ClusterState& state = cluster->state();
  nlohmann::json out;
  out["work_dir"] = state.work_dir;
  out["scheduler"] = MemberJson(state.scheduler);
  out["nodes"] = nlohmann::json::array();
  for (const auto& n : state.nodes) out["nodes"].push_back(MemberJson(n));
  if (!quiet) {
    TextTable table({"MEMBER", "ADDRESS", "PID", "LOG"});
    table.AddRow({state.scheduler.id, state.scheduler.address,
                  std::to_string(state.scheduler.pid), state.scheduler.log_path});
    for (const auto& n : state.nodes) {
      table.AddRow({n.id, n.address, std::to_string(n.pid), n.log_path});
    }
    table.Print(std::cout);
    std::cout << "\ncluster ready. kvpoolctl -a " << state.nodes[0].address
              << " --scheduler " << state.scheduler.address
              << " nodes\nstop it with: kvpool-bench cluster down --dir " << state.work_dir
              << std::endl;
  }
  return out;
}

Result<nlohmann::json> ClusterDown(const std::string& work_dir, bool quiet) {
  KVPOOL_ASSIGN_OR_RETURN(size_t stopped, launch::StopCluster(work_dir));
  if (!quiet) std::cout << "cluster in " << work_dir << ": stopped " << stopped << " processes\n";
  return nlohmann::json{{"work_dir", work_dir}, {"stopped", stopped}};
}

Result<nlohmann::json> ClusterStatus(const std::string& work_dir, bool quiet) {
  KVPOOL_ASSIGN_OR_RETURN(launch::ClusterState state, launch::ReadClusterState(work_dir));
  // What the scheduler knows, when it answers.
  std::map<std::string, PoolNode> seen;
  std::string scheduler_error;
  if (launch::MemberRunning(state.scheduler)) {
    ClientOptions copts;
    copts.connect_timeout_ms = 2000;
    Result<std::unique_ptr<SchedulerClient>> sched =
        SchedulerClient::Connect(state.scheduler.address, copts);
    Result<std::vector<PoolNode>> listed =
        sched.ok() ? (*sched)->ListNodes() : Result<std::vector<PoolNode>>(sched.status());
    if (listed.ok()) {
      for (const PoolNode& n : *listed) seen[n.node_id] = n;
    } else {
      scheduler_error = std::string(listed.status().message());
    }
  } else {
    scheduler_error = "not running";
  }
  nlohmann::json out;
  out["work_dir"] = state.work_dir;
  out["scheduler"] = MemberJson(state.scheduler);
  if (!scheduler_error.empty()) out["scheduler"]["error"] = scheduler_error;
  out["nodes"] = nlohmann::json::array();
  TextTable table({"MEMBER", "ADDRESS", "PID", "RUNNING", "REGISTERED", "SYNCED", "BLOCKS"});
  table.AddRow({state.scheduler.id, state.scheduler.address, std::to_string(state.scheduler.pid),
                launch::MemberRunning(state.scheduler) ? "yes" : "no", "-", "-", "-"});
  for (const auto& n : state.nodes) {
    nlohmann::json j = MemberJson(n);
    auto it = seen.find(n.id);
    const bool registered = it != seen.end() && it->second.alive;
    j["registered"] = registered;
    j["synced"] = registered && it->second.synced;
    j["indexed_blocks"] = registered ? it->second.indexed_blocks.host : 0;
    out["nodes"].push_back(j);
    table.AddRow({n.id, n.address, std::to_string(n.pid), j["running"] ? "yes" : "no",
                  registered ? "yes" : "no", j["synced"] ? "yes" : "no",
                  std::to_string(j["indexed_blocks"].get<uint64_t>())});
  }
  if (!quiet) {
    table.Print(std::cout);
    if (!scheduler_error.empty()) std::cout << "scheduler: " << scheduler_error << "\n";
  }
  return out;
}

}  // namespace kvpool::bench
