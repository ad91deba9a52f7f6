// Integration tests of kvpoold: a real daemon on loopback (port 0) driven through libkvpool.
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <array>
#include <catch2/catch.hpp>
#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/client.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

constexpr uint32_t kBlockTokens = 16;
constexpr uint64_t kBlockBytes = 4096;
// Leases the tests rely on must outlive a slow moment of a loaded machine.
constexpr uint32_t kLongTtlMs = 60'000;
// Flags for tests that wait for leases to expire: short TTL, frequent sweeps.
const std::vector<std::string> kShortLeaseFlags = {"--lease-ttl-ms=300", "--lease-sweep-ms=50"};

NamespaceSpec Spec(std::string name, uint32_t block_tokens = kBlockTokens,
                   uint64_t block_bytes = kBlockBytes, std::string salt = "") {
  return NamespaceSpec{std::move(name), block_tokens, block_bytes, std::move(salt)};
}

std::vector<uint32_t> Blocks(size_t n_blocks, uint32_t seed) {
  return MakeTokens(n_blocks * kBlockTokens, seed);
}

// Allocates `n` blocks with a long lease and inserts them as the whole of `tokens`.
InsertResult AllocAndInsert(Client& c, const std::string& ns, const std::vector<uint32_t>& tokens) {
  const uint32_t n = static_cast<uint32_t>(tokens.size() / kBlockTokens);
  const Allocation alloc = KVPOOL_IT_VALUE(c.AllocMem(ns, n, Tier::kHost, kLongTtlMs));
  const std::vector<BlockHandle> handles = HandlesOf(alloc);
  InsertResult r =
      KVPOOL_IT_VALUE(c.Insert(ns, PromptView::Tokens(tokens), 0, handles, alloc.lease.id));
  KVPOOL_IT_REQUIRE_OK(c.Release(alloc.lease.id));
  return r;
}

std::string SelfExe() {
  std::error_code ec;
  const std::filesystem::path p = std::filesystem::read_symlink("/proc/self/exe", ec);
  REQUIRE(!ec);
  return p.string();
}

// ---- A client process that dies holding leases ------------------------------------------------

// The helper below runs in a child copy of this binary (selected by its test name); it talks to
// the daemon through these environment variables and dies by SIGKILL from the parent.
constexpr const char* kHelperTestName = "helper process that holds leases until it is killed";
constexpr uint32_t kHelperPromptSeed = 4242;
constexpr uint32_t kHelperPromptBlocks = 4;
constexpr uint32_t kHelperAllocBlocks = 3;
constexpr uint32_t kHelperLeaseTtlMs = 3'000;

// Hidden ([.]): not listed, not run by ctest; the test below runs it in a child process.
TEST_CASE("helper process that holds leases until it is killed", "[.][helper]") {
  const char* address = std::getenv("KVPOOL_IT_HELPER_ADDRESS");
  const char* ns = std::getenv("KVPOOL_IT_HELPER_NS");
  const char* out = std::getenv("KVPOOL_IT_HELPER_OUT");
  const char* parent = std::getenv("KVPOOL_IT_HELPER_PARENT");
  if (address == nullptr || ns == nullptr || out == nullptr || parent == nullptr) {
    SUCCEED("only meaningful as a child of the lease-expiry test");
    return;
  }
  // Never outlive the test that started us, whatever happens to it.
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (std::to_string(::getppid()) != parent) std::_Exit(3);

  auto report = [&](const std::string& line) {
    const std::string tmp = std::string(out) + ".tmp";
    {
      std::ofstream f(tmp, std::ios::trunc);
      f << line << '\n';
    }
    std::error_code ec;
    std::filesystem::rename(tmp, out, ec);  // the parent never sees half a line
  };
  auto client = Client::Connect(address);
  if (!client.ok()) {
    report("error connect " + client.status().ToString());
    std::_Exit(5);
  }
  auto alloc = (*client)->AllocMem(ns, kHelperAllocBlocks, Tier::kHost, kHelperLeaseTtlMs);
  const std::vector<uint32_t> tokens = Blocks(kHelperPromptBlocks, kHelperPromptSeed);
  auto match = (*client)->Match(ns, PromptView::Tokens(tokens), 0, true, kHelperLeaseTtlMs);
  if (!alloc.ok() || !match.ok()) {
    report("error " + alloc.status().ToString() + " " + match.status().ToString());
    std::_Exit(5);
  }
  report(std::to_string(alloc->lease.id) + " " + std::to_string(match->lease.id) + " " +
         std::to_string(match->matched_blocks));
  // Hold everything, release nothing, until the parent kills us (bounded, just in case).
  for (int i = 0; i < 300; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(100));
  std::_Exit(4);
}

