#include "launch/local_cluster.h"

#include <signal.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <thread>
#include <utility>

namespace kvpool::launch {
namespace {

constexpr const char* kStateFile = "cluster.json";

std::string StatePath(const std::string& work_dir) { return work_dir + "/" + kStateFile; }

nlohmann::json ToJson(const ClusterMember& m) {
  return {{"id", m.id}, {"binary", m.binary}, {"address", m.address}, {"pid", m.pid},
          {"log", m.log_path}};
}

ClusterMember MemberFromJson(const nlohmann::json& j) {
  ClusterMember m;
  m.id = j.at("id").get<std::string>();
  m.binary = j.at("binary").get<std::string>();
  m.address = j.at("address").get<std::string>();
  m.pid = j.at("pid").get<int>();
  m.log_path = j.at("log").get<std::string>();
  return m;
}

// argv[0] of a running process, or "" when it does not exist.
std::string ExecutableOf(int pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/cmdline", std::ios::binary);
  std::string argv0;
  std::getline(in, argv0, '\0');
  return argv0;
}

// Signals the members still running and waits for them to exit; returns how many ran.
size_t StopMembers(const std::vector<ClusterMember>& members, int timeout_ms) {
  size_t running = 0;
  for (const ClusterMember& m : members) {
    if (!MemberRunning(m)) continue;
    ++running;
    ::kill(m.pid, SIGTERM);
  }
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (const ClusterMember& m : members) {
    while (MemberRunning(m) && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    if (MemberRunning(m)) ::kill(m.pid, SIGKILL);
  }
  return running;
}

}  // namespace

bool MemberRunning(const ClusterMember& member) {
  if (member.pid <= 0) return false;
  // A detached member is not our child, so a zombie cannot linger: it is reaped by init.
  const std::string exe = ExecutableOf(member.pid);
  return !exe.empty() && exe == member.binary;
}

Result<ClusterState> ReadClusterState(const std::string& work_dir) {
  std::ifstream in(StatePath(work_dir));
  if (!in) return NotFoundError("no cluster state in '" + StatePath(work_dir) + "'");
  try {
    const nlohmann::json j = nlohmann::json::parse(in);
    ClusterState state;
    state.work_dir = j.at("work_dir").get<std::string>();
    if (j.contains("scheduler")) state.scheduler = MemberFromJson(j.at("scheduler"));
    for (const nlohmann::json& n : j.at("nodes")) state.nodes.push_back(MemberFromJson(n));
    return state;
  } catch (const nlohmann::json::exception& e) {
    return DataLossError("cannot parse '" + StatePath(work_dir) + "': " + e.what());
  }
}

Result<size_t> StopCluster(const std::string& work_dir, int timeout_ms) {
  KVPOOL_ASSIGN_OR_RETURN(ClusterState state, ReadClusterState(work_dir));
  // Nodes first: each deregisters from the scheduler on SIGTERM.
  size_t running = StopMembers(state.nodes, timeout_ms);
  running += StopMembers({state.scheduler}, timeout_ms);
  std::error_code ec;
  std::filesystem::remove(StatePath(work_dir), ec);
  return running;
}

Status LocalCluster::WriteState() const {
  nlohmann::json j;
  j["work_dir"] = state_.work_dir;
  if (state_.scheduler.pid > 0) j["scheduler"] = ToJson(state_.scheduler);
  j["nodes"] = nlohmann::json::array();
  for (const ClusterMember& n : state_.nodes) j["nodes"].push_back(ToJson(n));
  const std::string path = StatePath(state_.work_dir);
  const std::string tmp = path + ".tmp";
  {
    std::ofstream out(tmp);
    out << j.dump(2) << "\n";
    if (!out) return InternalError("cannot write '" + tmp + "'");
  }
  std::error_code ec;
  std::filesystem::rename(tmp, path, ec);
  if (ec) return InternalError("cannot write '" + path + "': " + ec.message());
  return Status::Ok();
}

Result<std::unique_ptr<LocalCluster>> LocalCluster::Start(const LocalClusterOptions& options) {
  if (options.kvpoold_binary.empty() || options.scheduler_binary.empty()) {
    return InvalidArgumentError("a local cluster needs the kvpoold and kvpool-scheduler binaries");
  }
  if (options.work_dir.empty()) return InvalidArgumentError("a local cluster needs a work_dir");
  if (options.nodes == 0) return InvalidArgumentError("a local cluster needs at least one node");
  if (Result<ClusterState> old = ReadClusterState(options.work_dir); old.ok()) {
    bool alive = MemberRunning(old->scheduler);
    for (const ClusterMember& n : old->nodes) alive = alive || MemberRunning(n);
    if (alive) {
      return FailedPreconditionError("a cluster already runs in '" + options.work_dir +
                                     "' (stop it first: kvpool-bench cluster down)");
    }
  }
  std::error_code ec;
  std::filesystem::create_directories(options.work_dir, ec);
  if (ec) return InternalError("cannot create '" + options.work_dir + "': " + ec.message());

  auto cluster = std::unique_ptr<LocalCluster>(new LocalCluster());
  cluster->options_ = options;
  cluster->state_.work_dir = std::filesystem::absolute(options.work_dir).string();
  const std::string& dir = cluster->state_.work_dir;
  const bool die_with_parent = !options.detach;

  std::vector<std::string> sched_argv = {options.scheduler_binary};
  sched_argv.insert(sched_argv.end(), options.scheduler_args.begin(), options.scheduler_args.end());
  KVPOOL_ASSIGN_OR_RETURN(LoopbackDaemon scheduler,
                          StartOnLoopback("kvpool-scheduler", std::move(sched_argv), dir,
                                          options.start_timeout_ms, die_with_parent));
  cluster->state_.scheduler = ClusterMember{"scheduler", options.scheduler_binary,
                                            scheduler.address, scheduler.process->pid(),
                                            scheduler.log_path};
  cluster->scheduler_ = std::move(scheduler.process);
  KVPOOL_RETURN_IF_ERROR(cluster->WriteState());

  for (uint32_t i = 0; i < options.nodes; ++i) {
    const std::string id = "node-" + std::to_string(i);
    const std::string node_dir = dir + "/" + id;
    std::vector<std::string> argv = {options.kvpoold_binary,
                                     "--node-id=" + id,
                                     "--data-dir=" + node_dir + "/data",
                                     "--capacity=" + options.node_capacity,
                                     "--scheduler=" + cluster->state_.scheduler.address,
                                     "--scheduler-heartbeat-ms=" +
                                         std::to_string(options.heartbeat_ms)};
    if (!options.ucx_tls.empty()) argv.push_back("--ucx-tls=" + options.ucx_tls);
    argv.insert(argv.end(), options.kvpoold_args.begin(), options.kvpoold_args.end());
    // On failure the destructor stops what was started (detached members included).
    KVPOOL_ASSIGN_OR_RETURN(LoopbackDaemon node,
                            StartOnLoopback("kvpoold", std::move(argv), node_dir,
                                            options.start_timeout_ms, die_with_parent));
    cluster->state_.nodes.push_back(ClusterMember{id, options.kvpoold_binary, node.address,
                                                  node.process->pid(), node.log_path});
    cluster->nodes_.push_back(std::move(node.process));
    KVPOOL_RETURN_IF_ERROR(cluster->WriteState());
  }
  if (options.detach) {
    // Complete: hand the processes over to StopCluster.
    for (auto& n : cluster->nodes_) n->Detach();
    cluster->scheduler_->Detach();
    cluster->detached_ = true;
  }
  return cluster;
}

LocalCluster::~LocalCluster() {
  if (detached_) return;
  // Nodes first (each deregisters from the scheduler), then the scheduler. This also cleans up
  // a detached cluster whose start failed half-way.
  for (auto& n : nodes_) n->Signal(SIGTERM);
  nodes_.clear();
  scheduler_.reset();
  std::error_code ec;
  std::filesystem::remove(StatePath(state_.work_dir), ec);
}

Status LocalCluster::KillNode(size_t index) {
  if (index >= nodes_.size()) {
    return InvalidArgumentError("no node " + std::to_string(index) + " in a cluster of " +
                                std::to_string(nodes_.size()));
  }
  nodes_[index]->Signal(SIGKILL);
  return nodes_[index]->Wait(5000).status();
}

}  // namespace kvpool::launch
