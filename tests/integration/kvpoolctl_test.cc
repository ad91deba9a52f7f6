// Integration tests of kvpoolctl: the real CLI binary against a real kvpoold, output and exit
// codes checked as an operator or a script would see them.
#include <catch2/catch.hpp>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/client.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

using nlohmann::json;

constexpr uint32_t kBlockTokens = 16;
constexpr uint64_t kBlockBytes = 4096;

NamespaceSpec Spec(std::string name, uint32_t block_tokens = kBlockTokens) {
  return NamespaceSpec{std::move(name), block_tokens, kBlockBytes, ""};
}

// Parses `text` as JSON; FAILs (showing the text) if it is not.
json ParseJson(const std::string& text) {
  json j = json::parse(text, nullptr, /*allow_exceptions=*/false);
  INFO("not JSON:\n" << text);
  REQUIRE_FALSE(j.is_discarded());
  return j;
}

// Publishes `tokens` (whole blocks) in `ns`; returns the cached handles.
std::vector<BlockHandle> Publish(Client& c, const std::string& ns,
                                 const std::vector<uint32_t>& tokens) {
  const uint32_t n = static_cast<uint32_t>(tokens.size() / kBlockTokens);
  const Allocation alloc = KVPOOL_IT_VALUE(c.AllocMem(ns, n, Tier::kHost, 60'000));
  const InsertResult r = KVPOOL_IT_VALUE(
      c.Insert(ns, PromptView::Tokens(tokens), 0, HandlesOf(alloc), alloc.lease.id));
  KVPOOL_IT_REQUIRE_OK(c.Release(alloc.lease.id));
  return r.handles;
}

// Token ids as a file would hold them: mixed separators, a trailing newline.
std::string TokenFileText(const std::vector<uint32_t>& tokens) {
  std::ostringstream out;
  for (size_t i = 0; i < tokens.size(); ++i) {
    out << tokens[i];
    if (i + 1 == tokens.size()) break;
    out << (i % 7 == 6 ? "\n" : i % 3 == 0 ? ", " : " ");
  }
  out << "\n";
  return out.str();
}

TEST_CASE("kvpoolctl: status shows a serving node, as a table and as JSON", "[integration]") {
  TestDaemon d;
  KVPOOL_IT_REQUIRE_OK(d.client().CreateNamespace(Spec("status-ns")));

  const CommandResult text = RunKvpoolctl(d.address(), {"status"});
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("SERVING"));
  CHECK_THAT(text.out, Catch::Contains(d.address()));
  CHECK_THAT(text.out, Catch::Contains("64 MiB"));
  CHECK(text.err.empty());

  const CommandResult js = RunKvpoolctl(d.address(), {"--json", "status"});
  REQUIRE(js.exit_code == 0);
  const json j = ParseJson(js.out);
  CHECK(j.at("serving") == true);
  CHECK(j.at("address") == d.address());
  CHECK(j.at("capacity_bytes") == 64u << 20);
  CHECK(j.at("namespaces") == 1);
  CHECK(j.at("active_leases") == 0);
  CHECK(j.at("node_id").get<std::string>().rfind("local-", 0) == 0);
  // Global flags may also follow the subcommand.
  const CommandResult after = RunKvpoolctl(d.address(), {"status", "--json"});
  CHECK(after.exit_code == 0);
  CHECK(ParseJson(after.out).at("serving") == true);
}

TEST_CASE("kvpoolctl: namespaces lists what the node has", "[integration]") {
  TestDaemon d;
  const CommandResult empty = RunKvpoolctl(d.address(), {"namespaces"});
  CHECK(empty.exit_code == 0);
  CHECK_THAT(empty.out, Catch::Contains("no namespaces"));

  KVPOOL_IT_REQUIRE_OK(d.client().CreateNamespace(Spec("llama-8b", 32)));
  KVPOOL_IT_REQUIRE_OK(d.client().CreateNamespace(Spec("qwen.7b")));
  const CommandResult text = RunKvpoolctl(d.address(), {"namespaces"});
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("NAME"));
  CHECK_THAT(text.out, Catch::Contains("llama-8b"));
  CHECK_THAT(text.out, Catch::Contains("qwen.7b"));

  const CommandResult js = RunKvpoolctl(d.address(), {"--json", "namespaces"});
  REQUIRE(js.exit_code == 0);
  const json list = ParseJson(js.out).at("namespaces");
  REQUIRE(list.size() == 2);
  CHECK(list[0].at("spec").at("name") == "llama-8b");
  CHECK(list[0].at("spec").at("block_tokens") == 32);
  CHECK(list[0].at("spec").at("block_bytes") == kBlockBytes);
  CHECK(list[0].at("root_hash") == NamespaceRootHash("llama-8b", "").ToHex());
  CHECK(list[1].at("spec").at("name") == "qwen.7b");
}

