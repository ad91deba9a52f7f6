#include "client/lib/lease_book.h"

#include <catch2/catch.hpp>
#include <string>
#include <thread>
#include <vector>

namespace kvpool::client_internal {
namespace {

constexpr uint64_t kBlockBytes = 4096;

std::vector<BlockLocation> Blocks(std::vector<BlockHandle> handles, uint64_t first_offset = 0) {
  std::vector<BlockLocation> out;
  for (size_t i = 0; i < handles.size(); ++i) {
    out.push_back(BlockLocation{handles[i], Tier::kHost, first_offset + i * kBlockBytes,
                                kBlockBytes});
  }
  return out;
}

StatusCode Code(const Status& st) { return st.code(); }

TEST_CASE("LeaseBook: allocated blocks may be written, inserted ones only read", "[client]") {
  LeaseBook book;
  const auto blocks = Blocks({11, 12, 13});
  CHECK(Code(book.Check(blocks, true)) == StatusCode::kFailedPrecondition);
  book.OnAllocated(1, 60'000, blocks);
  CHECK(book.Check(blocks, true).ok());
  CHECK(book.Check(blocks, false).ok());
  CHECK(book.LeaseOf(12) == 1);
  CHECK(book.WritableLeaseOf(12) == 1);
  // A read pin by another lease does not make a block writable under that lease.
  book.OnPinned(7, 60'000, Blocks({12}, kBlockBytes));
  CHECK(book.WritableLeaseOf(12) == 1);
  book.OnReleased(7);

  // Insert with keep_pinned: 11 and 12 were stored, 13 was a duplicate of cached block 99.
  const std::vector<BlockHandle> allocated = {11, 12, 13};
  const std::vector<BlockHandle> result = {11, 12, 99};
  book.OnInserted(1, allocated, result, /*keep_pinned=*/true);
  const auto first_two = Blocks({11, 12});
  CHECK(book.Check(first_two, false).ok());
  CHECK(book.WritableLeaseOf(11) == 0);
  const Status write = book.Check(first_two, true);
  CHECK(Code(write) == StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(write.message()), Catch::Contains("read-only"));
  // The duplicate's copy was freed: no longer held.
  CHECK(Code(book.Check(Blocks({13}, 2 * kBlockBytes), false)) ==
        StatusCode::kFailedPrecondition);

  // Without keep_pinned the lease holds nothing it inserted.
  book.OnAllocated(2, 60'000, Blocks({21}, 8 * kBlockBytes));
  const std::vector<BlockHandle> h21 = {21};
  book.OnInserted(2, h21, h21, /*keep_pinned=*/false);
  CHECK(Code(book.Check(Blocks({21}, 8 * kBlockBytes), false)) ==
        StatusCode::kFailedPrecondition);
}

TEST_CASE("LeaseBook: offsets must match, and freed or released blocks are refused", "[client]") {
  LeaseBook book;
  book.OnAllocated(1, 60'000, Blocks({1, 2}));
  auto forged = Blocks({1, 2});
  forged[1].offset = 0;
  const Status st = book.Check(forged, false);
  CHECK(Code(st) == StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(st.message()), Catch::Contains("not at the given"));
  forged = Blocks({1, 2});
  forged[0].length = 1;
  CHECK(Code(book.Check(forged, false)) == StatusCode::kFailedPrecondition);

  const std::vector<BlockHandle> one = {1};
  book.OnFreed(1, one);
  CHECK(Code(book.Check(Blocks({1}), true)) == StatusCode::kFailedPrecondition);
  CHECK(book.Check(Blocks({2}, kBlockBytes), true).ok());
  book.OnReleased(1);
  CHECK(Code(book.Check(Blocks({2}, kBlockBytes), false)) == StatusCode::kFailedPrecondition);
  CHECK(book.lease_count() == 0);
  CHECK(book.block_count() == 0);
}

TEST_CASE("LeaseBook: a block pinned by two leases stays readable until both end", "[client]") {
  LeaseBook book;
  const auto blocks = Blocks({5});
  book.OnPinned(1, 60'000, blocks);
  book.OnPinned(2, 60'000, blocks);
  CHECK(Code(book.Check(blocks, true)) == StatusCode::kFailedPrecondition);
  book.OnReleased(1);
  CHECK(book.Check(blocks, false).ok());
  book.OnReleased(2);
  CHECK(Code(book.Check(blocks, false)) == StatusCode::kFailedPrecondition);
  // Match without a lease reports lease 0: nothing to record.
  book.OnPinned(0, 60'000, blocks);
  CHECK(book.block_count() == 0);
}

TEST_CASE("LeaseBook: expired leases are refused, renewed ones are not, and are swept",
          "[client]") {
  LeaseBook book(/*sweep_interval=*/std::chrono::seconds(0));
  // TTLs well above the coarse clock's tick (its resolution is taken off every deadline), so
  // lease 1 is still live when lease 2's record sweeps.
  book.OnAllocated(1, 30, Blocks({1}));
  book.OnAllocated(2, 30, Blocks({2}, kBlockBytes));
  CHECK(book.Check(Blocks({1}), false).ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(50));
  const Status st = book.Check(Blocks({1}), false);
  CHECK(Code(st) == StatusCode::kFailedPrecondition);
  CHECK_THAT(std::string(st.message()), Catch::Contains("expired"));
  book.OnRenewed(2, 60'000);
  CHECK(book.Check(Blocks({2}, kBlockBytes), true).ok());
  CHECK(book.LeaseOf(1) == 0);
  // The next recorded lease sweeps the expired one (this book sweeps on every record).
  book.OnAllocated(3, 60'000, Blocks({3}, 2 * kBlockBytes));
  CHECK(book.lease_count() == 2);
  CHECK(book.block_count() == 2);
}

TEST_CASE("LeaseBook: the coarse clock never keeps a lease live past its TTL", "[client]") {
  // The node counts a lease's TTL from before its response left; the book must refuse no later
  // than TTL after the response arrived, by the precise clock, though it reads the coarse one.
  // Several leases, so some start late in a coarse tick (where an uncorrected deadline would
  // overshoot).
  LeaseBook book;
  constexpr auto kTtl = std::chrono::milliseconds(10);
  for (uint64_t lease = 1; lease <= 8; ++lease) {
    const auto arrived = std::chrono::steady_clock::now();
    book.OnAllocated(lease, static_cast<uint32_t>(kTtl.count()), Blocks({lease}));
    // The time is read before each Check, so a preemption after a Check cannot make the lease
    // look live later than it was seen live.
    auto last_live = arrived;
    for (auto now = arrived; now - arrived < std::chrono::seconds(1);) {
      now = std::chrono::steady_clock::now();
      if (!book.Check(Blocks({lease}), true).ok()) break;
      last_live = now;
    }
    INFO("lease " << lease);
    CHECK(last_live - arrived < kTtl);
    book.OnReleased(lease);
  }
  CHECK(LeaseBook::Clock::resolution() > std::chrono::nanoseconds(0));
}

}  // namespace
}  // namespace kvpool::client_internal
