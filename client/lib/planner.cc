#include "kvpool/planner.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <limits>
#include <string>
#include <string_view>

namespace kvpool {
namespace {

// Shortest text that reads back as the same double, so a message names the exact bad value.
std::string FormatDouble(double v) {
  char buf[64];
  const auto res = std::to_chars(buf, buf + sizeof(buf), v);
  return std::string(buf, res.ptr);
}

bool IsCost(double v) { return std::isfinite(v) && v >= 0; }

Status CheckField(std::string_view name, double v) {
  if (IsCost(v)) return Status::Ok();
  return InvalidArgumentError("ComputeLoadModel." + std::string(name) + " is " + FormatDouble(v) +
                              "; it must be finite and >= 0");
}

Status CheckCosts(const ChunkCosts& costs) {
  if (costs.compute_s.size() != costs.load_s.size()) {
    return InvalidArgumentError(
        "ChunkCosts.compute_s has " + std::to_string(costs.compute_s.size()) +
        " entries but load_s has " + std::to_string(costs.load_s.size()) +
        "; they must be equal");
  }
  if (costs.compute_s.size() > std::numeric_limits<uint32_t>::max()) {
    return InvalidArgumentError("ChunkCosts has " + std::to_string(costs.compute_s.size()) +
                                " chunks; at most 4294967295 are supported");
  }
  for (size_t i = 0; i < costs.compute_s.size(); ++i) {
    if (!IsCost(costs.compute_s[i])) {
      return InvalidArgumentError("ChunkCosts.compute_s[" + std::to_string(i) + "] is " +
                                  FormatDouble(costs.compute_s[i]) +
                                  "; costs must be finite and >= 0");
    }
    if (!IsCost(costs.load_s[i])) {
      return InvalidArgumentError("ChunkCosts.load_s[" + std::to_string(i) + "] is " +
                                  FormatDouble(costs.load_s[i]) +
                                  "; costs must be finite and >= 0");
    }
  }
  return Status::Ok();
}

}  // namespace

Result<ChunkCosts> MakeChunkCosts(const ComputeLoadModel& m, uint32_t chunk_tokens,
                                  uint32_t n_chunks, uint32_t last_chunk_tokens) {
  KVPOOL_RETURN_IF_ERROR(CheckField("compute_s_per_token", m.compute_s_per_token));
  KVPOOL_RETURN_IF_ERROR(CheckField("attention_s_per_token2", m.attention_s_per_token2));
  KVPOOL_RETURN_IF_ERROR(CheckField("load_latency_s", m.load_latency_s));
  KVPOOL_RETURN_IF_ERROR(CheckField("load_bytes_per_s", m.load_bytes_per_s));
  if (m.load_bytes_per_s == 0) {
    return InvalidArgumentError("ComputeLoadModel.load_bytes_per_s is 0; it must be > 0");
  }
  KVPOOL_RETURN_IF_ERROR(CheckField("disk_read_bytes_per_s", m.disk_read_bytes_per_s));
  if (m.disk_chunks > 0 && m.disk_read_bytes_per_s == 0) {
    return InvalidArgumentError("ComputeLoadModel.disk_read_bytes_per_s is 0 with disk_chunks " +
                                std::to_string(m.disk_chunks) + "; it must be > 0");
  }
  if (m.disk_chunks > n_chunks) {
    return InvalidArgumentError("ComputeLoadModel.disk_chunks " + std::to_string(m.disk_chunks) +
                                " exceeds n_chunks " + std::to_string(n_chunks));
  }
  if (chunk_tokens == 0 && n_chunks > 0) {
    return InvalidArgumentError("chunk_tokens is 0 for " + std::to_string(n_chunks) +
                                " chunks; it must be > 0");
  }
  if (last_chunk_tokens > chunk_tokens) {
    return InvalidArgumentError("last_chunk_tokens " + std::to_string(last_chunk_tokens) +
                                " exceeds chunk_tokens " + std::to_string(chunk_tokens));
  }
  ChunkCosts costs;
  costs.compute_s.reserve(n_chunks);
  costs.load_s.reserve(n_chunks);
  const double bytes_per_token = static_cast<double>(m.kv_bytes_per_token);
  for (uint32_t i = 0; i < n_chunks; ++i) {
    const bool last = i + 1 == n_chunks && last_chunk_tokens != 0;
    const double t = last ? last_chunk_tokens : chunk_tokens;
    // Every chunk before the last is full, so this is exact even for a short last chunk.
    const double before = static_cast<double>(i) * chunk_tokens;
    costs.compute_s.push_back(m.compute_s_per_token * t +
                              m.attention_s_per_token2 * t * (before + t / 2));
    double load = m.load_latency_s + bytes_per_token * t / m.load_bytes_per_s;
    // A DISK chunk is promoted (read from the SSD tier) before it moves.
    if (i >= n_chunks - m.disk_chunks) load += bytes_per_token * t / m.disk_read_bytes_per_s;
    costs.load_s.push_back(load);
  }
  // Huge (finite) parameters can still overflow a cost to infinity; the planner would refuse it,
  // so refuse it here where the cause is known.
  KVPOOL_RETURN_IF_ERROR(CheckCosts(costs).WithContext("ComputeLoadModel out of range"));
  return costs;
}

Result<LoadPlan> PlanComputeOrLoad(const ChunkCosts& costs) {
  KVPOOL_RETURN_IF_ERROR(CheckCosts(costs));
  const size_t n = costs.compute_s.size();
  // load_suffix[s] = load_s[n-1] + ... + load_s[s], added in that order: the loading side's
  // clock, so RunUntilTheyMeet reproduces these sums bit for bit.
  std::vector<double> load_suffix(n + 1, 0.0);
  for (size_t s = n; s > 0; --s) load_suffix[s - 1] = load_suffix[s] + costs.load_s[s - 1];

  LoadPlan plan;
  plan.load_only_s = load_suffix[0];
  plan.split = 0;
  plan.compute_s = 0;
  plan.load_s = load_suffix[0];
  plan.ready_s = load_suffix[0];
  double compute = 0;
  for (size_t s = 1; s <= n; ++s) {
    compute += costs.compute_s[s - 1];
    const double ready = std::max(compute, load_suffix[s]);
    // Strictly smaller only: among equal ready times the first (fewest computed) split stays.
    if (ready < plan.ready_s) {
      plan.split = static_cast<uint32_t>(s);
      plan.compute_s = compute;
      plan.load_s = load_suffix[s];
      plan.ready_s = ready;
    }
  }
  plan.compute_only_s = compute;
  return plan;
}

Result<MeetResult> RunUntilTheyMeet(const ChunkCosts& actual, MeetMode mode) {
  KVPOOL_RETURN_IF_ERROR(CheckCosts(actual));
  const auto& c = actual.compute_s;
  const auto& l = actual.load_s;
  // Unclaimed chunks are [front, back). Each side's clock is when it finishes its current
  // chunk, its start when it began that chunk.
  size_t front = 0;
  size_t back = c.size();
  double compute_clock = 0;
  double load_clock = 0;
  double compute_start = 0;
  double load_start = 0;
  auto compute_next = [&] {
    compute_start = compute_clock;
    compute_clock += c[front++];
  };
  auto load_next = [&] {
    load_start = load_clock;
    load_clock += l[--back];
  };
  while (front < back) {
    if (compute_clock < load_clock) {
      compute_next();
    } else if (load_clock < compute_clock) {
      load_next();
    } else if (back - front >= 2) {
      // Free at the same instant with two or more chunks left: they claim different chunks.
      compute_next();
      load_next();
    } else if (c[front] < l[front]) {
      // One chunk, both free at once: the side that finishes it sooner; the loader on a tie.
      compute_next();
    } else {
      load_next();
    }
  }
  MeetResult result;
  result.computed = static_cast<uint32_t>(front);
  result.ready_s = std::max(compute_clock, load_clock);
  if (mode == MeetMode::kRaceLastChunk) {
    // Every chunk is claimed; the side free first starts the other's current (last) chunk too.
    // A strictly earlier finish wins; a tie leaves it with the side that claimed it first.
    if (compute_clock < load_clock) {
      const double raced = compute_clock + c[front];
      if (raced < load_clock) {
        result.computed = static_cast<uint32_t>(front + 1);
        result.ready_s = raced;
        result.wasted_s = raced - load_start;
      } else {
        result.wasted_s = load_clock - compute_clock;
      }
    } else if (load_clock < compute_clock) {
      const double raced = load_clock + l[front - 1];
      if (raced < compute_clock) {
        result.computed = static_cast<uint32_t>(front - 1);
        result.ready_s = raced;
        result.wasted_s = raced - compute_start;
      } else {
        result.wasted_s = compute_clock - load_clock;
      }
    }
  }
  result.loaded = static_cast<uint32_t>(c.size()) - result.computed;
  return result;
}

}  // namespace kvpool