TEST_CASE("kvpoolctl: create-namespace is idempotent and refuses conflicting parameters",
          "[integration]") {
  TestDaemon d;
  const std::vector<std::string> create = {"create-namespace", "cli-ns", "--block-tokens", "16",
                                           "--block-bytes",    "4096"};
  const CommandResult first = RunKvpoolctl(d.address(), create);
  CHECK(first.exit_code == 0);
  CHECK_THAT(first.out, Catch::Contains("created namespace 'cli-ns'"));
  const NamespaceInfo info = KVPOOL_IT_VALUE(d.client().GetNamespace("cli-ns"));
  CHECK(info.spec == Spec("cli-ns"));

  const CommandResult again = RunKvpoolctl(d.address(), create);
  CHECK(again.exit_code == 0);
  CHECK_THAT(again.out, Catch::Contains("exists (same parameters)"));

  const CommandResult conflict = RunKvpoolctl(
      d.address(), {"create-namespace", "cli-ns", "--block-tokens", "32", "--block-bytes", "4096"});
  CHECK(conflict.exit_code == 1);
  CHECK_THAT(conflict.err, Catch::Contains("ALREADY_EXISTS"));
  CHECK_THAT(conflict.err, Catch::Contains("block_tokens"));
  CHECK(conflict.out.empty());

  // With --json the error is a JSON object on stdout.
  const CommandResult conflict_json = RunKvpoolctl(
      d.address(),
      {"--json", "create-namespace", "cli-ns", "--block-tokens", "16", "--block-bytes", "8192"});
  CHECK(conflict_json.exit_code == 1);
  const json err = ParseJson(conflict_json.out);
  CHECK(err.at("error").at("code") == "ALREADY_EXISTS");
  CHECK_THAT(err.at("error").at("message").get<std::string>(), Catch::Contains("block_bytes"));

  // Nothing changed on the node; a bad spec is refused before anything happens.
  CHECK(KVPOOL_IT_VALUE(d.client().GetNamespace("cli-ns")).spec == Spec("cli-ns"));
  const CommandResult bad = RunKvpoolctl(
      d.address(), {"create-namespace", "bad-ns", "--block-tokens", "16", "--block-bytes", "100"});
  CHECK(bad.exit_code == 1);
  CHECK_THAT(bad.err, Catch::Contains("INVALID_ARGUMENT"));
  CHECK(KVPOOL_IT_VALUE(d.client().ListNamespaces()).size() == 1);
  // A missing required flag is a usage error.
  const CommandResult usage =
      RunKvpoolctl(d.address(), {"create-namespace", "x", "--block-tokens", "16"});
  CHECK(usage.exit_code == 2);
}

TEST_CASE("kvpoolctl: stats --json carries the node and per-namespace counters", "[integration]") {
  TestDaemon d;
  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("stats-ns")));
  const std::vector<uint32_t> p = MakeTokens(4 * kBlockTokens, 1);
  Publish(c, "stats-ns", p);
  Publish(c, "stats-ns", p);  // all four deduplicated
  KVPOOL_IT_REQUIRE_OK(
      c.Match("stats-ns", PromptView::Tokens(Concat(p, MakeTokens(2 * kBlockTokens, 2)))));
  const Allocation held = KVPOOL_IT_VALUE(c.AllocMem("stats-ns", 2, Tier::kHost, 60'000));

  const CommandResult r = RunKvpoolctl(d.address(), {"stats", "--json"});
  REQUIRE(r.exit_code == 0);
  const json j = ParseJson(r.out);
  for (const char* field :
       {"node_id", "capacity_bytes", "used_bytes", "reserved_bytes", "free_bytes", "page_mode",
        "active_leases", "expired_leases", "uptime_ms", "namespaces"}) {
    INFO("field " << field);
    CHECK(j.contains(field));
  }
  CHECK(j.at("capacity_bytes") == 64u << 20);
  CHECK(j.at("used_bytes") == 6 * kBlockBytes);
  CHECK(j.at("active_leases") == 1);
  REQUIRE(j.at("namespaces").size() == 1);
  const json ns = j.at("namespaces")[0];
  CHECK(ns.at("spec").at("name") == "stats-ns");
  const json s = ns.at("stats");
  CHECK(s.at("cached_blocks") == 4);
  CHECK(s.at("allocated_blocks") == 2);
  CHECK(s.at("inserted_blocks") == 4);
  CHECK(s.at("deduplicated_blocks") == 4);
  CHECK(s.at("match_requests") == 1);
  CHECK(s.at("hit_blocks") == 4);
  CHECK(s.at("miss_blocks") == 2);
  CHECK(s.at("used_bytes") == 6 * kBlockBytes);

  // The table form names the namespace and its counters too.
  const CommandResult text = RunKvpoolctl(d.address(), {"stats"});
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("stats-ns"));
  CHECK_THAT(text.out, Catch::Contains("1 active leases"));
  KVPOOL_IT_REQUIRE_OK(c.Release(held.lease.id));
}