TEST_CASE("kvpoold: a client process killed while holding leases leaks nothing once they expire",
          "[integration]") {
  TestDaemon d({"64MiB", kShortLeaseFlags});
  Client& c = d.client();
  const std::string ns = "crash";
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec(ns)));
  AllocAndInsert(c, ns, Blocks(kHelperPromptBlocks, kHelperPromptSeed));
  const Usage before = UsageOf(c, ns);
  REQUIRE(before.cached_blocks == kHelperPromptBlocks);
  REQUIRE(before.active_leases == 0);

  const std::string out = d.dir().File("helper.out");
  ChildProcess helper(
      {SelfExe(), kHelperTestName}, d.dir().File("helper.stdout"), d.dir().File("helper.stderr"),
      {"KVPOOL_IT_HELPER_ADDRESS=" + d.address(), "KVPOOL_IT_HELPER_NS=" + ns,
       "KVPOOL_IT_HELPER_OUT=" + out, "KVPOOL_IT_HELPER_PARENT=" + std::to_string(::getpid())});
  const bool reported =
      PollUntil(20'000, [&] { return std::filesystem::exists(out) || helper.Wait(0).has_value(); });
  INFO("helper stderr:\n" << ReadFile(d.dir().File("helper.stderr")));
  REQUIRE(reported);
  std::istringstream line(ReadFile(out));
  uint64_t alloc_lease = 0, match_lease = 0, matched = 0;
  line >> alloc_lease >> match_lease >> matched;
  INFO("helper reported: " << ReadFile(out));
  REQUIRE(alloc_lease != 0);
  REQUIRE(match_lease != 0);
  REQUIRE(matched == kHelperPromptBlocks);

  // While it lives, the helper's leases hold its allocation and pin the matched blocks.
  const Usage held = UsageOf(c, ns);
  CHECK(held.active_leases == 2);
  CHECK(held.allocated_blocks == kHelperAllocBlocks);
  CHECK(held.pinned_blocks == kHelperPromptBlocks);
  CHECK(held.used_bytes == (kHelperPromptBlocks + kHelperAllocBlocks) * kBlockBytes);

  // It crashes: no Release, no goodbye.
  helper.Kill(SIGKILL);
  const std::optional<int> status = helper.Wait(5'000);
  REQUIRE(status.has_value());
  CHECK(WIFSIGNALED(*status));

  const bool recovered =
      PollUntil(kHelperLeaseTtlMs + 10'000, [&] { return UsageOf(c, ns) == before; });
  INFO("usage now " << UsageOf(c, ns) << ", before the helper " << before);
  CHECK(recovered);
  const PoolStats stats = KVPOOL_IT_VALUE(c.GetStats());
  CHECK(stats.expired_leases >= 2);
  // The leases ended by expiry, not by being unknown.
  KVPOOL_IT_CHECK_ERROR(c.Renew(alloc_lease), StatusCode::kFailedPrecondition, "expired");
  KVPOOL_IT_CHECK_ERROR(c.Release(match_lease), StatusCode::kFailedPrecondition, "expired");
  // The cached blocks themselves stay: only the pins went.
  const MatchResult m = KVPOOL_IT_VALUE(
      c.Match(ns, PromptView::Tokens(Blocks(kHelperPromptBlocks, kHelperPromptSeed))));
  CHECK(m.matched_blocks == kHelperPromptBlocks);
}

// ---- Round trip ---------------------------------------------------------------------------------

TEST_CASE(
    "kvpoold: alloc, insert, match, exists, delete and free round-trip with consistent counters",
    "[integration]") {
  TestDaemon d;
  Client& c = d.client();
  const std::string ns = "rt";

  const auto [info, created] = KVPOOL_IT_VALUE(c.CreateNamespace(Spec(ns)));
  CHECK(created);
  CHECK(info.spec == Spec(ns));
  CHECK(info.root_hash == NamespaceRootHash(ns, ""));
  const auto again = KVPOOL_IT_VALUE(c.CreateNamespace(Spec(ns)));
  CHECK_FALSE(again.second);
  CHECK(again.first.id == info.id);

  // a: blocks a0..a3; b: a0 a1 then two blocks of its own; cc: a then two more blocks.
  const std::vector<uint32_t> a = Blocks(4, 1);
  const std::vector<uint32_t> b = Concat(Head(a, 2 * kBlockTokens), Blocks(2, 2));
  const std::vector<uint32_t> cc = Concat(a, Blocks(2, 3));

  // Allocate and publish a.
  const Allocation alloc_a = KVPOOL_IT_VALUE(c.AllocMem(ns, 4, Tier::kHost, kLongTtlMs));
  REQUIRE(alloc_a.blocks.size() == 4);
  CHECK(alloc_a.lease.id != 0);
  CHECK(alloc_a.lease.ttl_ms > 0);
  CHECK(alloc_a.lease.ttl_ms <= kLongTtlMs);
  std::set<uint64_t> offsets;
  for (const BlockLocation& blk : alloc_a.blocks) {
    CHECK(blk.tier == Tier::kHost);
    CHECK(blk.length == kBlockBytes);
    CHECK(blk.offset % kBlockBytes == 0);
    CHECK(blk.offset + blk.length <= (64u << 20));
    offsets.insert(blk.offset);
  }
  CHECK(offsets.size() == 4);
  const std::vector<BlockHandle> ha = HandlesOf(alloc_a);
  CHECK(std::set<BlockHandle>(ha.begin(), ha.end()).size() == 4);
  {
    const Usage u = UsageOf(c, ns);
    CHECK(u.allocated_blocks == 4);
    CHECK(u.cached_blocks == 0);
    CHECK(u.used_bytes == 4 * kBlockBytes);
    CHECK(u.node_used_bytes == 4 * kBlockBytes);
    CHECK(u.active_leases == 1);
  }

  const InsertResult ins_a =
      KVPOOL_IT_VALUE(c.Insert(ns, PromptView::Tokens(a), 0, ha, alloc_a.lease.id));
  CHECK(ins_a.inserted_blocks == 4);
  CHECK(ins_a.duplicate_blocks == 0);
  CHECK(ins_a.handles == ha);
  CHECK(ins_a.duplicate == std::vector<bool>(4, false));
  {
    const Usage u = UsageOf(c, ns);
    CHECK(u.allocated_blocks == 0);
    CHECK(u.cached_blocks == 4);
    CHECK(u.used_bytes == 4 * kBlockBytes);
  }

  // b repeats a0 a1: those two copies are deduplicated (freed) and a's blocks returned.
  const Allocation alloc_b = KVPOOL_IT_VALUE(c.AllocMem(ns, 4, Tier::kHost, kLongTtlMs));
  const std::vector<BlockHandle> hb = HandlesOf(alloc_b);
  const InsertResult ins_b =
      KVPOOL_IT_VALUE(c.Insert(ns, PromptView::Tokens(b), 0, hb, alloc_b.lease.id));
  CHECK(ins_b.inserted_blocks == 2);
  CHECK(ins_b.duplicate_blocks == 2);
  CHECK(ins_b.duplicate == std::vector<bool>{true, true, false, false});
  CHECK(ins_b.handles == std::vector<BlockHandle>{ha[0], ha[1], hb[2], hb[3]});
  {
    const Usage u = UsageOf(c, ns);
    CHECK(u.allocated_blocks == 0);
    CHECK(u.cached_blocks == 6);
    CHECK(u.used_bytes == 6 * kBlockBytes);
  }

  // cc extends a: publish only its last two blocks, from start_block 4.
  const Allocation alloc_c = KVPOOL_IT_VALUE(c.AllocMem(ns, 2, Tier::kHost, kLongTtlMs));
  const std::vector<BlockHandle> hc = HandlesOf(alloc_c);
  const InsertResult ins_c =
      KVPOOL_IT_VALUE(c.Insert(ns, PromptView::Tokens(cc), 4, hc, alloc_c.lease.id));
  CHECK(ins_c.inserted_blocks == 2);
  CHECK(ins_c.handles == hc);
  CHECK(UsageOf(c, ns).cached_blocks == 8);

  // The allocation leases hold nothing any more: every block was published or freed.
  for (const Allocation* al : {&alloc_a, &alloc_b, &alloc_c}) {
    CHECK(KVPOOL_IT_VALUE(c.Release(al->lease.id)) == 0);
  }
  CHECK(UsageOf(c, ns).active_leases == 0);

  // Match: full, partial, from a start block, by hashes. Counters are summed as we go.
  uint64_t requests = 0, hits = 0, misses = 0;
  auto match = [&](const PromptView& p, uint32_t start = 0) {
    MatchResult m = KVPOOL_IT_VALUE(c.Match(ns, p, start));
    ++requests;
    hits += m.matched_blocks;
    misses += m.prompt_blocks - start - m.matched_blocks;
    CHECK(m.lease.id == 0);  // no lease asked for
    CHECK(m.blocks.size() == m.matched_blocks);
    return m;
  };
  {
    const MatchResult m = match(PromptView::Tokens(a));
    CHECK(m.matched_blocks == 4);
    CHECK(m.prompt_blocks == 4);
    CHECK(HandlesOf(m.blocks) == ha);
    for (size_t i = 0; i < m.blocks.size(); ++i) {
      CHECK(m.blocks[i].offset == alloc_a.blocks[i].offset);
      CHECK(m.blocks[i].length == kBlockBytes);
      CHECK(m.blocks[i].tier == Tier::kHost);
    }
  }
  {
    // A trailing partial block is ignored.
    const MatchResult m = match(PromptView::Tokens(Concat(a, MakeTokens(10, 50))));
    CHECK(m.matched_blocks == 4);
    CHECK(m.prompt_blocks == 4);
  }
  const std::vector<uint32_t> diverging = Concat(Head(a, 3 * kBlockTokens), Blocks(2, 4));
  {
    const MatchResult m = match(PromptView::Tokens(diverging));
    CHECK(m.matched_blocks == 3);
    CHECK(m.prompt_blocks == 5);
    CHECK(HandlesOf(m.blocks) == std::vector<BlockHandle>(ha.begin(), ha.begin() + 3));
  }
  {
    const MatchResult m = match(PromptView::Tokens(cc), 2);
    CHECK(m.matched_blocks == 4);
    CHECK(m.prompt_blocks == 6);
    CHECK(HandlesOf(m.blocks) == std::vector<BlockHandle>{ha[2], ha[3], hc[0], hc[1]});
  }
  {
    const MatchResult m = match(PromptView::Tokens(b), 3);
    CHECK(m.matched_blocks == 1);
    CHECK(HandlesOf(m.blocks) == std::vector<BlockHandle>{hb[3]});
  }
  {
    const MatchResult m = match(PromptView::Tokens(Blocks(4, 99)));
    CHECK(m.matched_blocks == 0);
    CHECK(m.prompt_blocks == 4);
  }
  const std::vector<BlockHash> hashes_c = BlockHasher(ns, "", kBlockTokens).HashPrompt(cc);
  REQUIRE(hashes_c.size() == 6);
  {
    const MatchResult m = match(PromptView::Hashes(hashes_c));
    CHECK(m.matched_blocks == 6);
    CHECK(HandlesOf(m.blocks) ==
          std::vector<BlockHandle>{ha[0], ha[1], ha[2], ha[3], hc[0], hc[1]});
  }
  {
    const MatchResult m = match(PromptView::Hashes(hashes_c), 4);
    CHECK(m.matched_blocks == 2);
    CHECK(HandlesOf(m.blocks) == hc);
  }

  // Exists answers per block and changes no counter.
  {
    const ExistsResult e = KVPOOL_IT_VALUE(c.Exists(ns, PromptView::Tokens(cc)));
    CHECK(e.present_blocks == 6);
    CHECK(e.tiers == std::vector<Tier>(6, Tier::kHost));
    const ExistsResult e2 = KVPOOL_IT_VALUE(c.Exists(ns, PromptView::Tokens(diverging)));
    CHECK(e2.present_blocks == 3);
    CHECK(e2.tiers ==
          std::vector<Tier>{Tier::kHost, Tier::kHost, Tier::kHost, Tier::kNone, Tier::kNone});
  }

  {
    const NamespaceStats s = NamespaceFromStats(c, ns).stats;
    CHECK(s.match_requests == requests);
    CHECK(s.hit_blocks == hits);
    CHECK(s.miss_blocks == misses);
    CHECK(s.inserted_blocks == 8);
    CHECK(s.deduplicated_blocks == 2);
    CHECK(s.deleted_blocks == 0);
    CHECK(s.evicted_blocks == 0);
    CHECK(s.index_bytes > 0);
  }

  // Delete a0 a1: removes a1 and everything below it (a2 a3 c4 c5 b2 b3); a0 stays.
  CHECK(KVPOOL_IT_VALUE(c.Delete(ns, PromptView::Tokens(Head(a, 2 * kBlockTokens)))) == 7);
  {
    const Usage u = UsageOf(c, ns);
    CHECK(u.cached_blocks == 1);
    CHECK(u.used_bytes == kBlockBytes);
    CHECK(match(PromptView::Tokens(a)).matched_blocks == 1);
    CHECK(match(PromptView::Tokens(b)).matched_blocks == 1);
    const ExistsResult e = KVPOOL_IT_VALUE(c.Exists(ns, PromptView::Tokens(cc)));
    CHECK(e.present_blocks == 1);
    CHECK(e.tiers[0] == Tier::kHost);
    CHECK(NamespaceFromStats(c, ns).stats.deleted_blocks == 7);
  }

  // FreeMem returns never-published blocks; Release frees what the lease still holds.
  const Allocation alloc_f = KVPOOL_IT_VALUE(c.AllocMem(ns, 3, Tier::kHost, kLongTtlMs));
  const std::vector<BlockHandle> hf = HandlesOf(alloc_f);
  CHECK(KVPOOL_IT_VALUE(c.FreeMem(ns, alloc_f.lease.id, std::vector<BlockHandle>{hf[0], hf[1]})) ==
        2);
  {
    const Usage u = UsageOf(c, ns);
    CHECK(u.allocated_blocks == 1);
    CHECK(u.used_bytes == 2 * kBlockBytes);
  }
  CHECK(KVPOOL_IT_VALUE(c.Release(alloc_f.lease.id)) == 1);
  {
    const Usage u = UsageOf(c, ns);
    CHECK(u.allocated_blocks == 0);
    CHECK(u.used_bytes == kBlockBytes);
    CHECK(u.active_leases == 0);
  }

  // Evict the last cold block, then delete the now empty namespace.
  CHECK(KVPOOL_IT_VALUE(c.Evict(ns, 10)) == 1);
  {
    const NamespaceInfo after = NamespaceFromStats(c, ns);
    CHECK(after.stats.cached_blocks == 0);
    CHECK(after.stats.used_bytes == 0);
    CHECK(after.stats.evicted_blocks == 1);
    CHECK(after.stats.match_requests == requests);
  }
  CHECK(KVPOOL_IT_VALUE(c.DeleteNamespace(ns)) == 0);
  KVPOOL_IT_CHECK_ERROR(c.GetNamespace(ns), StatusCode::kNotFound, ns);
  CHECK(KVPOOL_IT_VALUE(c.GetStats()).used_bytes == 0);
}

TEST_CASE("kvpoold: leased blocks survive eviction and deletion until the lease is released",
          "[integration]") {
  TestDaemon d;
  Client& c = d.client();
  const std::string ns = "pin";
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec(ns)));
  const std::vector<uint32_t> a = Blocks(4, 10);
  const std::vector<uint32_t> e = Blocks(2, 11);
  const std::vector<uint32_t> k = Blocks(2, 12);
  AllocAndInsert(c, ns, a);
  AllocAndInsert(c, ns, e);

  // A match with nothing cached takes no lease.
  const MatchResult none =
      KVPOOL_IT_VALUE(c.Match(ns, PromptView::Tokens(Blocks(2, 13)), 0, true, kLongTtlMs));
  CHECK(none.matched_blocks == 0);
  CHECK(none.lease.id == 0);

  const MatchResult m = KVPOOL_IT_VALUE(c.Match(ns, PromptView::Tokens(a), 0, true, kLongTtlMs));
  REQUIRE(m.matched_blocks == 4);
  REQUIRE(m.lease.id != 0);
  CHECK(m.lease.ttl_ms > 0);

  // Insert with keep_pinned: the published blocks stay pinned by the allocation's lease.
  const Allocation alloc_k = KVPOOL_IT_VALUE(c.AllocMem(ns, 2, Tier::kHost, kLongTtlMs));
  const InsertResult ins_k = KVPOOL_IT_VALUE(
      c.Insert(ns, PromptView::Tokens(k), 0, HandlesOf(alloc_k), alloc_k.lease.id, true));
  CHECK(ins_k.inserted_blocks == 2);
  {
    const Usage u = UsageOf(c, ns);
    CHECK(u.pinned_blocks == 6);
    CHECK(u.cached_blocks == 8);
    CHECK(u.active_leases == 2);
  }

  // Only e's two unpinned blocks can go.
  CHECK(KVPOOL_IT_VALUE(c.Evict(ns, 100)) == 2);
  CHECK(UsageOf(c, ns).cached_blocks == 6);
  CHECK(KVPOOL_IT_VALUE(c.Match(ns, PromptView::Tokens(a))).matched_blocks == 4);
  CHECK(KVPOOL_IT_VALUE(c.Match(ns, PromptView::Tokens(e))).matched_blocks == 0);

  // Deleting a's last block makes it unmatchable, but its bytes stay until the pin goes.
  CHECK(KVPOOL_IT_VALUE(c.Delete(ns, PromptView::Tokens(a))) == 1);
  CHECK(KVPOOL_IT_VALUE(c.Match(ns, PromptView::Tokens(a))).matched_blocks == 3);
  {
    const Usage u = UsageOf(c, ns);
    CHECK(u.cached_blocks == 5);
    CHECK(u.used_bytes == 6 * kBlockBytes);
  }

  CHECK(KVPOOL_IT_VALUE(c.Release(m.lease.id)) == 4);
  CHECK(KVPOOL_IT_VALUE(c.Release(alloc_k.lease.id)) == 2);
  {
    const Usage u = UsageOf(c, ns);
    CHECK(u.pinned_blocks == 0);
    CHECK(u.active_leases == 0);
    CHECK(u.used_bytes == 5 * kBlockBytes);  // the deleted block is freed with its last pin
  }
  CHECK(KVPOOL_IT_VALUE(c.Evict(ns, 100)) == 5);
  CHECK(UsageOf(c, ns).used_bytes == 0);
}

