// Operator options without processes: --advertise-address, namespace quotas and the
// namespace-tokens file (docs/configuration.md, docs/security.md).
#include <unistd.h>

#include <catch2/catch.hpp>
#include <cstdlib>
#include <fstream>
#include <string>
#include <vector>

#include "daemon/kvpool_scheduler_options.h"
#include "daemon/kvpoold_options.h"
#include "daemon/ops_options.h"
#include "rpc/security.h"
#include "rpc/server_security.h"

namespace kvpool {
namespace {

Result<std::optional<daemon::KvpooldOptions>> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "kvpoold");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return daemon::ParseKvpooldArgs(static_cast<int>(argv.size()), argv.data());
}

std::string TempFile(const std::string& name, const std::string& text) {
  const std::string path = "/tmp/kvpool_ops_admin_test_" + std::to_string(::getpid()) + "_" + name;
  std::ofstream(path) << text;
  return path;
}

std::string MessageOf(const Status& s) { return std::string(s.message()); }

}  // namespace

TEST_CASE("kvpoold options: advertise-address is what the node registers, checked",
          "[daemon][operations]") {
  auto parsed = Parse({"--listen=0.0.0.0:7700", "--advertise-address=node1.example:7700"});
  REQUIRE(parsed.ok());
  CHECK(daemon::AdvertisedAddress(**parsed, 7700) == "node1.example:7700");
  // Unset: the listen address with the bound port, unless that is a wildcard.
  parsed = Parse({"--listen=10.0.0.5:0"});
  REQUIRE(parsed.ok());
  CHECK(daemon::AdvertisedAddress(**parsed, 7123) == "10.0.0.5:7123");
  parsed = Parse({"--listen=0.0.0.0:7700"});
  REQUIRE(parsed.ok());
  const std::string fallback = daemon::AdvertisedAddress(**parsed, 7700);
  CHECK(fallback.rfind("0.0.0.0", 0) == std::string::npos);
  CHECK(fallback.size() > 5);
  CHECK(fallback.substr(fallback.size() - 5) == ":7700");
  CHECK(daemon::IsWildcardAddress("[::]:1"));
  CHECK(daemon::IsWildcardAddress(":1"));
  CHECK_FALSE(daemon::IsWildcardAddress("[::1]:1"));

  for (const std::string bad : {"node", "node:", ":7700", "node:0", "node:70000", "node:77a",
                                "0.0.0.0:7700", "[::]:7700", "no de:7700"}) {
    INFO(bad);
    const auto refused = Parse({"--advertise-address=" + bad});
    CHECK(refused.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(MessageOf(refused.status()), Catch::Contains("advertise-address"));
  }
  CHECK(Parse({"--advertise-address=[fd00::5]:7700"}).ok());

  // Config-file key and environment variable (the command line wins over both).
  const std::string config = TempFile("adv.toml", "advertise-address = \"from-file:1\"\n");
  parsed = Parse({"--config=" + config});
  REQUIRE(parsed.ok());
  CHECK((*parsed)->advertise_address == "from-file:1");
  ::setenv("KVPOOLD_ADVERTISE_ADDRESS", "from-env:2", 1);
  parsed = Parse({});
  CHECK((*parsed)->advertise_address == "from-env:2");
  parsed = Parse({"--advertise-address=from-flag:3"});
  CHECK((*parsed)->advertise_address == "from-flag:3");
  ::unsetenv("KVPOOLD_ADVERTISE_ADDRESS");
}

TEST_CASE("kvpoold options: namespace quotas parse with units; bad ones are named",
          "[daemon][operations]") {
  auto parsed = Parse({"--namespace-quota=llama=2GiB", "--namespace-quota=free=0",
                       "--default-namespace-quota=512MiB"});
  REQUIRE(parsed.ok());
  const node::MemPoolOptions& pool = (*parsed)->pool;
  CHECK(pool.QuotaBytesOf("llama") == 2ull << 30);
  CHECK(pool.QuotaBytesOf("free") == 0);
  CHECK(pool.QuotaBytesOf("anything") == 512ull << 20);
  CHECK_THAT(MessageOf(Parse({"--namespace-quota=llama"}).status()),
             Catch::Contains("NAMESPACE=BYTES"));
  CHECK_THAT(MessageOf(Parse({"--namespace-quota=a=1", "--namespace-quota=a=2"}).status()),
             Catch::Contains("given twice"));
  CHECK_THAT(MessageOf(Parse({"--namespace-quota=bad name=1"}).status()),
             Catch::Contains("namespace quota"));
  CHECK(Parse({"--namespace-quota=a=lots"}).status().code() == StatusCode::kInvalidArgument);
  const std::string config =
      TempFile("quota.toml", "namespace-quota = [\"a=1MiB\", \"b=2MiB\"]\n");
  parsed = Parse({"--config=" + config});
  REQUIRE(parsed.ok());
  CHECK((*parsed)->pool.QuotaBytesOf("b") == 2ull << 20);
}

TEST_CASE("Security: namespace-tokens files and namespace patterns", "[security]") {
  const auto tokens = rpc::ReadNamespaceTokensFile(
      TempFile("ns1", "# comment\n\n  tok-a  tenant-a, shared-*\ntok-b tenant-b\ntok-all *\n"));
  REQUIRE(tokens.ok());
  REQUIRE(tokens->size() == 3);
  CHECK((*tokens)[0].token == "tok-a");
  CHECK((*tokens)[0].namespaces == std::vector<std::string>{"tenant-a", "shared-*"});
  CHECK(rpc::NamespaceMatches((*tokens)[0].namespaces, "shared-x"));
  CHECK(rpc::NamespaceMatches((*tokens)[0].namespaces, "tenant-a"));
  CHECK_FALSE(rpc::NamespaceMatches((*tokens)[0].namespaces, "tenant-ab"));
  CHECK_FALSE(rpc::NamespaceMatches((*tokens)[0].namespaces, "shared"));
  CHECK(rpc::NamespaceMatches((*tokens)[2].namespaces, "anything"));

  auto refused = [](const std::string& name, const std::string& text) {
    const auto r = rpc::ReadNamespaceTokensFile(TempFile(name, text));
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    return MessageOf(r.status());
  };
  CHECK_THAT(refused("ns2", "lonely-token\n"), Catch::Contains("line 1"));
  CHECK_THAT(refused("ns3", "t a\nt b\n"), Catch::Contains("line 2"));
  CHECK_THAT(refused("ns4", "t a*b\n"), Catch::Contains("'a*b'"));
  CHECK_THAT(refused("ns5", "# nothing\n"), Catch::Contains("holds no token"));
  CHECK(rpc::ReadNamespaceTokensFile("/nonexistent/ns").status().code() == StatusCode::kNotFound);

  // No call context (in-process callers, fuzzers): unrestricted.
  CHECK_FALSE(rpc::NamespaceScopeOf(nullptr).has_value());
  CHECK(rpc::CheckNamespaceAccess(nullptr, "anything").ok());
}

TEST_CASE("Security: namespace tokens need TLS and are a kvpoold option only", "[security]") {
  daemon::OpsOptions o;
  o.namespace_tokens_file = "/t";
  CHECK_THAT(MessageOf(o.Validate()), Catch::Contains("namespace-tokens-file"));
  o.tls_cert_file = "/c";
  o.tls_key_file = "/k";
  CHECK(o.Validate().ok());
  auto parsed = Parse({"--tls-cert=/c", "--tls-key=/k", "--namespace-tokens-file=/t"});
  REQUIRE(parsed.ok());
  CHECK((*parsed)->ops.namespace_tokens_file == "/t");
  std::vector<const char*> argv{"kvpool-scheduler", "--tls-cert=/c", "--tls-key=/k",
                                "--namespace-tokens-file=/t"};
  CHECK(daemon::ParseKvpoolSchedulerArgs(static_cast<int>(argv.size()), argv.data())
            .status()
            .code() == StatusCode::kInvalidArgument);
  rpc::ServerSecurity s;
  s.namespace_tokens.push_back({"t", {"a"}});
  CHECK(rpc::MakeServerCredentials(s, nullptr).status().code() == StatusCode::kInvalidArgument);
  CHECK(rpc::MemPoolAdminMethods().count("/kvpool.v1.MemPool/Undrain") == 1);
}

}  // namespace kvpool
