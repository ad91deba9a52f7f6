// Reference hit rates of a trace, to read a replay's hit rate against its limits.
//
// Granularity is the trace's 512-token block (one hash id). Requests are taken in trace order
// with prefix semantics: a request hits the longest run of its leading blocks that is cached
// (a block after a miss is recomputed even if cached, as an engine does); then all its blocks
// are cached (or refreshed). A hit block counts its tokens in that request: 512, or fewer for
// a partial last block. Token hit rate = hit tokens / prompt tokens.
//
// Optionally each request also caches the blocks its decode completed (`decoded`, see
// decoded_blocks.h), right after its prompt's: they are written like prompt blocks but never
// counted as hits of that request (a later prompt hits them). The reference then matches a
// replay whose engines cache what they decode. Belady treats such a write as a use of the
// block, which can only keep it cached longer than needed: still an upper reference.
//
//  - infinite: unlimited capacity; every block ever seen stays (the oracle of the trace).
//  - lru: one global LRU of `capacity_blocks`. A request's blocks are refreshed last-to-first,
//    so a prompt's head is its most recently used block and goes last, as a radix cache that
//    evicts leaves first would do.
//  - belady: offline, evicts the cached block whose next use is farthest in the future, and
//    does not cache a new block whose next use is farther than every cached block's (Belady's
//    MIN with bypass). "Next use" is the position of the block's next occurrence in the trace
//    read as one sequence of blocks (request by request, block by block), so among blocks next
//    needed by the same request the deeper one goes first, and a prompt's cached part never
//    has holes.
//
// About Belady: for traces whose ids follow the chained-prefix rule (equal ids imply equal
// prefixes) and whose blocks are all full, this is the classic MIN on the block sequence and
// no policy hits more blocks. With prefix dependencies in general, partial last blocks (which
// weigh fewer tokens) or ids that break the rule, it is a heuristic upper reference, not a
// proven optimum: another policy may beat it slightly in tokens.
//
// Thread-safe (a pure function).
#pragma once

#include <cstdint>
#include <span>
#include <vector>

#include "workload/trace.h"

namespace kvpool::workload {

/// Reference hit rates of one trace at one capacity. A value type.
struct CacheBounds {
  /// Total prompt tokens of the trace.
  uint64_t prompt_tokens = 0;
  /// Total prompt blocks (hash ids, with repeats).
  uint64_t prompt_blocks = 0;
  /// Distinct hash ids among the prompts.
  uint64_t distinct_blocks = 0;
  /// Decoded blocks written after their requests (with repeats).
  uint64_t decoded_blocks = 0;
  /// The capacity used for lru and belady, blocks.
  uint64_t capacity_blocks = 0;
  /// Token hit rate with unlimited capacity, in [0, 1].
  double infinite_hit_rate = 0;
  /// Block hit rate with unlimited capacity (hit blocks / prompt blocks), in [0, 1].
  double infinite_block_hit_rate = 0;
  /// Token hit rate of one global LRU of capacity_blocks.
  double lru_hit_rate = 0;
  /// Token hit rate of the offline farthest-next-use policy (see the file comment).
  double belady_hit_rate = 0;
  /// Hit tokens with unlimited capacity (numerator of infinite_hit_rate).
  uint64_t infinite_hit_tokens = 0;
  /// Hit tokens of the LRU (numerator of lru_hit_rate).
  uint64_t lru_hit_tokens = 0;
  /// Hit tokens of the farthest-next-use policy (numerator of belady_hit_rate).
  uint64_t belady_hit_tokens = 0;
};

/// Computes the reference hit rates of `requests` (in order) with caches of `capacity_blocks`
/// 512-token blocks (0 gives lru = belady = 0); `decoded[r]` (if given) are the ids request r's
/// decode completes. Requests should pass ValidateTrace; in one that
/// does not, ids past its input_length count 0 tokens and tokens without an id never hit.
/// O(B log C) time and O(B) memory for B prompt blocks; well under a second for Mooncake's
/// 4,000-request trace.
CacheBounds ComputeCacheBounds(std::span<const TraceRequest> requests, uint64_t capacity_blocks,
                               std::span<const std::vector<uint64_t>> decoded = {});

}  // namespace kvpool::workload
