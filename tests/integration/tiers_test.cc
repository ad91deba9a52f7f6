// The SSD tier through a real kvpoold: swaps and tiers over gRPC, and restarts (clean and
// kill -9) that must bring back exactly the index and bytes they promise (docs/storage.md).
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "kvpool/block_hash.h"
#include "kvpool/data_plane.h"
#include "kvpool/scheduler_client.h"
#include "launch/local_kvpoold.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

constexpr uint32_t kBlockTokens = 16;
constexpr uint64_t kBlockBytes = 64 << 10;
const NamespaceSpec kSpec{"tiers", kBlockTokens, kBlockBytes, ""};

// A kvpoold with an SSD tier in `dir`/data/ssd, restartable on the same data dir.
class TierNode {
 public:
  TierNode(const TempDir& dir, std::vector<std::string> extra = {}) {
    launch::LocalKvpooldOptions o;
    o.binary = kKvpooldPath;
    o.work_dir = dir.path();
    o.capacity = "4MiB";  // 64 blocks of 64 KiB
    o.extra_args = {"--disk-capacity=8MiB", "--no-huge-pages"};
    o.extra_args.insert(o.extra_args.end(), extra.begin(), extra.end());
    daemon_ = KVPOOL_IT_VALUE(launch::LocalKvpoold::Start(o));
    client_ = KVPOOL_IT_VALUE(Client::Connect(daemon_->address()));
  }
  ~TierNode() {
    dp_.reset();
    client_.reset();
  }
  Client& client() { return *client_; }
  const std::string& address() const { return daemon_->address(); }
  DataPlane& dp() {
    if (dp_ == nullptr) dp_ = KVPOOL_IT_VALUE(DataPlane::Connect(*client_));
    return *dp_;
  }
  std::string Log() const { return ReadFile(daemon_->log_path()); }
  // SIGTERM (clean: shutdown demotion runs) or SIGKILL, and wait for the exit.
  void Stop(int signal_number) {
    dp_.reset();
    client_.reset();
    daemon_->process().Signal(signal_number);
    REQUIRE(daemon_->process().Wait(20'000).ok());
  }

 private:
  std::unique_ptr<launch::LocalKvpoold> daemon_;
  std::unique_ptr<Client> client_;
  std::unique_ptr<DataPlane> dp_;
};

// Allocates, writes `bytes` (one block after the other) and inserts the prompt.
void Publish(TierNode& node, const std::vector<uint32_t>& tokens, std::vector<uint8_t>& bytes,
             bool durable) {
  const uint32_t n = static_cast<uint32_t>(tokens.size() / kBlockTokens);
  const Allocation alloc =
      KVPOOL_IT_VALUE(node.client().AllocMem(kSpec.name, n, Tier::kHost, 0));
  const RegionId region = KVPOOL_IT_VALUE(node.dp().RegisterMemory(bytes.data(), bytes.size()));
  std::vector<uint64_t> offsets;
  for (uint32_t i = 0; i < n; ++i) offsets.push_back(i * kBlockBytes);
  KVPOOL_IT_REQUIRE_OK(KVPOOL_IT_VALUE(node.dp().Put(region, offsets, alloc.blocks)).Wait(10'000));
  KVPOOL_IT_VALUE(node.client().Insert(kSpec.name, PromptView::Tokens(tokens), 0,
                                       HandlesOf(alloc), alloc.lease.id, false, durable));
  KVPOOL_IT_REQUIRE_OK(node.client().Release(alloc.lease.id).status());
  KVPOOL_IT_REQUIRE_OK(node.dp().Deregister(region));
}

// Reads the prompt's longest match (promoting DISK blocks) and returns its bytes.
std::vector<uint8_t> ReadBack(TierNode& node, const std::vector<uint32_t>& tokens) {
  const size_t n = tokens.size() / kBlockTokens;
  std::vector<uint8_t> out(n * kBlockBytes, 0);
  const RegionId region = KVPOOL_IT_VALUE(node.dp().RegisterMemory(out.data(), out.size()));
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < n; ++i) offsets.push_back(i * kBlockBytes);
  const uint32_t got = KVPOOL_IT_VALUE(
      node.dp().MatchAndGet(node.client(), kSpec.name, PromptView::Tokens(tokens), region, offsets));
  KVPOOL_IT_REQUIRE_OK(node.dp().Deregister(region));
  out.resize(got * kBlockBytes);
  return out;
}

std::vector<Tier> TiersOf(TierNode& node, const std::vector<uint32_t>& tokens) {
  return KVPOOL_IT_VALUE(node.client().Exists(kSpec.name, PromptView::Tokens(tokens))).tiers;
}

TEST_CASE("Tiers: SwapOut, SwapIn, durable Insert and tiers over gRPC, bad input refused",
          "[integration][storage]") {
  TempDir dir;
  TierNode node(dir);
  KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace(kSpec).status());
  const auto tokens = MakeTokens(6 * kBlockTokens, 1);
  auto bytes = RandomBytes(6 * kBlockBytes, 1);
  Publish(node, tokens, bytes, false);

  CHECK(KVPOOL_IT_VALUE(node.client().SwapOut(kSpec.name, 3)) == 3);
  CHECK(TiersOf(node, tokens) == std::vector<Tier>{Tier::kHost, Tier::kHost, Tier::kHost,
                                                   Tier::kDisk, Tier::kDisk, Tier::kDisk});
  // Without a lease DISK blocks are listed, never with a readable location.
  const MatchResult peek =
      KVPOOL_IT_VALUE(node.client().Match(kSpec.name, PromptView::Tokens(tokens)));
  CHECK(peek.matched_blocks == 6);
  CHECK(peek.blocks[5].tier == Tier::kDisk);
  CHECK(peek.blocks[5].handle == 0);
  CHECK(KVPOOL_IT_VALUE(node.client().SwapIn(kSpec.name, PromptView::Tokens(tokens), 4)) == 2);
  CHECK(TiersOf(node, tokens)[3] == Tier::kDisk);
  CHECK(TiersOf(node, tokens)[5] == Tier::kHost);
  CHECK(ReadBack(node, tokens) == bytes);  // promotes block 3 too
  CHECK(TiersOf(node, tokens) == std::vector<Tier>(6, Tier::kHost));
  const PoolStats stats = KVPOOL_IT_VALUE(node.client().GetStats());
  CHECK(stats.disk_capacity_bytes == 8u << 20);
  CHECK(stats.disk_used_bytes == 3 * kBlockBytes);

  KVPOOL_IT_CHECK_ERROR(node.client().SwapOut(kSpec.name, 0), StatusCode::kInvalidArgument,
                        "n_blocks");
  KVPOOL_IT_CHECK_ERROR(node.client().SwapOut("nope", 1), StatusCode::kNotFound, "nope");
  KVPOOL_IT_CHECK_ERROR(node.client().SwapIn(kSpec.name, PromptView::Tokens(tokens), 7),
                        StatusCode::kInvalidArgument, "start_block 7");
  CHECK(KVPOOL_IT_VALUE(node.client().Health()));
}

TEST_CASE("Tiers: a node without an SSD tier refuses swaps and durable inserts",
          "[integration][storage]") {
  TestDaemon d;
  KVPOOL_IT_REQUIRE_OK(d.client().CreateNamespace(kSpec).status());
  KVPOOL_IT_CHECK_ERROR(d.client().SwapOut(kSpec.name, 1), StatusCode::kFailedPrecondition,
                        "SSD tier");
  const auto tokens = MakeTokens(kBlockTokens, 2);
  KVPOOL_IT_CHECK_ERROR(d.client().SwapIn(kSpec.name, PromptView::Tokens(tokens), 0),
                        StatusCode::kFailedPrecondition, "SSD tier");
  const Allocation alloc = KVPOOL_IT_VALUE(d.client().AllocMem(kSpec.name, 1, Tier::kHost, 0));
  KVPOOL_IT_CHECK_ERROR(d.client().Insert(kSpec.name, PromptView::Tokens(tokens), 0,
                                          HandlesOf(alloc), alloc.lease.id, false, true),
                        StatusCode::kFailedPrecondition, "durable");
  CHECK(KVPOOL_IT_VALUE(d.client().Exists(kSpec.name, PromptView::Tokens(tokens))).present_blocks ==
        0);
}

TEST_CASE("Tiers: a clean restart brings back every block, byte-exact, as DISK",
          "[integration][storage]") {
  TempDir dir;
  const auto a = MakeTokens(8 * kBlockTokens, 3);
  const auto b = Concat(Head(a, 4 * kBlockTokens), MakeTokens(3 * kBlockTokens, 4));
  auto a_bytes = RandomBytes(8 * kBlockBytes, 3);
  auto b_bytes = RandomBytes(7 * kBlockBytes, 4);
  std::copy(a_bytes.begin(), a_bytes.begin() + 4 * kBlockBytes, b_bytes.begin());
  std::vector<Tier> a_before, b_before;
  {
    TierNode node(dir);
    KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace(kSpec).status());
    Publish(node, a, a_bytes, false);
    Publish(node, b, b_bytes, false);
    CHECK(KVPOOL_IT_VALUE(node.client().SwapOut(kSpec.name, 2)) == 2);
    a_before = TiersOf(node, a);
    b_before = TiersOf(node, b);
    node.Stop(SIGTERM);
    CHECK_THAT(node.Log(), Catch::Contains("shutdown demotion: 9 blocks"));
  }
  TierNode node(dir);
  CHECK_THAT(node.Log(), Catch::Contains("recovered namespaces=1 blocks=11"));
  const NamespaceInfo info = KVPOOL_IT_VALUE(node.client().GetNamespace(kSpec.name));
  CHECK(info.spec == kSpec);
  // Exactly what was there, every block now on DISK.
  for (size_t i = 0; i < a_before.size(); ++i) CHECK(a_before[i] != Tier::kNone);
  CHECK(TiersOf(node, a) == std::vector<Tier>(8, Tier::kDisk));
  CHECK(TiersOf(node, b) == std::vector<Tier>(7, Tier::kDisk));
  CHECK(ReadBack(node, a) == a_bytes);
  CHECK(ReadBack(node, b) == b_bytes);
}

TEST_CASE("Tiers: after kill -9 every durable or demoted block is back and nothing else",
          "[integration][storage]") {
  TempDir dir;
  const auto durable = MakeTokens(4 * kBlockTokens, 5);
  const auto demoted = MakeTokens(3 * kBlockTokens, 6);
  const auto volatile_only = MakeTokens(2 * kBlockTokens, 7);
  auto durable_bytes = RandomBytes(4 * kBlockBytes, 5);
  auto demoted_bytes = RandomBytes(3 * kBlockBytes, 6);
  auto volatile_bytes = RandomBytes(2 * kBlockBytes, 7);
  {
    TierNode node(dir);
    KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace(kSpec).status());
    Publish(node, demoted, demoted_bytes, false);
    CHECK(KVPOOL_IT_VALUE(node.client().SwapOut(kSpec.name, 3)) == 3);
    Publish(node, durable, durable_bytes, true);
    Publish(node, volatile_only, volatile_bytes, false);
    CHECK(TiersOf(node, durable) == std::vector<Tier>(4, Tier::kHost));
    node.Stop(SIGKILL);
  }
  TierNode node(dir);
  CHECK(TiersOf(node, durable) == std::vector<Tier>(4, Tier::kDisk));
  CHECK(TiersOf(node, demoted) == std::vector<Tier>(3, Tier::kDisk));
  CHECK(TiersOf(node, volatile_only) == std::vector<Tier>(2, Tier::kNone));
  CHECK(ReadBack(node, durable) == durable_bytes);
  CHECK(ReadBack(node, demoted) == demoted_bytes);
}

