// Helpers of the transport tests: byte patterns, engine pairs on loopback, a peer engine in a
// second process, and the --transport-peer mode of the test binary that runs that peer.
#pragma once

#include <cstdint>
#include <memory>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "common/subprocess.h"
#include "kvpool/status.h"
#include "transport/transfer_engine.h"

namespace kvpool::transport::testing {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;

/// The transports every data-path test runs on. "shm" is UCX's alias for posix, sysv and cma.
inline const std::vector<std::string>& TestTransports() {
  static const std::vector<std::string> transports = {"tcp", "shm"};
  return transports;
}

/// Fills `bytes` with a pattern that depends on `seed` and on each byte's position, so a byte
/// copied to the wrong offset or from the wrong block is caught.
void FillPattern(std::span<uint8_t> bytes, uint64_t seed);
/// True when `bytes` hold FillPattern(bytes, seed); on a mismatch, `where` (if given) gets the
/// first differing offset.
bool HasPattern(std::span<const uint8_t> bytes, uint64_t seed, uint64_t* where = nullptr);

/// Engine options for loopback tests on `tls`, with a short keepalive so a dead peer reached
/// over shared memory is noticed within a second.
TransferEngineOptions LoopbackOptions(const std::string& tls, const std::string& name);

/// Two engines in this process, `a` connected to `b`. Destroys `a` before `b`.
struct EnginePair {
  std::unique_ptr<TransferEngine> b;
  std::unique_ptr<TransferEngine> a;
  PeerId a_to_b{};
};
/// REQUIREs success.
EnginePair MakeEnginePair(const std::string& tls);

/// Polls engine.PeerStatus(peer) until it is not OK or `timeout_ms` passed, and returns it. A
/// failed transfer can be reported a moment before the endpoint itself is marked failed.
Status WaitForPeerFailure(TransferEngine& engine, PeerId peer, int64_t timeout_ms);

/// Span over a LocalRegion's bytes.
inline std::span<uint8_t> Bytes(const LocalRegion& region) {
  return {region.data, static_cast<size_t>(region.size_bytes)};
}
inline uint64_t Address(const void* p) { return reinterpret_cast<uint64_t>(p); }

/// What the --transport-peer child publishes: its worker address and one region, filled with
/// FillPattern(kPeerSeed).
struct PeerInfo {
  std::string worker_address;
  RemoteRegion region;
};
constexpr uint64_t kPeerSeed = 0x5eed;

/// A TransferEngine in a child process (this test binary run with --transport-peer), with one
/// region of `region_bytes` (allocated through UCX when `allocate`, else registered heap
/// memory). The child lives until killed; the destructor kills it.
class PeerProcess {
 public:
  /// REQUIREs that the child starts and publishes its PeerInfo within 10 s.
  PeerProcess(const std::string& tls, uint64_t region_bytes, bool allocate);
  ~PeerProcess();
  PeerProcess(const PeerProcess&) = delete;
  PeerProcess& operator=(const PeerProcess&) = delete;

  const PeerInfo& info() const { return info_; }
  Subprocess& process() { return *process_; }

 private:
  std::string dir_;
  std::unique_ptr<Subprocess> process_;
  PeerInfo info_;
};

/// Entry point of `kvpool_transport_tests --transport-peer INFO_FILE TLS REGION_BYTES alloc|reg`:
/// creates the engine and region, writes PeerInfo to INFO_FILE (atomically, via rename) and
/// sleeps until killed. Returns a process exit code on failure.
int RunTransportPeer(int argc, char** argv);

/// A child that sends messages (TransferEngine::SendMessages) to this process: started with
/// the receiver's worker address, region and token, it sends `block_bytes` messages filled
/// with FillPattern(kPeerSeed) to consecutive offsets of the region, pausing `pause_ms` after
/// each, until the region is full (then it exits 0) or it is killed.
std::unique_ptr<Subprocess> StartMessageSender(const std::string& tls,
                                               const std::string& receiver_address,
                                               const RemoteRegion& region, uint64_t token,
                                               uint64_t block_bytes, int pause_ms,
                                               const std::string& log_path);
/// Entry point of `kvpool_transport_tests --message-sender ...` (StartMessageSender's child).
int RunMessageSender(int argc, char** argv);

}  // namespace kvpool::transport::testing