TEST_CASE("kvpoold: equal tokens in another namespace or under another salt never match",
          "[integration]") {
  TestDaemon d;
  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("iso-a")));
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("iso-b")));
  const NamespaceInfo salted =
      KVPOOL_IT_VALUE(c.CreateNamespace(Spec("iso-s", kBlockTokens, kBlockBytes, "tenant-1")))
          .first;
  CHECK(salted.root_hash == NamespaceRootHash("iso-s", "tenant-1"));
  CHECK(salted.root_hash != NamespaceRootHash("iso-s", ""));

  const std::vector<uint32_t> p = Blocks(3, 20);
  AllocAndInsert(c, "iso-a", p);
  CHECK(KVPOOL_IT_VALUE(c.Match("iso-a", PromptView::Tokens(p))).matched_blocks == 3);
  CHECK(KVPOOL_IT_VALUE(c.Match("iso-b", PromptView::Tokens(p))).matched_blocks == 0);
  CHECK(KVPOOL_IT_VALUE(c.Match("iso-s", PromptView::Tokens(p))).matched_blocks == 0);
  // Hashes of iso-a's prompt name nothing in iso-b either.
  const std::vector<BlockHash> h = BlockHasher("iso-a", "", kBlockTokens).HashPrompt(p);
  CHECK(KVPOOL_IT_VALUE(c.Exists("iso-b", PromptView::Hashes(h))).present_blocks == 0);
  CHECK(KVPOOL_IT_VALUE(c.Exists("iso-a", PromptView::Hashes(h))).present_blocks == 3);
}

