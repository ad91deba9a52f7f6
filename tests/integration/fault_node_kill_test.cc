// Fault injection: a kvpoold SIGKILLed while concurrent clients Put into it, Get from it, and
// Transfer and TransferWithInsert to and from it. Every call ends within its deadline, the
// surviving nodes end with no lease or block left over, every block they answer a Match with
// holds exactly the bytes it was published with, and the scheduler drops the dead node.
#include <signal.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "kvpool/data_plane.h"
#include "kvpool/scheduler_client.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

using Clock = std::chrono::steady_clock;
constexpr uint32_t kBlockTokens = 16;
constexpr uint64_t kBlockBytes = 64 << 10;
constexpr uint32_t kPromptBlocks = 4;
constexpr const char* kNs = "fault";
// Deadlines of every call: RPCs, data-plane waits, node-driven transfers.
constexpr uint32_t kDeadlineMs = 3'000;
// What a call may take past its deadline before it counts as hung (a loaded 2-core machine).
constexpr int64_t kSlackMs = 2'000;
// Nodes' lease TTL: short, so that what the dead node's half-done work left behind expires fast.
constexpr uint32_t kLeaseTtlMs = 1'000;

// The bytes of block `block` of prompt `prompt`: each 8-byte word differs, so a block that is
// half-written, or another block's bytes, never passes for it.
void FillBlock(uint32_t prompt, uint32_t block, uint8_t* out) {
  const uint64_t key = (uint64_t{prompt} << 32 | block) * 0x9E3779B97F4A7C15ull;
  for (uint64_t w = 0; w < kBlockBytes / 8; ++w) {
    const uint64_t v = key ^ (w * 0xC2B2AE3D27D4EB4Full);
    std::memcpy(out + w * 8, &v, 8);
  }
}
std::vector<uint32_t> PromptTokens(uint32_t prompt) {
  return MakeTokens(kPromptBlocks * kBlockTokens, 1'000 + prompt);
}
std::vector<uint64_t> Offsets(size_t n) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(i * kBlockBytes);
  return out;
}

// One finished call, recorded by a worker thread (Catch2 assertions are not thread-safe).
struct Call {
  std::string what;
  Status status;
  int64_t ms = 0;
  bool after_kill = false;
};

// Clients of one worker thread: a Client and a DataPlane per node it uses, and a buffer.
struct Conn {
  std::unique_ptr<Client> client;
  std::unique_ptr<DataPlane> dp;
  RegionId region{};
};
struct WorkerConns {
  std::vector<uint8_t> buffer = std::vector<uint8_t>(kPromptBlocks * kBlockBytes);
  std::map<std::string, Conn> nodes;
};

class Load {
 public:
  explicit Load(std::map<std::string, std::string> addresses) : addresses_(std::move(addresses)) {}

  // Connects a worker to `nodes` (in the test's thread, where REQUIRE works).
  WorkerConns& AddWorker(const std::vector<std::string>& nodes) {
    workers_.push_back(std::make_unique<WorkerConns>());
    WorkerConns& w = *workers_.back();
    ClientOptions copts;
    copts.timeout_ms = kDeadlineMs;
    for (const std::string& n : nodes) {
      Conn& c = w.nodes[n];
      c.client = KVPOOL_IT_VALUE(Client::Connect(addresses_.at(n), copts));
      DataPlaneOptions dopts;
      dopts.tls = "shm";
      dopts.transfer_timeout_ms = kDeadlineMs;
      c.dp = KVPOOL_IT_VALUE(DataPlane::Connect(*c.client, dopts));
      c.region = KVPOOL_IT_VALUE(c.dp->RegisterMemory(w.buffer.data(), w.buffer.size()));
    }
    return w;
  }