TEST_CASE("kvpoolctl: match reports the cached prefix of a tokens file or a hash list",
          "[integration]") {
  TestDaemon d;
  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("match-ns")));
  const std::vector<uint32_t> cached = MakeTokens(4 * kBlockTokens, 1);
  const std::vector<BlockHandle> handles = Publish(c, "match-ns", cached);
  // 4 cached blocks, 2 uncached ones, and a partial block that does not count.
  const std::vector<uint32_t> prompt = Concat(cached, MakeTokens(2 * kBlockTokens + 5, 2));
  const std::string file = d.dir().File("prompt.tokens");
  WriteFile(file, TokenFileText(prompt));

  const CommandResult text =
      RunKvpoolctl(d.address(), {"match", "match-ns", "--tokens-file", file});
  CHECK(text.exit_code == 0);
  CHECK_THAT(text.out, Catch::Contains("4 of 6 blocks"));

  const CommandResult js =
      RunKvpoolctl(d.address(), {"--json", "match", "match-ns", "--tokens-file", file});
  REQUIRE(js.exit_code == 0);
  const json j = ParseJson(js.out);
  CHECK(j.at("matched_blocks") == 4);
  CHECK(j.at("prompt_blocks") == 6);
  REQUIRE(j.at("blocks").size() == 4);
  for (size_t i = 0; i < 4; ++i) {
    CHECK(j.at("blocks")[i].at("handle") == handles[i]);
    CHECK(j.at("blocks")[i].at("tier") == "host");
    CHECK(j.at("blocks")[i].at("length") == kBlockBytes);
  }

  const CommandResult from2 = RunKvpoolctl(
      d.address(), {"--json", "match", "match-ns", "--tokens-file", file, "--start-block", "2"});
  REQUIRE(from2.exit_code == 0);
  CHECK(ParseJson(from2.out).at("matched_blocks") == 2);

  // The same prompt as hashes.
  std::string hex;
  for (const BlockHash& h : BlockHasher("match-ns", "", kBlockTokens).HashPrompt(prompt)) {
    hex += (hex.empty() ? "" : ",") + h.ToHex();
  }
  const CommandResult by_hash =
      RunKvpoolctl(d.address(), {"--json", "match", "match-ns", "--hashes", hex});
  REQUIRE(by_hash.exit_code == 0);
  CHECK(ParseJson(by_hash.out).at("matched_blocks") == 4);

  // kvpoolctl's match is a read: it counts as a request but takes no lease.
  const PoolStats stats = KVPOOL_IT_VALUE(c.GetStats());
  CHECK(stats.active_leases == 0);
  REQUIRE(stats.namespaces.size() == 1);
  CHECK(stats.namespaces[0].stats.match_requests == 4);
  CHECK(stats.namespaces[0].stats.hit_blocks == 4 + 4 + 2 + 4);
}