TEST_CASE("Tiers: --no-demote-on-shutdown loses host blocks on a clean stop",
          "[integration][storage]") {
  TempDir dir;
  const auto tokens = MakeTokens(2 * kBlockTokens, 8);
  auto bytes = RandomBytes(2 * kBlockBytes, 8);
  {
    TierNode node(dir, {"--no-demote-on-shutdown"});
    KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace(kSpec).status());
    Publish(node, tokens, bytes, false);
    node.Stop(SIGTERM);
  }
  TierNode node(dir);
  CHECK(KVPOOL_IT_VALUE(node.client().GetNamespace(kSpec.name)).spec == kSpec);
  CHECK(TiersOf(node, tokens) == std::vector<Tier>(2, Tier::kNone));
}

uint64_t WrittenBehind(TierNode& node) {
  return KVPOOL_IT_VALUE(node.client().GetNamespace(kSpec.name)).stats.written_behind_blocks;
}

TEST_CASE("Tiers: kvpoold writes the next blocks to evict behind, and they come back byte-exact",
          "[integration][storage]") {
  // 64 host blocks: the write-behind window is an eighth of them (8 blocks), the default
  // --write-behind being larger.
  TempDir dir;
  TierNode node(dir);
  KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace(kSpec).status());
  std::vector<std::vector<uint32_t>> prompts;
  std::vector<std::vector<uint8_t>> bytes;
  for (uint32_t i = 0; i < 4; ++i) {
    prompts.push_back(MakeTokens(16 * kBlockTokens, 20 + i));
    bytes.push_back(RandomBytes(16 * kBlockBytes, 20 + i));
    Publish(node, prompts.back(), bytes.back(), false);
  }
  // Full: the background thread writes the coldest prompt's deepest 8 blocks.
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
  while (WrittenBehind(node) < 8 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  REQUIRE(WrittenBehind(node) >= 8);
  CHECK(TiersOf(node, prompts[0]) == std::vector<Tier>(16, Tier::kHost));
  // One more prompt evicts them: DISK now, and read back byte-exact from what was written.
  const auto more = MakeTokens(8 * kBlockTokens, 30);
  auto more_bytes = RandomBytes(8 * kBlockBytes, 30);
  Publish(node, more, more_bytes, false);
  const std::vector<Tier> tiers = TiersOf(node, prompts[0]);
  CHECK(std::count(tiers.begin(), tiers.end(), Tier::kDisk) == 8);
  CHECK(ReadBack(node, prompts[0]) == bytes[0]);
  CHECK(ReadBack(node, more) == more_bytes);
}