TEST_CASE("kvpoold: concurrent clients publish and match with consistent counters",
          "[integration]") {
  TestDaemon d;
  KVPOOL_IT_REQUIRE_OK(d.client().CreateNamespace(Spec("conc")));
  constexpr int kThreads = 4;
  constexpr int kPrompts = 25;
  const std::vector<uint32_t> shared = Blocks(2, 30);
  std::vector<std::unique_ptr<Client>> clients;
  for (int t = 0; t < kThreads; ++t) clients.push_back(d.Connect());

  // Catch2's assertions are not thread-safe: threads only record what went wrong.
  std::array<std::string, kThreads> errors;
  std::array<uint64_t, kThreads> inserted{}, duplicates{}, matched{};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      Client& c = *clients[t];
      for (int i = 0; i < kPrompts && errors[t].empty(); ++i) {
        const std::vector<uint32_t> p = Concat(shared, Blocks(2, 1000 * (t + 1) + i));
        auto alloc = c.AllocMem("conc", 4, Tier::kHost, kLongTtlMs);
        if (!alloc.ok()) {
          errors[t] = alloc.status().ToString();
          break;
        }
        auto ins = c.Insert("conc", PromptView::Tokens(p), 0, HandlesOf(*alloc), alloc->lease.id);
        if (!ins.ok()) {
          errors[t] = ins.status().ToString();
          break;
        }
        inserted[t] += ins->inserted_blocks;
        duplicates[t] += ins->duplicate_blocks;
        if (auto r = c.Release(alloc->lease.id); !r.ok()) {
          errors[t] = r.status().ToString();
          break;
        }
        auto m = c.Match("conc", PromptView::Tokens(p));
        if (!m.ok()) {
          errors[t] = m.status().ToString();
          break;
        }
        matched[t] += m->matched_blocks;
      }
    });
  }
  for (std::thread& th : threads) th.join();
  for (int t = 0; t < kThreads; ++t) {
    INFO("thread " << t);
    CHECK(errors[t].empty());
    CHECK(errors[t] == "");
    CHECK(matched[t] == 4u * kPrompts);
  }
  uint64_t total_inserted = 0, total_duplicates = 0;
  for (int t = 0; t < kThreads; ++t) {
    total_inserted += inserted[t];
    total_duplicates += duplicates[t];
  }
  // The shared two blocks are stored once; every other block once per prompt.
  const uint64_t expected_cached = 2 + 2ull * kThreads * kPrompts;
  CHECK(total_inserted == expected_cached);
  CHECK(total_duplicates == 4ull * kThreads * kPrompts - expected_cached);
  const NamespaceInfo info = NamespaceFromStats(d.client(), "conc");
  CHECK(info.stats.cached_blocks == expected_cached);
  CHECK(info.stats.inserted_blocks == total_inserted);
  CHECK(info.stats.deduplicated_blocks == total_duplicates);
  CHECK(info.stats.match_requests == uint64_t{kThreads} * kPrompts);
  CHECK(info.stats.hit_blocks == 4ull * kThreads * kPrompts);
  CHECK(info.stats.used_bytes == expected_cached * kBlockBytes);
  CHECK(info.stats.allocated_blocks == 0);
}

// ---- Bad input ---------------------------------------------------------------------------------

// Flags of the bad-input daemons: a small pool and a small request limit, so both are easy to hit.
DaemonConfig BadInputConfig() {
  return DaemonConfig{"16MiB",
                      {"--max-request-blocks=64", "--lease-ttl-ms=300", "--lease-sweep-ms=50"}};
}