TEST_CASE("kvpoolctl: match with a missing or malformed tokens file exits 1 with a message",
          "[integration]") {
  TestDaemon d;
  KVPOOL_IT_REQUIRE_OK(d.client().CreateNamespace(Spec("bad-file")));
  const std::string missing = d.dir().File("does-not-exist.tokens");
  const CommandResult r1 =
      RunKvpoolctl(d.address(), {"match", "bad-file", "--tokens-file", missing});
  CHECK(r1.exit_code == 1);
  CHECK_THAT(r1.err, Catch::Contains("cannot open token file"));
  CHECK_THAT(r1.err, Catch::Contains(missing));

  struct Bad {
    std::string text;
    std::string word;
  };
  for (const Bad& bad : std::vector<Bad>{{"1 2 abc 4", "'abc'"},
                                         {"1, -5, 3", "'-5'"},
                                         {"7 99999999999", "'99999999999'"},
                                         {"1 2 3x", "'3x'"},
                                         {" \n, \n", "holds no token ids"}}) {
    const std::string file = d.dir().File("bad.tokens");
    WriteFile(file, bad.text);
    const CommandResult r = RunKvpoolctl(d.address(), {"match", "bad-file", "--tokens-file", file});
    INFO("file text: " << bad.text);
    CHECK(r.exit_code == 1);
    CHECK_THAT(r.err, Catch::Contains("INVALID_ARGUMENT"));
    CHECK_THAT(r.err, Catch::Contains(bad.word));
  }

  const CommandResult neither = RunKvpoolctl(d.address(), {"match", "bad-file"});
  CHECK(neither.exit_code == 1);
  CHECK_THAT(neither.err, Catch::Contains("exactly one of --tokens-file and --hashes"));
  const CommandResult bad_hash =
      RunKvpoolctl(d.address(), {"match", "bad-file", "--hashes", "xyz"});
  CHECK(bad_hash.exit_code == 1);
  CHECK_THAT(bad_hash.err, Catch::Contains("xyz"));
  const CommandResult no_ns =
      RunKvpoolctl(d.address(), {"match", "nope", "--hashes", std::string(32, '0')});
  CHECK(no_ns.exit_code == 1);
  CHECK_THAT(no_ns.err, Catch::Contains("NOT_FOUND"));
  // The daemon shrugged all of it off.
  CHECK(KVPOOL_IT_VALUE(d.client().Health()));
}

TEST_CASE("kvpoolctl: evict and delete-namespace change the node and report what they did",
          "[integration]") {
  TestDaemon d;
  Client& c = d.client();
  KVPOOL_IT_REQUIRE_OK(c.CreateNamespace(Spec("gone")));
  Publish(c, "gone", MakeTokens(3 * kBlockTokens, 1));

  const CommandResult evict =
      RunKvpoolctl(d.address(), {"--json", "evict", "2", "--namespace", "gone"});
  REQUIRE(evict.exit_code == 0);
  CHECK(ParseJson(evict.out).at("evicted_blocks") == 2);
  CHECK(NamespaceFromStats(c, "gone").stats.cached_blocks == 1);

  const CommandResult del = RunKvpoolctl(d.address(), {"delete-namespace", "gone"});
  CHECK(del.exit_code == 0);
  CHECK_THAT(del.out, Catch::Contains("deleted namespace 'gone', freed 1 blocks"));
  KVPOOL_IT_CHECK_ERROR(c.GetNamespace("gone"), StatusCode::kNotFound, "gone");
  const CommandResult again = RunKvpoolctl(d.address(), {"delete-namespace", "gone"});
  CHECK(again.exit_code == 1);
  CHECK_THAT(again.err, Catch::Contains("NOT_FOUND"));
}

TEST_CASE("kvpoolctl: an unreachable address fails within its timeout with exit code 1",
          "[integration]") {
  RefusingPort nobody;
  const std::string address = nobody.address();
  const CommandResult r =
      RunCommand({kKvpoolctlPath, "-a", address, "--timeout-ms", "500", "status"}, 20'000);
  INFO("stderr: " << r.err);
  CHECK_FALSE(r.timed_out);
  CHECK(r.exit_code == 1);
  CHECK_THAT(r.err, Catch::Contains("UNAVAILABLE"));
  CHECK_THAT(r.err, Catch::Contains(address));
  // Not a speed test: only that the 500 ms deadline is honoured rather than a default of seconds.
  CHECK(r.wall_ms < 5'000);

  const CommandResult js = RunCommand(
      {kKvpoolctlPath, "-a", address, "--timeout-ms", "500", "--json", "status"}, 20'000);
  CHECK(js.exit_code == 1);
  CHECK(ParseJson(js.out).at("error").at("code") == "UNAVAILABLE");
}

TEST_CASE("kvpoolctl: usage errors exit with code 2", "[integration]") {
  const CommandResult none = RunCommand({kKvpoolctlPath});
  CHECK(none.exit_code == 2);
  const CommandResult unknown = RunCommand({kKvpoolctlPath, "frobnicate"});
  CHECK(unknown.exit_code == 2);
  const CommandResult help = RunCommand({kKvpoolctlPath, "--help"});
  CHECK(help.exit_code == 0);
  CHECK_THAT(help.out, Catch::Contains("create-namespace"));
}

}  // namespace
}  // namespace kvpool::itest