TEST_CASE("Tiers: blocks written behind survive kill -9 as DISK blocks, byte-exact",
          "[integration][storage]") {
  TempDir dir;
  std::vector<std::vector<uint32_t>> prompts;
  std::vector<std::vector<uint8_t>> bytes;
  uint64_t written = 0;
  {
    TierNode node(dir);
    KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace(kSpec).status());
    for (uint32_t i = 0; i < 4; ++i) {
      prompts.push_back(MakeTokens(16 * kBlockTokens, 50 + i));
      bytes.push_back(RandomBytes(16 * kBlockBytes, 50 + i));
      Publish(node, prompts.back(), bytes.back(), false);
    }
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(10);
    while (WrittenBehind(node) < 8 && std::chrono::steady_clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    written = WrittenBehind(node);
    REQUIRE(written >= 8);
    node.Stop(SIGKILL);
  }
  // Only what was written behind is back (the rest was host memory), all of it on DISK.
  TierNode node(dir);
  uint64_t disk = 0;
  for (const auto& prompt : prompts) {
    for (Tier t : TiersOf(node, prompt)) {
      CHECK((t == Tier::kDisk || t == Tier::kNone));
      disk += t == Tier::kDisk ? 1 : 0;
    }
  }
  CHECK(disk >= written);
  // The coldest prompt's deepest blocks went first; read back, they are its bytes.
  const std::vector<Tier> tiers = TiersOf(node, prompts[0]);
  CHECK(tiers.back() == Tier::kDisk);
  const auto first_disk = static_cast<size_t>(std::find(tiers.begin(), tiers.end(), Tier::kDisk) -
                                              tiers.begin());
  for (size_t i = first_disk; i < tiers.size(); ++i) CHECK(tiers[i] == Tier::kDisk);
  const size_t n = tiers.size() - first_disk;
  const MatchResult m = KVPOOL_IT_VALUE(node.client().Match(
      kSpec.name, PromptView::Tokens(prompts[0]), static_cast<uint32_t>(first_disk), true));
  REQUIRE(m.matched_blocks == n);
  std::vector<uint8_t> out(n * kBlockBytes, 0);
  const RegionId region = KVPOOL_IT_VALUE(node.dp().RegisterMemory(out.data(), out.size()));
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < n; ++i) offsets.push_back(i * kBlockBytes);
  KVPOOL_IT_REQUIRE_OK(KVPOOL_IT_VALUE(node.dp().Get(m.blocks, region, offsets)).Wait(10'000));
  KVPOOL_IT_REQUIRE_OK(node.client().Release(m.lease.id).status());
  KVPOOL_IT_REQUIRE_OK(node.dp().Deregister(region));
  CHECK(std::equal(out.begin(), out.end(), bytes[0].begin() + first_disk * kBlockBytes));
}

TEST_CASE("Tiers: kvpoold --write-behind=0 writes nothing ahead", "[integration][storage]") {
  TempDir dir;
  TierNode node(dir, {"--write-behind=0"});
  KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace(kSpec).status());
  for (uint32_t i = 0; i < 4; ++i) {
    auto bytes = RandomBytes(16 * kBlockBytes, 40 + i);
    Publish(node, MakeTokens(16 * kBlockTokens, 40 + i), bytes, false);
  }
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(WrittenBehind(node) == 0);
  CHECK(KVPOOL_IT_VALUE(node.client().GetStats()).disk_used_bytes == 0);
}

