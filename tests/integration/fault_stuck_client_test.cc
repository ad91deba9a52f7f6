// Fault injection: a client that stops answering while it holds leases. One is a real process
// (kvpool_it_putter) frozen with SIGSTOP in the middle of its Puts, the node pulling from it over
// TCP; the other a connection that took a read lease and went quiet. The node keeps serving
// everyone else at once, and both clients' leases expire and give all their memory back.
#include <signal.h>
#include <sys/wait.h>

#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "kvpool/data_plane.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kBlockTokens = 16;
constexpr uint64_t kBlockBytes = 1 << 20;
constexpr uint32_t kStuckLeaseTtlMs = 3'000;
constexpr uint32_t kPutterBlocks = 24;
constexpr uint32_t kPinnedBlocks = 8;
constexpr uint32_t kDeadlineMs = 2'000;

// Runs `call` and REQUIREs that it returned within the deadline (plus slack for a loaded
// machine): a stuck client must not make anyone else wait.
template <typename F>
auto Prompt(const char* what, F&& call) {
  const auto t0 = Clock::now();
  auto result = call();
  const auto ms =
      std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count();
  INFO(what << " took " << ms << " ms -> " << internal::AsStatus(result).ToString());
  CHECK(ms <= kDeadlineMs + 2'000);
  return result;
}

}  // namespace