  // Runs `call`, timing it; returns its result.
  template <typename F>
  auto Timed(std::vector<Call>& log, const std::string& what, F&& call) {
    const auto t0 = Clock::now();
    auto result = call();
    log.push_back({what, internal::AsStatus(result),
                   std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t0).count(),
                   killed_.load()});
    return result;
  }

  // Stores prompt `p` on `node` through the worker's data plane (AllocMem, Put, Insert).
  Status Publish(WorkerConns& w, std::vector<Call>& log, const std::string& node, uint32_t p) {
    for (uint32_t b = 0; b < kPromptBlocks; ++b) FillBlock(p, b, w.buffer.data() + b * kBlockBytes);
    Conn& c = w.nodes.at(node);
    const std::vector<uint32_t> tokens = PromptTokens(p);
    return internal::AsStatus(Timed(log, "put " + node, [&] {
      return c.dp->PutAndInsert(*c.client, kNs, PromptView::Tokens(tokens), 0, c.region,
                                Offsets(kPromptBlocks));
    }));
  }

  // Allocates prompt `p`'s blocks on `node`, fills them, returns the allocation (lease held).
  Result<Allocation> Stage(WorkerConns& w, std::vector<Call>& log, const std::string& node,
                           uint32_t p) {
    Conn& c = w.nodes.at(node);
    Result<Allocation> alloc = c.client->AllocMem(kNs, kPromptBlocks);
    if (!alloc.ok()) return alloc;
    for (uint32_t b = 0; b < kPromptBlocks; ++b) FillBlock(p, b, w.buffer.data() + b * kBlockBytes);
    const Status put = Timed(log, "stage " + node, [&]() -> Status {
      KVPOOL_ASSIGN_OR_RETURN(TransferHandle h,
                              c.dp->Put(c.region, Offsets(kPromptBlocks), alloc->blocks));
      return h.Wait(kDeadlineMs);
    });
    if (!put.ok()) {
      c.client->Release(alloc->lease.id).status().IgnoreError();
      return put;
    }
    return alloc;
  }

  std::vector<std::unique_ptr<WorkerConns>>& workers() { return workers_; }
  std::atomic<bool>& killed() { return killed_; }

 private:
  std::map<std::string, std::string> addresses_;
  std::vector<std::unique_ptr<WorkerConns>> workers_;
  std::atomic<bool> killed_{false};
};

DaemonConfig FaultNode(const std::string& scheduler, const std::string& id) {
  DaemonConfig config = NodeConfig(scheduler, id);
  config.extra_args.insert(config.extra_args.end(),
                           {"--ucx-tls=shm", "--lease-ttl-ms=" + std::to_string(kLeaseTtlMs),
                            "--lease-sweep-ms=100",
                            "--transfer-timeout-ms=" + std::to_string(kDeadlineMs)});
  return config;
}

// The prompts each worker publishes: disjoint ranges, so a survivor-only worker's prompts never
// depend on the victim.
constexpr uint32_t kPromptsPerWorker = 1'000;

}  // namespace