// The daemon still answers health checks and ordinary calls.
void CheckStillServing(TestDaemon& d) {
  CHECK(KVPOOL_IT_VALUE(d.client().Health()));
  CHECK(d.daemon().process().Running());
  // A fresh connection works too.
  auto other = d.Connect();
  KVPOOL_IT_REQUIRE_OK(other->ListNamespaces());
}

TEST_CASE("kvpoold: an unknown namespace is NOT_FOUND for every call and the daemon keeps serving",
          "[integration]") {
  TestDaemon d(BadInputConfig());
  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("known")));
  const Usage before = UsageOf(c, "known");
  const std::vector<uint32_t> p = Blocks(1, 1);
  const std::vector<BlockHandle> h = {1};

  KVPOOL_IT_CHECK_ERROR(c.GetNamespace("nope"), StatusCode::kNotFound, "'nope'");
  KVPOOL_IT_CHECK_ERROR(c.AllocMem("nope", 1), StatusCode::kNotFound, "'nope'");
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("nope", 1, h), StatusCode::kNotFound, "'nope'");
  KVPOOL_IT_CHECK_ERROR(c.Insert("nope", PromptView::Tokens(p), 0, h, 1), StatusCode::kNotFound,
                        "'nope'");
  KVPOOL_IT_CHECK_ERROR(c.Match("nope", PromptView::Tokens(p)), StatusCode::kNotFound, "'nope'");
  KVPOOL_IT_CHECK_ERROR(c.Exists("nope", PromptView::Tokens(p)), StatusCode::kNotFound, "'nope'");
  KVPOOL_IT_CHECK_ERROR(c.Delete("nope", PromptView::Tokens(p)), StatusCode::kNotFound, "'nope'");
  KVPOOL_IT_CHECK_ERROR(c.Evict("nope", 1), StatusCode::kNotFound, "'nope'");
  KVPOOL_IT_CHECK_ERROR(c.DeleteNamespace("nope"), StatusCode::kNotFound, "'nope'");
  // A name that could never exist is malformed rather than missing.
  KVPOOL_IT_CHECK_ERROR(c.Match("no such/name", PromptView::Tokens(p)),
                        StatusCode::kInvalidArgument, "no such/name");

  CHECK(UsageOf(c, "known") == before);
  CHECK(KVPOOL_IT_VALUE(c.ListNamespaces()).size() == 1);
  CheckStillServing(d);
}

TEST_CASE(
    "kvpoold: CreateNamespace with conflicting or invalid parameters is refused and the original "
    "kept",
    "[integration]") {
  TestDaemon d(BadInputConfig());
  Client& c = d.client();
  const NamespaceInfo original = KVPOOL_IT_VALUE(c.CreateNamespace(Spec("model"))).first;

  KVPOOL_IT_CHECK_ERROR(c.CreateNamespace(Spec("model", 32)), StatusCode::kAlreadyExists,
                        "block_tokens");
  KVPOOL_IT_CHECK_ERROR(c.CreateNamespace(Spec("model", kBlockTokens, 8192)),
                        StatusCode::kAlreadyExists, "block_bytes");
  KVPOOL_IT_CHECK_ERROR(c.CreateNamespace(Spec("model", kBlockTokens, kBlockBytes, "s")),
                        StatusCode::kAlreadyExists, "salt");
  KVPOOL_IT_CHECK_ERROR(c.CreateNamespace(Spec("other", 0)), StatusCode::kInvalidArgument,
                        "block_tokens");
  KVPOOL_IT_CHECK_ERROR(c.CreateNamespace(Spec("other", kBlockTokens, 100)),
                        StatusCode::kInvalidArgument, "block_bytes");
  KVPOOL_IT_CHECK_ERROR(c.CreateNamespace(Spec("other", kBlockTokens, 1ull << 30)),
                        StatusCode::kInvalidArgument, "block_bytes");
  KVPOOL_IT_CHECK_ERROR(c.CreateNamespace(Spec("")), StatusCode::kInvalidArgument, "name");
  KVPOOL_IT_CHECK_ERROR(c.CreateNamespace(Spec(std::string(129, 'x'))),
                        StatusCode::kInvalidArgument, "128");

  const NamespaceInfo now = KVPOOL_IT_VALUE(c.GetNamespace("model"));
  CHECK(now.spec == original.spec);
  CHECK(now.id == original.id);
  const std::vector<NamespaceInfo> all = KVPOOL_IT_VALUE(c.ListNamespaces());
  REQUIRE(all.size() == 1);
  CHECK(all[0].spec.name == "model");
  CHECK(KVPOOL_IT_VALUE(c.GetStats()).reserved_bytes == 0);
  CheckStillServing(d);
}

TEST_CASE("kvpoold: zero, over-limit and over-capacity block counts are refused without leaking",
          "[integration]") {
  TestDaemon d(BadInputConfig());
  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("small")));
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("big", kBlockTokens, 1u << 20)));
  const Usage small0 = UsageOf(c, "small");
  const Usage big0 = UsageOf(c, "big");

  KVPOOL_IT_CHECK_ERROR(c.AllocMem("small", 0), StatusCode::kInvalidArgument, "n_blocks");
  KVPOOL_IT_CHECK_ERROR(c.AllocMem("small", 65), StatusCode::kInvalidArgument, "64");
  KVPOOL_IT_CHECK_ERROR(c.AllocMem("small", UINT32_MAX), StatusCode::kInvalidArgument, "4294967295");
  // 40 blocks of 1 MiB do not fit in a 16 MiB pool.
  KVPOOL_IT_CHECK_ERROR(c.AllocMem("big", 40), StatusCode::kResourceExhausted, "40");
  KVPOOL_IT_CHECK_ERROR(c.AllocMem("small", 1, Tier::kGpu), StatusCode::kFailedPrecondition, "gpu");
  KVPOOL_IT_CHECK_ERROR(c.AllocMem("small", 1, Tier::kHost, 700'000), StatusCode::kInvalidArgument,
                        "lease_ttl_ms");
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("small", 1, std::vector<BlockHandle>{}),
                        StatusCode::kInvalidArgument, "handles");
  KVPOOL_IT_CHECK_ERROR(c.Evict("small", 0), StatusCode::kInvalidArgument, "n_blocks");
  CHECK(UsageOf(c, "small") == small0);
  CHECK(UsageOf(c, "big") == big0);

  // Fill the pool with leased blocks: then even one small block is RESOURCE_EXHAUSTED.
  std::vector<uint64_t> leases;
  for (int i = 0; i < 64; ++i) {
    Result<Allocation> r = c.AllocMem("big", 1, Tier::kHost, kLongTtlMs);
    if (!r.ok()) {
      KVPOOL_IT_CHECK_ERROR(r, StatusCode::kResourceExhausted, "");
      break;
    }
    leases.push_back(r->lease.id);
  }
  INFO("1 MiB blocks allocated in a 16 MiB pool: " << leases.size());
  CHECK(leases.size() >= 8);
  CHECK(leases.size() <= 16);
  const Usage full = UsageOf(c, "big");
  CHECK(full.allocated_blocks == leases.size());
  KVPOOL_IT_CHECK_ERROR(c.AllocMem("small", 1), StatusCode::kResourceExhausted, "");
  CHECK(UsageOf(c, "small").allocated_blocks == 0);
  CHECK(UsageOf(c, "big") == full);
  CheckStillServing(d);

  // Releasing the leases gives the memory back, to the other namespace too.
  for (uint64_t id : leases) CHECK(KVPOOL_IT_VALUE(c.Release(id)) == 1);
  CHECK(UsageOf(c, "big").used_bytes == 0);
  const Allocation ok = KVPOOL_IT_VALUE(c.AllocMem("small", 64, Tier::kHost, kLongTtlMs));
  CHECK(ok.blocks.size() == 64);
  CHECK(KVPOOL_IT_VALUE(c.Release(ok.lease.id)) == 64);
  CHECK(KVPOOL_IT_VALUE(c.GetStats()).used_bytes == 0);
}

