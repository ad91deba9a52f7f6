// Fault injection: kvpool-scheduler SIGKILLed while nodes publish, delete and evict blocks and
// routers call Route and Lookup, then restarted on the same port. Routing resumes once the
// instances re-register, and the rebuilt index equals, block by block, what each node holds.
#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/scheduler_client.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kBlockTokens = 16;
constexpr const char* kNs = "sched-fault";
constexpr uint32_t kPrompts = 64;

// Prompt p: a 3-block prefix shared by groups of 4 prompts, then 1..5 blocks of its own.
std::vector<uint32_t> PromptTokens(uint32_t p) {
  return Concat(MakeTokens(3 * kBlockTokens, 500 + p / 4),
                MakeTokens((1 + p % 5) * kBlockTokens, 900 + p));
}

// Per node: how many leading blocks of the prompt it holds and how many blocks in all.
struct Holding {
  uint32_t leading = 0;
  uint32_t held = 0;
  friend bool operator==(const Holding&, const Holding&) = default;
};
using View = std::map<std::string, Holding>;

std::string Describe(const View& v) {
  std::string s;
  for (const auto& [node, h] : v) {
    s += node + ":" + std::to_string(h.leading) + "/" + std::to_string(h.held) + " ";
  }
  return s.empty() ? "(none)" : s;
}

// What the nodes themselves say (Exists), for every prompt.
std::vector<View> NodesView(const std::map<std::string, Client*>& nodes) {
  std::vector<View> out(kPrompts);
  for (uint32_t p = 0; p < kPrompts; ++p) {
    for (const auto& [id, client] : nodes) {
      Result<ExistsResult> e = client->Exists(kNs, PromptView::Tokens(PromptTokens(p)));
      if (!e.ok()) {
        out[p][id] = Holding{~0u, ~0u};  // never equal to the scheduler's answer
        continue;
      }
      Holding h;
      while (h.leading < e->tiers.size() && e->tiers[h.leading] != Tier::kNone) ++h.leading;
      h.held = e->present_blocks;
      if (h.held > 0) out[p][id] = h;
    }
  }
  return out;
}

// What the scheduler's index says (Lookup), for every prompt.
std::vector<View> SchedulerView(SchedulerClient& sched) {
  const BlockHasher hasher(kNs, "", kBlockTokens);
  std::vector<View> out(kPrompts);
  for (uint32_t p = 0; p < kPrompts; ++p) {
    Result<PoolLookupResult> r = sched.Lookup(kNs, hasher.HashPrompt(PromptTokens(p)));
    if (!r.ok()) {
      out[p]["error"] = Holding{};
      continue;
    }
    for (const NodeHolding& n : r->nodes) {
      out[p][n.node_id] = Holding{n.leading_blocks, static_cast<uint32_t>(n.held.total())};
    }
  }
  return out;
}

}  // namespace