TEST_CASE("Tiers: --disk-capacity without --data-dir, and a foreign data dir, stop kvpoold",
          "[integration][storage]") {
  const CommandResult r =
      RunCommand({kKvpooldPath, "--listen=127.0.0.1:0", "--disk-capacity=1MiB"}, 5'000);
  CHECK(r.exit_code == 2);
  CHECK_THAT(r.err, Catch::Contains("data-dir"));

  TempDir dir;
  std::filesystem::create_directories(dir.File("data/ssd"));
  WriteFile(dir.File("data/ssd/CURRENT"), "not a RocksDB manifest name\n");
  const CommandResult foreign =
      RunCommand({kKvpooldPath, "--listen=127.0.0.1:0", "--data-dir=" + dir.File("data"),
                  "--disk-capacity=1MiB", "--no-data-plane"},
                 10'000);
  CHECK(foreign.exit_code == 1);
  CHECK_THAT(foreign.out + foreign.err, Catch::Contains("cannot open the SSD tier"));
}

TEST_CASE("Tiers: the SSD tier's measured read bandwidth reaches the scheduler and its routes",
          "[integration][storage]") {
  TempDir dir;
  TestScheduler sched(dir, 0, "sched");
  const std::vector<std::string> to_scheduler = NodeConfig(sched.address(), "n1").extra_args;
  const auto tokens = MakeTokens(6 * kBlockTokens, 9);
  auto bytes = RandomBytes(6 * kBlockBytes, 9);
  double measured = 0;
  {
    TierNode node(dir, to_scheduler);
    KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace(kSpec).status());
    // A fresh tier has read nothing: no figure yet.
    CHECK(KVPOOL_IT_VALUE(node.client().GetStats()).disk_read_bytes_per_s == 0);
    Publish(node, tokens, bytes, false);
    CHECK(KVPOOL_IT_VALUE(node.client().SwapOut(kSpec.name, 6)) == 6);
    CHECK(ReadBack(node, tokens) == bytes);  // six promotions, each a timed read
    measured = KVPOOL_IT_VALUE(node.client().GetStats()).disk_read_bytes_per_s;
    CHECK(measured > 0);

    // The next heartbeats carry it; ListNodes and the route answer show it.
    double reported = 0;
    CHECK(PollUntil(5'000, [&] {
      const auto nodes = sched.client().ListNodes();
      if (!nodes.ok() || nodes->empty()) return false;
      reported = nodes->front().disk_read_bytes_per_s;
      return reported > 0;
    }));
    CHECK(reported == measured);
    KVPOOL_IT_REQUIRE_OK(sched.client().RegisterInstance("i1", "colocated", "n1"));
    RouteQuery query;
    query.ns = kSpec.name;
    query.hashes = BlockHasher(kSpec.name, kSpec.salt, kBlockTokens).HashPrompt(tokens);
    query.policy = "cost";
    const RouteAnswer route = KVPOOL_IT_VALUE(sched.client().Route(query));
    REQUIRE(route.ranked.size() == 1);
    CHECK(route.ranked[0].disk_read_bytes_per_s == measured);
    // kvpoolctl nodes shows it too (JSON exact; the table in GB/s).
    const std::string sched_flag = "--scheduler=" + sched.address();
    const CommandResult nodes_json = RunKvpoolctl("127.0.0.1:1", {"nodes", "--json", sched_flag});
    INFO(nodes_json.out << nodes_json.err);
    REQUIRE(nodes_json.exit_code == 0);
    const nlohmann::json nj = nlohmann::json::parse(nodes_json.out);
    CHECK(nj["nodes"][0]["disk_read_bytes_per_s"].get<double>() == measured);
    const CommandResult nodes_table = RunKvpoolctl("127.0.0.1:1", {"nodes", sched_flag});
    CHECK_THAT(nodes_table.out, Catch::Contains("DISK READ") && Catch::Contains(" GB/s"));

    node.Stop(SIGTERM);
  }
  // After a restart the start-up probe reads stored blocks: a figure before any promotion.
  TierNode node(dir);
  CHECK(KVPOOL_IT_VALUE(node.client().GetStats()).disk_read_bytes_per_s > 0);
}