TEST_CASE("Fault: a node SIGKILLed under concurrent Put, Get, Transfer and TransferWithInsert "
          "hangs no call and leaks nothing on the survivors",
          "[ucx][fault]") {
  TempDir dir;
  TestScheduler sched(dir, 0, "1");
  TestDaemon a(FaultNode(sched.address(), "node-a"));
  TestDaemon b(FaultNode(sched.address(), "node-b"));
  auto victim = std::make_unique<TestDaemon>(FaultNode(sched.address(), "node-v"));
  const std::map<std::string, std::string> addresses = {
      {"node-a", a.address()}, {"node-b", b.address()}, {"node-v", victim->address()}};
  REQUIRE(PollUntil(15'000, [&] {
    Result<std::vector<PoolNode>> nodes = sched.client().ListNodes();
    if (!nodes.ok() || nodes->size() != 3) return false;
    for (const PoolNode& n : *nodes) {
      if (!n.alive || !n.synced) return false;
    }
    return true;
  }));
  const NamespaceSpec spec{kNs, kBlockTokens, kBlockBytes, ""};
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace(spec));
  KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace(spec));
  KVPOOL_IT_REQUIRE_OK(victim->client().CreateNamespace(spec));

  Load load(addresses);
  // Worker kinds, each looping until stopped:
  //   0 Put then Get on the victim           3 TransferWithInsert a -> victim
  //   1 Put then Get on node-a (survivor)    4 TransferWithInsert victim -> a, Transfer victim -> b
  //   2 Transfer a -> victim                 5 TransferWithInsert a -> b (survivors only)
  const std::vector<std::vector<std::string>> uses = {
      {"node-v"}, {"node-a"}, {"node-a", "node-v"}, {"node-a"}, {"node-v", "node-b"},
      {"node-a"}};
  for (const auto& u : uses) load.AddWorker(u);
  std::vector<std::vector<Call>> logs(uses.size());
  std::vector<uint32_t> iterations(uses.size(), 0);  // each written by its worker only
  std::atomic<bool> stop{false};

  auto worker = [&](size_t k) {
    WorkerConns& w = *load.workers()[k];
    std::vector<Call>& log = logs[k];
    for (uint32_t i = 0; !stop.load(); ++i, ++iterations[k]) {
      const uint32_t p = static_cast<uint32_t>(k) * kPromptsPerWorker + i % kPromptsPerWorker;
      const std::vector<uint32_t> tokens = PromptTokens(p);
      switch (k) {
        case 0:
        case 1: {
          const std::string node = k == 0 ? "node-v" : "node-a";
          if (!load.Publish(w, log, node, p).ok()) break;
          Conn& c = w.nodes.at(node);
          load.Timed(log, "get " + node, [&] {
            return c.dp->MatchAndGet(*c.client, kNs, PromptView::Tokens(tokens), c.region,
                                     Offsets(kPromptBlocks));
          }).status().IgnoreError();
          break;
        }
        case 2: {
          Result<Allocation> src = load.Stage(w, log, "node-a", p);
          if (!src.ok()) break;
          Client& vc = *w.nodes.at("node-v").client;
          Result<Allocation> dst =
              load.Timed(log, "alloc node-v", [&] { return vc.AllocMem(kNs, kPromptBlocks); });
          if (dst.ok()) {
            load.Timed(log, "transfer a->v", [&] {
              return w.nodes.at("node-a").client->TransferToNode(
                  src->lease.id, HandlesOf(*src), NodeBlocks{"node-v", dst->lease.id,
                                                             HandlesOf(*dst)}, kDeadlineMs);
            }).status().IgnoreError();
            vc.Release(dst->lease.id).status().IgnoreError();
          }
          w.nodes.at("node-a").client->Release(src->lease.id).status().IgnoreError();
          break;
        }
        case 3:
        case 5: {
          const std::string dst = k == 3 ? "node-v" : "node-b";
          Result<Allocation> src = load.Stage(w, log, "node-a", p);
          if (!src.ok()) break;
          load.Timed(log, "twi a->" + dst, [&] {
            return w.nodes.at("node-a").client->TransferWithInsert(
                dst, kNs, PromptView::Tokens(tokens), 0, src->lease.id, HandlesOf(*src),
                kDeadlineMs);
          }).status().IgnoreError();
          w.nodes.at("node-a").client->Release(src->lease.id).status().IgnoreError();
          break;
        }
        case 4: {
          // The victim is the source: what it was writing into a or b must never surface.
          Result<Allocation> src = load.Stage(w, log, "node-v", p);
          if (!src.ok()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(20));
            break;
          }
          Client& vc = *w.nodes.at("node-v").client;
          load.Timed(log, "twi v->a", [&] {
            return vc.TransferWithInsert("node-a", kNs, PromptView::Tokens(tokens), 0,
                                         src->lease.id, HandlesOf(*src), kDeadlineMs);
          }).status().IgnoreError();
          Client& bc = *w.nodes.at("node-b").client;
          Result<Allocation> dst = bc.AllocMem(kNs, kPromptBlocks);
          if (dst.ok()) {
            load.Timed(log, "transfer v->b", [&] {
              return vc.TransferToNode(src->lease.id, HandlesOf(*src),
                                       NodeBlocks{"node-b", dst->lease.id, HandlesOf(*dst)},
                                       kDeadlineMs);
            }).status().IgnoreError();
            bc.Release(dst->lease.id).status().IgnoreError();
          }
          vc.Release(src->lease.id).status().IgnoreError();
          break;
        }
      }
      // A dead node refuses at once: do not spin.
      if (!log.empty() && !log.back().status.ok()) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
    }
  };
  std::vector<std::thread> threads;
  for (size_t k = 0; k < uses.size(); ++k) threads.emplace_back(worker, k);
  std::this_thread::sleep_for(std::chrono::milliseconds(1'500));
  victim->DropClient();
  load.killed().store(true);
  victim->daemon().process().Signal(SIGKILL);
  std::this_thread::sleep_for(std::chrono::milliseconds(2'000));
  stop.store(true);
  for (std::thread& t : threads) t.join();
  load.workers().clear();  // every worker's connections go before the checks

  // No call hung: each ended within its deadline (plus slack for a loaded machine).
  std::map<std::string, int> ok_before, failed_after, calls;
  for (const std::vector<Call>& log : logs) {
    for (const Call& c : log) {
      INFO(c.what << " -> " << c.status.ToString() << " after " << c.ms << " ms");
      CHECK(c.ms <= kDeadlineMs + kSlackMs);
      ++calls[c.what];
      if (!c.after_kill && c.status.ok()) ++ok_before[c.what];
      if (c.after_kill && !c.status.ok()) ++failed_after[c.what];
      // Calls that involve only survivors keep working, before and after the kill.
      if (c.what == "put node-a" || c.what == "get node-a" || c.what == "twi a->node-b") {
        CHECK(c.status.ok());
      }
    }
  }
  for (const auto& [what, n] : calls) {
    UNSCOPED_INFO(what << ": " << n << " calls, " << ok_before[what] << " ok before the kill, "
                       << failed_after[what] << " failed after");
  }
  // The load really ran through the victim before the kill, and the kill really hit it.
  CHECK(ok_before["put node-v"] > 0);
  CHECK(ok_before["twi a->node-v"] > 0);
  CHECK(ok_before["transfer a->v"] > 0);
  CHECK(ok_before["twi v->a"] > 0);
  CHECK(failed_after["put node-v"] + failed_after["get node-v"] > 0);

  // The scheduler drops the dead node, and with it every block it held.
  const bool dropped = PollUntil(10'000, [&] {
    Result<std::vector<PoolNode>> nodes = sched.client().ListNodes();
    if (!nodes.ok()) return false;
    for (const PoolNode& n : *nodes) {
      if (n.node_id == "node-v" && n.alive) return false;
    }
    return true;
  });
  CHECK(dropped);
  const BlockHasher hasher(kNs, "", kBlockTokens);
  for (uint32_t i = 0; i < 50; ++i) {
    const PoolLookupResult r =
        KVPOOL_IT_VALUE(sched.client().Lookup(kNs, hasher.HashPrompt(PromptTokens(i))));
    for (const NodeHolding& h : r.nodes) CHECK(h.node_id != "node-v");
  }

  // The survivors: once the leases of half-done work expire, nothing is allocated, pinned or
  // leased, and used bytes are exactly the cached blocks.
  for (TestDaemon* d : {&a, &b}) {
    INFO("node " << d->address());
    const bool settled = PollUntil(kDeadlineMs + 5'000, [&] {
      const Usage u = UsageOf(d->client(), kNs);
      return u.active_leases == 0 && u.allocated_blocks == 0 && u.pinned_blocks == 0;
    });
    const Usage u = UsageOf(d->client(), kNs);
    INFO("usage " << u);
    CHECK(settled);
    CHECK(u.used_bytes == u.cached_blocks * kBlockBytes);
    CHECK(u.node_used_bytes == u.used_bytes);
    CHECK(KVPOOL_IT_VALUE(d->client().Health()));
  }

  // Nothing half-written is matchable: every prompt published on a survivor (by Put, or by a
  // TransferWithInsert from the victim or from a) reads back either not at all or with exactly
  // its bytes, on both survivors.
  std::vector<uint8_t> buffer(kPromptBlocks * kBlockBytes);
  std::vector<uint8_t> want(kBlockBytes);
  int matched_prompts = 0;
  for (TestDaemon* d : {&a, &b}) {
    auto dp = KVPOOL_IT_VALUE(DataPlane::Connect(d->client(), DataPlaneOptions{"shm"}));
    const RegionId region = KVPOOL_IT_VALUE(dp->RegisterMemory(buffer.data(), buffer.size()));
    for (const size_t k : {1, 4, 5}) {
      const uint32_t n = std::min(iterations[k], kPromptsPerWorker);
      for (uint32_t i = 0; i < n; ++i) {
        const uint32_t p = static_cast<uint32_t>(k) * kPromptsPerWorker + i;
        std::fill(buffer.begin(), buffer.end(), 0);
        const uint32_t got = KVPOOL_IT_VALUE(dp->MatchAndGet(
            d->client(), kNs, PromptView::Tokens(PromptTokens(p)), region, Offsets(kPromptBlocks)));
        matched_prompts += got > 0 ? 1 : 0;
        for (uint32_t blk = 0; blk < got; ++blk) {
          FillBlock(p, blk, want.data());
          INFO("prompt " << p << " block " << blk << " on " << d->address());
          CHECK(std::memcmp(buffer.data() + blk * kBlockBytes, want.data(), kBlockBytes) == 0);
        }
      }
    }
  }
  CHECK(matched_prompts > 0);
}

}  // namespace kvpool::itest
