#include "workload/decoded_blocks.h"

#include <catch2/catch.hpp>

#include <filesystem>
#include <vector>

#include "workload/cache_bounds.h"
#include "workload/trace.h"
#include "workload/trace_gen.h"

namespace kvpool::workload {
namespace {

TraceRequest Request(uint32_t input, uint32_t output, std::vector<uint64_t> ids) {
  TraceRequest r;
  r.input_length = input;
  r.output_length = output;
  r.hash_ids = std::move(ids);
  return r;
}

using Ids = std::vector<uint64_t>;

TEST_CASE("DecodedBlockIds: the next turn names the blocks the answer completed",
          "[workload]") {
  // Turn 1: 1,300 tokens = blocks 1, 2 and a partial 3 (276 tokens); the 400-token answer
  // fills that block (676 >= 512): history 1,700 tokens = 3 full blocks.
  // Turn 2 (the next turn): 1, 2, then 10 (the old tail plus the answer), 11, 12.
  // Turn 3 repeats turn 2's head: it agrees, so the answer's block is 10.
  const std::vector<TraceRequest> trace = {
      Request(1300, 400, {1, 2, 3}), Request(600, 10, {7, 8}),
      Request(2200, 10, {1, 2, 10, 11, 12}), Request(3000, 10, {1, 2, 10, 11, 12, 13})};
  const auto decoded = DecodedBlockIds(trace);
  REQUIRE(decoded.size() == 4);
  CHECK(decoded[0] == Ids{10});
  CHECK(decoded[1].empty());  // 88 + 10 tokens complete no block
  // Turn 2: 4 full blocks (2,048 of 2,200); 2,210 tokens still 4 blocks: nothing completed.
  CHECK(decoded[2].empty());
  CHECK(decoded[3].empty());  // no later request
}

TEST_CASE("DecodedBlockIds: siblings that disagree leave the request without decoded blocks",
          "[workload]") {
  // Two questions on one document (blocks 1, 2) after the first; each could be its next turn.
  const std::vector<TraceRequest> trace = {
      Request(1100, 500, {1, 2, 3}), Request(2000, 10, {1, 2, 20, 21}),
      Request(2000, 10, {1, 2, 30, 31})};
  CHECK(DecodedBlockIds(trace)[0].empty());
}

TEST_CASE("DecodedBlockIds: a repeat, a shorter prompt or an earlier one is no continuation",
          "[workload]") {
  const std::vector<TraceRequest> trace = {
      Request(1200, 10, {1, 2, 5}),        // an earlier prompt that extends the same head
      Request(1100, 500, {1, 2, 3}),       // the request: history 1,600 = 3 blocks
      Request(1100, 500, {1, 2, 3}),       // its prompt again (same partial block)
      Request(1500, 10, {1, 2, 40})};      // too short to hold prompt + answer
  const auto decoded = DecodedBlockIds(trace);
  CHECK(decoded[1].empty());
  CHECK(decoded[2].empty());
}

TEST_CASE("DecodedBlockIds: a prompt of whole blocks continues at its next block",
          "[workload]") {
  const std::vector<TraceRequest> trace = {Request(1024, 1100, {1, 2}),
                                           Request(4000, 10, {1, 2, 8, 9, 10, 11, 12, 13})};
  // History 2,124 tokens = 4 full blocks: the next turn's blocks 3 and 4.
  CHECK(DecodedBlockIds(trace)[0] == Ids{8, 9});
}

TEST_CASE("ComputeCacheBounds: decoded blocks are written, not hit, by their request",
          "[workload]") {
  const std::vector<TraceRequest> trace = {Request(1300, 400, {1, 2, 3}),
                                           Request(2200, 10, {1, 2, 10, 11, 12})};
  const auto decoded = DecodedBlockIds(trace);
  const CacheBounds without = ComputeCacheBounds(trace, 0);
  const CacheBounds with = ComputeCacheBounds(trace, 0, decoded);
  // Without: turn 2 hits 1, 2 (1,024). With: also 10, written by turn 1's decode (1,536).
  CHECK(without.infinite_hit_tokens == 1024);
  CHECK(with.infinite_hit_tokens == 1536);
  CHECK(with.decoded_blocks == 1);
  CHECK(with.distinct_blocks == without.distinct_blocks);  // prompts' ids only
  CHECK(with.prompt_blocks == without.prompt_blocks);
  // Capacity 4 holds turn 1's three blocks and block 10: LRU and Belady hit as much.
  const CacheBounds small = ComputeCacheBounds(trace, 4, decoded);
  CHECK(small.lru_hit_tokens == 1536);
  CHECK(small.belady_hit_tokens == 1536);
}

TEST_CASE("DecodedBlockIds: the generator's conversations continue their turns",
          "[workload]") {
  TraceGenOptions opt;
  opt.requests = 400;
  opt.seed = 3;
  const std::vector<TraceRequest> trace = GenerateTrace(opt);
  const auto decoded = DecodedBlockIds(trace);
  const CacheBounds without = ComputeCacheBounds(trace, 0);
  const CacheBounds with = ComputeCacheBounds(trace, 0, decoded);
  size_t requests = 0;
  for (const auto& d : decoded) requests += d.empty() ? 0 : 1;
  CHECK(requests > 0);
  CHECK(with.decoded_blocks > 0);
  // Every decoded block is a block a later prompt holds, so the oracle only gains.
  CHECK(with.infinite_hit_tokens > without.infinite_hit_tokens);
  CHECK(with.infinite_hit_tokens <= with.prompt_tokens);
}

}  // namespace
}  // namespace kvpool::workload
