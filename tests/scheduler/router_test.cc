#include "scheduler/router.h"

#include <catch2/catch.hpp>

#include <map>
#include <string>
#include <vector>

#include "common/clock.h"
#include "scheduler_test_util.h"

namespace kvpool::scheduler {
namespace {

using testing::H;
using testing::Join;
using testing::Range;
using testing::Store;

// A scheduler's worth of state, with one instance per node ("i-<node>") unless told otherwise.
struct Cluster {
  explicit Cluster(RouterOptions options = RouterOptions{}, NamespaceModel model = {})
      : registry(RegistryOptions{1000, 1000}, &clock),
        models(model),
        router(options, &index, &registry, &models) {}

  void AddNode(const std::string& node, InstanceRole role = InstanceRole::kColocated) {
    REQUIRE(registry.RegisterNode({node, node + ":1", "", {}}).ok());
    Join(index, node);
    REQUIRE(registry.RegisterInstance({"i-" + node, role, node, 0}).ok());
  }
  void StoreOn(const std::string& node, std::vector<BlockHash> hashes, Tier tier = Tier::kHost) {
    Store(index, node, ++seq[node], "m", std::move(hashes), tier);
  }
  Result<RouteResult> Route(std::span<const BlockHash> hashes, RoutePolicy policy,
                            InstanceRole role = InstanceRole::kColocated) {
    RouteRequest request;
    request.ns = "m";
    request.hashes = hashes;
    request.policy = policy;
    request.role = role;
    return router.Route(request);
  }
  std::string Best(std::span<const BlockHash> hashes, RoutePolicy policy) {
    Result<RouteResult> r = Route(hashes, policy);
    REQUIRE(r.ok());
    return r->ranked.front().instance_id;
  }

