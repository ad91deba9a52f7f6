// TransferEngine's two-sided transfers (ExpectMessages, SendMessages, AwaitMessages): the path
// node-to-node transfers take on TCP-only links, where the target of a one-sided Put whose
// writer dies is aborted by UCX 1.13 (docs/transport.md).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <thread>
#include <vector>

#include "transport_test_util.h"

namespace kvpool::transport {
namespace {

using testing::Address;
using testing::FillPattern;
using testing::HasPattern;
using testing::kKiB;
using testing::kMiB;

LocalRegion AllocateRegion(TransferEngine& engine, uint64_t bytes) {
  Result<LocalRegion> region = engine.AllocateMemory(bytes);
  REQUIRE(region.ok());
  std::memset(region->data, 0, bytes);
  return *region;
}

Status SendAndWait(TransferEngine& engine, PeerId peer, const RemoteRegion& remote,
                   uint64_t token, std::vector<TransferOp> ops) {
  Result<TransferHandle> h = engine.SendMessages(peer, remote, token, ops);
  return h.ok() ? h->Wait(10'000) : h.status();
}

TEST_CASE("SendMessages: blocks land byte-exact in the receiver's windows and nowhere else",
          "[ucx]") {
  for (const std::string& tls : testing::TestTransports()) {
    CAPTURE(tls);
    testing::EnginePair pair = testing::MakeEnginePair(tls);
    const LocalRegion src = AllocateRegion(*pair.a, 4 * kMiB);
    const LocalRegion dst = AllocateRegion(*pair.b, 8 * kMiB);
    FillPattern({src.data, 4 * kMiB}, 7);
    // Three blocks of 1 MiB, 64 KiB and 4 KiB at scattered places of the receiver's region.
    const std::vector<MessageWindow> windows = {{Address(dst.data + 5 * kMiB), 1 * kMiB},
                                                {Address(dst.data + 64 * kKiB), 64 * kKiB},
                                                {Address(dst.data + 7 * kMiB), 4 * kKiB}};
    const uint64_t token = *pair.b->ExpectMessages(windows, 10'000);
    std::vector<TransferOp> ops;
    uint64_t src_offset = 0;
    for (const MessageWindow& w : windows) {
      ops.push_back({Address(src.data + src_offset), w.address, w.size_bytes});
      src_offset += w.size_bytes;
    }
    REQUIRE(SendAndWait(*pair.a, pair.a_to_b, dst.Describe(), token, ops).ok());
    REQUIRE(pair.b->AwaitMessages(token, 10'000).ok());
    src_offset = 0;
    uint64_t in_windows = 0;
    for (const MessageWindow& w : windows) {
      CHECK(std::memcmp(reinterpret_cast<const void*>(w.address), src.data + src_offset,
                        w.size_bytes) == 0);
      src_offset += w.size_bytes;
      in_windows += w.size_bytes;
    }
    uint64_t nonzero = 0;
    for (uint64_t i = 0; i < dst.size_bytes; ++i) nonzero += dst.data[i] != 0 ? 1 : 0;
    CHECK(nonzero <= in_windows);  // (the pattern has zero bytes too)
    CHECK(dst.data[5 * kMiB - 1] == 0);
    CHECK(dst.data[6 * kMiB] == 0);
    // The token ended with the Await: a second one does not find it.
    CHECK(pair.b->AwaitMessages(token, 0).code() == StatusCode::kNotFound);
  }
}

TEST_CASE("SendMessages: a message outside the windows is dropped and fails the transfer",
          "[ucx]") {
  testing::EnginePair pair = testing::MakeEnginePair("tcp");
  const LocalRegion src = AllocateRegion(*pair.a, 64 * kKiB);
  const LocalRegion dst = AllocateRegion(*pair.b, 1 * kMiB);
  FillPattern({src.data, 64 * kKiB}, 9);
  const MessageWindow window{Address(dst.data), 64 * kKiB};
  const uint64_t token = *pair.b->ExpectMessages({&window, 1}, 10'000);
  // Inside the receiver's region (the sender's check passes), outside the token's window.
  REQUIRE(SendAndWait(*pair.a, pair.a_to_b, dst.Describe(), token,
                      {{Address(src.data), Address(dst.data + 512 * kKiB), 64 * kKiB}})
              .ok());
  const Status st = pair.b->AwaitMessages(token, 10'000);
  CHECK(st.code() == StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(st.message()), Catch::Contains("outside"));
  CHECK(dst.data[512 * kKiB] == 0);
  CHECK(dst.data[512 * kKiB + 100] == 0);
  // A message for a token nobody expects lands nowhere either.
  REQUIRE(SendAndWait(*pair.a, pair.a_to_b, dst.Describe(), 12345,
                      {{Address(src.data), Address(dst.data), 64 * kKiB}})
              .ok());
  // Nothing waits for it; the region stays as it was (delivery is asynchronous: give it time).
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  CHECK(dst.data[0] == 0);
  CHECK(dst.data[1000] == 0);
}

TEST_CASE("ExpectMessages and SendMessages refuse bad arguments", "[ucx]") {
  testing::EnginePair pair = testing::MakeEnginePair("tcp");
  const LocalRegion dst = AllocateRegion(*pair.b, 64 * kKiB);
  std::vector<uint8_t> unregistered(4096);
  const MessageWindow outside{Address(unregistered.data()), 4096};
  CHECK(pair.b->ExpectMessages({&outside, 1}, 1000).status().code() ==
        StatusCode::kInvalidArgument);
  const MessageWindow past_end{Address(dst.data + 60 * kKiB), 8 * kKiB};
  CHECK(pair.b->ExpectMessages({&past_end, 1}, 1000).status().code() ==
        StatusCode::kInvalidArgument);
  const MessageWindow good{Address(dst.data), 4 * kKiB};
  CHECK(pair.b->ExpectMessages({&good, 1}, 0).status().code() == StatusCode::kInvalidArgument);
  const LocalRegion src = AllocateRegion(*pair.a, 4 * kKiB);
  const TransferOp op{Address(src.data), Address(dst.data), 4 * kKiB};
  CHECK(pair.a->SendMessages(pair.a_to_b, dst.Describe(), 0, {&op, 1}).status().code() ==
        StatusCode::kInvalidArgument);
  const TransferOp beyond{Address(src.data), Address(dst.data + 62 * kKiB), 4 * kKiB};
  CHECK(pair.a->SendMessages(pair.a_to_b, dst.Describe(), 1, {&beyond, 1}).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("SendMessages over tcp: a sender killed mid-stream leaves the receiver serving",
          "[ucx]") {
  // The receiver is this process. With one-sided Puts the same kill aborts the target in
  // about one run in five (docs/transport.md); with eager messages nothing acknowledges.
  auto engine = TransferEngine::Create(testing::LoopbackOptions("tcp", "receiver"));
  REQUIRE(engine.ok());
  constexpr uint64_t kRegion = 256 * kMiB;
  const LocalRegion dst = AllocateRegion(**engine, kRegion);
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    const MessageWindow all{Address(dst.data), kRegion};
    const uint64_t token = *(*engine)->ExpectMessages({&all, 1}, 60'000);
    char log[] = "/tmp/kvpool-sender-XXXXXX";
    const int fd = mkstemp(log);
    REQUIRE(fd >= 0);
    ::close(fd);
    // 1 MiB every 2 ms: the 256 MiB take over half a second, so the kill lands mid-stream.
    auto sender = testing::StartMessageSender("tcp", (*engine)->worker_address(),
                                              dst.Describe(), token, 1 * kMiB, 2, log);
    std::this_thread::sleep_for(std::chrono::milliseconds(150 + 50 * round));
    sender->Signal(SIGKILL);
    REQUIRE(sender->Wait(10'000).ok());
    const Status partial = (*engine)->AwaitMessages(token, 200);
    INFO(partial);
    CHECK(partial.code() == StatusCode::kDeadlineExceeded);  // some bytes, not all
    (*engine)->CancelMessages(token);
    std::remove(log);
  }
  // Still serving: a fresh sender fills a new token's window completely.
  auto other = TransferEngine::Create(testing::LoopbackOptions("tcp", "sender-2"));
  REQUIRE(other.ok());
  const PeerId peer = *(*other)->Connect((*engine)->worker_address());
  const LocalRegion src = AllocateRegion(**other, 1 * kMiB);
  FillPattern({src.data, 1 * kMiB}, 11);
  const MessageWindow window{Address(dst.data), 1 * kMiB};
  const uint64_t token = *(*engine)->ExpectMessages({&window, 1}, 10'000);
  REQUIRE(SendAndWait(**other, peer, dst.Describe(), token,
                      {{Address(src.data), Address(dst.data), 1 * kMiB}})
              .ok());
  REQUIRE((*engine)->AwaitMessages(token, 10'000).ok());
  CHECK(HasPattern({dst.data, 1 * kMiB}, 11));
}

}  // namespace
}  // namespace kvpool::transport
