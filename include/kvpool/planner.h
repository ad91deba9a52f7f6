// libkvpool's compute-or-load planner (Cake: "Compute Or Load KV Cache? Why Not Both?").
//
// A prompt's cached prefix of n chunks must come from a slower tier or another node. Computing
// chunk i (prefill of its tokens) needs the KV of every chunk before it and costs more the
// further in it is (attention over all earlier tokens); loading costs about the same for every
// chunk and any chunk can be loaded on its own. So both run at once: compute from the front,
// load from the back, until they meet.
//
//   kvpool::ComputeLoadModel model;
//   model.compute_s_per_token = 30e-6;         // the engine's prefill profile
//   model.attention_s_per_token2 = 1e-9;
//   model.load_latency_s = 200e-6;             // the pool's Get: per-transfer latency ...
//   model.load_bytes_per_s = 5e9;              // ... and bandwidth
//   model.kv_bytes_per_token = 128 * 1024;
//   model.disk_chunks = 4;                      // the last 4 chunks are on the node's SSD tier,
//   model.disk_read_bytes_per_s = 1.2e9;        // which reads at its measured bandwidth
//   auto costs = kvpool::MakeChunkCosts(model, /*chunk_tokens=*/512, /*n_chunks=*/16);
//   auto plan = kvpool::PlanComputeOrLoad(*costs);
//   // compute chunks [0, plan->split) and load [plan->split, 16) at the same time;
//   // the prefix is ready after plan->ready_s seconds.
//
// Pure functions on values: no I/O, no threads, no clocks. Thread-safe. Only std and kvpool
// types appear here.
#pragma once

#include <cstdint>
#include <vector>

#include "kvpool/status.h"

