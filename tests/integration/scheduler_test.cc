// kvpool-scheduler with real kvpoold nodes on loopback: the KV-event feed keeps the global
// index equal to the union of the nodes' indexes, through a node's death and a scheduler restart.
#include <signal.h>

#include <algorithm>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvpool/block_hash.h"
#include "kvpool/scheduler_client.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

constexpr uint32_t kBlockTokens = 16;
constexpr const char* kNs = "sched-ns";
// Inserts the whole prompt on a node.
void InsertPrompt(Client& client, const std::vector<uint32_t>& tokens) {
  const uint32_t blocks = static_cast<uint32_t>(tokens.size() / kBlockTokens);
  const Allocation alloc = KVPOOL_IT_VALUE(client.AllocMem(kNs, blocks));
  KVPOOL_IT_REQUIRE_OK(client.Insert(kNs, PromptView::Tokens(tokens), 0, HandlesOf(alloc),
                                     alloc.lease.id));
  KVPOOL_IT_REQUIRE_OK(client.Release(alloc.lease.id));
}

// node id -> leading blocks, as the scheduler sees a prompt; plus the pooled prefix.
struct View {
  std::map<std::string, uint32_t> leading;
  uint32_t pooled = 0;
  friend bool operator==(const View&, const View&) = default;
};

View LookupView(SchedulerClient& sched, const std::vector<BlockHash>& hashes) {
  View v;
  Result<PoolLookupResult> r = sched.Lookup(kNs, hashes);
  if (!r.ok()) {
    v.pooled = ~0u;  // never equal to an expected view
    return v;
  }
  for (const NodeHolding& n : r->nodes) v.leading[n.node_id] = n.leading_blocks;
  v.pooled = r->pooled_prefix_blocks;
  return v;
}

std::string Describe(const View& v) {
  std::string s = "pooled=" + std::to_string(v.pooled);
  for (const auto& [node, n] : v.leading) s += " " + node + ":" + std::to_string(n);
  return s;
}

// Polls until the scheduler's view of `hashes` is `want`.
void RequireConverges(SchedulerClient& sched, const std::vector<BlockHash>& hashes,
                      const View& want, const std::string& what) {
  View last;
  const bool ok = PollUntil(15'000, [&] {
    last = LookupView(sched, hashes);
    return last == want;
  });
  INFO(what << ": want " << Describe(want) << ", last seen " << Describe(last));
  REQUIRE(ok);
}

}  // namespace

