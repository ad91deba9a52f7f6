#include "daemon/peer_directory.h"

#include <grpcpp/grpcpp.h>

#include <chrono>
#include <utility>

#include "common/logging.h"
#include "common/quote.h"
#include "rpc/client_channel.h"

namespace kvpool::daemon {
namespace {


}  // namespace

PeerDirectory::PeerDirectory(PeerDirectoryOptions options, transport::TransferEngine* engine)
    : options_(std::move(options)), engine_(engine) {
  if (!options_.scheduler_address.empty()) {
    // Not waited for: the scheduler may come up later; each lookup tries again.
    scheduler_ = v1::Scheduler::NewStub(rpc::CreateChannel(
        options_.scheduler_address, ClientOptions().max_message_bytes, /*fast_reconnect=*/true));
  }
}

Result<PeerNode> PeerDirectory::Get(std::string_view node_id) {
  if (node_id.empty()) return InvalidArgumentError("the destination node id is empty");
  if (node_id == options_.self_node_id) {
    return InvalidArgumentError("node " + Quote(node_id) +
                                " is this node; a transfer needs another node");
  }
  {
    absl::MutexLock lock(&mu_);
    auto it = peers_.find(node_id);
    if (it != peers_.end()) {
      if (engine_->PeerStatus(it->second.endpoint).ok()) return it->second;
      // The peer's process died or its link broke: drop the endpoint and look it up afresh
      // (it may have restarted elsewhere, with a new worker address and region key).
      KVPOOL_LOG(INFO) << "peer " << node_id << " failed; reconnecting";
      engine_->Disconnect(it->second.endpoint).IgnoreError();
      peers_.erase(it);
    }
  }
  // Resolved outside the lock: lookups are gRPC round trips.
  KVPOOL_ASSIGN_OR_RETURN(std::string address, AddressOf(node_id));
  KVPOOL_ASSIGN_OR_RETURN(PeerNode peer, Connect(node_id, address));
  absl::MutexLock lock(&mu_);
  auto [it, inserted] = peers_.emplace(std::string(node_id), peer);
  if (!inserted) {
    // Another thread connected first: keep its endpoint. Close ours only if it is another one:
    // the engine hands out one endpoint per peer address, so both threads usually hold the same
    // and closing it would fail the winner's transfer (found by kvpool-bench soak).
    if (peer.endpoint != it->second.endpoint) engine_->Disconnect(peer.endpoint).IgnoreError();
    return it->second;
  }
  KVPOOL_LOG(INFO) << "peer " << node_id << " at " << address << " connected";
  return peer;
}

void PeerDirectory::Forget(std::string_view node_id) {
  absl::MutexLock lock(&mu_);
  auto it = peers_.find(node_id);
  if (it == peers_.end()) return;
  engine_->Disconnect(it->second.endpoint).IgnoreError();
  peers_.erase(it);
}

Result<std::string> PeerDirectory::AddressOf(std::string_view node_id) {
  if (auto it = options_.static_peers.find(std::string(node_id));
      it != options_.static_peers.end()) {
    return it->second;
  }
  if (scheduler_ == nullptr) {
    return NotFoundError("node " + Quote(node_id) +
                         " is unknown: it is not a --peer of this node and no --scheduler is set");
  }
  v1::ListNodesRequest req;
  v1::ListNodesResponse resp;
  if (Status st = rpc::CallUnary(*scheduler_, &v1::Scheduler::Stub::ListNodes, req, &resp,
                                 options_.rpc_timeout_ms);
      !st.ok()) {
    return UnavailableError("cannot look up node " + Quote(node_id) + " at the scheduler " +
                            options_.scheduler_address + ": " + std::string(st.message()));
  }
  for (const v1::NodeInfo& node : resp.nodes()) {
    if (node.node_id() != node_id) continue;
    if (!node.alive()) {
      return NotFoundError("node " + Quote(node_id) + " is dead according to the scheduler");
    }
    return node.address();
  }
  return NotFoundError("node " + Quote(node_id) + " is not registered with the scheduler " +
                       options_.scheduler_address);
}

Result<PeerNode> PeerDirectory::Connect(std::string_view node_id, const std::string& address) {
  std::shared_ptr<grpc::Channel> channel =
      rpc::CreateChannel(address, ClientOptions().max_message_bytes, /*fast_reconnect=*/true);
  // Unlike a client, a transfer fails at the first refused connection instead of retrying
  // until its deadline: the peer is down, and the caller should hear so now.
  KVPOOL_RETURN_IF_ERROR(rpc::WaitConnected(*channel, options_.rpc_timeout_ms,
                                            /*fail_on_refused=*/true,
                                            "node " + Quote(node_id), address));
  PeerNode peer;
  peer.node_id = std::string(node_id);
  peer.address = address;
  peer.stub = v1::MemPool::NewStub(channel);
  v1::GetDataPlaneRequest req;
  v1::GetDataPlaneResponse resp;
  if (Status st = rpc::CallUnary(*peer.stub, &v1::MemPool::Stub::GetDataPlane, req, &resp,
                                 options_.rpc_timeout_ms);
      !st.ok()) {
    return Status(st.code(), "node " + Quote(node_id) + " at " + address +
                                 ": GetDataPlane failed: " + std::string(st.message()));
  }
  if (resp.probe_rkey().empty()) {
    return FailedPreconditionError("node " + Quote(node_id) + " at " + address +
                                   " sent no per-slab data plane (an older kvpool?): upgrade "
                                   "every node together (docs/operations.md)");
  }
  peer.pool_base = resp.region_base();
  peer.pool_bytes = resp.region_bytes();
  peer.probe =
      transport::RemoteRegion{resp.probe_address(), resp.probe_bytes(), resp.probe_rkey()};
  Result<transport::PeerId> endpoint = engine_->Connect(resp.worker_address());
  if (!endpoint.ok()) {
    return Status(endpoint.status().code(),
                  "cannot open a data-plane endpoint to node " + Quote(node_id) + " at " +
                      address + ": " + std::string(endpoint.status().message()));
  }
  peer.endpoint = *endpoint;
  if (Status st = engine_->CompleteWireup(peer.endpoint, peer.probe, options_.rpc_timeout_ms);
      !st.ok()) {
    engine_->Disconnect(peer.endpoint).IgnoreError();
    return Status(st.code(), "data-plane handshake with node " + Quote(node_id) + " at " +
                                 address + " failed: " + std::string(st.message()));
  }
  return peer;
}

Result<std::string> PeerDirectory::Place(std::string_view ns, uint64_t n_blocks) {
  if (scheduler_ == nullptr) {
    return FailedPreconditionError(
        "no destination node given and no --scheduler set to choose one");
  }
  // The blocks are already here: the scheduler chooses among the other live nodes.
  v1::ListNodesResponse nodes;
  KVPOOL_RETURN_IF_ERROR(rpc::CallUnary(*scheduler_, &v1::Scheduler::Stub::ListNodes,
                                        v1::ListNodesRequest(), &nodes, options_.rpc_timeout_ms));
  v1::PlaceRequest req;
  req.set_namespace_(std::string(ns));
  req.set_n_blocks(n_blocks);
  for (const v1::NodeInfo& node : nodes.nodes()) {
    if (node.alive() && node.node_id() != options_.self_node_id) req.add_allowed_nodes(node.node_id());
  }
  if (req.allowed_nodes().empty()) {
    return FailedPreconditionError("the scheduler knows no other live node to place " +
                                   std::to_string(n_blocks) + " blocks of " + Quote(ns) + " on");
  }
  v1::PlaceResponse resp;
  KVPOOL_RETURN_IF_ERROR(rpc::CallUnary(*scheduler_, &v1::Scheduler::Stub::Place, req, &resp,
                                        options_.rpc_timeout_ms));
  return resp.node_id();
}

}  // namespace kvpool::daemon
