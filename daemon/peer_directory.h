// How kvpoold finds the other kvpoold nodes it transfers to: node id -> gRPC address (from
// --peer flags, else the scheduler's ListNodes) -> the peer's data plane (GetDataPlane) -> a UCX
// endpoint of this node's transfer engine.
#pragma once

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <string_view>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "kvpool/status.h"
#include "kvpool/v1/mempool.grpc.pb.h"
#include "kvpool/v1/scheduler.grpc.pb.h"
#include "transport/transfer_engine.h"

namespace kvpool::daemon {

/// One peer node, ready for transfers. A snapshot: after a failure the directory hands out a
/// fresh one (new endpoint) once the peer is back.
struct PeerNode {
  std::string node_id;
  /// The peer's MemPool gRPC address and a stub on it (shared by every holder).
  std::string address;
  std::shared_ptr<v1::MemPool::Stub> stub;
  /// Address of the peer's pool offset 0 in its process; bytes of its pool. Each slab has its
  /// own key, which comes with the peer's blocks (BlockList.slab_keys).
  uint64_t pool_base = 0;
  uint64_t pool_bytes = 0;
  /// The peer's probe page (for the UCX handshake) and this engine's endpoint to it.
  transport::RemoteRegion probe;
  transport::PeerId endpoint{};
};

struct PeerDirectoryOptions {
  /// This node's id: a transfer to itself is refused. Required.
  std::string self_node_id;
  /// Statically known peers, node id -> host:port (kvpoold --peer). Default: none.
  std::map<std::string, std::string> static_peers;
  /// kvpool-scheduler's address to ask for the peers not listed above. Default: "" (none).
  std::string scheduler_address;
  /// Deadline of each gRPC call to a peer or the scheduler, in ms. Default: 5000.
  uint32_t rpc_timeout_ms = 5000;
};

/// Resolves node ids to ready PeerNodes and caches them. Nodes learned from the scheduler are
/// looked up again whenever the cache misses, so a peer that restarted on another port is
/// found again; a peer whose endpoint failed (PeerStatus) or that a caller Forget()s is
/// reconnected on its next use.
///
/// Thread-safe. Borrows `engine`, which must outlive the directory.
class PeerDirectory {
 public:
  PeerDirectory(PeerDirectoryOptions options, transport::TransferEngine* engine);

  /// The peer `node_id`, connected. INVALID_ARGUMENT for an empty id or this node's own id;
  /// NOT_FOUND when neither --peer nor the scheduler knows the id (or the scheduler shows it
  /// dead); UNAVAILABLE when the peer, its data plane or the scheduler cannot be reached;
  /// FAILED_PRECONDITION when the peer runs without a data plane.
  Result<PeerNode> Get(std::string_view node_id);
  /// Drops the cached peer (after a transfer to it failed); its endpoint is closed, so batches
  /// still running on it end CANCELLED. No-op for an unknown id.
  void Forget(std::string_view node_id);
  /// Asks the scheduler's Place which node should store `n_blocks` new blocks of `ns` (this
  /// node included). FAILED_PRECONDITION without a scheduler; its status otherwise.
  Result<std::string> Place(std::string_view ns, uint64_t n_blocks);

 private:
  Result<std::string> AddressOf(std::string_view node_id);
  Result<PeerNode> Connect(std::string_view node_id, const std::string& address);

  const PeerDirectoryOptions options_;
  transport::TransferEngine* const engine_;
  std::unique_ptr<v1::Scheduler::Stub> scheduler_;

  absl::Mutex mu_;
  std::map<std::string, PeerNode, std::less<>> peers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace kvpool::daemon