TEST_CASE("kvpool-scheduler: the index follows two nodes' events, a node's death and a "
          "scheduler restart",
          "[scheduler]") {
  TempDir dir;
  auto sched = std::make_unique<TestScheduler>(dir, 0, "1");
  const int sched_port = sched->port();

  TestDaemon a(NodeConfig(sched->address(), "node-a"));
  TestDaemon b(NodeConfig(sched->address(), "node-b"));
  const NamespaceSpec spec{kNs, kBlockTokens, 4096, ""};
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace(spec));
  KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace(spec));

  // A shared 4-block prefix; node a holds prefix + 4 blocks, node b prefix + 2 other blocks,
  // and node b alone holds a second, unrelated prompt.
  const std::vector<uint32_t> prefix = MakeTokens(4 * kBlockTokens, 1);
  const std::vector<uint32_t> pa = Concat(prefix, MakeTokens(4 * kBlockTokens, 2));
  const std::vector<uint32_t> pb = Concat(prefix, MakeTokens(2 * kBlockTokens, 3));
  const std::vector<uint32_t> only_b = MakeTokens(3 * kBlockTokens, 4);
  InsertPrompt(a.client(), pa);
  InsertPrompt(b.client(), Head(pb, 4 * kBlockTokens));  // the prefix first, then the rest
  InsertPrompt(b.client(), pb);
  InsertPrompt(b.client(), only_b);

  const BlockHasher hasher(kNs, "", kBlockTokens);
  const std::vector<BlockHash> ha = hasher.HashPrompt(pa);
  const std::vector<BlockHash> hb = hasher.HashPrompt(pb);
  const std::vector<BlockHash> hob = hasher.HashPrompt(only_b);

  RequireConverges(sched->client(), ha, View{{{"node-a", 8}, {"node-b", 4}}, 8}, "prompt a");
  RequireConverges(sched->client(), hb, View{{{"node-a", 4}, {"node-b", 6}}, 6}, "prompt b");
  RequireConverges(sched->client(), hob, View{{{"node-b", 3}}, 3}, "b-only prompt");

  {
    // Both nodes are registered, alive and synced, and the index counts exactly their blocks.
    std::vector<PoolNode> nodes = KVPOOL_IT_VALUE(sched->client().ListNodes());
    REQUIRE(nodes.size() == 2);
    CHECK(nodes[0].node_id == "node-a");
    CHECK(nodes[0].alive);
    CHECK(nodes[0].synced);
    CHECK(nodes[0].indexed_blocks.host == 8);
    CHECK(nodes[1].node_id == "node-b");
    CHECK(nodes[1].indexed_blocks.host == 9);
    CHECK(nodes[0].address == a.address());
  }

  SECTION("deleting on a node removes its blocks from the index") {
    // Delete removes the last full block of the given prompt and everything below it.
    KVPOOL_IT_REQUIRE_OK(a.client().Delete(kNs, PromptView::Tokens(Head(pa, 6 * kBlockTokens))));
    RequireConverges(sched->client(), ha, View{{{"node-a", 5}, {"node-b", 4}}, 5},
                     "after delete on a");
    KVPOOL_IT_REQUIRE_OK(b.client().DeleteNamespace(kNs));
    RequireConverges(sched->client(), hob, View{{}, 0}, "after namespace delete on b");
    RequireConverges(sched->client(), ha, View{{{"node-a", 5}}, 5}, "prompt a, b gone");
  }

  SECTION("evicting on a node makes the index forget those blocks") {
    // Node a holds one 8-block chain: eviction takes its leaves from the tail.
    CHECK(KVPOOL_IT_VALUE(a.client().Evict(kNs, 3)) == 3);
    RequireConverges(sched->client(), ha, View{{{"node-a", 5}, {"node-b", 4}}, 5},
                     "after evicting 3 blocks on a");
  }

  SECTION("a killed node leaves the index after the heartbeat timeout") {
    b.DropClient();
    b.daemon().process().Signal(SIGKILL);
    RequireConverges(sched->client(), ha, View{{{"node-a", 8}}, 8}, "prompt a without b");
    RequireConverges(sched->client(), hob, View{{}, 0}, "b-only prompt without b");
    std::vector<PoolNode> nodes = KVPOOL_IT_VALUE(sched->client().ListNodes());
    REQUIRE(nodes.size() == 1);
    CHECK(nodes[0].node_id == "node-a");
  }

  SECTION("a restarted scheduler rebuilds the index from the nodes' snapshots") {
    sched->Kill();
    sched.reset();
    // Changes while the scheduler is away reach it through the resync.
    InsertPrompt(a.client(), only_b);
    sched = std::make_unique<TestScheduler>(dir, sched_port, "2");
    RequireConverges(sched->client(), ha, View{{{"node-a", 8}, {"node-b", 4}}, 8},
                     "prompt a after restart");
    RequireConverges(sched->client(), hb, View{{{"node-a", 4}, {"node-b", 6}}, 6},
                     "prompt b after restart");
    RequireConverges(sched->client(), hob, View{{{"node-a", 3}, {"node-b", 3}}, 3},
                     "b-only prompt after restart");
    // And events flow again after the resync.
    const std::vector<uint32_t> fresh = MakeTokens(2 * kBlockTokens, 5);
    InsertPrompt(b.client(), fresh);
    RequireConverges(sched->client(), hasher.HashPrompt(fresh), View{{{"node-b", 2}}, 2},
                     "new prompt after restart");
  }
}