TEST_CASE(
    "kvpoold: malformed prompts are refused: partial blocks on Insert, too many blocks, bad start",
    "[integration]") {
  TestDaemon d(BadInputConfig());
  Client& c = d.client();
  const std::string ns = "prompts";
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec(ns)));
  const Allocation alloc = KVPOOL_IT_VALUE(c.AllocMem(ns, 2, Tier::kHost, kLongTtlMs));
  const std::vector<BlockHandle> h = HandlesOf(alloc);
  const Usage before = UsageOf(c, ns);
  REQUIRE(before.allocated_blocks == 2);

  const std::vector<uint32_t> ragged = MakeTokens(2 * kBlockTokens + 5, 1);
  KVPOOL_IT_CHECK_ERROR(c.Insert(ns, PromptView::Tokens(ragged), 0, h, alloc.lease.id),
                        StatusCode::kInvalidArgument, "not a whole number");
  // More handles than the prompt has blocks.
  const std::vector<uint32_t> one_block = Blocks(1, 2);
  KVPOOL_IT_CHECK_ERROR(c.Insert(ns, PromptView::Tokens(one_block), 0, h, alloc.lease.id),
                        StatusCode::kInvalidArgument, "start_block");
  KVPOOL_IT_CHECK_ERROR(c.Insert(ns, PromptView::Tokens(Blocks(2, 2)), 1, h, alloc.lease.id),
                        StatusCode::kInvalidArgument, "start_block");

  // 65 raw block hashes: one more than --max-request-blocks, for every call that takes a prompt.
  std::vector<BlockHash> many(65);
  for (size_t i = 0; i < many.size(); ++i) many[i] = BlockHash{i + 1, ~i};
  const PromptView too_many = PromptView::Hashes(many);
  KVPOOL_IT_CHECK_ERROR(c.Match(ns, too_many), StatusCode::kInvalidArgument, "65");
  KVPOOL_IT_CHECK_ERROR(c.Exists(ns, too_many), StatusCode::kInvalidArgument, "65");
  KVPOOL_IT_CHECK_ERROR(c.Delete(ns, too_many), StatusCode::kInvalidArgument, "65");
  KVPOOL_IT_CHECK_ERROR(c.Insert(ns, too_many, 0, h, alloc.lease.id), StatusCode::kInvalidArgument,
                        "65");
  KVPOOL_IT_CHECK_ERROR(c.Match(ns, PromptView::Tokens(Blocks(65, 3))), StatusCode::kInvalidArgument,
                        "65");
  // Exactly the limit is fine.
  const std::span<const BlockHash> limit(many.data(), 64);
  CHECK(KVPOOL_IT_VALUE(c.Match(ns, PromptView::Hashes(limit))).matched_blocks == 0);
  CHECK(KVPOOL_IT_VALUE(c.Exists(ns, PromptView::Hashes(limit))).present_blocks == 0);

  // A start block past the prompt; a delete of less than one block; both tokens and hashes.
  KVPOOL_IT_CHECK_ERROR(c.Match(ns, PromptView::Tokens(Blocks(2, 4)), 3),
                        StatusCode::kInvalidArgument, "start_block 3");
  KVPOOL_IT_CHECK_ERROR(c.Delete(ns, PromptView::Tokens(MakeTokens(5, 5))),
                        StatusCode::kInvalidArgument, "no full block");
  const std::vector<uint32_t> t = Blocks(1, 6);
  const std::vector<BlockHash> th = BlockHasher(ns, "", kBlockTokens).HashPrompt(t);
  KVPOOL_IT_CHECK_ERROR(c.Match(ns, PromptView{t, th}), StatusCode::kInvalidArgument, "not both");

  // Nothing changed: the allocation is intact and can still be published.
  CHECK(UsageOf(c, ns) == before);
  const std::vector<uint32_t> good = Blocks(2, 7);
  const InsertResult ins =
      KVPOOL_IT_VALUE(c.Insert(ns, PromptView::Tokens(good), 0, h, alloc.lease.id));
  CHECK(ins.inserted_blocks == 2);
  CHECK(KVPOOL_IT_VALUE(c.Match(ns, PromptView::Tokens(good))).matched_blocks == 2);
  CheckStillServing(d);
}

