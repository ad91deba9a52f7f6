// Metrics and security pieces of the daemons without processes: option checks, token files,
// credential errors, RPC label names and the collectors' families.
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdio>
#include <fstream>
#include <string>

#include "common/metrics.h"
#include "daemon/kvpool_scheduler_options.h"
#include "daemon/metrics_node.h"
#include "daemon/metrics_scheduler.h"
#include "daemon/ops_options.h"
#include "rpc/security.h"
#include "rpc/server_security.h"
#include "rpc/server_metrics.h"

namespace kvpool {
namespace {

std::string TempFile(const std::string& name, const std::string& text) {
  const std::string path = "/tmp/kvpool_ops_test_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

std::string Serialize(const prometheus::Collectable& c) {
  return prometheus::TextSerializer().Serialize(c.Collect());
}

}  // namespace

TEST_CASE("OpsOptions: tokens and client certificates need TLS", "[daemon][security]") {
  daemon::OpsOptions o;
  CHECK(o.Validate().ok());
  o.auth_token_file = "/x";
  CHECK(o.Validate().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(o.Validate().message()), Catch::Contains("need TLS"));
  o.tls_cert_file = "/c";
  CHECK_THAT(std::string(o.Validate().message()), Catch::Contains("tls-cert needs tls-key"));
  o.tls_key_file = "/k";
  CHECK(o.Validate().ok());
  o.tls_require_client_cert = true;
  CHECK_THAT(std::string(o.Validate().message()), Catch::Contains("tls-ca"));
  o.tls_ca_file = "/ca";
  CHECK(o.Validate().ok());
  o.metrics_listen = "9700";
  CHECK_THAT(std::string(o.Validate().message()), Catch::Contains("'9700'"));
}

TEST_CASE("OpsOptions: the scheduler parses the shared flags", "[daemon][security]") {
  std::vector<const char*> argv{"kvpool-scheduler", "--metrics-listen=127.0.0.1:0",
                                "--tls-cert=/c", "--tls-key=/k"};
  auto parsed = daemon::ParseKvpoolSchedulerArgs(static_cast<int>(argv.size()), argv.data());
  REQUIRE(parsed.ok());
  REQUIRE(parsed->has_value());
  CHECK((*parsed)->ops.metrics_listen == "127.0.0.1:0");
  CHECK((*parsed)->ops.tls_cert_file == "/c");
  std::vector<const char*> bad{"kvpool-scheduler", "--auth-token-file=/t"};
  const auto refused = daemon::ParseKvpoolSchedulerArgs(static_cast<int>(bad.size()), bad.data());
  CHECK(refused.status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("Security: token files give their first line, trimmed", "[security]") {
  CHECK(*rpc::ReadTokenFile(TempFile("t1", "  secret-1 \nignored\n")) == "secret-1");
  CHECK(rpc::ReadTokenFile(TempFile("t2", "\n")).status().code() == StatusCode::kInvalidArgument);
  CHECK(rpc::ReadTokenFile(TempFile("t3", "two words\n")).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(rpc::ReadTokenFile("/nonexistent/token").status().code() == StatusCode::kNotFound);
  CHECK(rpc::ReadPemFile(TempFile("p1", "not a pem")).status().code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("Security: inconsistent server and client settings are refused", "[security]") {
  rpc::ServerSecurity s;
  CHECK(rpc::MakeServerCredentials(s, nullptr).ok());  // plaintext
  s.token = "t";
  CHECK(rpc::MakeServerCredentials(s, nullptr).status().code() == StatusCode::kInvalidArgument);
  s = {};
  s.cert_pem = "-----BEGIN CERTIFICATE-----";
  CHECK(rpc::MakeServerCredentials(s, nullptr).status().code() == StatusCode::kInvalidArgument);

  ClientOptions c;
  CHECK(!rpc::HasChannelSecurity(c));
  c.auth_token = "t";
  CHECK(rpc::HasChannelSecurity(c));
  CHECK_THAT(std::string(rpc::LoadChannelSecurity(c).status().message()),
             Catch::Contains("needs TLS"));
  c.tls = true;
  CHECK(rpc::LoadChannelSecurity(c).ok());
  c.tls_cert_file = "/c";
  CHECK(rpc::LoadChannelSecurity(c).status().code() == StatusCode::kInvalidArgument);
  c.tls_key_file = "/nonexistent/k";
  CHECK(rpc::LoadChannelSecurity(c).status().code() == StatusCode::kNotFound);
  CHECK(rpc::MemPoolAdminMethods().count("/kvpool.v1.MemPool/Evict") == 1);
  CHECK(rpc::MemPoolAdminMethods().count("/kvpool.v1.MemPool/Match") == 0);
}

TEST_CASE("RPC metrics: method labels and status code names", "[metrics]") {
  CHECK(rpc::MethodLabel("/kvpool.v1.MemPool/Insert") == "Insert");
  CHECK(rpc::MethodLabel("/kvpool.v1.Scheduler/Route") == "Route");
  CHECK(rpc::MethodLabel("/grpc.health.v1.Health/Check") == "grpc.health.v1.Health/Check");
  CHECK(rpc::StatusCodeName(0) == "OK");
  CHECK(rpc::StatusCodeName(16) == "UNAUTHENTICATED");
  CHECK(rpc::StatusCodeName(99) == "UNKNOWN");
}

TEST_CASE("Metrics: the pool collector reads PoolStats at every scrape", "[metrics]") {
  PoolStats stats;
  stats.capacity_bytes = 1 << 20;
  NamespaceInfo ns;
  ns.spec.name = "m";
  ns.spec.block_tokens = 16;
  ns.stats.hit_blocks = 3;
  ns.stats.cached_blocks = 5;
  stats.namespaces.push_back(ns);
  auto collector = daemon::MakePoolCollector([&stats] { return stats; });
  std::string text = Serialize(*collector);
  CHECK_THAT(text, Catch::Contains("kvpool_pool_capacity_bytes{tier=\"host\"} 1048576"));
  CHECK_THAT(text, Catch::Contains("kvpool_namespace_hit_blocks_total{namespace=\"m\"} 3"));
  CHECK_THAT(text, Catch::Contains("kvpool_namespace_hit_tokens_total{namespace=\"m\"} 48"));
  CHECK_THAT(text, Catch::Contains("# TYPE kvpool_namespace_hit_blocks_total counter"));
  CHECK_THAT(text, Catch::Contains("# TYPE kvpool_namespace_cached_blocks gauge"));
  CHECK_THAT(text, !Catch::Contains("tier=\"disk\""));  // no SSD tier, no disk samples
  stats.namespaces[0].stats.hit_blocks = 7;
  stats.namespaces[0].stats.demoted_blocks = 2;
  stats.disk_capacity_bytes = 4096;
  text = Serialize(*collector);
  CHECK_THAT(text, Catch::Contains("kvpool_namespace_hit_blocks_total{namespace=\"m\"} 7"));
  CHECK_THAT(text, Catch::Contains("kvpool_namespace_demoted_blocks_total{namespace=\"m\"} 2"));
  CHECK_THAT(text, Catch::Contains("kvpool_pool_capacity_bytes{tier=\"disk\"} 4096"));
}

TEST_CASE("Metrics: the scheduler collector reports route decisions per policy", "[metrics]") {
  daemon::SchedulerServiceStats stats;
  stats.routes_by_policy["cost"] = 4;
  stats.nodes_alive = 2;
  stats.resyncs_requested = 1;
  auto collector = daemon::MakeSchedulerCollector([&stats] { return stats; });
  const std::string text = Serialize(*collector);
  CHECK_THAT(text, Catch::Contains("kvpool_scheduler_route_decisions_total{policy=\"cost\"} 4"));
  CHECK_THAT(text, Catch::Contains("kvpool_scheduler_nodes{state=\"alive\"} 2"));
  CHECK_THAT(text, Catch::Contains("kvpool_scheduler_resyncs_total 1"));
}

TEST_CASE("Metrics: transfers are recorded once a registry is installed", "[metrics]") {
  metrics::RecordTransfer("tcp", "put", 4096, 0.001);  // no registry yet: ignored
  auto registry = std::make_shared<prometheus::Registry>();
  metrics::InstallTransferMetrics(registry);
  metrics::RecordTransfer("tcp", "put", 1 << 20, 0.002);
  metrics::RecordTransfer("tcp", "put", 0, 0, /*ok=*/false);
  const std::string text = Serialize(*registry);
  CHECK_THAT(text, Catch::Contains(
                       "kvpool_transfer_size_bytes_count{direction=\"put\",transport=\"tcp\"} 1"));
  CHECK_THAT(text, Catch::Contains(
                       "kvpool_transfer_failures_total{direction=\"put\",transport=\"tcp\"} 1"));
}

}  // namespace kvpool