TEST_CASE("kvpool-scheduler: routes to the instance whose node holds the prompt, rejects bad "
          "input",
          "[scheduler]") {
  TempDir dir;
  TestScheduler sched(dir, 0, "1");
  TestDaemon a(NodeConfig(sched.address(), "node-a"));
  TestDaemon b(NodeConfig(sched.address(), "node-b"));
  const NamespaceSpec spec{kNs, kBlockTokens, 4096, ""};
  KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace(spec));
  const std::vector<uint32_t> prompt = MakeTokens(8 * kBlockTokens, 7);
  InsertPrompt(b.client(), prompt);
  const std::vector<BlockHash> hashes = BlockHasher(kNs, "", kBlockTokens).HashPrompt(prompt);
  RequireConverges(sched.client(), hashes, View{{{"node-b", 8}}, 8}, "prompt on b");

  RouteQuery query;
  query.ns = kNs;
  query.hashes = hashes;
  KVPOOL_IT_CHECK_ERROR(sched.client().Route(query), StatusCode::kUnavailable, "");

  KVPOOL_IT_REQUIRE_OK(sched.client().RegisterInstance("inst-a", "colocated", "node-a"));
  KVPOOL_IT_REQUIRE_OK(sched.client().RegisterInstance("inst-b", "colocated", "node-b"));
  query.policy = "prefix";
  query.explain = true;
  RouteAnswer answer = KVPOOL_IT_VALUE(sched.client().Route(query));
  REQUIRE(answer.ranked.size() == 2);
  CHECK(answer.ranked[0].instance_id == "inst-b");
  CHECK(answer.ranked[0].local_prefix_blocks == 8);
  CHECK(answer.pooled_prefix_blocks == 8);

  // Bad input answers INVALID_ARGUMENT naming the value, and the scheduler keeps serving.
  query.policy = "fastest";
  KVPOOL_IT_CHECK_ERROR(sched.client().Route(query), StatusCode::kInvalidArgument, "fastest");
  query.policy = "";
  query.role = "trainer";
  KVPOOL_IT_CHECK_ERROR(sched.client().Route(query), StatusCode::kInvalidArgument, "trainer");
  KVPOOL_IT_CHECK_ERROR(sched.client().Lookup("", hashes), StatusCode::kInvalidArgument,
                        "namespace");
  KVPOOL_IT_CHECK_ERROR(sched.client().RegisterInstance("", "colocated", ""),
                        StatusCode::kInvalidArgument, "instance_id");
  KVPOOL_IT_CHECK_ERROR(sched.client().ReportLoad("nobody", 1, 1), StatusCode::kNotFound,
                        "nobody");
  KVPOOL_IT_CHECK_ERROR(sched.client().ReportLoad("inst-a", 1, 1, -0.5),
                        StatusCode::kInvalidArgument, "queued_prefill_s");
  KVPOOL_IT_VALUE(sched.client().ListNodes());

  // Placement names a live node, honours the allowed list, and refuses an unknown one.
  const Placement anywhere = KVPOOL_IT_VALUE(sched.client().Place(kNs, 4));
  CHECK((anywhere.node_id == "node-a" || anywhere.node_id == "node-b"));
  const std::vector<std::string> only_a = {"node-a"};
  CHECK(KVPOOL_IT_VALUE(sched.client().Place(kNs, 4, only_a)).node_id == "node-a");
  const std::vector<std::string> nobody = {"node-zzz"};
  CHECK_FALSE(sched.client().Place(kNs, 4, nobody).ok());

  // Reported load shows in the instance list, next to the scheduler's estimate.
  KVPOOL_IT_REQUIRE_OK(sched.client().ReportLoad("inst-a", 1000, 2, 0.25));
  const std::vector<PoolInstance> instances = KVPOOL_IT_VALUE(sched.client().ListInstances());
  REQUIRE(instances.size() == 2);
  CHECK(instances[0].instance_id == "inst-a");
  CHECK(instances[0].node_id == "node-a");
  CHECK(instances[0].queued_prompt_tokens == 1000);
  CHECK(instances[0].running_requests == 2);
  CHECK(instances[0].queued_prefill_s == 0.25);
  CHECK(instances[0].estimated_queued_prefill_s == 0.25);
  CHECK(instances[0].alive);

  // kvpoolctl shows the same through the scheduler.
  std::string hex;
  for (const BlockHash& h : hashes) hex += (hex.empty() ? "" : ",") + h.ToHex();
  const std::string sched_flag = "--scheduler=" + sched.address();
  CommandResult nodes = RunKvpoolctl(a.address(), {"nodes", "--json", sched_flag});
  INFO(nodes.err);
  REQUIRE(nodes.exit_code == 0);
  const nlohmann::json nj = nlohmann::json::parse(nodes.out);
  REQUIRE(nj["nodes"].size() == 2);
  CHECK(nj["nodes"][1]["node_id"] == "node-b");
  CHECK(nj["nodes"][1]["indexed_blocks"]["host"] == 8);

  CommandResult insts = RunKvpoolctl(a.address(), {"instances", "--json", sched_flag});
  INFO(insts.err);
  REQUIRE(insts.exit_code == 0);
  const nlohmann::json ij = nlohmann::json::parse(insts.out);
  REQUIRE(ij["instances"].size() == 2);
  CHECK(ij["instances"][0]["queued_prompt_tokens"] == 1000);
  CHECK(ij["instances"][0]["queued_prefill_s"] == 0.25);
  CHECK(ij["instances"][1]["role"] == "colocated");

  CommandResult tree = RunKvpoolctl(a.address(), {"tree", "--json", sched_flag});
  INFO(tree.err);
  REQUIRE(tree.exit_code == 0);
  const nlohmann::json tj = nlohmann::json::parse(tree.out);
  CHECK(tj["blocks"] == 8);
  CHECK(tj["copies"] == 8);
  CHECK(tj["memory_bytes"].get<uint64_t>() > 0);
  REQUIRE(tj["namespaces"].size() == 1);
  CHECK(tj["namespaces"][0]["blocks"] == 8);
  REQUIRE(tj["most_replicated"].size() == 8);
  CHECK(tj["most_replicated"][0]["node_ids"][0] == "node-b");
  CHECK(RunKvpoolctl(a.address(), {"tree", "--top", "5000", sched_flag}).exit_code == 1);

  CommandResult lookup = RunKvpoolctl(a.address(), {"lookup", kNs, "--hashes", hex, "--json",
                                                    sched_flag});
  INFO(lookup.err);
  REQUIRE(lookup.exit_code == 0);
  const nlohmann::json lj = nlohmann::json::parse(lookup.out);
  CHECK(lj["pooled_prefix_blocks"] == 8);
  CHECK(lj["nodes"][0]["node_id"] == "node-b");

  CommandResult route = RunKvpoolctl(a.address(), {"route", kNs, "--hashes", hex, "--policy",
                                                   "prefix", "--explain", "--json", sched_flag});
  INFO(route.err);
  REQUIRE(route.exit_code == 0);
  const nlohmann::json rj = nlohmann::json::parse(route.out);
  CHECK(rj["ranked"][0]["instance_id"] == "inst-b");
  CHECK(rj["ranked"].size() == 2);

  CommandResult bad = RunKvpoolctl(a.address(), {"route", kNs, "--hashes", hex, "--policy",
                                                 "fastest", sched_flag});
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.err, Catch::Contains("fastest"));
}

