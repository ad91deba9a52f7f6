// TransferEngine against a peer engine in a second process (this binary with --transport-peer),
// including kill -9 of the peer in the middle of a large transfer.
#include <signal.h>

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "transport/transfer_engine.h"
#include "transport_test_util.h"

namespace kvpool::transport {
namespace {

using testing::Address;
using testing::Bytes;
using testing::FillPattern;
using testing::HasPattern;
using testing::kKiB;
using testing::kMiB;
using testing::kPeerSeed;
using testing::PeerProcess;

constexpr int64_t kWaitMs = 10'000;

// True once every thread of `pid` is stopped (state T): SIGSTOP is delivered asynchronously, and
// a progress thread that runs on for a moment would still serve a request.
bool AllThreadsStopped(pid_t pid) {
  std::error_code ec;
  bool any = false;
  for (const auto& task :
       std::filesystem::directory_iterator("/proc/" + std::to_string(pid) + "/task", ec)) {
    std::ifstream in(task.path() / "stat");
    std::string stat((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
    const size_t close = stat.rfind(')');
    if (close == std::string::npos || close + 2 >= stat.size()) return false;
    const char state = stat[close + 2];
    if (state != 'T' && state != 't') return false;
    any = true;
  }
  return any && !ec;
}

std::unique_ptr<TransferEngine> MakeEngine(const std::string& tls) {
  auto engine = TransferEngine::Create(testing::LoopbackOptions(tls, "test-main"));
  REQUIRE(engine.ok());
  return std::move(engine).value();
}

TEST_CASE("TransferEngine: Put and Get reach a peer in another process", "[ucx]") {
  constexpr uint64_t kRegionBytes = 4 * kMiB;
  for (const std::string& tls : testing::TestTransports()) {
    for (bool allocate : {true, false}) {
      CAPTURE(tls, allocate);
      PeerProcess peer(tls, kRegionBytes, allocate);
      auto engine = MakeEngine(tls);
      auto local = engine->AllocateMemory(kRegionBytes);
      REQUIRE(local.ok());
      auto peer_id = engine->Connect(peer.info().worker_address);
      REQUIRE(peer_id.ok());
      const RemoteRegion& remote = peer.info().region;
      const std::vector<TransferOp> whole = {
          {Address(local->data), remote.address, kRegionBytes}};

      // The peer's bytes, written by the peer process.
      std::memset(local->data, 0, kRegionBytes);
      auto get = engine->Get(*peer_id, remote, whole);
      REQUIRE(get.ok());
      REQUIRE(get->Wait(kWaitMs).ok());
      CHECK(HasPattern(Bytes(*local), kPeerSeed));

      // Ours, written into the peer and read back.
      FillPattern(Bytes(*local), 4242);
      auto put = engine->Put(*peer_id, remote, whole);
      REQUIRE(put.ok());
      REQUIRE(put->Wait(kWaitMs).ok());
      std::memset(local->data, 0, kRegionBytes);
      get = engine->Get(*peer_id, remote, whole);
      REQUIRE(get.ok());
      REQUIRE(get->Wait(kWaitMs).ok());
      CHECK(HasPattern(Bytes(*local), 4242));
    }
  }
}

TEST_CASE("TransferEngine: kill -9 of the peer mid-transfer fails transfers within a bounded "
          "time, and the restarted peer is reachable",
          "[ucx]") {
  constexpr uint64_t kBlockBytes = 1 * kMiB;
  constexpr size_t kBlocks = 64;
  constexpr uint64_t kRegionBytes = kBlocks * kBlockBytes;
  for (const std::string& tls : testing::TestTransports()) {
    CAPTURE(tls);
    auto engine = MakeEngine(tls);
    auto local = engine->AllocateMemory(kRegionBytes);
    REQUIRE(local.ok());
    FillPattern(Bytes(*local), 9);

    auto peer = std::make_unique<PeerProcess>(tls, kRegionBytes, /*allocate=*/true);
    auto peer_id = engine->Connect(peer->info().worker_address);
    REQUIRE(peer_id.ok());
    RemoteRegion remote = peer->info().region;
    std::vector<TransferOp> ops;
    for (size_t i = 0; i < kBlocks; ++i) {
      ops.push_back({Address(local->data + i * kBlockBytes), remote.address + i * kBlockBytes,
                     kBlockBytes});
    }
    // Warm up (wire-up done), then start a large batch and kill the peer while it runs.
    auto warmup = engine->Put(*peer_id, remote, std::span(ops).first(1));
    REQUIRE(warmup.ok());
    REQUIRE(warmup->Wait(kWaitMs).ok());
    auto big = engine->Put(*peer_id, remote, ops);
    REQUIRE(big.ok());
    peer->process().Signal(SIGKILL);
    REQUIRE(peer->process().Wait(5000).ok());
    const auto killed_at = std::chrono::steady_clock::now();

    // The running batch ends (it may have finished before the kill): no hang.
    const Status big_status = big->Wait(kWaitMs);
    CAPTURE(big_status);
    CHECK(big_status.code() != StatusCode::kDeadlineExceeded);

    // Transfers after the kill fail as soon as the engine notices: at once on TCP, within the
    // keepalive interval (200 ms in these tests) on shared memory.
    Status failure;
    while (std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(10)) {
      auto probe = engine->Put(*peer_id, remote, std::span(ops).first(1));
      REQUIRE(probe.ok());
      failure = probe->Wait(kWaitMs);
      if (!failure.ok()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    const auto noticed_after = std::chrono::steady_clock::now() - killed_at;
    CAPTURE(failure, std::chrono::duration_cast<std::chrono::milliseconds>(noticed_after).count());
    CHECK(failure.code() == StatusCode::kUnavailable);
    CHECK(noticed_after < std::chrono::seconds(10));
    CHECK(testing::WaitForPeerFailure(*engine, *peer_id, 5000).code() ==
          StatusCode::kUnavailable);

    // The peer restarts (new process, new worker address, new region) and is reachable again.
    peer = std::make_unique<PeerProcess>(tls, kRegionBytes, /*allocate=*/true);
    auto new_id = engine->Connect(peer->info().worker_address);
    REQUIRE(new_id.ok());
    CHECK(*new_id != *peer_id);
    remote = peer->info().region;
    std::memset(local->data, 0, kBlockBytes);
    const std::vector<TransferOp> first_block = {
        {Address(local->data), remote.address, kBlockBytes}};
    auto get = engine->Get(*new_id, remote, first_block);
    REQUIRE(get.ok());
    REQUIRE(get->Wait(kWaitMs).ok());
    CHECK(HasPattern({local->data, kBlockBytes}, kPeerSeed));
  }
}

TEST_CASE("TransferEngine: a transfer to a hung peer times out in Wait, Disconnect cancels it, "
          "and the peer's death fails the next one",
          "[ucx]") {
  // TCP only: over shared memory a Put completes without any help from the peer process.
  constexpr uint64_t kBytes = 1 * kMiB;
  auto engine = MakeEngine("tcp");
  auto local = engine->AllocateMemory(kBytes);
  REQUIRE(local.ok());
  PeerProcess peer("tcp", kBytes, /*allocate=*/true);
  const RemoteRegion& remote = peer.info().region;
  const std::vector<TransferOp> ops = {{Address(local->data), remote.address, kBytes}};
  auto peer_id = engine->Connect(peer.info().worker_address);
  REQUIRE(peer_id.ok());
  auto warmup = engine->Put(*peer_id, remote, ops);
  REQUIRE(warmup.ok());
  REQUIRE(warmup->Wait(kWaitMs).ok());

  peer.process().Signal(SIGSTOP);
  const auto stop_deadline = std::chrono::steady_clock::now() + std::chrono::seconds(5);
  while (!AllThreadsStopped(peer.process().pid())) {
    REQUIRE(std::chrono::steady_clock::now() < stop_deadline);
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  auto stuck = engine->Put(*peer_id, remote, ops);
  REQUIRE(stuck.ok());
  CHECK(stuck->Wait(300).code() == StatusCode::kDeadlineExceeded);
  CHECK_FALSE(stuck->Poll());
  REQUIRE(engine->Disconnect(*peer_id).ok());
  CHECK(stuck->Wait(kWaitMs).code() == StatusCode::kCancelled);

  // Reconnect to the still-stopped peer, then kill it: the pending transfer fails.
  auto again = engine->Connect(peer.info().worker_address);
  REQUIRE(again.ok());
  CHECK(*again != *peer_id);
  auto doomed = engine->Put(*again, remote, ops);
  REQUIRE(doomed.ok());
  CHECK(doomed->Wait(200).code() == StatusCode::kDeadlineExceeded);
  peer.process().Signal(SIGKILL);
  const auto killed_at = std::chrono::steady_clock::now();
  const Status status = doomed->Wait(kWaitMs);
  CAPTURE(status);
  CHECK(status.code() == StatusCode::kUnavailable);
  CHECK(std::chrono::steady_clock::now() - killed_at < std::chrono::seconds(5));
}

}  // namespace
}  // namespace kvpool::transport
