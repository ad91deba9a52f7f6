// Operations on real processes: draining a node before maintenance (kvpoolctl drain / undrain
// against kvpoold and kvpool-scheduler), the address a node advertises to the scheduler, and
// per-namespace quotas at the RPC boundary (docs/operations.md).
#include <signal.h>

#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "kvpool/client.h"
#include "kvpool/scheduler_client.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

using nlohmann::json;

constexpr uint32_t kBlockTokens = 16;
constexpr uint64_t kBlockBytes = 4096;

json ParseJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  INFO("not JSON:\n" << text);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

// Inserts `tokens` (whole blocks) into `ns` and releases the allocation lease.
void Publish(Client& c, const std::string& ns, const std::vector<uint32_t>& tokens) {
  const uint32_t n = static_cast<uint32_t>(tokens.size() / kBlockTokens);
  const Allocation alloc = KVPOOL_IT_VALUE(c.AllocMem(ns, n, Tier::kHost, 60'000));
  KVPOOL_IT_VALUE(c.Insert(ns, PromptView::Tokens(tokens), 0, HandlesOf(alloc), alloc.lease.id));
  KVPOOL_IT_REQUIRE_OK(c.Release(alloc.lease.id));
}

// Blocks of the prompt per tier on the node.
struct TierCount {
  size_t host = 0;
  size_t disk = 0;
  size_t absent = 0;
};
TierCount TiersOf(Client& c, const std::string& ns, const std::vector<uint32_t>& tokens) {
  const ExistsResult r = KVPOOL_IT_VALUE(c.Exists(ns, PromptView::Tokens(tokens)));
  TierCount out;
  for (Tier t : r.tiers) {
    if (t == Tier::kHost) ++out.host;
    else if (t == Tier::kDisk) ++out.disk;
    else ++out.absent;
  }
  return out;
}

const PoolNode* FindNode(const std::vector<PoolNode>& nodes, const std::string& id) {
  for (const PoolNode& n : nodes) {
    if (n.node_id == id) return &n;
  }
  return nullptr;
}

}  // namespace

TEST_CASE("Drain: the scheduler stops placing on and routing to a drained node, its blocks move "
          "to the SSD tier, undrain brings it back",
          "[integration][operations]") {
  TempDir dir;
  TestScheduler sched(dir, 0, "1");
  DaemonConfig config_a = NodeConfig(sched.address(), "node-a");
  config_a.extra_args.push_back("--disk-capacity=16MiB");
  TestDaemon a(config_a);
  TestDaemon b(NodeConfig(sched.address(), "node-b"));
  SchedulerClient& s = sched.client();
  REQUIRE(PollUntil(10'000, [&] {
    Result<std::vector<PoolNode>> nodes = s.ListNodes();
    return nodes.ok() && nodes->size() == 2 && (*nodes)[0].synced && (*nodes)[1].synced;
  }));

  const std::string ns = "drain";
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace({ns, kBlockTokens, kBlockBytes, ""}));
  const std::vector<uint32_t> prompt = MakeTokens(8 * kBlockTokens, 71);
  Publish(a.client(), ns, prompt);
  // An engine still reads the first two blocks: they are pinned by its lease.
  const MatchResult reading =
      KVPOOL_IT_VALUE(a.client().Match(ns, PromptView::Tokens(Head(prompt, 2 * kBlockTokens)),
                                       0, /*lease=*/true, 60'000));
  REQUIRE(reading.matched_blocks == 2);

  KVPOOL_IT_REQUIRE_OK(s.RegisterInstance("inst-a", "colocated", "node-a"));
  KVPOOL_IT_REQUIRE_OK(s.RegisterInstance("inst-b", "colocated", "node-b"));
  const std::vector<std::string> only_a{"node-a"};
  CHECK(KVPOOL_IT_VALUE(s.Place(ns, 1, only_a)).node_id == "node-a");
  RouteQuery to_a;
  to_a.ns = ns;
  to_a.hashes = BlockHasher(ns, "", kBlockTokens).HashPrompt(prompt);
  to_a.candidates = {"inst-a"};
  CHECK(KVPOOL_IT_VALUE(s.Route(to_a)).ranked.at(0).instance_id == "inst-a");

  // Drain: the six unpinned blocks go to the SSD tier; the two pinned ones cannot yet, so with
  // --wait-ms 0 kvpoolctl reports them and exits 3.
  const CommandResult first = RunKvpoolctl(a.address(), {"drain", "--wait-ms", "0", "--json"});
  CHECK(first.exit_code == 3);
  const json j = ParseJson(first.out);
  CHECK(j["draining"] == true);
  CHECK(j["was_draining"] == false);
  CHECK(j["has_scheduler"] == true);
  // Drain waits up to 2 s for the scheduler's acknowledgement; on a loaded machine it may come
  // with the next heartbeat instead, so the state is checked at the scheduler below.
  const bool acknowledged = j["scheduler_acknowledged"] == true;
  INFO("scheduler_acknowledged=" << acknowledged);
  CHECK(j["has_disk_tier"] == true);
  CHECK(j["demoted_blocks"] == 6);
  CHECK(j["dropped_blocks"] == 0);
  CHECK(j["host_blocks"] == 2);
  CHECK(j["pinned_blocks"] == 2);
  CHECK(j["complete"] == false);
  TierCount tiers = TiersOf(a.client(), ns, prompt);
  CHECK(tiers.host == 2);
  CHECK(tiers.disk == 6);

  // The scheduler knows (at once when Drain said scheduler_acknowledged): no placement on
  // node-a, no route to its instance; node-b's instance is still served.
  auto node_a_draining = [&](bool want) {
    return PollUntil(10'000, [&] {
      Result<std::vector<PoolNode>> n = s.ListNodes();
      const PoolNode* node_a = n.ok() ? FindNode(*n, "node-a") : nullptr;
      return node_a != nullptr && node_a->draining == want;
    });
  };
  if (acknowledged) {
    const std::vector<PoolNode> now = KVPOOL_IT_VALUE(s.ListNodes());
    REQUIRE(FindNode(now, "node-a") != nullptr);
    CHECK(FindNode(now, "node-a")->draining);
  }
  REQUIRE(node_a_draining(true));
  std::vector<PoolNode> nodes = KVPOOL_IT_VALUE(s.ListNodes());
  CHECK_FALSE(FindNode(nodes, "node-b")->draining);
  // (Instances that report no load expire after 10 s: registering again keeps them alive.)
  KVPOOL_IT_REQUIRE_OK(s.RegisterInstance("inst-a", "colocated", "node-a"));
  KVPOOL_IT_REQUIRE_OK(s.RegisterInstance("inst-b", "colocated", "node-b"));
  KVPOOL_IT_CHECK_ERROR(s.Place(ns, 1, only_a), StatusCode::kUnavailable, "draining");
  CHECK(KVPOOL_IT_VALUE(s.Place(ns, 1)).node_id == "node-b");
  KVPOOL_IT_CHECK_ERROR(s.Route(to_a), StatusCode::kUnavailable, "1 on draining nodes");
  RouteQuery any = to_a;
  any.candidates.clear();
  const RouteAnswer routed = KVPOOL_IT_VALUE(s.Route(any));
  REQUIRE(routed.ranked.size() == 1);
  CHECK(routed.ranked[0].instance_id == "inst-b");
  const CommandResult listed =
      RunKvpoolctl(a.address(), {"--scheduler", sched.address(), "nodes"});
  CHECK(listed.exit_code == 0);
  CHECK_THAT(listed.out, Catch::Contains("draining"));

  // The engine finishes; the second drain moves the rest and succeeds.
  KVPOOL_IT_REQUIRE_OK(a.client().Release(reading.lease.id));
  const CommandResult second = RunKvpoolctl(a.address(), {"drain"});
  CHECK(second.exit_code == 0);
  CHECK_THAT(second.out, Catch::Contains("is draining"));
  CHECK_THAT(second.out, Catch::Contains("2 blocks to the SSD tier"));
  CHECK_THAT(second.out, Catch::Contains("stop kvpoold for maintenance"));
  CHECK_THAT(second.err, Catch::Contains("(it was already)"));
  tiers = TiersOf(a.client(), ns, prompt);
  CHECK(tiers.host == 0);
  CHECK(tiers.disk == 8);
  // The KV events carried the tier changes to the index.
  CHECK(PollUntil(5'000, [&] {
    Result<std::vector<PoolNode>> n = s.ListNodes();
    const PoolNode* node_a = n.ok() ? FindNode(*n, "node-a") : nullptr;
    return node_a != nullptr && node_a->indexed_blocks.disk == 8 &&
           node_a->indexed_blocks.host == 0;
  }));
  // The node still serves: a read with a lease brings a block back.
  CHECK(KVPOOL_IT_VALUE(a.client().Match(ns, PromptView::Tokens(prompt), 0, true, 1'000))
            .matched_blocks == 8);

  // Undrain: placed on and routed to again.
  const CommandResult undrain = RunKvpoolctl(a.address(), {"undrain"});
  CHECK(undrain.exit_code == 0);
  CHECK_THAT(undrain.out, Catch::Contains("back in service"));
  REQUIRE(node_a_draining(false));
  CHECK(KVPOOL_IT_VALUE(s.Place(ns, 1, only_a)).node_id == "node-a");
  KVPOOL_IT_REQUIRE_OK(s.RegisterInstance("inst-a", "colocated", "node-a"));
  CHECK(KVPOOL_IT_VALUE(s.Route(to_a)).ranked.at(0).instance_id == "inst-a");
  CHECK_THAT(a.Log(), Catch::Contains("drain ended"));
  CHECK_THAT(sched.Log(), Catch::Contains("node node-a is draining"));
}

TEST_CASE("Drain: a node without SSD tier or scheduler is marked and says what stays in memory",
          "[integration][operations]") {
  TestDaemon d;
  KVPOOL_IT_REQUIRE_OK(d.client().CreateNamespace({"plain", kBlockTokens, kBlockBytes, ""}));
  Publish(d.client(), "plain", MakeTokens(3 * kBlockTokens, 5));
  const DrainProgress p = KVPOOL_IT_VALUE(d.client().Drain());
  CHECK_FALSE(p.was_draining);
  CHECK_FALSE(p.has_scheduler);
  CHECK_FALSE(p.scheduler_acknowledged);
  CHECK_FALSE(p.has_disk_tier);
  CHECK(p.demoted_blocks == 0);
  CHECK(p.host_blocks == 3);
  const CommandResult r = RunKvpoolctl(d.address(), {"drain"});
  CHECK(r.exit_code == 0);
  CHECK_THAT(r.out, Catch::Contains("3 blocks stay in host memory"));
  CHECK_THAT(r.out, Catch::Contains("kvpoold runs without --scheduler"));
  const UndrainResult u = KVPOOL_IT_VALUE(d.client().Undrain());
  CHECK(u.was_draining);
  CHECK_FALSE(KVPOOL_IT_VALUE(d.client().Undrain()).was_draining);
}

TEST_CASE("Drain: the drain state survives a restart of the node and shows in its metrics",
          "[integration][operations]") {
  TempDir dir;
  launch::LocalKvpooldOptions options;
  options.binary = kKvpooldPath;
  options.work_dir = dir.path();
  options.capacity = "16MiB";
  const int metrics_port = FreePort();
  options.extra_args = {"--no-data-plane",
                        "--metrics-listen=127.0.0.1:" + std::to_string(metrics_port)};
  const std::string target = "127.0.0.1:" + std::to_string(metrics_port);
  auto Draining = [&] { return Value(Scrape(target), "kvpool_node_draining"); };
  {
    auto node = KVPOOL_IT_VALUE(launch::LocalKvpoold::Start(options));
    auto c = KVPOOL_IT_VALUE(Client::Connect(node->address()));
    CHECK(Draining() == 0);
    CHECK_FALSE(KVPOOL_IT_VALUE(c->Drain()).was_draining);
    CHECK(Draining() == 1);
  }  // SIGTERM: a planned stop during maintenance
  {
    auto node = KVPOOL_IT_VALUE(launch::LocalKvpoold::Start(options));
    auto c = KVPOOL_IT_VALUE(Client::Connect(node->address()));
    CHECK(Draining() == 1);
    CHECK_THAT(ReadFile(node->log_path()), Catch::Contains("draining since before the restart"));
    CHECK(KVPOOL_IT_VALUE(c->Undrain()).was_draining);
    CHECK(Draining() == 0);
  }
  // Undrained before the stop: the next start takes new work at once.
  auto node = KVPOOL_IT_VALUE(launch::LocalKvpoold::Start(options));
  auto c = KVPOOL_IT_VALUE(Client::Connect(node->address()));
  CHECK(Draining() == 0);
  CHECK_FALSE(KVPOOL_IT_VALUE(c->Undrain()).was_draining);
}

TEST_CASE("advertise-address: the scheduler and peers get the advertised address, not the "
          "listen address",
          "[integration][operations]") {
  TempDir dir;
  TestScheduler sched(dir, 0, "1");
  DaemonConfig advertised = NodeConfig(sched.address(), "node-adv");
  advertised.extra_args.push_back("--advertise-address=node-adv.example:7701");
  TestDaemon a(advertised);
  // On every interface (TestDaemon always listens on 127.0.0.1): started by hand.
  ChildProcess wildcard({kKvpooldPath, "--listen=0.0.0.0:0", "--port-file=" + dir.File("any.port"),
                         "--no-data-plane", "--capacity=16MiB", "--node-id=node-any",
                         "--scheduler=" + sched.address(), "--scheduler-heartbeat-ms=200"},
                        dir.File("any.out"), dir.File("any.err"));
  std::vector<PoolNode> nodes;
  REQUIRE(PollUntil(10'000, [&] {
    Result<std::vector<PoolNode>> n = sched.client().ListNodes();
    if (!n.ok() || n->size() != 2) return false;
    nodes = *n;
    return true;
  }));
  REQUIRE(FindNode(nodes, "node-adv") != nullptr);
  CHECK(FindNode(nodes, "node-adv")->address == "node-adv.example:7701");
  // A wildcard listen address is never registered as it is: the host name, with a warning.
  REQUIRE(FindNode(nodes, "node-any") != nullptr);
  const std::string any_address = FindNode(nodes, "node-any")->address;
  CHECK(any_address.rfind("0.0.0.0", 0) == std::string::npos);
  CHECK_THAT(ReadFile(dir.File("any.err")), Catch::Contains("set --advertise-address"));
  wildcard.Kill(SIGTERM);
  CHECK(wildcard.Wait(20'000).has_value());

  // A wildcard or port-less advertise address stops kvpoold with exit code 2.
  for (const std::string bad : {"0.0.0.0:7700", "node:0", "node", "[::]:7700"}) {
    const CommandResult r =
        RunCommand({kKvpooldPath, "--no-data-plane", "--advertise-address=" + bad});
    INFO(bad << ": " << r.err);
    CHECK(r.exit_code == 2);
    CHECK_THAT(r.err, Catch::Contains("advertise-address"));
  }
}

TEST_CASE("Namespace quotas: AllocMem past the quota evicts only the namespace's own blocks, "
          "then fails RESOURCE_EXHAUSTED naming namespace and quota",
          "[integration][operations]") {
  DaemonConfig config;
  // 16 blocks of 4 KiB for "capped"; "other" has none.
  config.extra_args = {"--namespace-quota=capped=64KiB"};
  TestDaemon d(config);
  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace({"capped", kBlockTokens, kBlockBytes, ""}));
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace({"other", kBlockTokens, kBlockBytes, ""}));
  Publish(c, "other", MakeTokens(40 * kBlockTokens, 1));
  const std::vector<uint32_t> cold = MakeTokens(10 * kBlockTokens, 2);
  Publish(c, "capped", cold);

  // 10 cached + 10 new > 16: four of its own cold blocks make room.
  const Allocation held = KVPOOL_IT_VALUE(c.AllocMem("capped", 10, Tier::kHost, 60'000));
  CHECK(NamespaceFromStats(c, "capped").stats.cached_blocks == 6);
  CHECK(NamespaceFromStats(c, "other").stats.cached_blocks == 40);

  // 10 allocated + 6 cached: the six go, and still 10 + 10 > 16.
  KVPOOL_IT_CHECK_ERROR(c.AllocMem("capped", 10), StatusCode::kResourceExhausted,
                        "namespace 'capped' is over its quota of 64 KiB");
  CHECK(NamespaceFromStats(c, "capped").stats.cached_blocks == 0);
  CHECK(NamespaceFromStats(c, "capped").stats.allocated_blocks == 10);
  CHECK(NamespaceFromStats(c, "other").stats.cached_blocks == 40);  // never evicted for it
  KVPOOL_IT_CHECK_ERROR(c.AllocMem("capped", 17), StatusCode::kResourceExhausted,
                        "can never fit");
  // Up to the quota is fine; other namespaces are not limited.
  KVPOOL_IT_VALUE(c.AllocMem("capped", 6));
  KVPOOL_IT_VALUE(c.AllocMem("other", 100));
  KVPOOL_IT_REQUIRE_OK(c.Release(held.lease.id));
  KVPOOL_IT_VALUE(c.AllocMem("capped", 10));
}

}  // namespace kvpool::itest
