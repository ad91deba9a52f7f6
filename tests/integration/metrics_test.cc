// /metrics on kvpoold and kvpool-scheduler: real daemons, real operations, scraped over HTTP by
// `kvpoolctl metrics`, and the values checked to move as the operations say.
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

}  // namespace

TEST_CASE("Metrics: kvpoold and the scheduler export counters that follow the operations",
          "[integration][metrics]") {
  TempDir dir;
  const int sched_metrics = FreePort();
  const std::string port_file = dir.File("scheduler.port");
  ChildProcess scheduler(
      {kSchedulerPath, "--listen=127.0.0.1:0", "--port-file=" + port_file,
       "--metrics-listen=127.0.0.1:" + std::to_string(sched_metrics), "--expire-interval-ms=100"},
      dir.File("scheduler.out"), dir.File("scheduler.err"));
  const bool sched_up = PollUntil(15'000, [&] { return !ReadFile(port_file).empty(); });
  INFO("scheduler log:\n" << ReadFile(dir.File("scheduler.err")));
  REQUIRE(sched_up);
  const std::string sched_address = "127.0.0.1:" + std::to_string(std::stoi(ReadFile(port_file)));
  auto sched = KVPOOL_IT_VALUE(SchedulerClient::Connect(sched_address));

  const int node_metrics = FreePort();
  DaemonConfig config = NodeConfig(sched_address, "node-m");
  config.extra_args.push_back("--metrics-listen=127.0.0.1:" + std::to_string(node_metrics));
  config.extra_args.push_back("--no-data-plane");
  TestDaemon d(std::move(config));
  const std::string node_target = "127.0.0.1:" + std::to_string(node_metrics);
  const std::string sched_target = "127.0.0.1:" + std::to_string(sched_metrics);

  const MetricSamples before = Scrape(node_target);
  CHECK(Value(before, "kvpool_pool_capacity_bytes", {{"tier", "host"}}) == 64.0 * (1 << 20));
  CHECK(Value(before, "kvpool_leases_active") == 0);
  CHECK(Value(before, "kvpool_node_draining") == 0);

  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace({"m", 16, 4096, ""}));
  const std::vector<uint32_t> prompt = MakeTokens(4 * 16, 1);
  const Allocation alloc = KVPOOL_IT_VALUE(c.AllocMem("m", 4));
  KVPOOL_IT_REQUIRE_OK(c.Insert("m", PromptView::Tokens(prompt), 0, HandlesOf(alloc),
                                alloc.lease.id));
  CHECK(KVPOOL_IT_VALUE(c.Match("m", PromptView::Tokens(prompt))).matched_blocks == 4);
  const std::vector<uint32_t> other = MakeTokens(2 * 16, 2);
  CHECK(KVPOOL_IT_VALUE(c.Match("m", PromptView::Tokens(other))).matched_blocks == 0);
  KVPOOL_IT_CHECK_ERROR(c.GetNamespace("absent"), StatusCode::kNotFound, "absent");

  const MetricSamples after = Scrape(node_target);
  const std::map<std::string, std::string> ns{{"namespace", "m"}};
  CHECK(Value(after, "kvpool_node_draining") == 0);
  CHECK(Value(after, "kvpool_namespace_inserted_blocks_total", ns) == 4);
  CHECK(Value(after, "kvpool_namespace_cached_blocks", ns) == 4);
  CHECK(Value(after, "kvpool_namespace_hit_blocks_total", ns) == 4);
  CHECK(Value(after, "kvpool_namespace_miss_blocks_total", ns) == 2);
  CHECK(Value(after, "kvpool_namespace_hit_tokens_total", ns) == 64);
  CHECK(Value(after, "kvpool_namespace_match_requests_total", ns) == 2);
  CHECK(Value(after, "kvpool_namespace_used_bytes", ns) == 4 * 4096);
  CHECK(Value(after, "kvpool_pool_used_bytes", {{"tier", "host"}}) == 4 * 4096);
  CHECK(Value(after, "kvpool_rpc_requests_total",
              {{"server", "kvpoold"}, {"method", "Insert"}, {"code", "OK"}}) == 1);
  CHECK(Value(after, "kvpool_rpc_requests_total",
              {{"server", "kvpoold"}, {"method", "Match"}, {"code", "OK"}}) == 2);
  CHECK(Value(after, "kvpool_rpc_requests_total",
              {{"server", "kvpoold"}, {"method", "GetNamespace"}, {"code", "NOT_FOUND"}}) == 1);
  CHECK(Value(after, "kvpool_rpc_duration_seconds_count",
              {{"server", "kvpoold"}, {"method", "Match"}}) == 2);

  // The scheduler: the node registered and its insert arrived as KV events.
  MetricSamples s;
  const bool indexed = PollUntil(10'000, [&] {
    s = Scrape(sched_target);
    return Value(s, "kvpool_scheduler_index_blocks") == 4;
  });
  INFO("scheduler log:\n" << ReadFile(dir.File("scheduler.err")));
  CHECK(indexed);
  CHECK(Value(s, "kvpool_scheduler_nodes", {{"state", "alive"}}) == 1);
  CHECK(Value(s, "kvpool_scheduler_snapshots_applied_total") >= 1);
  CHECK(Value(s, "kvpool_scheduler_index_namespace_blocks", ns) == 4);
  CHECK(Value(s, "kvpool_scheduler_kv_events_applied_total") +
            Value(s, "kvpool_scheduler_snapshots_applied_total") >= 2);

  KVPOOL_IT_REQUIRE_OK(sched->RegisterInstance("inst-1", "colocated", "node-m"));
  RouteQuery q;
  q.ns = "m";
  q.hashes = BlockHasher("m", "", 16).HashPrompt(prompt);
  q.policy = "prefix";
  KVPOOL_IT_REQUIRE_OK(sched->Route(q));
  KVPOOL_IT_REQUIRE_OK(sched->Route(q));
  q.policy = "least_loaded";
  KVPOOL_IT_REQUIRE_OK(sched->Route(q));
  s = Scrape(sched_target);
  CHECK(Value(s, "kvpool_scheduler_route_decisions_total", {{"policy", "prefix"}}) == 2);
  CHECK(Value(s, "kvpool_scheduler_route_decisions_total", {{"policy", "least_loaded"}}) == 1);
  CHECK(Value(s, "kvpool_scheduler_instances", {{"state", "alive"}}) == 1);
  CHECK(Value(s, "kvpool_rpc_requests_total",
              {{"server", "kvpool-scheduler"}, {"method", "Route"}, {"code", "OK"}}) == 3);
  CHECK(Value(s, "kvpool_rpc_requests_total",
              {{"server", "kvpool-scheduler"}, {"method", "RegisterNode"}, {"code", "OK"}}) >= 1);

  // The readable summary names the namespace and the RPC methods.
  const CommandResult table = RunKvpoolctl("127.0.0.1:1", {"metrics", "--target", node_target});
  CHECK(table.exit_code == 0);
  CHECK_THAT(table.out, Catch::Contains("namespaces") && Catch::Contains("Insert") &&
                            Catch::Contains("kvpool_pool_capacity_bytes"));
}

