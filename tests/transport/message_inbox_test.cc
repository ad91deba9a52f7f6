// MessageInbox: the receiving side of two-sided transfers (no UCX involved).
#include "transport/message_inbox.h"

#include <catch2/catch.hpp>

#include <cstring>
#include <thread>
#include <vector>

namespace kvpool::transport::internal {
namespace {

using Clock = MessageInbox::Clock;

uint64_t Addr(std::vector<uint8_t>& v, size_t offset = 0) {
  return reinterpret_cast<uint64_t>(v.data() + offset);
}

Clock::time_point InAMinute() { return Clock::now() + std::chrono::minutes(1); }

TEST_CASE("MessageInbox: pieces in any order fill the windows, then Await ends the token",
          "[inbox]") {
  std::vector<uint8_t> memory(4096, 0);
  MessageInbox inbox;
  // Two windows with a gap between them that nobody may write.
  const uint64_t token = *inbox.Expect({{Addr(memory, 2048), 1024}, {Addr(memory, 0), 1024}},
                                       InAMinute());
  CHECK(token != 0);
  const std::vector<uint8_t> a(512, 0xaa), b(512, 0xbb), c(1024, 0xcc);
  REQUIRE(inbox.Deliver(token, Addr(memory, 2048 + 512), b.data(), b.size()).ok());
  REQUIRE(inbox.Deliver(token, Addr(memory, 0), c.data(), c.size()).ok());
  CHECK(inbox.Await(token, 0).code() == StatusCode::kDeadlineExceeded);  // half a window left
  REQUIRE(inbox.Deliver(token, Addr(memory, 2048), a.data(), a.size()).ok());
  REQUIRE(inbox.Await(token, 1000).ok());
  CHECK(memory[0] == 0xcc);
  CHECK(memory[1023] == 0xcc);
  CHECK(memory[1024] == 0);  // the gap
  CHECK(memory[2047] == 0);
  CHECK(memory[2048] == 0xaa);
  CHECK(memory[2048 + 512] == 0xbb);
  CHECK(memory[3071] == 0xbb);
  CHECK(memory[3072] == 0);
  // Ended: nothing more lands, and a second Await does not find it.
  CHECK(inbox.Deliver(token, Addr(memory, 0), c.data(), 1).code() == StatusCode::kNotFound);
  CHECK(inbox.Await(token, 0).code() == StatusCode::kNotFound);
  CHECK(inbox.pending() == 0);
}

TEST_CASE("MessageInbox: a message outside the windows or over delivered bytes copies nothing "
          "and fails the transfer",
          "[inbox]") {
  std::vector<uint8_t> memory(4096, 0);
  const std::vector<uint8_t> bytes(1024, 0x5a);
  MessageInbox inbox;
  SECTION("outside") {
    const uint64_t token = *inbox.Expect({{Addr(memory, 1024), 1024}}, InAMinute());
    // Straddles the window's end, then lies before it.
    Status st = inbox.Deliver(token, Addr(memory, 1536), bytes.data(), 1024);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(st.message()), Catch::Contains("outside"));
    CHECK(inbox.Deliver(token, Addr(memory, 0), bytes.data(), 16).code() ==
          StatusCode::kInvalidArgument);
    CHECK(inbox.Await(token, 0).code() == StatusCode::kInvalidArgument);
  }
  SECTION("overlapping") {
    const uint64_t token = *inbox.Expect({{Addr(memory, 0), 2048}}, InAMinute());
    REQUIRE(inbox.Deliver(token, Addr(memory, 512), bytes.data(), 512).ok());
    const Status st = inbox.Deliver(token, Addr(memory, 0), bytes.data(), 1024);
    CHECK(st.code() == StatusCode::kInvalidArgument);
    CHECK_THAT(std::string(st.message()), Catch::Contains("overlaps"));
    CHECK(memory[0] == 0);
    // The failure sticks: even a good piece is refused now.
    CHECK(!inbox.Deliver(token, Addr(memory, 1024), bytes.data(), 1024).ok());
    CHECK(inbox.Await(token, 0).code() == StatusCode::kInvalidArgument);
  }
  for (uint8_t b : memory) {
    if (b != 0 && b != 0x5a) FAIL("a byte outside every message changed");
  }
  CHECK(memory[4095] == 0);
}

TEST_CASE("MessageInbox: cancelled or expired tokens take nothing", "[inbox]") {
  std::vector<uint8_t> memory(1024, 0);
  const std::vector<uint8_t> bytes(1024, 0x11);
  MessageInbox inbox;
  const uint64_t cancelled = *inbox.Expect({{Addr(memory), 1024}}, InAMinute());
  inbox.Cancel(cancelled);
  CHECK(inbox.Deliver(cancelled, Addr(memory), bytes.data(), 1024).code() ==
        StatusCode::kNotFound);
  const uint64_t expired = *inbox.Expect({{Addr(memory), 1024}}, Clock::now());
  std::this_thread::sleep_for(std::chrono::milliseconds(2));
  CHECK(inbox.Deliver(expired, Addr(memory), bytes.data(), 1024).code() ==
        StatusCode::kDeadlineExceeded);
  CHECK(memory[0] == 0);
  // The next Expect forgets expired tokens.
  (void)*inbox.Expect({{Addr(memory), 1024}}, InAMinute());
  CHECK(inbox.pending() == 1);
}

TEST_CASE("MessageInbox: bad windows are refused", "[inbox]") {
  std::vector<uint8_t> memory(1024, 0);
  MessageInbox inbox;
  CHECK(inbox.Expect({}, InAMinute()).status().code() == StatusCode::kInvalidArgument);
  CHECK(inbox.Expect({{Addr(memory), 0}}, InAMinute()).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(inbox.Expect({{Addr(memory), 512}, {Addr(memory, 256), 512}}, InAMinute())
            .status()
            .code() == StatusCode::kInvalidArgument);
  CHECK(inbox.Expect({{UINT64_MAX - 10, 100}}, InAMinute()).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("MessageInbox: Await wakes when another thread delivers the last byte", "[inbox]") {
  std::vector<uint8_t> memory(64 << 10, 0);
  std::vector<uint8_t> bytes(1024);
  for (size_t i = 0; i < bytes.size(); ++i) bytes[i] = static_cast<uint8_t>(i);
  MessageInbox inbox;
  const uint64_t token = *inbox.Expect({{Addr(memory), memory.size()}}, InAMinute());
  Status delivered;  // Catch2 assertions stay on this thread
  std::thread sender([&] {
    for (size_t off = 0; off < memory.size() && delivered.ok(); off += bytes.size()) {
      delivered = inbox.Deliver(token, Addr(memory, off), bytes.data(), bytes.size());
    }
  });
  const Status st = inbox.Await(token, 10'000);
  sender.join();
  REQUIRE(delivered.ok());
  REQUIRE(st.ok());
  CHECK(std::memcmp(memory.data() + 63 * 1024, bytes.data(), bytes.size()) == 0);
}

}  // namespace
}  // namespace kvpool::transport::internal