TEST_CASE("kvpool-scheduler: a node stopped with SIGTERM and an instance that leaves are "
          "forgotten at once",
          "[scheduler]") {
  TempDir dir;
  TestScheduler sched(dir, 0, "1");
  TestDaemon a(NodeConfig(sched.address(), "node-a"));
  auto b = std::make_unique<TestDaemon>(NodeConfig(sched.address(), "node-b"));
  const NamespaceSpec spec{kNs, kBlockTokens, 4096, ""};
  KVPOOL_IT_REQUIRE_OK(b->client().CreateNamespace(spec));
  const std::vector<uint32_t> prompt = MakeTokens(4 * kBlockTokens, 17);
  InsertPrompt(b->client(), prompt);
  const std::vector<BlockHash> hashes = BlockHasher(kNs, "", kBlockTokens).HashPrompt(prompt);
  RequireConverges(sched.client(), hashes, View{{{"node-b", 4}}, 4}, "prompt on b");

  // SIGTERM: b deregisters before it exits, so the scheduler has forgotten it and its blocks
  // as soon as the process is gone, well before the 1.5 s heartbeat timeout.
  b.reset();
  const std::vector<PoolNode> nodes = KVPOOL_IT_VALUE(sched.client().ListNodes());
  REQUIRE(nodes.size() == 1);
  CHECK(nodes[0].node_id == "node-a");
  CHECK(LookupView(sched.client(), hashes) == View{{}, 0});
  CHECK_THAT(sched.Log(), Catch::Contains("node node-b left"));

  KVPOOL_IT_REQUIRE_OK(sched.client().RegisterInstance("inst-a", "colocated", "node-a"));
  KVPOOL_IT_REQUIRE_OK(sched.client().DeregisterInstance("inst-a"));
  CHECK(KVPOOL_IT_VALUE(sched.client().ListInstances()).empty());
  KVPOOL_IT_CHECK_ERROR(sched.client().DeregisterInstance("inst-a"), StatusCode::kNotFound,
                        "inst-a");
  KVPOOL_IT_CHECK_ERROR(sched.client().DeregisterInstance(""), StatusCode::kInvalidArgument,
                        "instance_id");
}

}  // namespace kvpool::itest