TEST_CASE("kvpoold: unknown, freed, double-freed, duplicated and foreign block handles are refused",
          "[integration]") {
  TestDaemon d(BadInputConfig());
  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("one")));
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("two")));
  const Allocation a1 = KVPOOL_IT_VALUE(c.AllocMem("one", 3, Tier::kHost, kLongTtlMs));
  const Allocation a2 = KVPOOL_IT_VALUE(c.AllocMem("two", 1, Tier::kHost, kLongTtlMs));
  const Allocation a3 = KVPOOL_IT_VALUE(c.AllocMem("one", 1, Tier::kHost, kLongTtlMs));
  const std::vector<BlockHandle> h1 = HandlesOf(a1);
  const BlockHandle foreign = a2.blocks[0].handle;
  const std::vector<uint32_t> p1 = Blocks(1, 1);
  using H = std::vector<BlockHandle>;

  Usage one = UsageOf(c, "one");
  const Usage two = UsageOf(c, "two");
  REQUIRE(one.allocated_blocks == 4);
  REQUIRE(one.active_leases == 3);

  // Never issued: no such slot, or not a handle of this namespace at all.
  const BlockHandle no_slot = (h1[0] & ~uint64_t{0xffffffff}) | 0xfffffff0u;
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", a1.lease.id, H{no_slot}), StatusCode::kInvalidArgument,
                        "names no block");
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", a1.lease.id, H{12345}), StatusCode::kInvalidArgument,
                        "does not belong");
  KVPOOL_IT_CHECK_ERROR(c.Insert("one", PromptView::Tokens(p1), 0, H{no_slot}, a1.lease.id),
                        StatusCode::kInvalidArgument, "names no block");
  // A handle of another namespace, with this namespace's lease.
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", a1.lease.id, H{foreign}), StatusCode::kInvalidArgument,
                        "does not belong");
  KVPOOL_IT_CHECK_ERROR(c.Insert("one", PromptView::Tokens(p1), 0, H{foreign}, a1.lease.id),
                        StatusCode::kInvalidArgument, "does not belong");
  // The same handle twice in one request.
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", a1.lease.id, H{h1[1], h1[1]}),
                        StatusCode::kInvalidArgument, "more than once");
  // A lease of another namespace.
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", a2.lease.id, H{h1[1]}), StatusCode::kFailedPrecondition,
                        "another namespace");
  // Blocks of another allocation: the caller holds no lease on them.
  KVPOOL_IT_CHECK_ERROR(c.Insert("one", PromptView::Tokens(p1), 0, H{h1[1]}, a3.lease.id),
                        StatusCode::kFailedPrecondition, "not an allocated block of lease");
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", a3.lease.id, H{h1[1]}), StatusCode::kFailedPrecondition,
                        "not an allocated block of lease");
  // Unknown leases.
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", 424242, H{h1[1]}), StatusCode::kNotFound, "424242");
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", 0, H{h1[1]}), StatusCode::kInvalidArgument, "lease_id");
  KVPOOL_IT_CHECK_ERROR(c.Renew(424242), StatusCode::kNotFound, "424242");
  KVPOOL_IT_CHECK_ERROR(c.Release(424242), StatusCode::kNotFound, "424242");
  CHECK(UsageOf(c, "one") == one);
  CHECK(UsageOf(c, "two") == two);

  // Free h1[0] once (fine), then again (stale), then try to publish it (stale).
  CHECK(KVPOOL_IT_VALUE(c.FreeMem("one", a1.lease.id, H{h1[0]})) == 1);
  one = UsageOf(c, "one");
  CHECK(one.allocated_blocks == 3);
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", a1.lease.id, H{h1[0]}), StatusCode::kNotFound, "stale");
  KVPOOL_IT_CHECK_ERROR(c.Insert("one", PromptView::Tokens(p1), 0, H{h1[0]}, a1.lease.id),
                        StatusCode::kNotFound, "stale");
  // All or nothing: a batch with one freed handle frees none of the others.
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", a1.lease.id, H{h1[1], h1[0]}), StatusCode::kNotFound,
                        "stale");
  CHECK(UsageOf(c, "one") == one);

  // A published block is no longer the allocation's: neither freeable nor publishable again.
  CHECK(KVPOOL_IT_VALUE(c.Insert("one", PromptView::Tokens(p1), 0, H{h1[1]}, a1.lease.id))
            .inserted_blocks == 1);
  one = UsageOf(c, "one");
  KVPOOL_IT_CHECK_ERROR(c.FreeMem("one", a1.lease.id, H{h1[1]}), StatusCode::kFailedPrecondition,
                        "already inserted");
  KVPOOL_IT_CHECK_ERROR(c.Insert("one", PromptView::Tokens(Blocks(1, 2)), 0, H{h1[1]}, a1.lease.id),
                        StatusCode::kFailedPrecondition, "already inserted");
  CHECK(UsageOf(c, "one") == one);

  // What is left is exactly what the leases hold: h1[2] under a1, a3's block, a2's block.
  CHECK(KVPOOL_IT_VALUE(c.Release(a1.lease.id)) == 1);
  CHECK(KVPOOL_IT_VALUE(c.Release(a3.lease.id)) == 1);
  CHECK(KVPOOL_IT_VALUE(c.Release(a2.lease.id)) == 1);
  const Usage end = UsageOf(c, "one");
  CHECK(end.allocated_blocks == 0);
  CHECK(end.cached_blocks == 1);
  CHECK(end.used_bytes == kBlockBytes);
  CHECK(end.active_leases == 0);
  CHECK(UsageOf(c, "two").used_bytes == 0);
  CheckStillServing(d);
}

TEST_CASE("kvpoold: an expired lease is FAILED_PRECONDITION and its blocks are freed",
          "[integration]") {
  TestDaemon d(BadInputConfig());  // 300 ms default lease TTL, swept every 50 ms
  Client& c = d.client();
  const std::string ns = "expiry";
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec(ns)));
  const Usage before = UsageOf(c, ns);

  const Allocation alloc = KVPOOL_IT_VALUE(c.AllocMem(ns, 2));  // default TTL
  CHECK(alloc.lease.ttl_ms <= 300);
  CHECK(UsageOf(c, ns).allocated_blocks == 2);
  const bool expired = PollUntil(10'000, [&] { return UsageOf(c, ns).active_leases == 0; });
  REQUIRE(expired);
  // The sweeper freed the blocks although nobody called the daemon about them.
  CHECK(UsageOf(c, ns) == before);
  CHECK(KVPOOL_IT_VALUE(c.GetStats()).expired_leases == 1);

  const std::vector<uint32_t> p = Blocks(2, 1);
  KVPOOL_IT_CHECK_ERROR(c.Insert(ns, PromptView::Tokens(p), 0, HandlesOf(alloc), alloc.lease.id),
                        StatusCode::kFailedPrecondition, "expired");
  KVPOOL_IT_CHECK_ERROR(c.FreeMem(ns, alloc.lease.id, HandlesOf(alloc)),
                        StatusCode::kFailedPrecondition, "expired");
  KVPOOL_IT_CHECK_ERROR(c.Renew(alloc.lease.id), StatusCode::kFailedPrecondition, "expired");
  KVPOOL_IT_CHECK_ERROR(c.Release(alloc.lease.id), StatusCode::kFailedPrecondition, "expired");
  CHECK(UsageOf(c, ns) == before);
  CHECK(KVPOOL_IT_VALUE(c.Match(ns, PromptView::Tokens(p))).matched_blocks == 0);
  CheckStillServing(d);
}