TEST_CASE("Tiers: kvpoolctl swap-out and swap-in move blocks and say where they are",
          "[integration][storage]") {
  TempDir dir;
  TierNode node(dir);
  KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace(kSpec).status());
  const auto tokens = MakeTokens(6 * kBlockTokens, 10);
  auto bytes = RandomBytes(6 * kBlockBytes, 10);
  Publish(node, tokens, bytes, false);

  CommandResult out = RunKvpoolctl(node.address(), {"swap-out", kSpec.name, "4"});
  INFO(out.out << out.err);
  CHECK(out.exit_code == 0);
  CHECK_THAT(out.out, Catch::Contains("swapped out 4 of 4 blocks of namespace 'tiers' to the "
                                      "SSD tier"));
  CHECK_THAT(out.out, Catch::Contains("2 blocks in host memory, 4 on the SSD tier"));
  CHECK(TiersOf(node, tokens) == std::vector<Tier>{Tier::kHost, Tier::kHost, Tier::kDisk,
                                                   Tier::kDisk, Tier::kDisk, Tier::kDisk});
  // Asking for more than there is moves what there is, and says so.
  out = RunKvpoolctl(node.address(), {"swap-out", kSpec.name, "9"});
  CHECK(out.exit_code == 0);
  CHECK_THAT(out.out, Catch::Contains("swapped out 2 of 9 blocks"));
  CHECK(TiersOf(node, tokens) == std::vector<Tier>(6, Tier::kDisk));

  std::string token_text;
  for (uint32_t t : tokens) token_text += std::to_string(t) + " ";
  WriteFile(dir.File("prompt.txt"), token_text + "\n");
  out = RunKvpoolctl(node.address(), {"--json", "swap-in", kSpec.name, "--tokens-file",
                                      dir.File("prompt.txt"), "--start-block", "2"});
  INFO(out.out << out.err);
  REQUIRE(out.exit_code == 0);
  const nlohmann::json j = nlohmann::json::parse(out.out);
  CHECK(j["promoted_blocks"] == 4);
  CHECK(j["prompt_blocks"] == 6);
  CHECK(j["prompt"]["memory_blocks"] == 4);
  CHECK(j["prompt"]["disk_blocks"] == 2);
  CHECK(j["now"]["disk_blocks"] == 6);  // the SSD tier keeps its copies
  CHECK(TiersOf(node, tokens) == std::vector<Tier>{Tier::kDisk, Tier::kDisk, Tier::kHost,
                                                   Tier::kHost, Tier::kHost, Tier::kHost});
  out = RunKvpoolctl(node.address(),
                     {"swap-in", kSpec.name, "--tokens-file", dir.File("prompt.txt")});
  CHECK(out.exit_code == 0);
  CHECK_THAT(out.out, Catch::Contains("swapped in 2 blocks of namespace 'tiers'"));
  CHECK_THAT(out.out, Catch::Contains("the prompt's 6 blocks: 6 in memory, 0 on the SSD tier, "
                                      "0 not cached"));
  CHECK(ReadBack(node, tokens) == bytes);

  // Bad input: named in the message, exit code 1 (2 for a command line CLI11 refuses).
  out = RunKvpoolctl(node.address(), {"swap-out", "nope", "1"});
  CHECK(out.exit_code == 1);
  CHECK_THAT(out.err, Catch::Contains("NOT_FOUND") && Catch::Contains("nope"));
  out = RunKvpoolctl(node.address(), {"swap-out", kSpec.name, "0"});
  CHECK(out.exit_code == 2);
  out = RunKvpoolctl(node.address(), {"swap-in", kSpec.name});
  CHECK(out.exit_code == 1);
  CHECK_THAT(out.err, Catch::Contains("exactly one of --tokens-file and --hashes"));
  out = RunKvpoolctl(node.address(), {"--json", "swap-in", kSpec.name, "--hashes", "xyz"});
  CHECK(out.exit_code == 1);
  CHECK_THAT(out.out, Catch::Contains("INVALID_ARGUMENT"));

  // A node without an SSD tier says why.
  TestDaemon plain;
  KVPOOL_IT_REQUIRE_OK(plain.client().CreateNamespace(kSpec).status());
  out = RunKvpoolctl(plain.address(), {"swap-out", kSpec.name, "1"});
  CHECK(out.exit_code == 1);
  CHECK_THAT(out.err, Catch::Contains("FAILED_PRECONDITION") && Catch::Contains("SSD tier"));
}

}  // namespace
}  // namespace kvpool::itest