namespace kvpool {

/// Per-chunk costs of one prompt's cached prefix, in seconds. Both vectors have one entry per
/// chunk, chunk 0 first; every entry must be finite and >= 0. Thread-compatible (a value type).
struct ChunkCosts {
  /// Seconds to compute chunk i once chunks 0..i-1 are present (typically non-decreasing in i;
  /// the planner does not require it).
  std::vector<double> compute_s;
  /// Seconds to load chunk i, whatever else is present.
  std::vector<double> load_s;
};

/// A simple cost model for MakeChunkCosts. A chunk of t tokens after p earlier tokens costs
///   compute = compute_s_per_token * t + attention_s_per_token2 * t * (p + t / 2)
/// (linear layers plus causal attention over the p + t/2 tokens each token sees on average), and
///   load = load_latency_s + kv_bytes_per_token * t / load_bytes_per_s
/// plus, for the last disk_chunks chunks (on the SSD tier: promoted before they move),
///   kv_bytes_per_token * t / disk_read_bytes_per_s.
/// Every field must be finite and >= 0, load_bytes_per_s > 0, and disk_read_bytes_per_s > 0
/// when disk_chunks > 0. Thread-compatible.
struct ComputeLoadModel {
  /// Prefill seconds per token that do not depend on position (MLP, projections). Default: 0.
  double compute_s_per_token = 0;
  /// Prefill seconds per (token x earlier token) pair: the attention term. Default: 0.
  double attention_s_per_token2 = 0;
  /// Fixed seconds per chunk transfer (RPC, lease, transfer setup). Default: 0.
  double load_latency_s = 0;
  /// Load bandwidth in bytes per second; must be > 0. Default: 0 (refused: set it).
  double load_bytes_per_s = 0;
  /// Bytes of KV per token (all layers, K and V). Default: 0.
  uint64_t kv_bytes_per_token = 0;
  /// The last this many chunks of the prefix live on the SSD tier (DISK) of the node they come
  /// from; the rest in memory. Demotion goes deepest first, so along a prompt a node's HOST
  /// blocks come before its DISK ones (docs/storage.md). Default: 0.
  uint32_t disk_chunks = 0;
  /// Read bandwidth of that SSD tier in bytes/s: the node's own measured figure, from
  /// SchedulerClient::Route (RoutedInstance::disk_read_bytes_per_s) or the node's GetStats
  /// (PoolStats::disk_read_bytes_per_s). Must be > 0 when disk_chunks > 0. Default: 0.
  double disk_read_bytes_per_s = 0;
};

/// Builds ChunkCosts for `n_chunks` chunks of `chunk_tokens` tokens each under `m`; the last
/// chunk has `last_chunk_tokens` tokens instead when that is nonzero (a prefix that does not end
/// on a chunk boundary). n_chunks = 0 gives empty costs. INVALID_ARGUMENT, naming the field and
/// its value, for a field of `m` that is negative or not finite, load_bytes_per_s = 0,
/// disk_read_bytes_per_s = 0 with disk_chunks > 0, disk_chunks > n_chunks, chunk_tokens = 0
/// with n_chunks > 0, or last_chunk_tokens > chunk_tokens.
Result<ChunkCosts> MakeChunkCosts(const ComputeLoadModel& m, uint32_t chunk_tokens,
                                  uint32_t n_chunks, uint32_t last_chunk_tokens = 0);

/// A split of the prefix: compute chunks [0, split) front to back and, at the same time, load
/// chunks [split, n) (back to front); both start at time 0. Times in seconds.
struct LoadPlan {
  /// Chunks to compute; n - split chunks are loaded. 0..n.
  uint32_t split = 0;
  /// Sum of compute_s over [0, split): when the computing side is done.
  double compute_s = 0;
  /// Sum of load_s over [split, n): when the loading side is done.
  double load_s = 0;
  /// max(compute_s, load_s): when the whole prefix is present.
  double ready_s = 0;
  /// Ready time of split = 0 (load every chunk): the sum of load_s.
  double load_only_s = 0;
  /// Ready time of split = n (compute every chunk): the sum of compute_s.
  double compute_only_s = 0;
};

/// The split with the smallest ready_s, over every split 0..n; among splits with equal ready_s
/// the smallest one (the fewest computed chunks: GPU time is the scarcer resource). So ready_s
/// <= min(load_only_s, compute_only_s) always. O(n) time and memory. Compute sums run front to
/// back and load sums back to front, in the order the two sides accumulate time.
/// INVALID_ARGUMENT, naming the vector, index and value, for a cost that is negative or not
/// finite, vectors of different sizes, or more than 2^32 - 1 chunks.
Result<LoadPlan> PlanComputeOrLoad(const ChunkCosts& costs);

/// How RunUntilTheyMeet settles the last chunk, the one the two sides meet on.
enum class MeetMode : uint8_t {
  /// A side that finds every chunk claimed starts the chunk the other side is still working on
  /// as well; the first copy to finish is kept (on equal finish times the copy of the side that
  /// claimed it first; claimed at the same instant, the loaded one) and the other is cancelled
  /// and discarded, so the chunk's KV is stored exactly once. Each side thus works without
  /// pause along its own direction until the prefix is covered, so ready_s equals
  /// PlanComputeOrLoad(actual).ready_s exactly, with no estimates; the price is the loser's
  /// time on that one chunk (wasted_s).
  /// The engine needs the raced chunk's two copies in separate buffers, or a cancellable load.
  kRaceLastChunk = 0,
  /// Each chunk is worked on by one side only, so nothing is wasted: a side claims the next
  /// unclaimed chunk at its end and stops when none is left. When both become free at the same
  /// instant with one chunk left, the side that finishes it sooner takes it (compute_s[i] <
  /// load_s[i]: compute; the one place this mode looks at a duration before it ran, where a real
  /// runtime would use its estimate), the loader on equal durations (as the planner). With
  /// P = PlanComputeOrLoad(actual).ready_s and d = the duration of the last chunk of the side
  /// that finishes last (compute_s[computed - 1] when computing finishes last, else
  /// load_s[computed]):  P <= ready_s <= P + d.  ready_s can exceed P, and even the better of
  /// load-only and compute-only, by up to that one chunk, also when the costs are exactly the
  /// estimates: a side commits to a chunk without knowing whether the other side would finish
  /// it, and everything left, sooner (e.g. a chunk that takes longer to compute than the whole
  /// prefix takes to load, or a first load that never ends).
  kClaimOnce = 1,
};

/// The outcome of RunUntilTheyMeet: chunks [0, computed) were computed and [computed, n)
/// loaded, each stored exactly once.
struct MeetResult {
  /// Chunks whose KV came from computing (a prefix of the chunks).
  uint32_t computed = 0;
  /// Chunks whose KV came from loading (the rest): computed + loaded = n.
  uint32_t loaded = 0;
  /// Seconds from the start until the whole prefix is present.
  double ready_s = 0;
  /// Seconds the losing side spent on a raced chunk before the winner finished it (its GPU or
  /// link time, thrown away). Always 0 for MeetMode::kClaimOnce.
  double wasted_s = 0;
};

/// Cake's runtime mode, simulated on the durations chunks really take (`actual`), with no
/// estimates: from time 0 the computing side takes chunks from the front and the loading side
/// from the back, each claiming the next unclaimed chunk at its end the moment it finished the
/// previous one, until they meet; `mode` says what happens on the chunk they meet on.
/// Simultaneous events are settled as documented for each mode, so the result is deterministic.
/// Each side's clock sums its durations in its own order (compute front to back, load back to
/// front), as PlanComputeOrLoad does, so kRaceLastChunk's ready_s equals the plan's bit for bit.
/// INVALID_ARGUMENT as PlanComputeOrLoad. O(n) time, O(1) memory.
Result<MeetResult> RunUntilTheyMeet(const ChunkCosts& actual,
                                    MeetMode mode = MeetMode::kRaceLastChunk);

}  // namespace kvpool