  ManualClock clock;
  GlobalIndex index;
  Registry registry;
  NamespaceModels models;
  Router router;
  std::map<std::string, uint64_t> seq;
};

const RouteCandidate& CandidateOf(const RouteResult& r, const std::string& id) {
  for (const RouteCandidate& c : r.ranked) {
    if (c.instance_id == id) return c;
  }
  FAIL("no candidate " << id);
  return r.ranked.front();
}

TEST_CASE("Router: the cost estimate adds queue wait, compute and transfer", "[scheduler]") {
  RouterOptions options;
  options.local_bandwidth_bytes_per_s = 1e9;   // 1 ms per block
  options.remote_bandwidth_bytes_per_s = 1e8;  // 10 ms per block
  options.disk_bandwidth_bytes_per_s = 5e7;    // 20 ms per block
  options.running_request_s = 0.01;
  NamespaceModel model;
  model.block_tokens = 16;
  model.block_bytes = 1'000'000;
  model.token_s = 1e-3;
  model.attention_s = 1e-8;
  Cluster c(options, model);
  c.AddNode("a");
  c.AddNode("b");
  c.StoreOn("a", Range(0, 4));
  c.StoreOn("b", Range(4, 2));
  REQUIRE(c.registry.ReportLoad("i-a", InstanceLoad{100, 2}).ok());

  const std::vector<BlockHash> prompt = Range(0, 8);
  RouteRequest request;
  request.ns = "m";
  request.hashes = prompt;
  request.prompt_tokens = 130;  // 8 full blocks and 2 tokens more.
  Result<RouteResult> r = c.router.Route(request);
  REQUIRE(r.ok());
  REQUIRE(r->policy == RoutePolicy::kCost);
  REQUIRE(r->prompt_blocks == 8);
  REQUIRE(r->pooled_prefix_blocks == 6);

  // i-a: 4 blocks local (4 ms), 2 pulled from b (20 ms); 34 tokens to prefill after 96.
  const RouteCandidate& a = CandidateOf(*r, "i-a");
  REQUIRE(a.local_prefix_blocks == 4);
  REQUIRE(a.cached_blocks == 6);
  REQUIRE(a.remote_blocks == 2);
  REQUIRE(a.new_tokens == 34);
  REQUIRE(a.cost.transfer_s == Approx(0.024));
  REQUIRE(a.cost.compute_s == Approx(34e-3 + 1e-8 * 34 * 130));
  REQUIRE(a.cost.queue_wait_s == Approx(100 * 1e-3 + 2 * 0.01));
  // i-b: 2 local (2 ms), 4 from a (40 ms), idle.
  const RouteCandidate& b = CandidateOf(*r, "i-b");
  REQUIRE(b.local_prefix_blocks == 0);
  REQUIRE(b.remote_blocks == 4);
  REQUIRE(b.cost.transfer_s == Approx(0.042));
  REQUIRE(b.cost.queue_wait_s == 0);
  // b's empty queue outweighs a's locality.
  REQUIRE(r->ranked.front().instance_id == "i-b");
  REQUIRE_THAT(r->ranked.front().reason, Catch::StartsWith("cost: "));
  REQUIRE_THAT(r->ranked.front().reason, Catch::Contains("4 pulled from the pool"));
}

TEST_CASE("Router: pulling is skipped when recomputing is cheaper", "[scheduler]") {
  RouterOptions options;
  options.remote_bandwidth_bytes_per_s = 1e6;  // 1 s per block: pulling never pays.
  NamespaceModel model;
  model.block_bytes = 1'000'000;
  Cluster c(options, model);
  c.AddNode("a");
  c.AddNode("b");
  c.StoreOn("a", Range(0, 4));
  c.StoreOn("b", Range(4, 4));
  const std::vector<BlockHash> prompt = Range(0, 8);
  Result<RouteResult> r = c.Route(prompt, RoutePolicy::kCost);
  REQUIRE(r.ok());
  const RouteCandidate& a = CandidateOf(*r, "i-a");
  REQUIRE(a.cached_blocks == 4);  // Its own prefix only.
  REQUIRE(a.remote_blocks == 0);
  REQUIRE(a.new_tokens == 4 * 16);
  REQUIRE(CandidateOf(*r, "i-b").cached_blocks == 0);  // b holds no prefix of its own.
}

TEST_CASE("Router: disk blocks cost a promotion, disk-only remote blocks also the link",
          "[scheduler]") {
  RouterOptions options;
  options.local_bandwidth_bytes_per_s = 1e9;
  options.remote_bandwidth_bytes_per_s = 1e8;
  options.disk_bandwidth_bytes_per_s = 5e7;
  NamespaceModel model;
  model.block_bytes = 1'000'000;
  model.token_s = 1;  // Compute dominates: always pull.
  Cluster c(options, model);
  c.AddNode("a");
  c.AddNode("b");
  c.StoreOn("a", Range(0, 2), Tier::kDisk);
  const std::vector<BlockHash> prompt = Range(0, 2);
  Result<RouteResult> r = c.Route(prompt, RoutePolicy::kCost);
  REQUIRE(r.ok());
  REQUIRE(CandidateOf(*r, "i-a").cost.transfer_s == Approx(2 * 0.02));
  REQUIRE(CandidateOf(*r, "i-b").cost.transfer_s == Approx(2 * (0.02 + 0.01)));
}

TEST_CASE("Router: prefix policy picks the longest local prefix", "[scheduler]") {
  Cluster c;
  for (const char* n : {"a", "b", "c"}) c.AddNode(n);
  c.StoreOn("a", Range(0, 2));
  c.StoreOn("b", Range(0, 5));
  c.StoreOn("c", Range(2, 8));  // Much of the prompt, but not its start.
  REQUIRE(c.registry.ReportLoad("i-b", InstanceLoad{1'000'000, 50}).ok());
  const std::vector<BlockHash> prompt = Range(0, 10);
  Result<RouteResult> r = c.Route(prompt, RoutePolicy::kPrefix);
  REQUIRE(r.ok());
  REQUIRE(r->ranked[0].instance_id == "i-b");  // Load does not matter to this policy.
  REQUIRE(r->ranked[1].instance_id == "i-a");
  REQUIRE(r->ranked[2].instance_id == "i-c");
  REQUIRE(r->ranked[0].local_prefix_blocks == 5);
  REQUIRE_THAT(r->ranked[0].reason, Catch::Contains("holds 5 of 10 blocks"));
}

TEST_CASE("Router: cache_aware follows a long enough prefix while loads are balanced",
          "[scheduler]") {
  Cluster c;
  for (const char* n : {"a", "b", "c"}) c.AddNode(n);
  c.StoreOn("a", Range(0, 2));
  c.StoreOn("b", Range(0, 5));
  REQUIRE(c.registry.ReportLoad("i-a", InstanceLoad{0, 3}).ok());
  REQUIRE(c.registry.ReportLoad("i-b", InstanceLoad{0, 40}).ok());
  REQUIRE(c.registry.ReportLoad("i-c", InstanceLoad{0, 1}).ok());
  // 5 of 10 blocks > 0.3 and 40 - 1 running requests is within the absolute threshold (64).
  const std::vector<BlockHash> prompt = Range(0, 10);
  Result<RouteResult> r = c.Route(prompt, RoutePolicy::kCacheAware);
  REQUIRE(r.ok());
  REQUIRE(r->ranked[0].instance_id == "i-b");
  REQUIRE(r->ranked[1].instance_id == "i-a");
  REQUIRE_THAT(r->ranked[0].reason, Catch::Contains("cache_aware (prefix)"));

  // A match of 2 of 10 blocks (0.2) is below the cache threshold: the fewest running requests.
  std::vector<BlockHash> other = Range(0, 2);
  for (const BlockHash& h : Range(100, 8)) other.push_back(h);
  r = c.Route(other, RoutePolicy::kCacheAware);
  REQUIRE(r.ok());
  REQUIRE(r->ranked[0].instance_id == "i-c");
  REQUIRE_THAT(r->ranked[0].reason, Catch::Contains("cache_aware (load)"));
}

TEST_CASE("Router: cache_aware balances load once both balance thresholds are exceeded",
          "[scheduler]") {
  RouterOptions options;
  options.cache_aware_balance_abs_requests = 8;
  options.cache_aware_balance_rel = 2.0;
  Cluster c(options);
  for (const char* n : {"a", "b"}) c.AddNode(n);
  c.StoreOn("a", Range(0, 10));
  const std::vector<BlockHash> prompt = Range(0, 10);
  // 12 vs 5: the difference (7) is within 8, so the full prefix on a wins.
  REQUIRE(c.registry.ReportLoad("i-a", InstanceLoad{0, 12}).ok());
  REQUIRE(c.registry.ReportLoad("i-b", InstanceLoad{0, 5}).ok());
  REQUIRE(c.Best(prompt, RoutePolicy::kCacheAware) == "i-a");
  // 20 vs 5: difference 15 > 8 and 20 > 2 x 5: imbalanced, the least loaded wins.
  REQUIRE(c.registry.ReportLoad("i-a", InstanceLoad{0, 20}).ok());
  REQUIRE(c.Best(prompt, RoutePolicy::kCacheAware) == "i-b");
  // 20 vs 11: difference 9 > 8 but 20 < 2 x 11: still balanced.
  REQUIRE(c.registry.ReportLoad("i-b", InstanceLoad{0, 11}).ok());
  REQUIRE(c.Best(prompt, RoutePolicy::kCacheAware) == "i-a");
}

TEST_CASE("Router: least_loaded orders by queued tokens, then running requests", "[scheduler]") {
  Cluster c;
  for (const char* n : {"a", "b", "c"}) c.AddNode(n);
  REQUIRE(c.registry.ReportLoad("i-a", InstanceLoad{500, 1}).ok());
  REQUIRE(c.registry.ReportLoad("i-b", InstanceLoad{100, 9}).ok());
  REQUIRE(c.registry.ReportLoad("i-c", InstanceLoad{100, 3}).ok());
  const std::vector<BlockHash> prompt = Range(0, 4);
  Result<RouteResult> r = c.Route(prompt, RoutePolicy::kLeastLoaded);
  REQUIRE(r.ok());
  std::vector<std::string> order;
  for (const RouteCandidate& cand : r->ranked) order.push_back(cand.instance_id);
  REQUIRE(order == std::vector<std::string>{"i-c", "i-b", "i-a"});
  // NoteRouted counts as load until the next report.
  REQUIRE(c.registry.NoteRouted("i-c", 1000).ok());
  REQUIRE(c.Best(prompt, RoutePolicy::kLeastLoaded) == "i-b");
}

TEST_CASE("Router: an instance's own queue time outweighs its token count", "[scheduler]") {
  Cluster c;
  for (const char* n : {"a", "b"}) c.AddNode(n);
  const std::vector<BlockHash> prompt = Range(0, 4);
  // By tokens alone, i-a (100 queued) is less loaded than i-b (100,000).
  REQUIRE(c.registry.ReportLoad("i-a", InstanceLoad{100, 1}).ok());
  REQUIRE(c.registry.ReportLoad("i-b", InstanceLoad{100'000, 1}).ok());
  REQUIRE(c.Best(prompt, RoutePolicy::kLeastLoaded) == "i-a");
  REQUIRE(c.Best(prompt, RoutePolicy::kCost) == "i-a");
  // Their own estimates say otherwise (i-a's 100 tokens are long prompts' last chunks behind
  // a slow transfer, say): both policies follow the reported seconds.
  REQUIRE(c.registry.ReportLoad("i-a", InstanceLoad{100, 1, 9.0}).ok());
  REQUIRE(c.registry.ReportLoad("i-b", InstanceLoad{100'000, 1, 2.0}).ok());
  REQUIRE(c.Best(prompt, RoutePolicy::kLeastLoaded) == "i-b");
  Result<RouteResult> r = c.Route(prompt, RoutePolicy::kCost);
  REQUIRE(r.ok());
  REQUIRE(r->ranked[0].instance_id == "i-b");
  REQUIRE(r->ranked[0].queued_prefill_s == Approx(2.0));
  REQUIRE(r->ranked[0].cost.queue_wait_s ==
          Approx(2.0 + RouterOptions{}.running_request_s));
  REQUIRE_THAT(r->ranked[0].reason, Catch::Contains("queue 2001.000 +"));
  // Routed work adds its estimate to the reported seconds until the next report.
  REQUIRE(c.registry.NoteRouted("i-b", 1000, 8.0).ok());
  REQUIRE(c.Best(prompt, RoutePolicy::kLeastLoaded) == "i-a");
}

TEST_CASE("Router: round_robin rotates through the instances", "[scheduler]") {
  Cluster c;
  for (const char* n : {"a", "b", "c"}) c.AddNode(n);
  const std::vector<BlockHash> prompt = Range(0, 4);
  std::vector<std::string> firsts;
  for (int i = 0; i < 6; ++i) firsts.push_back(c.Best(prompt, RoutePolicy::kRoundRobin));
  REQUIRE(firsts == std::vector<std::string>{"i-a", "i-b", "i-c", "i-a", "i-b", "i-c"});
}

TEST_CASE("Router: round_robin turns per role, so alternating prefill and decode routes use "
          "every instance",
          "[scheduler]") {
  Cluster c;
  for (const char* n : {"p1", "p2"}) c.AddNode(n, InstanceRole::kPrefill);
  for (const char* n : {"d1", "d2"}) c.AddNode(n, InstanceRole::kDecode);
  const std::vector<BlockHash> prompt = Range(0, 4);
  std::vector<std::string> prefill, decode;
  for (int i = 0; i < 4; ++i) {
    // Each request routes twice, as a disaggregated deployment does.
    auto p = c.Route(prompt, RoutePolicy::kRoundRobin, InstanceRole::kPrefill);
    auto d = c.Route(prompt, RoutePolicy::kRoundRobin, InstanceRole::kDecode);
    REQUIRE(p.ok());
    REQUIRE(d.ok());
    prefill.push_back(p->ranked.front().instance_id);
    decode.push_back(d->ranked.front().instance_id);
  }
  CHECK(prefill == std::vector<std::string>{"i-p1", "i-p2", "i-p1", "i-p2"});
  CHECK(decode == std::vector<std::string>{"i-d1", "i-d2", "i-d1", "i-d2"});
}

TEST_CASE("Router: with equal load, cost prefers the instance next to the prefix",
          "[scheduler]") {
  Cluster c;
  for (const char* n : {"a", "b", "c"}) c.AddNode(n);
  c.StoreOn("b", Range(0, 64));
  const std::vector<BlockHash> prompt = Range(0, 72);
  REQUIRE(c.Best(prompt, RoutePolicy::kCost) == "i-b");
}

// The herding case: many requests share a long hot prefix held on one node.
TEST_CASE("Router: a hot prefix spreads over instances under cost, herds under prefix",
          "[scheduler]") {
  auto run = [](RoutePolicy policy) {
    Cluster c;
    for (const char* n : {"n0", "n1", "n2", "n3"}) c.AddNode(n);
    c.StoreOn("n0", Range(0, 64));  // A 1024-token system prompt.
    std::map<std::string, int> routed;
    for (uint64_t req = 0; req < 100; ++req) {
      std::vector<BlockHash> prompt = Range(0, 64);
      for (uint64_t i = 0; i < 8; ++i) prompt.push_back(H(1'000'000 + req * 100 + i));
      Result<RouteResult> r = c.Route(prompt, policy);
      REQUIRE(r.ok());
      const RouteCandidate& best = r->ranked.front();
      ++routed[best.instance_id];
      REQUIRE(c.registry.NoteRouted(best.instance_id, best.new_tokens).ok());
    }
    return routed;
  };

  std::map<std::string, int> herded = run(RoutePolicy::kPrefix);
  REQUIRE(herded == std::map<std::string, int>{{"i-n0", 100}});

  std::map<std::string, int> spread = run(RoutePolicy::kCost);
  INFO("i-n0 " << spread["i-n0"] << ", i-n1 " << spread["i-n1"] << ", i-n2 " << spread["i-n2"]
               << ", i-n3 " << spread["i-n3"]);
  REQUIRE(spread.size() == 4);
  for (const auto& [id, count] : spread) REQUIRE(count >= 15);
  // The holder's share is at least any other's (its requests skip the pull), not all of them.
  for (const auto& [id, count] : spread) REQUIRE(spread["i-n0"] >= count);
  REQUIRE(spread["i-n0"] <= 40);
}

TEST_CASE("Router: once the holder reports an empty queue, cost goes back to it", "[scheduler]") {
  Cluster c;
  for (const char* n : {"n0", "n1"}) c.AddNode(n);
  c.StoreOn("n0", Range(0, 64));
  const std::vector<BlockHash> prompt = Range(0, 72);
  REQUIRE(c.registry.NoteRouted("i-n0", 100'000).ok());
  REQUIRE(c.Best(prompt, RoutePolicy::kCost) == "i-n1");
  REQUIRE(c.registry.ReportLoad("i-n0", InstanceLoad{}).ok());
  REQUIRE(c.Best(prompt, RoutePolicy::kCost) == "i-n0");
}

TEST_CASE("Router: dead instances are never routed to", "[scheduler]") {
  Cluster c;
  c.AddNode("a");
  c.AddNode("b");
  c.clock.AdvanceMs(800);
  REQUIRE(c.registry.ReportLoad("i-b", {}).ok());
  c.clock.AdvanceMs(300);  // i-a: 1100 ms silent (timeout 1000); not yet expired.
  const std::vector<BlockHash> prompt = Range(0, 4);
  c.StoreOn("a", prompt);
  Result<RouteResult> r = c.Route(prompt, RoutePolicy::kPrefix);
  REQUIRE(r.ok());
  REQUIRE(r->ranked.size() == 1);
  REQUIRE(r->ranked[0].instance_id == "i-b");

  c.clock.AdvanceMs(2000);
  Result<RouteResult> none = c.Route(prompt, RoutePolicy::kCost);
  REQUIRE(none.status().code() == StatusCode::kUnavailable);
  REQUIRE_THAT(none.status().message(), Catch::Contains("2 dead"));
}

TEST_CASE("Router: roles, candidate lists and bad requests", "[scheduler]") {
  Cluster c;
  c.AddNode("p", InstanceRole::kPrefill);
  c.AddNode("d", InstanceRole::kDecode);
  c.AddNode("x", InstanceRole::kColocated);
  const std::vector<BlockHash> prompt = Range(0, 4);

  Result<RouteResult> prefill = c.Route(prompt, RoutePolicy::kLeastLoaded, InstanceRole::kPrefill);
  REQUIRE(prefill.ok());
  REQUIRE(prefill->ranked.size() == 2);  // i-p and the colocated i-x.
  for (const RouteCandidate& cand : prefill->ranked) REQUIRE(cand.instance_id != "i-d");

  RouteRequest request;
  request.ns = "m";
  request.hashes = prompt;
  request.role = InstanceRole::kDecode;
  const std::vector<std::string> only_p = {"i-p"};
  request.candidates = only_p;
  Result<RouteResult> wrong_role = c.router.Route(request);
  REQUIRE(wrong_role.status().code() == StatusCode::kUnavailable);
  REQUIRE_THAT(wrong_role.status().message(), Catch::Contains("1 of another role"));

  const std::vector<std::string> named = {"i-x", "i-d", "i-x"};
  request.candidates = named;
  Result<RouteResult> two = c.router.Route(request);
  REQUIRE(two.ok());
  REQUIRE(two->ranked.size() == 2);  // Duplicates collapse.

  const std::vector<std::string> ghost = {"i-ghost"};
  request.candidates = ghost;
  REQUIRE(c.router.Route(request).status().code() == StatusCode::kNotFound);

  request.candidates = {};
  request.prompt_tokens = 10;  // Fewer than the 4 hashed blocks of 16 tokens.
  REQUIRE(c.router.Route(request).status().code() == StatusCode::kInvalidArgument);
  request.prompt_tokens = 0;
  request.ns = "";
  REQUIRE(c.router.Route(request).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("Router: max_results and explain shape the answer", "[scheduler]") {
  Cluster c;
  for (const char* n : {"a", "b", "c"}) c.AddNode(n);
  const std::vector<BlockHash> prompt = Range(0, 4);
  RouteRequest request;
  request.ns = "m";
  request.hashes = prompt;
  request.max_results = 2;
  request.explain = false;
  Result<RouteResult> r = c.router.Route(request);
  REQUIRE(r.ok());
  REQUIRE(r->ranked.size() == 2);
  for (const RouteCandidate& cand : r->ranked) REQUIRE(cand.reason.empty());
  request.explain = true;
  request.policy = RoutePolicy::kRoundRobin;
  r = c.router.Route(request);
  REQUIRE(r->ranked[0].reason == "round_robin: turn 1 of 3");
}

TEST_CASE("Router: names and options", "[scheduler]") {
  for (RoutePolicy p : {RoutePolicy::kRoundRobin, RoutePolicy::kLeastLoaded, RoutePolicy::kPrefix,
                        RoutePolicy::kCost, RoutePolicy::kCacheAware}) {
    REQUIRE(*ParseRoutePolicy(RoutePolicyName(p)) == p);
  }
  RouterOptions bad_threshold;
  bad_threshold.cache_aware_cache_threshold = 1.5;
  REQUIRE_THAT(bad_threshold.Validate().message(), Catch::Contains("cache_aware_cache_threshold"));
  bad_threshold = RouterOptions{};
  bad_threshold.cache_aware_balance_rel = 0.5;
  REQUIRE_THAT(bad_threshold.Validate().message(), Catch::Contains("cache_aware_balance_rel"));
  REQUIRE(ParseRoutePolicy("random").status().code() == StatusCode::kInvalidArgument);
  RouterOptions bad;
  bad.remote_bandwidth_bytes_per_s = 0;
  REQUIRE(bad.Validate().code() == StatusCode::kInvalidArgument);
  REQUIRE_THAT(bad.Validate().message(), Catch::Contains("remote_bandwidth_bytes_per_s"));
  REQUIRE(RouterOptions{}.Validate().ok());
  NamespaceModel model;
  model.block_tokens = 0;
  REQUIRE(model.Validate().code() == StatusCode::kInvalidArgument);
  NamespaceModels models;
  REQUIRE(models.Set("m", model).code() == StatusCode::kInvalidArgument);
  REQUIRE_FALSE(models.Contains("m"));
  model.block_tokens = 64;
  REQUIRE(models.Set("m", model).ok());
  REQUIRE(models.Get("m").block_tokens == 64);
  REQUIRE(models.Get("other").block_tokens == NamespaceModel{}.block_tokens);
  REQUIRE(model.ComputeSeconds(100, 10) == Approx(model.token_s * 10 + model.attention_s * 10 * 110));
}

}  // namespace
}  // namespace kvpool::scheduler