TEST_CASE("Fault: the scheduler SIGKILLed under load and restarted resumes routing and its "
          "index converges exactly to the nodes' blocks",
          "[scheduler][fault]") {
  TempDir dir;
  auto sched = std::make_unique<TestScheduler>(dir, 0, "1");
  const int port = sched->port();
  TestDaemon a(NodeConfig(sched->address(), "node-a"));
  TestDaemon b(NodeConfig(sched->address(), "node-b"));
  const NamespaceSpec spec{kNs, kBlockTokens, 4096, ""};
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace(spec));
  KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace(spec));
  const std::string address = sched->address();

  std::atomic<bool> stop{false};
  std::atomic<bool> restarted{false};
  // Writers: publish, delete and evict on their node, never stopping for the scheduler.
  auto writer = [&](Client* node, uint64_t seed) {
    std::mt19937_64 rng(seed);
    while (!stop.load()) {
      const std::vector<uint32_t> tokens = PromptTokens(static_cast<uint32_t>(rng() % kPrompts));
      const uint32_t blocks = static_cast<uint32_t>(tokens.size() / kBlockTokens);
      const int op = static_cast<int>(rng() % 10);
      if (op < 7) {
        Result<Allocation> alloc = node->AllocMem(kNs, blocks);
        if (!alloc.ok()) continue;
        node->Insert(kNs, PromptView::Tokens(tokens), 0, HandlesOf(*alloc), alloc->lease.id)
            .status().IgnoreError();
        node->Release(alloc->lease.id).status().IgnoreError();
      } else if (op < 9) {
        node->Delete(kNs, PromptView::Tokens(tokens)).status().IgnoreError();
      } else {
        node->Evict(kNs, 2).status().IgnoreError();
      }
    }
  };
  // A router that also stands in for two colocated instances: it re-registers them when the
  // scheduler no longer knows them (a restarted scheduler forgets instances; nodes re-register
  // on their own). Records when each Route succeeded.
  struct RouteLog {
    int ok_before = 0, failed = 0;
    std::atomic<int> ok_after{0};  // also read by the test's thread while the router runs
    int64_t first_ok_after_ms = -1;
    Status last_error;
  };
  RouteLog route_log;
  Clock::time_point restart_time;
  auto router = [&] {
    ClientOptions copts;
    copts.timeout_ms = 2'000;
    std::unique_ptr<SchedulerClient> client;
    const BlockHasher hasher(kNs, "", kBlockTokens);
    std::mt19937_64 rng(7);
    while (!stop.load()) {
      if (!client) {
        Result<std::unique_ptr<SchedulerClient>> c = SchedulerClient::Connect(address, copts);
        if (!c.ok()) {
          std::this_thread::sleep_for(std::chrono::milliseconds(20));
          continue;
        }
        client = std::move(c).value();
      }
      using Instance = std::pair<const char*, const char*>;
      for (const auto& [inst, node] : {Instance{"inst-a", "node-a"}, Instance{"inst-b", "node-b"}}) {
        if (client->ReportLoad(inst, 0, 0).code() == StatusCode::kNotFound) {
          client->RegisterInstance(inst, "colocated", node).IgnoreError();
        }
      }
      RouteQuery q;
      q.ns = kNs;
      q.hashes = hasher.HashPrompt(PromptTokens(static_cast<uint32_t>(rng() % kPrompts)));
      Result<RouteAnswer> r = client->Route(q);
      client->Lookup(kNs, q.hashes).status().IgnoreError();
      const bool after = restarted.load();
      if (r.ok() && !r->ranked.empty()) {
        if (!after) ++route_log.ok_before;
        if (after && route_log.ok_after++ == 0) {
          route_log.first_ok_after_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                                            Clock::now() - restart_time)
                                            .count();
        }
      } else {
        ++route_log.failed;
        route_log.last_error = r.status();
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  };

  std::thread wa(writer, &a.client(), 1);
  std::thread wb(writer, &b.client(), 2);
  std::thread rt(router);
  std::this_thread::sleep_for(std::chrono::milliseconds(1'500));
  sched->Kill();
  sched.reset();
  // The nodes keep changing their blocks while no scheduler runs.
  std::this_thread::sleep_for(std::chrono::milliseconds(700));
  restart_time = Clock::now();
  restarted.store(true);
  sched = std::make_unique<TestScheduler>(dir, port, "2");
  // Routing resumes under load.
  const bool resumed = PollUntil(15'000, [&] { return route_log.ok_after.load() >= 20; });
  stop.store(true);
  wa.join();
  wb.join();
  rt.join();
  INFO("routes: " << route_log.ok_before << " ok before the kill, " << route_log.ok_after.load()
                  << " ok after the restart (first after " << route_log.first_ok_after_ms
                  << " ms), " << route_log.failed << " failed, last error "
                  << route_log.last_error.ToString());
  CHECK(route_log.ok_before > 0);
  CHECK(resumed);

  // With the load stopped, the index converges to exactly what the nodes hold.
  const std::map<std::string, Client*> nodes = {{"node-a", &a.client()}, {"node-b", &b.client()}};
  const std::vector<View> want = NodesView(nodes);
  std::vector<View> got;
  const bool converged = PollUntil(15'000, [&] {
    got = SchedulerView(sched->client());
    return got == want;
  });
  if (!converged) {
    for (uint32_t p = 0; p < kPrompts; ++p) {
      if (got[p] != want[p]) {
        UNSCOPED_INFO("prompt " << p << ": nodes " << Describe(want[p]) << "- scheduler "
                                << Describe(got[p]));
      }
    }
  }
  CHECK(converged);
  uint64_t blocks_held = 0;
  for (const View& v : want) blocks_held += v.size();
  CHECK(blocks_held > 0);  // the comparison was not between two empty indexes
  // Node totals agree too: the index counts every cached block of each node, nothing more.
  const std::vector<PoolNode> listed = KVPOOL_IT_VALUE(sched->client().ListNodes());
  REQUIRE(listed.size() == 2);
  for (const PoolNode& n : listed) {
    INFO(n.node_id);
    CHECK(n.alive);
    CHECK(n.synced);
    CHECK(n.indexed_blocks.total() == NamespaceFromStats(*nodes.at(n.node_id), kNs).stats.cached_blocks);
  }
}

}  // namespace kvpool::itest
