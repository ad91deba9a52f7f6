#include <catch2/catch.hpp>
#include <unistd.h>

#include <cstdio>
#include <fstream>

#include "daemon/kvpoold_options.h"
#include "node/options.h"

namespace kvpool {
namespace {

Result<std::optional<daemon::KvpooldOptions>> Parse(std::vector<std::string> args) {
  args.insert(args.begin(), "kvpoold");
  std::vector<const char*> argv;
  for (const auto& a : args) argv.push_back(a.c_str());
  return daemon::ParseKvpooldArgs(static_cast<int>(argv.size()), argv.data());
}

}  // namespace

TEST_CASE("MemPoolOptions: defaults validate and bad fields are named", "[node]") {
  node::MemPoolOptions o;
  CHECK(o.Validate().ok());
  o.capacity_bytes = 0;
  CHECK_THAT(o.Validate().message(), Catch::Contains("capacity_bytes"));
  o = {};
  o.max_lease_ttl_ms = 10;
  CHECK_THAT(o.Validate().message(), Catch::Contains("max_lease_ttl_ms"));
  o = {};
  o.max_namespaces = 70000;
  CHECK_THAT(o.Validate().message(), Catch::Contains("70000"));
}

TEST_CASE("MemPoolOptions: the automatic slab size keeps a pool to about 1,024 slabs",
          "[node]") {
  constexpr uint64_t kMiB = 1ull << 20, kGiB = 1ull << 30;
  node::MemPoolOptions o;
  REQUIRE(o.slab_bytes == 0);  // automatic by default
  o.capacity_bytes = 1 * kGiB;
  CHECK(o.SlabBytesFor(64 * 1024) == 32 * kMiB);
  o.capacity_bytes = 256 * kGiB;  // 1,024 slabs of 256 MiB, not 8,192 of 32 MiB
  CHECK(o.SlabBytesFor(64 * 1024) == 256 * kMiB);
  CHECK(o.capacity_bytes / o.SlabBytesFor(64 * 1024) == 1024);
  // Small pools: an eighth of the pool at most; large blocks: one block at least.
  o.capacity_bytes = 64 * kMiB;
  CHECK(o.SlabBytesFor(64 * 1024) == 8 * kMiB);
  CHECK(o.SlabBytesFor(16 * kMiB) == 16 * kMiB);
  // An explicit size is kept, within the same bounds.
  o.capacity_bytes = 256 * kGiB;
  o.slab_bytes = 4 * kMiB;
  CHECK(o.SlabBytesFor(64 * 1024) == 4 * kMiB);
  CHECK(o.SlabBytesFor(8 * kMiB) == 8 * kMiB);
}

TEST_CASE("kvpoold options: --slab takes a size or auto, and refuses 0 by name", "[daemon]") {
  auto automatic = Parse({"--slab=auto"});
  REQUIRE(automatic.ok());
  CHECK((*automatic)->pool.slab_bytes == 0);
  auto by_default = Parse({});
  REQUIRE(by_default.ok());
  CHECK((*by_default)->pool.slab_bytes == 0);
  auto zero = Parse({"--slab=0"});
  CHECK(zero.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(std::string(zero.status().message()), Catch::Contains("--slab"));
}

TEST_CASE("kvpoold options: flags with units parse into Options", "[daemon]") {
  auto parsed = Parse({"--listen=127.0.0.1:0", "--capacity=2GiB", "--slab=4MiB", "--lease-ttl-ms=500",
                       "--node-id=n1", "--no-huge-pages", "--log-level=debug"});
  REQUIRE(parsed.ok());
  REQUIRE(parsed->has_value());
  const auto& o = **parsed;
  CHECK(o.listen == "127.0.0.1:0");
  CHECK(o.pool.capacity_bytes == (2ull << 30));
  CHECK(o.pool.slab_bytes == (4ull << 20));
  CHECK(o.pool.default_lease_ttl_ms == 500);
  CHECK(o.pool.node_id == "n1");
  CHECK_FALSE(o.pool.huge_pages);
  CHECK(o.log_level == LogLevel::kDebug);
}

TEST_CASE("kvpoold options: a config file sets options and flags override it", "[daemon]") {
  const std::string path = "/tmp/kvpoold_options_test_" + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream f(path);
    f << "# kvpoold config\nlisten = \"0.0.0.0:7701\"\ncapacity = \"64MiB\"\nmax-request-blocks = 1000\n";
  }
  auto parsed = Parse({"--config", path, "--capacity=128MiB"});
  std::remove(path.c_str());
  REQUIRE(parsed.ok());
  const auto& o = **parsed;
  CHECK(o.listen == "0.0.0.0:7701");
  CHECK(o.pool.capacity_bytes == (128ull << 20));
  CHECK(o.pool.max_request_blocks == 1000);
}

TEST_CASE("kvpoold options: bad values are INVALID_ARGUMENT naming the value", "[daemon]") {
  CHECK_THAT(Parse({"--capacity=lots"}).status().message(), Catch::Contains("'lots'"));
  CHECK_THAT(Parse({"--listen=nowhere"}).status().message(), Catch::Contains("nowhere"));
  CHECK_THAT(Parse({"--log-level=chatty"}).status().message(), Catch::Contains("chatty"));
  CHECK(Parse({"--capacity=0"}).status().code() == StatusCode::kInvalidArgument);
  CHECK(Parse({"--no-such-flag"}).status().code() == StatusCode::kInvalidArgument);
  CHECK(Parse({"--config=/nonexistent/kvpoold.toml"}).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("kvpoold options: an unknown key in the config file is refused, naming it", "[daemon]") {
  const std::string path = "/tmp/kvpoold_options_extra_" + std::to_string(::getpid()) + ".toml";
  {
    std::ofstream f(path);
    f << "listen = \"127.0.0.1:7701\"\ncapasity = \"64MiB\"\n";
  }
  auto parsed = Parse({"--config", path});
  std::remove(path.c_str());
  CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(parsed.status().message(), Catch::Contains("capasity"));
}

}  // namespace kvpool

namespace kvpool {

TEST_CASE("kvpoold options: peers and transfer timeouts parse, bad ones are named", "[daemon]") {
  auto parsed = Parse({"--node-id=a", "--peer=b=10.0.0.2:7700", "--peer", "c=host-c:7701",
                       "--transfer-timeout-ms=500"});
  REQUIRE(parsed.ok());
  REQUIRE(parsed->has_value());
  const auto& o = **parsed;
  REQUIRE(o.peers.size() == 2);
  CHECK(o.peers.at("b") == "10.0.0.2:7700");
  CHECK(o.peers.at("c") == "host-c:7701");
  CHECK(o.transfer_timeout_ms == 500);
  CHECK(o.fault_pause_before_insert_ms == 0);

  auto message = [](std::vector<std::string> args) {
    auto r = Parse(std::move(args));
    return r.ok() ? std::string("ok") : std::string(r.status().message());
  };
  CHECK_THAT(message({"--peer=b"}), Catch::Contains("ID=HOST:PORT"));
  CHECK_THAT(message({"--peer=b=nohost"}), Catch::Contains("nohost"));
  CHECK_THAT(message({"--peer==h:1"}), Catch::Contains("empty node id"));
  CHECK_THAT(message({"--node-id=a", "--peer=a=h:1"}), Catch::Contains("own --node-id"));
  CHECK_THAT(message({"--peer=b=h:1", "--peer=b=h:2"}), Catch::Contains("given twice"));
  CHECK_THAT(message({"--transfer-timeout-ms=0"}), Catch::Contains("transfer-timeout-ms"));
}

}  // namespace kvpool
