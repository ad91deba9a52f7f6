#include "kvpool/planner.h"

#include <catch2/catch.hpp>
#include <algorithm>
#include <cmath>
#include <cstdint>
#include <limits>
#include <random>
#include <string>
#include <vector>

namespace kvpool {
namespace {

// Every split's ready time, each summed on its own (compute front to back, load front to back:
// a different order than the planner's, so only exact sums compare equal).
std::vector<double> ReadyOfEverySplit(const ChunkCosts& costs) {
  const size_t n = costs.compute_s.size();
  std::vector<double> ready;
  for (size_t s = 0; s <= n; ++s) {
    double compute = 0;
    for (size_t i = 0; i < s; ++i) compute += costs.compute_s[i];
    double load = 0;
    for (size_t i = s; i < n; ++i) load += costs.load_s[i];
    ready.push_back(std::max(compute, load));
  }
  return ready;
}

// Multiples of 1/1024 below 1024: every sum of up to thousands of them is exact in a double, so
// the planner and the brute force must agree bit for bit.
double DyadicCost(std::mt19937_64& rng) {
  std::uniform_int_distribution<int> kind(0, 9);
  std::uniform_int_distribution<uint32_t> units(0, 1u << 20);
  const int k = kind(rng);
  if (k == 0) return 0;                 // free chunks make ties
  if (k == 1) return 1.0;               // repeated values make ties
  return units(rng) / 1024.0;
}

ChunkCosts RandomDyadicCosts(std::mt19937_64& rng, size_t n, bool monotone_compute) {
  ChunkCosts costs;
  for (size_t i = 0; i < n; ++i) {
    costs.compute_s.push_back(DyadicCost(rng));
    costs.load_s.push_back(DyadicCost(rng));
  }
  if (monotone_compute) std::sort(costs.compute_s.begin(), costs.compute_s.end());
  return costs;
}

double Sum(const std::vector<double>& v) {
  double s = 0;
  for (double x : v) s += x;
  return s;
}

TEST_CASE("PlanComputeOrLoad: the split is the first one with the brute-force minimum ready time",
          "[planner]") {
  std::mt19937_64 rng(20240611);
  std::uniform_int_distribution<size_t> size(0, 40);
  for (int iter = 0; iter < 5000; ++iter) {
    const ChunkCosts costs = RandomDyadicCosts(rng, size(rng), iter % 2 == 0);
    const auto plan = PlanComputeOrLoad(costs);
    REQUIRE(plan.ok());
    const std::vector<double> ready = ReadyOfEverySplit(costs);
    const auto best = std::min_element(ready.begin(), ready.end());
    INFO("iteration " << iter << ", n = " << costs.compute_s.size());
    CHECK(plan->ready_s == *best);
    CHECK(plan->split == static_cast<uint32_t>(best - ready.begin()));
    // The fields describe the chosen split.
    double compute = 0;
    for (uint32_t i = 0; i < plan->split; ++i) compute += costs.compute_s[i];
    CHECK(plan->compute_s == compute);
    CHECK(plan->load_s == ready.front() - [&] {
      double skipped = 0;
      for (uint32_t i = 0; i < plan->split; ++i) skipped += costs.load_s[i];
      return skipped;
    }());
    CHECK(plan->ready_s == std::max(plan->compute_s, plan->load_s));
    CHECK(plan->load_only_s == ready.front());
    CHECK(plan->compute_only_s == ready.back());
    CHECK(plan->ready_s <= std::min(plan->load_only_s, plan->compute_only_s));
  }
}

TEST_CASE("PlanComputeOrLoad: on model costs the split's ready time is the minimum to 1e-12",
          "[planner]") {
  // Real-valued costs: sums in different orders may differ in the last bits, so compare the
  // brute force's ready time of the planner's split with the brute-force minimum.
  std::mt19937_64 rng(7);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<uint32_t> chunks(0, 64);
  for (int iter = 0; iter < 2000; ++iter) {
    ComputeLoadModel m;
    m.compute_s_per_token = 1e-5 * unit(rng);
    m.attention_s_per_token2 = 1e-9 * unit(rng);
    m.load_latency_s = 1e-3 * unit(rng);
    m.load_bytes_per_s = 1e8 + 5e10 * unit(rng);
    m.kv_bytes_per_token = 1 + static_cast<uint64_t>(200'000 * unit(rng));
    const uint32_t n = chunks(rng);
    const auto costs = MakeChunkCosts(m, 256, n, n % 3 == 0 ? 0 : 100);
    REQUIRE(costs.ok());
    const auto plan = PlanComputeOrLoad(*costs);
    REQUIRE(plan.ok());
    const std::vector<double> ready = ReadyOfEverySplit(*costs);
    const double best = *std::min_element(ready.begin(), ready.end());
    INFO("iteration " << iter << ", n = " << n);
    CHECK(ready[plan->split] <= best * (1 + 1e-12));
    CHECK(plan->ready_s == Approx(best).epsilon(1e-12).margin(0));
  }
}

TEST_CASE("PlanComputeOrLoad: free loading loads every chunk", "[planner]") {
  ChunkCosts costs{{0.5, 1, 2, 4}, {0, 0, 0, 0}};
  auto plan = PlanComputeOrLoad(costs);
  REQUIRE(plan.ok());
  CHECK(plan->split == 0);
  CHECK(plan->ready_s == 0);
  CHECK(plan->load_only_s == 0);
  CHECK(plan->compute_only_s == 7.5);
  // Free chunks to compute as well: equal ready times, so the fewest computed chunks.
  costs.compute_s = {0, 0, 1, 1};
  plan = PlanComputeOrLoad(costs);
  REQUIRE(plan.ok());
  CHECK(plan->split == 0);
  CHECK(plan->ready_s == 0);
}

TEST_CASE("PlanComputeOrLoad: hopeless loading computes every chunk", "[planner]") {
  const ChunkCosts costs{{0.5, 1, 2, 4}, {1e9, 1e9, 1e9, 1e9}};
  const auto plan = PlanComputeOrLoad(costs);
  REQUIRE(plan.ok());
  CHECK(plan->split == 4);
  CHECK(plan->compute_s == 7.5);
  CHECK(plan->load_s == 0);
  CHECK(plan->ready_s == 7.5);
  CHECK(plan->load_only_s == 4e9);
}

TEST_CASE("PlanComputeOrLoad: no chunks is ready at once", "[planner]") {
  const auto plan = PlanComputeOrLoad(ChunkCosts{});
  REQUIRE(plan.ok());
  CHECK(plan->split == 0);
  CHECK(plan->ready_s == 0);
  CHECK(plan->load_only_s == 0);
  CHECK(plan->compute_only_s == 0);
  for (MeetMode mode : {MeetMode::kClaimOnce, MeetMode::kRaceLastChunk}) {
    const auto meet = RunUntilTheyMeet(ChunkCosts{}, mode);
    REQUIRE(meet.ok());
    CHECK(meet->computed == 0);
    CHECK(meet->loaded == 0);
    CHECK(meet->ready_s == 0);
    CHECK(meet->wasted_s == 0);
  }
}

TEST_CASE("PlanComputeOrLoad: one chunk goes to the faster side, the loader on a tie",
          "[planner]") {
  struct Case { double compute, load; uint32_t split; double ready; };
  for (const Case& c : {Case{2, 3, 1, 2}, Case{3, 2, 0, 2}, Case{3, 3, 0, 3}, Case{0, 0, 0, 0}}) {
    const auto plan = PlanComputeOrLoad(ChunkCosts{{c.compute}, {c.load}});
    REQUIRE(plan.ok());
    INFO("compute " << c.compute << ", load " << c.load);
    CHECK(plan->split == c.split);
    CHECK(plan->ready_s == c.ready);
  }
}

TEST_CASE("PlanComputeOrLoad: equal ready times keep the fewest computed chunks", "[planner]") {
  // ready: split 0 -> 9, 1 -> 5, 2 -> 5 (chunk 1 is free to load and to compute).
  const auto plan = PlanComputeOrLoad(ChunkCosts{{5, 0}, {9, 0}});
  REQUIRE(plan.ok());
  CHECK(plan->split == 1);
  CHECK(plan->ready_s == 5);
}

TEST_CASE("PlanComputeOrLoad: the split balances growing compute against flat loading",
          "[planner]") {
  // ready: split 0 -> 12, 1 -> 9, 2 -> 6, 3 -> 6, 4 -> 10.
  const auto plan = PlanComputeOrLoad(ChunkCosts{{1, 2, 3, 4}, {3, 3, 3, 3}});
  REQUIRE(plan.ok());
  CHECK(plan->split == 2);
  CHECK(plan->compute_s == 3);
  CHECK(plan->load_s == 6);
  CHECK(plan->ready_s == 6);
  CHECK(plan->load_only_s == 12);
  CHECK(plan->compute_only_s == 10);
}

TEST_CASE("PlanComputeOrLoad and RunUntilTheyMeet: bad costs are refused naming the value",
          "[planner]") {
  const double nan = std::numeric_limits<double>::quiet_NaN();
  const double inf = std::numeric_limits<double>::infinity();
  struct Case { ChunkCosts costs; std::vector<std::string> named; };
  const std::vector<Case> cases = {
      {{{1, 2, 3}, {1, 2, 3, 4}}, {"compute_s has 3", "load_s has 4"}},
      {{{1, 2, 3}, {1, 2, -1.5}}, {"load_s[2]", "-1.5"}},
      {{{nan, 2}, {1, 2}}, {"compute_s[0]", "nan"}},
      {{{1, inf}, {1, 2}}, {"compute_s[1]", "inf"}},
      {{{1, 2}, {1, -inf}}, {"load_s[1]", "-inf"}},
      {{{1, -0.25}, {1, 2}}, {"compute_s[1]", "-0.25"}},
  };
  for (const Case& c : cases) {
    const auto plan = PlanComputeOrLoad(c.costs);
    const auto meet = RunUntilTheyMeet(c.costs);
    REQUIRE_FALSE(plan.ok());
    REQUIRE_FALSE(meet.ok());
    CHECK(plan.status().code() == StatusCode::kInvalidArgument);
    CHECK(meet.status().code() == StatusCode::kInvalidArgument);
    CHECK(plan.status() == meet.status());
    for (const std::string& s : c.named) {
      CHECK_THAT(plan.status().message(), Catch::Contains(s));
    }
  }
}

TEST_CASE("MakeChunkCosts: linear plus causal attention compute, latency plus bytes loading",
          "[planner]") {
  ComputeLoadModel m;
  m.compute_s_per_token = 0.5;
  m.attention_s_per_token2 = 0.25;
  m.load_latency_s = 0.125;
  m.load_bytes_per_s = 4096;
  m.kv_bytes_per_token = 1024;
  // Chunks of 4, 4 and 2 tokens, starting at tokens 0, 4 and 8:
  //   compute: 0.5*4 + 0.25*4*(0+2) = 4;  0.5*4 + 0.25*4*(4+2) = 8;  0.5*2 + 0.25*2*(8+1) = 5.5
  //   load:    0.125 + 1024*4/4096 = 1.125 (twice);  0.125 + 1024*2/4096 = 0.625
  auto costs = MakeChunkCosts(m, 4, 3, 2);
  REQUIRE(costs.ok());
  CHECK(costs->compute_s == std::vector<double>{4, 8, 5.5});
  CHECK(costs->load_s == std::vector<double>{1.125, 1.125, 0.625});
  // last_chunk_tokens = 0 and = chunk_tokens both mean a full last chunk.
  for (uint32_t last : {0u, 4u}) {
    costs = MakeChunkCosts(m, 4, 3, last);
    REQUIRE(costs.ok());
    // 0.5*4 + 0.25*4*(8+2) = 12
    CHECK(costs->compute_s == std::vector<double>{4, 8, 12});
    CHECK(costs->load_s == std::vector<double>{1.125, 1.125, 1.125});
  }
  costs = MakeChunkCosts(m, 4, 0);
  REQUIRE(costs.ok());
  CHECK(costs->compute_s.empty());
  CHECK(costs->load_s.empty());
  // No chunks need no chunk size.
  CHECK(MakeChunkCosts(m, 0, 0).ok());
}

TEST_CASE("MakeChunkCosts: a bad model or chunk size is refused naming the value", "[planner]") {
  const ComputeLoadModel good{1e-5, 1e-9, 1e-4, 1e10, 131072};
  REQUIRE(MakeChunkCosts(good, 512, 8).ok());
  struct Case {
    ComputeLoadModel m;
    uint32_t chunk_tokens, n, last;
    std::vector<std::string> named;
  };
  auto with = [&](auto edit) {
    ComputeLoadModel m = good;
    edit(m);
    return m;
  };
  const std::vector<Case> cases = {
      {with([](auto& m) { m.compute_s_per_token = -1; }), 512, 8, 0,
       {"compute_s_per_token", "-1"}},
      {with([](auto& m) { m.attention_s_per_token2 = std::nan(""); }), 512, 8, 0,
       {"attention_s_per_token2", "nan"}},
      {with([](auto& m) { m.load_latency_s = -0.5; }), 512, 8, 0, {"load_latency_s", "-0.5"}},
      {with([](auto& m) { m.load_bytes_per_s = 0; }), 512, 8, 0, {"load_bytes_per_s is 0"}},
      {with([](auto& m) { m.load_bytes_per_s = std::numeric_limits<double>::infinity(); }), 512,
       8, 0, {"load_bytes_per_s", "inf"}},
      {good, 0, 8, 0, {"chunk_tokens is 0", "8 chunks"}},
      {good, 512, 8, 513, {"last_chunk_tokens 513", "chunk_tokens 512"}},
      // 1e303 s * 512 * 256 token pairs still fits a double, chunk 1 (512 * 768 pairs) does not.
      {with([](auto& m) { m.attention_s_per_token2 = 1e303; }), 512, 8, 0,
       {"out of range", "compute_s[1]", "inf"}},
  };
  for (const Case& c : cases) {
    INFO("expecting an error naming " << c.named.front());
    const auto costs = MakeChunkCosts(c.m, c.chunk_tokens, c.n, c.last);
    REQUIRE_FALSE(costs.ok());
    CHECK(costs.status().code() == StatusCode::kInvalidArgument);
    for (const std::string& s : c.named) {
      CHECK_THAT(costs.status().message(), Catch::Contains(s));
    }
  }
}

// Sums as each side's clock does: compute front to back, load back to front.
double ComputeClock(const ChunkCosts& costs, size_t split) {
  double t = 0;
  for (size_t i = 0; i < split; ++i) t += costs.compute_s[i];
  return t;
}
double LoadClock(const ChunkCosts& costs, size_t split) {
  double t = 0;
  for (size_t i = costs.load_s.size(); i > split; --i) t += costs.load_s[i - 1];
  return t;
}

// What RunUntilTheyMeet promises in each mode; exact whatever the costs (kRaceLastChunk) or
// when sums are exact (kClaimOnce's upper bound subtracts, so `tolerance` covers rounding).
void CheckMeet(const ChunkCosts& costs, double tolerance) {
  const size_t n = costs.compute_s.size();
  const auto plan = PlanComputeOrLoad(costs);
  const auto race = RunUntilTheyMeet(costs, MeetMode::kRaceLastChunk);
  const auto once = RunUntilTheyMeet(costs, MeetMode::kClaimOnce);
  REQUIRE(plan.ok());
  REQUIRE(race.ok());
  REQUIRE(once.ok());
  for (const MeetResult& m : {*race, *once}) {
    // Every chunk stored once: a prefix computed, the rest loaded; ready when both are done.
    REQUIRE(m.computed + m.loaded == n);
    CHECK(m.ready_s == std::max(ComputeClock(costs, m.computed), LoadClock(costs, m.computed)));
  }
  // Racing the last chunk: exactly the plan's ready time, at most the loser's time on the chunk
  // they met on wasted.
  CHECK(race->ready_s == plan->ready_s);
  CHECK(race->ready_s <= std::min(plan->load_only_s, plan->compute_only_s));
  double longest_meeting_chunk = 0;
  for (size_t i : {size_t{race->computed} - 1, size_t{race->computed}}) {
    if (i < n) longest_meeting_chunk = std::max({longest_meeting_chunk, costs.compute_s[i],
                                                 costs.load_s[i]});
  }
  CHECK(race->wasted_s >= 0);
  CHECK(race->wasted_s <= longest_meeting_chunk);
  CHECK(race->wasted_s <= race->ready_s);
  // Claiming once: nothing wasted, P <= ready <= P + d, d the last chunk of the side that
  // finishes last.
  CHECK(once->wasted_s == 0);
  const uint32_t s = once->computed;
  const bool compute_last = ComputeClock(costs, s) >= LoadClock(costs, s);
  const double d = compute_last ? (s > 0 ? costs.compute_s[s - 1] : 0.0) : costs.load_s[s];
  const double slack = tolerance * std::max(1.0, once->ready_s);
  CHECK(once->ready_s >= plan->ready_s);
  CHECK(once->ready_s <= plan->ready_s + d + slack);
  CHECK(once->ready_s <= std::min(plan->load_only_s, plan->compute_only_s) + d + slack);
}

TEST_CASE("RunUntilTheyMeet: racing meets at the plan's ready time, claiming once within a chunk",
          "[planner]") {
  std::mt19937_64 rng(42);
  std::uniform_int_distribution<size_t> size(0, 40);
  int once_equal_to_plan = 0;
  int once_later_than_plan = 0;
  int once_later_than_best_single_side = 0;
  int race_wasted = 0;
  for (int iter = 0; iter < 5000; ++iter) {
    const ChunkCosts costs = RandomDyadicCosts(rng, size(rng), iter % 2 == 0);
    INFO("iteration " << iter << ", n = " << costs.compute_s.size());
    CheckMeet(costs, 0);
    const auto plan = PlanComputeOrLoad(costs);
    const auto once = RunUntilTheyMeet(costs, MeetMode::kClaimOnce);
    const auto race = RunUntilTheyMeet(costs);
    REQUIRE(plan.ok());
    REQUIRE(once.ok());
    REQUIRE(race.ok());
    if (once->ready_s == plan->ready_s) ++once_equal_to_plan;
    if (once->ready_s > plan->ready_s) ++once_later_than_plan;
    if (once->ready_s > std::min(plan->load_only_s, plan->compute_only_s)) {
      ++once_later_than_best_single_side;
    }
    if (race->wasted_s > 0) ++race_wasted;
  }
  // Each outcome occurs on random costs: the bounds above are what holds, not more.
  CHECK(once_equal_to_plan > 0);
  CHECK(once_later_than_plan > 0);
  CHECK(once_later_than_best_single_side > 0);
  CHECK(race_wasted > 0);
}

TEST_CASE("RunUntilTheyMeet: on model costs racing equals the plan bit for bit", "[planner]") {
  std::mt19937_64 rng(11);
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  std::uniform_int_distribution<uint32_t> chunks(0, 64);
  for (int iter = 0; iter < 2000; ++iter) {
    ComputeLoadModel m;
    m.compute_s_per_token = 1e-5 * unit(rng);
    m.attention_s_per_token2 = 1e-9 * unit(rng);
    m.load_latency_s = 1e-3 * unit(rng);
    m.load_bytes_per_s = 1e8 + 5e10 * unit(rng);
    m.kv_bytes_per_token = 1 + static_cast<uint64_t>(200'000 * unit(rng));
    const auto costs = MakeChunkCosts(m, 256, chunks(rng));
    REQUIRE(costs.ok());
    INFO("iteration " << iter);
    CheckMeet(*costs, 1e-12);
  }
}

TEST_CASE("RunUntilTheyMeet: racing adapts to actual costs that differ from the estimates",
          "[planner]") {
  // The plan fixes its split from estimates; when the real durations differ, that split's real
  // ready time can be far off, while the race meets wherever the real clocks cross.
  std::mt19937_64 rng(5);
  std::uniform_real_distribution<double> factor(0.25, 4.0);
  std::uniform_int_distribution<size_t> size(1, 40);
  int race_beats_fixed_split = 0;
  for (int iter = 0; iter < 2000; ++iter) {
    const ChunkCosts estimated = RandomDyadicCosts(rng, size(rng), true);
    ChunkCosts actual = estimated;
    // One side runs uniformly slower or faster than estimated (a busy GPU, a congested link).
    const double f = factor(rng);
    for (double& x : (iter % 2 == 0 ? actual.compute_s : actual.load_s)) x *= f;
    const auto plan = PlanComputeOrLoad(estimated);
    const auto race = RunUntilTheyMeet(actual);
    REQUIRE(plan.ok());
    REQUIRE(race.ok());
    const double fixed = std::max(ComputeClock(actual, plan->split),
                                  LoadClock(actual, plan->split));
    INFO("iteration " << iter);
    CHECK(race->ready_s <= fixed);
    if (race->ready_s < fixed) ++race_beats_fixed_split;
  }
  CHECK(race_beats_fixed_split > 0);
}

TEST_CASE("RunUntilTheyMeet: compute from the front, load from the back, meeting at the plan",
          "[planner]") {
  // t=0: compute takes 0 (until 1), load takes 3 (until 3); t=1: compute takes 1 (until 3);
  // t=3: both free, chunk 2 left, 3 s either way: the loader takes it (until 6).
  const ChunkCosts costs{{1, 2, 3, 4}, {3, 3, 3, 3}};
  const auto once = RunUntilTheyMeet(costs, MeetMode::kClaimOnce);
  REQUIRE(once.ok());
  CHECK(once->computed == 2);
  CHECK(once->loaded == 2);
  CHECK(once->ready_s == 6);
  CHECK(once->wasted_s == 0);
  CHECK(once->ready_s == PlanComputeOrLoad(costs)->ready_s);
  // Racing, compute also works on chunk 2 from 3 to 6 and ties: the loaded copy is kept.
  const auto race = RunUntilTheyMeet(costs);
  REQUIRE(race.ok());
  CHECK(race->computed == 2);
  CHECK(race->ready_s == 6);
  CHECK(race->wasted_s == 3);
}

TEST_CASE("RunUntilTheyMeet: the last chunk claimed by both at once goes to the faster side",
          "[planner]") {
  // t=0: compute takes 0, load takes 2, both until 2; then both claim chunk 1 at t=2.
  struct Case { double compute1; uint32_t computed; double ready, race_wasted; };
  for (const Case& c : {Case{1, 2, 3, 1},    // 1 s to compute < 3 s to load: compute
                        Case{3, 1, 5, 3},    // a tie: the loader
                        Case{4, 1, 5, 3}}) {  // loading is faster
    const ChunkCosts costs{{2, c.compute1, 7}, {9, 3, 2}};
    INFO("compute_s[1] = " << c.compute1);
    for (MeetMode mode : {MeetMode::kClaimOnce, MeetMode::kRaceLastChunk}) {
      const auto meet = RunUntilTheyMeet(costs, mode);
      REQUIRE(meet.ok());
      CHECK(meet->computed == c.computed);
      CHECK(meet->ready_s == c.ready);
      CHECK(meet->wasted_s == (mode == MeetMode::kClaimOnce ? 0 : c.race_wasted));
    }
  }
}

TEST_CASE("RunUntilTheyMeet: one chunk goes to the faster side, the loader on a tie",
          "[planner]") {
  struct Case { double compute, load; uint32_t computed; double ready; };
  for (const Case& c : {Case{2, 3, 1, 2}, Case{3, 2, 0, 2}, Case{3, 3, 0, 3}, Case{0, 0, 0, 0}}) {
    INFO("compute " << c.compute << ", load " << c.load);
    for (MeetMode mode : {MeetMode::kClaimOnce, MeetMode::kRaceLastChunk}) {
      const auto meet = RunUntilTheyMeet(ChunkCosts{{c.compute}, {c.load}}, mode);
      REQUIRE(meet.ok());
      CHECK(meet->computed == c.computed);
      CHECK(meet->loaded == 1 - c.computed);
      CHECK(meet->ready_s == c.ready);
      // Racing, the slower side worked on the chunk until the faster one finished it.
      CHECK(meet->wasted_s == (mode == MeetMode::kClaimOnce ? 0 : c.ready));
    }
  }
}

TEST_CASE("RunUntilTheyMeet: claiming once, a chunk that computes slower than the whole prefix "
          "loads makes the meet later than load-only; racing does not",
          "[planner]") {
  // Loading is fast (1 s a chunk), computing slow (15 s a chunk): the computing side claims
  // chunk 0 at t=0 and holds the prefix until 15, while loading all ten takes 10.
  const ChunkCosts costs{std::vector<double>(10, 15.0), std::vector<double>(10, 1.0)};
  const auto plan = PlanComputeOrLoad(costs);
  REQUIRE(plan.ok());
  CHECK(plan->split == 0);
  CHECK(plan->ready_s == 10);
  CHECK(plan->load_only_s == 10);
  const auto once = RunUntilTheyMeet(costs, MeetMode::kClaimOnce);
  REQUIRE(once.ok());
  CHECK(once->computed == 1);
  CHECK(once->loaded == 9);
  CHECK(once->ready_s == 15);  // plan + 5, within the bound: d = 15
  // Racing, the loader reaches chunk 0 at 9 and has it at 10; the GPU's 10 s on it are wasted.
  const auto race = RunUntilTheyMeet(costs);
  REQUIRE(race.ok());
  CHECK(race->computed == 0);
  CHECK(race->loaded == 10);
  CHECK(race->ready_s == 10);
  CHECK(race->wasted_s == 10);
}

TEST_CASE("RunUntilTheyMeet: with free or hopeless loading, claiming once waits for one wrong "
          "chunk; racing does not",
          "[planner]") {
  const std::vector<double> compute = {0.5, 1, 2, 4};
  // Free loading: compute claims chunk 0 at t=0 and the prefix waits 0.5 s for it; racing, the
  // loader has it at once.
  const ChunkCosts free_load{compute, {0, 0, 0, 0}};
  auto once = RunUntilTheyMeet(free_load, MeetMode::kClaimOnce);
  REQUIRE(once.ok());
  CHECK(once->computed == 1);
  CHECK(once->ready_s == 0.5);
  auto race = RunUntilTheyMeet(free_load);
  REQUIRE(race.ok());
  CHECK(race->computed == 0);
  CHECK(race->ready_s == 0);
  CHECK(race->wasted_s == 0);
  // Hopeless loading: the loader's first chunk never ends in time; claiming once, the prefix
  // waits for it; racing, compute does it too and the load is cancelled.
  const ChunkCosts hopeless{compute, {1e9, 1e9, 1e9, 1e9}};
  once = RunUntilTheyMeet(hopeless, MeetMode::kClaimOnce);
  REQUIRE(once.ok());
  CHECK(once->computed == 3);
  CHECK(once->loaded == 1);
  CHECK(once->ready_s == 1e9);
  race = RunUntilTheyMeet(hopeless);
  REQUIRE(race.ok());
  CHECK(race->computed == 4);
  CHECK(race->loaded == 0);
  CHECK(race->ready_s == Sum(compute));
  CHECK(race->wasted_s == Sum(compute));
}

}  // namespace
}  // namespace kvpool

namespace kvpool {
namespace {

TEST_CASE("MakeChunkCosts: the last disk_chunks chunks also pay the SSD tier's read", "[planner]") {
  ComputeLoadModel m;
  m.load_latency_s = 0.125;
  m.load_bytes_per_s = 4096;
  m.kv_bytes_per_token = 1024;
  m.disk_chunks = 2;
  m.disk_read_bytes_per_s = 2048;
  // Memory chunk: 0.125 + 4096/4096 = 1.125; DISK chunk: + 4096/2048 = 3.125; the short last
  // chunk (2 tokens): 0.125 + 0.5 + 1 = 1.625.
  auto costs = MakeChunkCosts(m, 4, 3, 2);
  REQUIRE(costs.ok());
  CHECK(costs->load_s == std::vector<double>{1.125, 3.125, 1.625});
  // A faster disk (the node's measured figure) makes loading the better side for more chunks.
  m.compute_s_per_token = 0.5;
  m.disk_chunks = 3;
  auto slow = MakeChunkCosts(m, 4, 3);
  m.disk_read_bytes_per_s = 1 << 20;
  auto fast = MakeChunkCosts(m, 4, 3);
  REQUIRE(slow.ok());
  REQUIRE(fast.ok());
  auto slow_plan = PlanComputeOrLoad(*slow);
  auto fast_plan = PlanComputeOrLoad(*fast);
  REQUIRE(slow_plan.ok());
  REQUIRE(fast_plan.ok());
  CHECK(fast_plan->split < slow_plan->split);
  CHECK(fast_plan->ready_s < slow_plan->ready_s);

  m.disk_read_bytes_per_s = 0;
  auto bad = MakeChunkCosts(m, 4, 3);
  CHECK(bad.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::Contains("disk_read_bytes_per_s is 0"));
  m.disk_read_bytes_per_s = 1e9;
  bad = MakeChunkCosts(m, 4, 2);
  CHECK(bad.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(bad.status().message(), Catch::Contains("disk_chunks 3 exceeds n_chunks 2"));
  m.disk_read_bytes_per_s = -3;
  bad = MakeChunkCosts(m, 4, 3);
  CHECK_THAT(bad.status().message(), Catch::Contains("disk_read_bytes_per_s"));
}

}  // namespace
}  // namespace kvpool
