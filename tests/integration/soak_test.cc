// kvpool-bench soak, short: the real binary mixes every operation from several clients against
// a real local cluster, then checks the pools' accounting. This test asserts that the accounting
// holds and that no unexpected error occurred; the throughput it reports is not asserted.
#include <nlohmann/json.hpp>
#include <string>

#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

constexpr const char* kBenchPath = KVPOOL_BENCH_PATH;

}  // namespace

TEST_CASE("kvpool-bench soak: a short mixed load ends with exact accounting and no unexpected "
          "errors",
          "[soak]") {
  TempDir dir;
  const CommandResult r = RunCommand(
      {kBenchPath, "soak", "--json", "--duration=6", "--clients=4", "--nodes=2",
       "--capacity=48MiB", "--prompts=128", "--sample-ms=500", "--lease-ttl-ms=2000",
       "--work-dir=" + dir.File("soak")},
      90'000);
  INFO("stderr:\n" << r.err);
  REQUIRE_FALSE(r.timed_out);
  const nlohmann::json j = nlohmann::json::parse(r.out, nullptr, /*allow_exceptions=*/false);
  REQUIRE_FALSE(j.is_discarded());
  INFO("first unexpected error: " << j["first_unexpected_error"].get<std::string>());
  for (const nlohmann::json& c : j["accounting"]["checks"]) {
    INFO(c.dump());
    CHECK(c["ok"].get<bool>());
  }
  CHECK(j["accounting"]["checks"].size() >= 2 * 8);
  CHECK(j["unexpected_errors"] == 0);
  CHECK(j["corrupt_blocks"] == 0);
  CHECK(j["ok"].get<bool>());
  CHECK(r.exit_code == 0);
  // Every operation of the mix ran, and the daemons were sampled over the run.
  for (const char* op : {"alloc", "put", "insert", "match", "get", "renew", "release", "free",
                         "exists", "delete", "transfer", "transfer_with_insert", "route",
                         "lookup"}) {
    INFO(op);
    CHECK(j["ops"].contains(op));
    if (j["ops"].contains(op)) CHECK(j["ops"][op]["count"].get<uint64_t>() > 0);
  }
  REQUIRE(j["processes"].size() == 4);  // scheduler, 2 nodes, the clients
  for (const nlohmann::json& p : j["processes"]) {
    INFO(p["id"]);
    CHECK(p["samples"].size() >= 5);
    CHECK(p["rss_end_bytes"].get<double>() > 0);
    CHECK(p["fds_end"].get<double>() > 0);
  }
}

}  // namespace kvpool::itest
