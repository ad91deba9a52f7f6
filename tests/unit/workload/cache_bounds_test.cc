#include "workload/cache_bounds.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <random>
#include <vector>

#include "workload/trace.h"
#include "workload/trace_gen.h"

namespace kvpool::workload {
namespace {

TraceRequest Request(uint32_t input, std::vector<uint64_t> ids) {
  TraceRequest r;
  r.input_length = input;
  r.output_length = 1;
  r.hash_ids = std::move(ids);
  return r;
}

TEST_CASE("ComputeCacheBounds: a hand-made trace gives the hand-computed rates",
          "[workload]") {
  // R1 [1,2] 1024 tokens   R2 [1,3] 1024   R3 [1,2,4] 1200 (block 4 holds 176)
  // R4 [5] 512             R5 [1,3] 1024   prompt tokens 4,784; 5 distinct, 10 blocks.
  const std::vector<TraceRequest> trace = {Request(1024, {1, 2}), Request(1024, {1, 3}),
                                           Request(1200, {1, 2, 4}), Request(512, {5}),
                                           Request(1024, {1, 3})};
  const CacheBounds b = ComputeCacheBounds(trace, 2);
  CHECK(b.prompt_tokens == 4784);
  CHECK(b.prompt_blocks == 10);
  CHECK(b.distinct_blocks == 5);
  CHECK(b.capacity_blocks == 2);

  // Infinite: R1 0; R2 hits 1 (512); R3 hits 1,2 (1024), 4 is new; R4 0; R5 hits 1,3 (1024).
  // 2,560 / 4,784 tokens; 5 of 10 blocks.
  CHECK(b.infinite_hit_tokens == 2560);
  CHECK(b.infinite_hit_rate == Approx(2560.0 / 4784.0));
  CHECK(b.infinite_block_hit_rate == Approx(0.5));

  // LRU, 2 blocks, a request's blocks refreshed last-to-first (list shown MRU first):
  //  R1: miss; [1,2].  R2: 1 hits (512), 3 misses; touch 3 -> evict 2, touch 1 -> [1,3].
  //  R3: 1 hits, 2 misses (512); touch 4 -> [4,1], touch 2 -> [2,4], touch 1 -> [1,2].
  //  R4: miss; [5,1].  R5: 1 hits, 3 misses (512).  1,536 / 4,784.
  CHECK(b.lru_hit_tokens == 1536);
  CHECK(b.lru_hit_rate == Approx(1536.0 / 4784.0));

  // Belady, 2 blocks; next uses in the block sequence 1 2 | 1 3 | 1 2 4 | 5 | 1 3:
  //  R1: cache 1 (next at R2) and 2 (next at R3).
  //  R2: 1 hits (512); 3's next use (R5) is farther than 2's (R3): 3 is not cached.
  //  R3: 1, 2 hit (1024); afterwards 2 and 4 are never used again, 1 is (R5): keep 1, 2.
  //  R4: 5 is never used again: not cached.  R5: 1 hits (512), 3 misses.  2,048 / 4,784.
  // (Keeping 3 at R2 instead loses 2 at R3 and gains 3 at R5: also 2,048, no better.)
  CHECK(b.belady_hit_tokens == 2048);
  CHECK(b.belady_hit_rate == Approx(2048.0 / 4784.0));
}

TEST_CASE("ComputeCacheBounds: a partial last block counts only its tokens", "[workload]") {
  // 700 tokens: a full block and one of 188. The repeat hits all 700 of 1,400.
  const std::vector<TraceRequest> trace = {Request(700, {1, 2}), Request(700, {1, 2})};
  const CacheBounds b = ComputeCacheBounds(trace, 10);
  CHECK(b.infinite_hit_tokens == 700);
  CHECK(b.infinite_hit_rate == Approx(0.5));
  CHECK(b.lru_hit_rate == Approx(0.5));
  CHECK(b.belady_hit_rate == Approx(0.5));
}

TEST_CASE("ComputeCacheBounds: a cached block after a miss is not a hit", "[workload]") {
  const std::vector<TraceRequest> trace = {Request(1024, {1, 2}), Request(1024, {9, 2})};
  const CacheBounds b = ComputeCacheBounds(trace, 10);
  CHECK(b.infinite_hit_tokens == 0);
  CHECK(b.lru_hit_tokens == 0);
  CHECK(b.belady_hit_tokens == 0);
}

TEST_CASE("ComputeCacheBounds: zero capacity hits nothing, ample capacity equals infinite",
          "[workload]") {
  TraceGenOptions opt;
  opt.requests = 300;
  const auto trace = GenerateTrace(opt);
  const CacheBounds none = ComputeCacheBounds(trace, 0);
  CHECK(none.lru_hit_rate == 0);
  CHECK(none.belady_hit_rate == 0);
  CHECK(none.infinite_hit_rate > 0.3);
  const CacheBounds all = ComputeCacheBounds(trace, none.distinct_blocks);
  CHECK(all.lru_hit_tokens == all.infinite_hit_tokens);
  CHECK(all.belady_hit_tokens == all.infinite_hit_tokens);
  CHECK(ComputeCacheBounds({}, 5).infinite_hit_rate == 0);
}

// A random trace that follows the chained-prefix rule: each request copies a random-length
// prefix of an earlier request's ids (or none) and continues with new ids. Full blocks only,
// unless `partial`.
std::vector<TraceRequest> RandomTrace(uint32_t seed, size_t n, bool partial) {
  std::mt19937_64 rng(seed);
  std::vector<TraceRequest> trace;
  uint64_t next_id = 0;
  for (size_t i = 0; i < n; ++i) {
    std::vector<uint64_t> ids;
    if (!trace.empty() && rng() % 5 != 0) {
      const TraceRequest& from = trace[rng() % trace.size()];
      // Copy full blocks only, as a shared prefix can only be whole blocks.
      const size_t full = from.input_length / kTraceBlockTokens;
      ids.assign(from.hash_ids.begin(), from.hash_ids.begin() + (full ? rng() % (full + 1) : 0));
    }
    const size_t extra = 1 + rng() % 6;
    for (size_t k = 0; k < extra; ++k) ids.push_back(next_id++);
    uint32_t input = static_cast<uint32_t>(ids.size()) * kTraceBlockTokens;
    if (partial) input -= static_cast<uint32_t>(rng() % kTraceBlockTokens);
    trace.push_back(Request(input, std::move(ids)));
  }
  return trace;
}

TEST_CASE("ComputeCacheBounds: LRU <= Belady <= infinite on random traces", "[workload]") {
  for (uint32_t seed = 1; seed <= 20; ++seed) {
    const auto trace = RandomTrace(seed, 400, /*partial=*/false);
    const uint64_t distinct = ComputeCacheBounds(trace, 0).distinct_blocks;
    for (const uint64_t capacity : {uint64_t{1}, uint64_t{8}, distinct / 20, distinct / 5,
                                    distinct / 2}) {
      INFO("seed " << seed << " capacity " << capacity);
      const CacheBounds b = ComputeCacheBounds(trace, capacity);
      CHECK(b.lru_hit_tokens <= b.belady_hit_tokens);
      CHECK(b.belady_hit_tokens <= b.infinite_hit_tokens);
    }
  }
}

TEST_CASE("ComputeCacheBounds: with partial blocks both policies stay below infinite",
          "[workload]") {
  for (uint32_t seed = 1; seed <= 10; ++seed) {
    const auto trace = RandomTrace(seed, 400, /*partial=*/true);
    const uint64_t distinct = ComputeCacheBounds(trace, 0).distinct_blocks;
    for (const uint64_t capacity : {distinct / 20, distinct / 5}) {
      const CacheBounds b = ComputeCacheBounds(trace, capacity);
      CHECK(b.lru_hit_tokens <= b.infinite_hit_tokens);
      CHECK(b.belady_hit_tokens <= b.infinite_hit_tokens);
      CHECK(b.belady_hit_tokens > 0);
    }
  }
}

TEST_CASE("ComputeCacheBounds: Mooncake's synthetic trace has the README's reuse",
          "[workload]") {
  // ../shared/traces next to the checkout; skipped where it is absent (a user's machine).
  const std::filesystem::path path = std::filesystem::path(__FILE__).parent_path() /
                                     "../../../../shared/traces/synthetic_trace.jsonl";
  if (!std::filesystem::exists(path)) {
    WARN("skipped: " << path << " not found");
    return;
  }
  const auto trace = ReadTrace(path.string());
  REQUIRE(trace.ok());
  CHECK(trace->size() == 3993);
  const CacheBounds b = ComputeCacheBounds(*trace, 43924 / 10);
  // README: 43,924 distinct blocks; 64.0% of blocks and 65.1% of tokens reusable.
  CHECK(b.distinct_blocks == 43924);
  CHECK(b.infinite_hit_rate == Approx(0.651).margin(0.0005));
  CHECK(b.infinite_block_hit_rate == Approx(0.640).margin(0.0005));
  CHECK(b.lru_hit_rate < b.belady_hit_rate);
  CHECK(b.belady_hit_rate < b.infinite_hit_rate);
}

}  // namespace
}  // namespace kvpool::workload