TEST_CASE("kvpoold: Renew keeps a lease alive past its first deadline", "[integration]") {
  TestDaemon d({"64MiB", kShortLeaseFlags});
  Client& c = d.client();
  const std::string ns = "renew";
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec(ns)));
  // Both leases get 1 s; the sentinel is created last, so its deadline is the later one.
  constexpr uint32_t kFirstTtlMs = 1'000;
  const Allocation kept = KVPOOL_IT_VALUE(c.AllocMem(ns, 2, Tier::kHost, kFirstTtlMs));
  const Allocation sentinel = KVPOOL_IT_VALUE(c.AllocMem(ns, 1, Tier::kHost, kFirstTtlMs));
  const Lease renewed = KVPOOL_IT_VALUE(c.Renew(kept.lease.id, kLongTtlMs));
  CHECK(renewed.id == kept.lease.id);
  CHECK(renewed.ttl_ms > kFirstTtlMs);
  // Once the sentinel has expired, the kept lease's first deadline has passed too.
  REQUIRE(PollUntil(10'000, [&] { return UsageOf(c, ns).active_leases == 1; }));
  KVPOOL_IT_CHECK_ERROR(c.Renew(sentinel.lease.id), StatusCode::kFailedPrecondition, "expired");
  CHECK(UsageOf(c, ns).allocated_blocks == 2);
  const std::vector<uint32_t> p = Blocks(2, 1);
  CHECK(KVPOOL_IT_VALUE(c.Insert(ns, PromptView::Tokens(p), 0, HandlesOf(kept), kept.lease.id))
            .inserted_blocks == 2);
  CHECK(KVPOOL_IT_VALUE(c.Release(kept.lease.id)) == 0);
}

TEST_CASE(
    "kvpoold: a message over --max-message is RESOURCE_EXHAUSTED and the daemon keeps serving",
    "[integration]") {
  TestDaemon d({"64MiB", {"--max-message=64KiB"}});
  Client& c = d.client();
  const std::string ns = "msg";
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec(ns)));
  const Usage before = UsageOf(c, ns);

  // ~100k tokens: several hundred KB on the wire, far over 64 KiB.
  const std::vector<uint32_t> huge = MakeTokens(100'000, 1);
  KVPOOL_IT_CHECK_ERROR(c.Match(ns, PromptView::Tokens(huge)), StatusCode::kResourceExhausted, "");
  const Allocation alloc = KVPOOL_IT_VALUE(c.AllocMem(ns, 1, Tier::kHost, kLongTtlMs));
  const std::vector<uint32_t> huge_insert = MakeTokens(100'000 / kBlockTokens * kBlockTokens, 2);
  KVPOOL_IT_CHECK_ERROR(
      c.Insert(ns, PromptView::Tokens(huge_insert), 0, HandlesOf(alloc), alloc.lease.id),
      StatusCode::kResourceExhausted, "");
  CHECK(UsageOf(c, ns).allocated_blocks == 1);
  CHECK(KVPOOL_IT_VALUE(c.Release(alloc.lease.id)) == 1);
  CHECK(UsageOf(c, ns) == before);

  // The same connection and new ones keep working; a prompt under the limit is answered.
  CHECK(KVPOOL_IT_VALUE(c.Health()));
  const std::vector<uint32_t> small = Blocks(64, 3);
  CHECK(KVPOOL_IT_VALUE(c.Match(ns, PromptView::Tokens(small))).prompt_blocks == 64);
  CheckStillServing(d);
}

// ---- Process lifecycle -------------------------------------------------------------------------

// SIGTERM is sent while a client keeps its channel open (as an inference server would), SIGINT
// after every client went away. Note: with a channel open, kvpoold takes its whole 5 s grace
// period to stop even when no call is in flight, hence the 10 s limit.
TEST_CASE("kvpoold: SIGTERM or SIGINT stops the daemon with exit code 0 within seconds",
          "[integration]") {
  const int sig = GENERATE(SIGTERM, SIGINT);
  INFO("signal " << sig);
  TestDaemon d;
  // Some state, including an active lease, must not hold the shutdown up.
  KVPOOL_IT_REQUIRE_OK(d.client().CreateNamespace(Spec("bye")));
  KVPOOL_IT_REQUIRE_OK(d.client().AllocMem("bye", 4, Tier::kHost, kLongTtlMs));
  if (sig == SIGINT) d.DropClient();

  d.daemon().process().Signal(sig);
  const Result<int> status = d.daemon().process().Wait(10'000);
  REQUIRE(status.ok());
  CHECK(WIFEXITED(*status));
  CHECK(WEXITSTATUS(*status) == 0);
  const std::string log = d.Log();
  INFO("log:\n" << log);
  CHECK_THAT(log, Catch::Contains("received signal " + std::to_string(sig)));
  CHECK_THAT(log, Catch::Contains("kvpoold stopped"));
  // Clients see the node gone: an open channel fails its next call, a new one cannot connect.
  if (sig == SIGTERM) KVPOOL_IT_CHECK_ERROR(d.client().GetStats(), StatusCode::kUnavailable, "");
  ClientOptions options;
  options.connect_timeout_ms = 500;
  KVPOOL_IT_CHECK_ERROR(Client::Connect(d.address(), options), StatusCode::kUnavailable,
                        d.address());
}

TEST_CASE("kvpoold: with port 0 it serves on the port it writes to --port-file", "[integration]") {
  TestDaemon d;
  const int port = d.daemon().port();
  CHECK(port > 0);
  CHECK(d.address() == "127.0.0.1:" + std::to_string(port));
  CHECK(ReadFile(d.dir().File("kvpoold.port")) == std::to_string(port) + "\n");
  CHECK_THAT(d.Log(), Catch::Contains("address=127.0.0.1:" + std::to_string(port)));
  // Two daemons started alike get different ports.
  TestDaemon d2;
  CHECK(d2.daemon().port() != port);
  CHECK(KVPOOL_IT_VALUE(d2.client().Health()));
}

// gRPC enables SO_REUSEPORT by default; kvpoold turns it off so that a second daemon cannot
// serve next to the first on the same port (the kernel would split clients between them).
TEST_CASE("kvpoold: a second daemon on a port in use exits non-zero with a clear log line",
          "[integration]") {
  TestDaemon first;
  TempDir dir;
  const std::string listen = "127.0.0.1:" + std::to_string(first.daemon().port());
  ChildProcess second({kKvpooldPath, "--listen=" + listen, "--port-file=" + dir.File("port"),
                       "--data-dir=" + dir.File("data"), "--capacity=16MiB", "--node-id=second"},
                      dir.File("stdout"), dir.File("stderr"));
  const std::optional<int> status = second.Wait(5'000);
  const std::string err = ReadFile(dir.File("stderr"));
  INFO("second daemon stderr:\n" << err);
  CHECK(status.has_value());
  if (status.has_value()) {
    CHECK(WIFEXITED(*status));
    CHECK(WEXITSTATUS(*status) != 0);
  }
  CHECK_THAT(err, Catch::Contains("cannot listen on " + listen));
  CHECK_FALSE(std::filesystem::exists(dir.File("port")));
  // The first daemon is unaffected.
  CHECK(first.daemon().process().Running());
  CHECK(KVPOOL_IT_VALUE(first.client().Health()));
}

TEST_CASE("kvpoold: invalid flags exit with code 2 and name the problem", "[integration]") {
  TempDir dir;
  struct BadFlag {
    std::string flag;
    std::string message;
  };
  const std::vector<BadFlag> cases = {
      {"--max-message=1KiB", "max-message"},    {"--capacity=lots", "lots"},
      {"--lease-sweep-ms=0", "lease-sweep-ms"}, {"--listen=127.0.0.1", "listen"},
      {"--no-such-flag", "no-such-flag"},
  };
  for (const BadFlag& bad : cases) {
    const CommandResult r = RunCommand(
        {kKvpooldPath, "--listen=127.0.0.1:0", "--data-dir=" + dir.File("data"), bad.flag}, 5'000);
    INFO(bad.flag << " -> exit " << r.exit_code << "\nstderr:\n" << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains(bad.message));
  }
}

TEST_CASE("kvpoold: the gRPC health check reports SERVING and an unreachable node is UNAVAILABLE",
          "[integration]") {
  TestDaemon d;
  CHECK(KVPOOL_IT_VALUE(d.client().Health()) == true);
  CHECK(KVPOOL_IT_VALUE(d.Connect()->Health()) == true);

  RefusingPort nobody;
  ClientOptions options;
  options.connect_timeout_ms = 500;
  KVPOOL_IT_CHECK_ERROR(Client::Connect(nobody.address(), options), StatusCode::kUnavailable,
                        nobody.address());
  KVPOOL_IT_CHECK_ERROR(Client::Connect(""), StatusCode::kInvalidArgument, "address");
}

}  // namespace
}  // namespace kvpool::itest