TEST_CASE("Metrics: a node on the data plane exports its slabs, mapped, idle and reused",
          "[integration][metrics]") {
  const int port = FreePort();
  DaemonConfig config;
  config.extra_args = {"--metrics-listen=127.0.0.1:" + std::to_string(port)};
  TestDaemon d(std::move(config));
  const std::string target = "127.0.0.1:" + std::to_string(port);
  const MetricSamples before = Scrape(target);
  CHECK(Value(before, "kvpool_pool_slabs", {{"state", "in_use"}}) == 0);
  CHECK(Value(before, "kvpool_pool_slab_maps_total") == 0);

  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace({"a", 16, 4096, ""}));
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace({"b", 16, 4096, ""}));
  const Allocation a = KVPOOL_IT_VALUE(c.AllocMem("a", 2));
  const Allocation b = KVPOOL_IT_VALUE(c.AllocMem("b", 2));
  MetricSamples s = Scrape(target);
  CHECK(Value(s, "kvpool_pool_slabs", {{"state", "in_use"}}) == 2);
  CHECK(Value(s, "kvpool_pool_slab_maps_total") == 2);
  // Namespace a goes: its slab idles, still mapped (no one else needs the range).
  KVPOOL_IT_REQUIRE_OK(c.Release(a.lease.id));
  KVPOOL_IT_REQUIRE_OK(c.DeleteNamespace("a"));
  s = Scrape(target);
  CHECK(Value(s, "kvpool_pool_slabs", {{"state", "in_use"}}) == 1);
  CHECK(Value(s, "kvpool_pool_slabs", {{"state", "idle"}}) == 1);
  CHECK(Value(s, "kvpool_pool_slab_unmaps_total") == 0);
  CHECK(Value(s, "kvpool_pool_lost_bytes") == 0);
  KVPOOL_IT_REQUIRE_OK(c.Release(b.lease.id));
}

TEST_CASE("Metrics: a busy metrics port stops kvpoold at start-up with a message",
          "[integration][metrics]") {
  RefusingPort busy;  // bound, not listening: civetweb cannot bind it
  TempDir dir;
  const CommandResult r =
      RunCommand({kKvpooldPath, "--listen=127.0.0.1:0", "--no-data-plane",
                  "--metrics-listen=" + busy.address()},
                 15'000);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("cannot serve metrics"));
}

TEST_CASE("Metrics: kvpoolctl metrics reports an unreachable target", "[integration][metrics]") {
  RefusingPort refusing;
  const CommandResult r =
      RunKvpoolctl("127.0.0.1:1", {"metrics", "--target", refusing.address()});
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("UNAVAILABLE"));
}

}  // namespace kvpool::itest
