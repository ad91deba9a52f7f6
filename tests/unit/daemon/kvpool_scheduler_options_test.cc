#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>

#include "daemon/kvpool_scheduler_options.h"

namespace kvpool {
namespace {

Result<std::optional<daemon::KvpoolSchedulerOptions>> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "kvpool-scheduler");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return daemon::ParseKvpoolSchedulerArgs(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("kvpool-scheduler options: a namespace model parses with units and exponents",
          "[daemon]") {
  auto parsed = daemon::ParseNamespaceModel("llama3-70b:16:5MiB:2e-4:4e-9");
  REQUIRE(parsed.ok());
  CHECK(parsed->first == "llama3-70b");
  CHECK(parsed->second.block_tokens == 16);
  CHECK(parsed->second.block_bytes == 5ull << 20);
  CHECK(parsed->second.token_s == Approx(2e-4));
  CHECK(parsed->second.attention_s == Approx(4e-9));
}

TEST_CASE("kvpool-scheduler options: bad namespace models name the bad part", "[daemon]") {
  CHECK_THAT(daemon::ParseNamespaceModel("x:16:2MiB:1e-4").status().message(),
             Catch::Contains("NAME:BLOCK_TOKENS"));
  CHECK_THAT(daemon::ParseNamespaceModel("x:0:2MiB:1e-4:1e-9").status().message(),
             Catch::Contains("BLOCK_TOKENS '0'"));
  CHECK_THAT(daemon::ParseNamespaceModel("x:16:lots:1e-4:1e-9").status().message(),
             Catch::Contains("'lots'"));
  CHECK_THAT(daemon::ParseNamespaceModel("x:16:2MiB:fast:1e-9").status().message(),
             Catch::Contains("TOKEN_S 'fast'"));
  CHECK(daemon::ParseNamespaceModel("x:16:2MiB:-1:1e-9").status().code() ==
        StatusCode::kInvalidArgument);
  CHECK_THAT(daemon::ParseNamespaceModel(":16:2MiB:1e-4:1e-9").status().message(),
             Catch::Contains("no NAME"));
}

TEST_CASE("kvpool-scheduler options: flags and a config file configure the service", "[daemon]") {
  const std::string path = "/tmp/kvpool_scheduler_options_test_" + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream f(path);
    f << "listen = \"0.0.0.0:7801\"\ndefault-policy = \"prefix\"\ntoken-s = 1e-4\n"
         "namespace-model = [\"a:16:2MiB:1e-4:1e-9\", \"b:64:8MiB:2e-4:2e-9\"]\n";
  }
  auto parsed = Parse({"--config", path, "--heartbeat-timeout-ms=3000"});
  std::remove(path.c_str());
  REQUIRE(parsed.ok());
  const auto& o = **parsed;
  CHECK(o.listen == "0.0.0.0:7801");
  CHECK(o.service.registry.node_timeout_ms == 3000);
  CHECK(o.service.default_model.token_s == Approx(1e-4));
  REQUIRE(o.service.namespace_models.size() == 2);
  CHECK(o.service.namespace_models[1].first == "b");
  CHECK(o.service.namespace_models[1].second.block_tokens == 64);
  CHECK(Parse({"--default-policy=fastest"}).status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(Parse({"--namespace-model=bad"}).status().message(), Catch::Contains("'bad'"));
}

}  // namespace kvpool