TEST_CASE("Fault: a frozen client process and an idle connection holding leases stall no one "
          "else, and their leases expire",
          "[ucx][fault]") {
  DaemonConfig config;
  config.capacity = "64MiB";
  config.extra_args = {"--ucx-tls=tcp", "--lease-sweep-ms=100"};
  TestDaemon node(config);
  const std::string ns = "stuck";
  KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace({ns, kBlockTokens, kBlockBytes, ""}));
  const uint64_t capacity_blocks = KVPOOL_IT_VALUE(node.client().GetStats()).capacity_bytes /
                                   kBlockBytes;
  REQUIRE(capacity_blocks > kPutterBlocks + kPinnedBlocks + 8);

  // A cached prompt that the idle connection will pin.
  const std::vector<uint32_t> pinned = MakeTokens(kPinnedBlocks * kBlockTokens, 1);
  {
    const Allocation alloc = KVPOOL_IT_VALUE(node.client().AllocMem(ns, kPinnedBlocks));
    KVPOOL_IT_REQUIRE_OK(node.client().Insert(ns, PromptView::Tokens(pinned), 0, HandlesOf(alloc),
                                              alloc.lease.id));
    KVPOOL_IT_REQUIRE_OK(node.client().Release(alloc.lease.id));
  }

  // The putter allocates and Puts in a loop (the node pulls from it over TCP); freeze it.
  const std::string out = node.dir().File("putter.out");
  const std::string err = node.dir().File("putter.err");
  ChildProcess putter({KVPOOL_IT_PUTTER_PATH, node.address(), "tcp", ns,
                       std::to_string(kBlockBytes), std::to_string(kPutterBlocks),
                       std::to_string(kStuckLeaseTtlMs)},
                      out, err);
  const bool putting =
      PollUntil(15'000, [&] { return ReadFile(out).find("putting") != std::string::npos; });
  INFO("putter stderr: " << ReadFile(err));
  REQUIRE(putting);
  std::this_thread::sleep_for(std::chrono::milliseconds(30));
  putter.Kill(SIGSTOP);
  const auto frozen_at = Clock::now();

  // The idle connection: a read lease on the cached prompt, then silence.
  std::unique_ptr<Client> idle = node.Connect();
  const MatchResult held = KVPOOL_IT_VALUE(
      idle->Match(ns, PromptView::Tokens(pinned), 0, /*lease=*/true, kStuckLeaseTtlMs));
  REQUIRE(held.matched_blocks == kPinnedBlocks);

  // Everyone else is served while those leases live.
  ClientOptions copts;
  copts.timeout_ms = kDeadlineMs;
  std::unique_ptr<Client> other = node.Connect(copts);
  {
    const Usage u = UsageOf(*other, ns);
    INFO("usage while stuck " << u);
    CHECK(u.allocated_blocks == kPutterBlocks);
    CHECK(u.pinned_blocks == kPinnedBlocks);
    CHECK(u.active_leases == 2);
  }
  CHECK(KVPOOL_IT_VALUE(Prompt("Health", [&] { return other->Health(); })));
  // What is leased cannot be taken: asking for more than the rest fails at once.
  const uint32_t free_blocks =
      static_cast<uint32_t>(capacity_blocks - kPutterBlocks - kPinnedBlocks);
  KVPOOL_IT_CHECK_ERROR(Prompt("AllocMem(too many)",
                               [&] { return other->AllocMem(ns, free_blocks + 1); }),
                        StatusCode::kResourceExhausted, "");
  // The rest can, and bytes move through the data plane.
  {
    auto dp = KVPOOL_IT_VALUE(DataPlane::Connect(*other, DataPlaneOptions{"tcp"}));
    std::vector<uint8_t> buf = RandomBytes(2 * kBlockBytes, 2);
    const RegionId region = KVPOOL_IT_VALUE(dp->RegisterMemory(buf.data(), buf.size()));
    const std::vector<uint32_t> tokens = MakeTokens(2 * kBlockTokens, 3);
    const std::vector<uint64_t> offsets = {0, kBlockBytes};
    KVPOOL_IT_REQUIRE_OK(Prompt("PutAndInsert", [&] {
      return dp->PutAndInsert(*other, ns, PromptView::Tokens(tokens), 0, region, offsets);
    }));
    std::fill(buf.begin(), buf.end(), 0);
    CHECK(KVPOOL_IT_VALUE(Prompt("MatchAndGet", [&] {
            return dp->MatchAndGet(*other, ns, PromptView::Tokens(tokens), region, offsets);
          })) == 2);
    CHECK(buf == RandomBytes(2 * kBlockBytes, 2));
    const Allocation rest = KVPOOL_IT_VALUE(
        Prompt("AllocMem(the rest)", [&] { return other->AllocMem(ns, free_blocks - 2); }));
    KVPOOL_IT_REQUIRE_OK(other->Release(rest.lease.id));
  }
  // The pinned prompt can be deleted under the idle client: it stops matching at once, and its
  // blocks stay readable by the lease holder until the lease ends.
  CHECK(KVPOOL_IT_VALUE(Prompt("Delete", [&] {
          return other->Delete(ns, PromptView::Tokens(Head(pinned, kBlockTokens)));
        })) == kPinnedBlocks);
  CHECK(KVPOOL_IT_VALUE(other->Match(ns, PromptView::Tokens(pinned))).matched_blocks == 0);
  const auto served_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                             Clock::now() - frozen_at)
                             .count();
  INFO("the others were served within " << served_ms << " ms of the freeze");
  CHECK(served_ms < kStuckLeaseTtlMs);  // all of the above happened while the leases were live

  // The leases expire on their own: nothing stays allocated, pinned or leased, and used bytes
  // are the cached blocks alone (the deleted prompt's blocks were freed with the pin).
  // (The node may keep the putter's blocks until its pull from the frozen process times out.)
  const bool expired = PollUntil(kStuckLeaseTtlMs + 15'000, [&] {
    const Usage u = UsageOf(*other, ns);
    return u.active_leases == 0 && u.allocated_blocks == 0 && u.pinned_blocks == 0;
  });
  const Usage after = UsageOf(*other, ns);
  INFO("usage after expiry " << after);
  CHECK(expired);
  CHECK(after.cached_blocks == 2);
  CHECK(after.used_bytes == after.cached_blocks * kBlockBytes);
  KVPOOL_IT_CHECK_ERROR(idle->Release(held.lease.id), StatusCode::kFailedPrecondition, "expired");
  // All of the pool is usable again (evicting the 2 cached blocks). The node's pull from the
  // frozen process was cut off before the putter's lease ended; polled briefly all the same,
  // since an idle slab a transfer still used could not be handed to another namespace.
  Result<Allocation> all = InternalError("not tried");
  PollUntil(15'000, [&] {
    all = other->AllocMem(ns, static_cast<uint32_t>(capacity_blocks));
    return all.ok();
  });
  KVPOOL_IT_REQUIRE_OK(all.status());
  KVPOOL_IT_REQUIRE_OK(other->Release(all->lease.id));

  // Thawed, the putter finds its lease gone and exits with an error instead of writing.
  putter.Kill(SIGCONT);
  const std::optional<int> status = putter.Wait(15'000);
  INFO("putter stderr: " << ReadFile(err));
  REQUIRE(status.has_value());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 1);
  INFO("kvpoold log:\n" << node.Log());
  CHECK(KVPOOL_IT_VALUE(node.client().Health()));
}

}  // namespace kvpool::itest
