// kvpool-bench replay and cluster up/down as a user runs them: the real binary against a real
// local cluster, with a short generated trace. Checks that the replay's hit accounting agrees
// with the pools' own counters and stays within the trace's limits; speed is not asserted.
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

constexpr const char* kBenchPath = KVPOOL_BENCH_PATH;

TEST_CASE("kvpool-bench replay: hits agree with the pools' stats and stay below the infinite "
          "cache",
          "[replay]") {
  TempDir dir;
  const CommandResult r = RunCommand(
      {kBenchPath, "replay", "--json", "--gen-requests=150", "--gen-seed=7", "--nodes=2",
       "--instances=4", "--prefill-instances=3", "--decode-instances=2",
       "--modes=no-cache,local,pooled,pd",
       "--policies=prefix,cost,cache_aware", "--dir=" + dir.File("replay"),
       "--plot=" + dir.File("replay.png")},
      120'000);
  INFO("stderr:\n" << r.err);
  REQUIRE(r.exit_code == 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j["requests"] == 150);
  const double infinite = j["references"]["infinite_hit_rate"].get<double>();
  CHECK(infinite > 0);
  CHECK(j["references"]["global_lru_hit_rate"].get<double>() <= infinite);
  REQUIRE(j["configs"].size() == 12);
  // Some of the generated conversations' answers complete a block the next turn continues.
  CHECK(j["decoded_requests"].get<uint64_t>() > 0);
  const uint64_t decoded_pool_blocks = j["decoded_trace_blocks"].get<uint64_t>();
  CHECK(decoded_pool_blocks >= j["decoded_requests"].get<uint64_t>());
  // The chart (scripts/setup.sh installs gnuplot-nox) is a PNG.
  std::ifstream png(dir.File("replay.png"), std::ios::binary);
  char magic[8] = {};
  png.read(magic, sizeof(magic));
  CHECK(std::string(magic + 1, 3) == "PNG");
  uint64_t pd_handed_back = 0;
  for (const nlohmann::json& c : j["configs"]) {
    const std::string name = c["mode"].get<std::string>() + "/" + c["policy"].get<std::string>();
    INFO(name << ": " << c.dump());
    CHECK(c["failures"] == 0);
    // Every block the replay says Match returned, the nodes counted as hits too.
    CHECK(c["replay_matched_blocks"] == c["pool_hit_blocks"]);
    const double hit = c["hit_rate"].get<double>();
    CHECK(hit <= infinite + 1e-9);
    // The planner is never worse than loading or computing the fetched prefix alone.
    CHECK(c["planner_worse_requests"] == 0);
    CHECK(c["ttft_ms"]["p90"].get<double>() <= c["ttft_load_only_ms"]["p90"].get<double>() + 1e-6);
    const uint64_t block_bytes = j["block_bytes"].get<uint64_t>();
    if (c["mode"] == "pd") {
      CHECK(c["prefill_instances"] == 3);
      CHECK(c["decode_instances"] == 2);
    } else {
      CHECK(c["prefill_instances"] == 4);  // colocated
      CHECK(c["decode_instances"] == 0);
    }
    if (c["mode"] == "no-cache") {
      CHECK(hit == 0);
      CHECK(c["bytes_stored"] == 0);
      CHECK(c["decoded_blocks_stored"] == 0);
    } else {
      // Every decoded history is published once its decode ends (512-token pool blocks here).
      CHECK(c["decoded_blocks_stored"] == decoded_pool_blocks);
      CHECK(hit > 0);
      CHECK(c["bytes_stored"].get<uint64_t>() > 0);
      CHECK(c["ops_us"].contains("match"));
    }
    if (c["mode"] == "local") CHECK(c["bytes_read_remote"] == 0);
    // PD runs hand prompts from prefill to decode nodes with TransferWithInsert when the two
    // instances sit on different nodes (which the routing decides; it may keep them together);
    // the other modes never hand off.
    // Decode instances hand the decoded history back to the prefill node (MemServe's return
    // leg) when it is another node: at most the decoded blocks, whole blocks.
    if (c["mode"] == "pd") {
      CHECK(c["bytes_handed_off"].get<uint64_t>() % block_bytes == 0);
      CHECK(c["bytes_handed_back"].get<uint64_t>() % block_bytes == 0);
      CHECK(c["bytes_handed_back"].get<uint64_t>() <= decoded_pool_blocks * block_bytes);
      pd_handed_back += c["bytes_handed_back"].get<uint64_t>();
      if (c["bytes_handed_off"].get<uint64_t>() + c["bytes_handed_back"].get<uint64_t>() > 0) {
        CHECK(c["ops_us"].contains("transfer_with_insert"));
      }
    } else {
      CHECK(c["bytes_handed_off"] == 0);
      CHECK(c["bytes_handed_back"] == 0);
    }
  }
  // 3 prefill instances on 2 nodes and 2 decode ones: some decodes end on the other node.
  CHECK(pd_handed_back > 0);
}

TEST_CASE("kvpool-bench replay: capacity in tokens, and bad sizes refused by name", "[replay]") {
  TempDir dir;
  const CommandResult r = RunCommand(
      {kBenchPath, "replay", "--json", "--no-progress", "--gen-requests=60", "--gen-seed=7",
       "--nodes=2", "--instances=2", "--modes=local", "--policies=prefix",
       "--capacity-tokens=511000", "--dir=" + dir.File("tokens")},
      120'000);
  INFO("stderr:\n" << r.err);
  REQUIRE(r.exit_code == 0);
  const nlohmann::json j = nlohmann::json::parse(r.out);
  CHECK(j["capacity_blocks"] == 999);  // ceil(511,000 / 512)
  CHECK(j["capacity_tokens"] == 511488);
  CHECK(j["configs"][0]["failures"] == 0);

  const CommandResult small = RunCommand({kBenchPath, "replay", "--capacity-tokens=100",
                                          "--modes=local", "--dir=" + dir.File("small")});
  CHECK(small.exit_code != 0);
  CHECK_THAT(small.err, Catch::Contains("capacity-tokens (100)"));
  const CommandResult both = RunCommand({kBenchPath, "replay", "--capacity-tokens=51200",
                                         "--capacity-blocks=100", "--dir=" + dir.File("both")});
  CHECK(both.exit_code != 0);
  CHECK_THAT(both.err, Catch::Contains("excludes"));
  const CommandResult no_decode =
      RunCommand({kBenchPath, "replay", "--modes=pd", "--instances=1", "--dir=" + dir.File("pd")});
  CHECK(no_decode.exit_code != 0);
  CHECK_THAT(no_decode.err, Catch::Contains("0 prefill, 1 decode"));
}

TEST_CASE("kvpool-bench replay: with SSD tiers the nodes keep and serve what memory evicts",
          "[replay]") {
  TempDir dir;
  auto replay = [&](const std::string& disk_factor) {
    const CommandResult r = RunCommand(
        {kBenchPath, "replay", "--json", "--no-progress", "--gen-requests=150", "--gen-seed=7",
         "--nodes=2", "--instances=4", "--modes=local", "--policies=prefix",
         "--disk-capacity-factor=" + disk_factor, "--dir=" + dir.File("replay-" + disk_factor)},
        120'000);
    INFO("stderr:\n" << r.err);
    REQUIRE(r.exit_code == 0);
    const nlohmann::json j = nlohmann::json::parse(r.out);
    REQUIRE(j["configs"].size() == 1);
    return j;
  };
  const nlohmann::json memory_only = replay("0");
  const nlohmann::json with_disk = replay("4");
  const nlohmann::json& c = with_disk["configs"][0];
  INFO(c.dump());
  CHECK(c["failures"] == 0);
  CHECK(c["replay_matched_blocks"] == c["pool_hit_blocks"]);  // DISK hits count on the nodes too
  const double infinite = with_disk["references"]["infinite_hit_rate"].get<double>();
  CHECK(c["hit_rate"].get<double>() <= infinite + 1e-9);
  // Blocks memory evicted were demoted, not dropped, and later prompts hit them.
  CHECK(c["hit_rate"].get<double>() > memory_only["configs"][0]["hit_rate"].get<double>());
  CHECK(c["demoted_blocks"].get<uint64_t>() > 0);
  CHECK(memory_only["configs"][0]["demoted_blocks"] == 0);
  CHECK(memory_only["configs"][0]["written_behind_blocks"] == 0);
}

TEST_CASE("kvpool-bench cluster: up starts a ready cluster, status shows it, down stops it",
          "[replay]") {
  TempDir dir;
  const std::string cluster_dir = dir.File("cluster");
  CommandResult up = RunCommand({kBenchPath, "cluster", "up", "--json", "--nodes=2",
                                 "--capacity=32MiB", "--dir=" + cluster_dir});
  INFO("up stderr:\n" << up.err);
  REQUIRE(up.exit_code == 0);
  const nlohmann::json uj = nlohmann::json::parse(up.out);
  REQUIRE(uj["nodes"].size() == 2);
  auto client = KVPOOL_IT_VALUE(Client::Connect(uj["nodes"][1]["address"].get<std::string>()));
  CHECK(KVPOOL_IT_VALUE(client->Health()));
  client.reset();

  CommandResult status = RunCommand({kBenchPath, "cluster", "status", "--json", "--dir=" + cluster_dir});
  REQUIRE(status.exit_code == 0);
  const nlohmann::json sj = nlohmann::json::parse(status.out);
  CHECK(sj["nodes"][0]["running"] == true);
  CHECK(sj["nodes"][0]["registered"] == true);

  CommandResult down = RunCommand({kBenchPath, "cluster", "down", "--json", "--dir=" + cluster_dir});
  REQUIRE(down.exit_code == 0);
  CHECK(nlohmann::json::parse(down.out)["stopped"] == 3);
  CommandResult gone = RunCommand({kBenchPath, "cluster", "status", "--dir=" + cluster_dir});
  CHECK(gone.exit_code == 1);
  CHECK_THAT(gone.err, Catch::Contains("no cluster state"));
}

}  // namespace
}  // namespace kvpool::itest
