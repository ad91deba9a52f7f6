#include "workload/cache_bounds.h"

#include <limits>
#include <set>
#include <unordered_map>
#include <utility>
#include <vector>

namespace kvpool::workload {
namespace {

// The trace as one sequence of blocks, with ids renumbered densely so every policy works on
// flat arrays.
struct BlockSequence {
  std::vector<uint32_t> block;     // dense id per occurrence
  std::vector<uint32_t> tokens;    // tokens of that block in its request
  std::vector<uint64_t> begin;     // requests' first occurrence; begin[r + 1] ends request r
  std::vector<uint64_t> prompt_end;  // end of request r's prompt; decoded blocks follow it
  uint32_t distinct = 0;
  uint64_t prompt_blocks = 0;
  uint64_t prompt_distinct = 0;    // distinct ids among prompts
};

BlockSequence Flatten(std::span<const TraceRequest> requests,
                      std::span<const std::vector<uint64_t>> decoded) {
  BlockSequence seq;
  size_t total = 0;
  for (const TraceRequest& r : requests) total += r.hash_ids.size();
  for (const auto& d : decoded) total += d.size();
  seq.block.reserve(total);
  seq.tokens.reserve(total);
  seq.begin.reserve(requests.size() + 1);
  seq.prompt_end.reserve(requests.size());
  std::unordered_map<uint64_t, uint32_t> dense;
  dense.reserve(total);
  std::vector<bool> in_prompt;
  auto add = [&](uint64_t id, uint32_t tokens, bool prompt) {
    const auto [it, inserted] = dense.try_emplace(id, seq.distinct);
    if (inserted) {
      ++seq.distinct;
      in_prompt.push_back(false);
    }
    if (prompt && !in_prompt[it->second]) {
      in_prompt[it->second] = true;
      ++seq.prompt_distinct;
    }
    seq.block.push_back(it->second);
    seq.tokens.push_back(tokens);
  };
  for (size_t r = 0; r < requests.size(); ++r) {
    const TraceRequest& req = requests[r];
    seq.begin.push_back(seq.block.size());
    for (size_t i = 0; i < req.hash_ids.size(); ++i) {
      add(req.hash_ids[i], TraceBlockTokens(req.input_length, i), true);
    }
    seq.prompt_end.push_back(seq.block.size());
    seq.prompt_blocks += req.hash_ids.size();
    if (r < decoded.size()) {
      for (uint64_t id : decoded[r]) add(id, kTraceBlockTokens, false);
    }
  }
  seq.begin.push_back(seq.block.size());
  return seq;
}

// Tokens of request r's leading run of prompt blocks for which `cached(block)` holds.
template <typename Cached>
uint64_t PrefixHitTokens(const BlockSequence& seq, size_t r, Cached cached) {
  uint64_t hit = 0;
  for (uint64_t k = seq.begin[r]; k < seq.prompt_end[r]; ++k) {
    if (!cached(seq.block[k])) break;
    hit += seq.tokens[k];
  }
  return hit;
}

struct InfiniteResult {
  uint64_t hit_tokens = 0;
  uint64_t hit_blocks = 0;
};

InfiniteResult Infinite(const BlockSequence& seq) {
  InfiniteResult result;
  std::vector<bool> seen(seq.distinct, false);
  for (size_t r = 0; r + 1 < seq.begin.size(); ++r) {
    for (uint64_t k = seq.begin[r]; k < seq.prompt_end[r] && seen[seq.block[k]]; ++k) {
      result.hit_tokens += seq.tokens[k];
      ++result.hit_blocks;
    }
    for (uint64_t k = seq.begin[r]; k < seq.begin[r + 1]; ++k) seen[seq.block[k]] = true;
  }
  return result;
}

// One LRU list over dense ids, intrusive (prev/next arrays), most recent at the head.
uint64_t Lru(const BlockSequence& seq, uint64_t capacity) {
  if (capacity == 0) return 0;
  constexpr uint32_t kNone = std::numeric_limits<uint32_t>::max();
  std::vector<uint32_t> prev(seq.distinct, kNone), next(seq.distinct, kNone);
  std::vector<bool> cached(seq.distinct, false);
  uint32_t head = kNone, tail = kNone;
  uint64_t size = 0;
  auto unlink = [&](uint32_t b) {
    (prev[b] == kNone ? head : next[prev[b]]) = next[b];
    (next[b] == kNone ? tail : prev[next[b]]) = prev[b];
  };
  auto push_front = [&](uint32_t b) {
    prev[b] = kNone;
    next[b] = head;
    (head == kNone ? tail : prev[head]) = b;
    head = b;
  };
  uint64_t hit = 0;
  for (size_t r = 0; r + 1 < seq.begin.size(); ++r) {
    hit += PrefixHitTokens(seq, r, [&](uint32_t b) { return cached[b]; });
    // Last-to-first, so the prompt's first block ends up most recent.
    for (uint64_t k = seq.begin[r + 1]; k-- > seq.begin[r];) {
      const uint32_t b = seq.block[k];
      if (cached[b]) {
        unlink(b);
      } else {
        cached[b] = true;
        ++size;
      }
      push_front(b);
      if (size > capacity) {
        const uint32_t victim = tail;
        unlink(victim);
        cached[victim] = false;
        --size;
      }
    }
  }
  return hit;
}

uint64_t Belady(const BlockSequence& seq, uint64_t capacity) {
  if (capacity == 0) return 0;
  const uint64_t n = seq.block.size();
  // Blocks never used again share the largest keys; the dense id breaks ties.
  constexpr uint64_t kNever = std::numeric_limits<uint64_t>::max();
  std::vector<uint64_t> next_use(n);
  {
    std::vector<uint64_t> upcoming(seq.distinct, kNever);
    for (uint64_t k = n; k-- > 0;) {
      next_use[k] = upcoming[seq.block[k]];
      upcoming[seq.block[k]] = k;
    }
  }
  // Cached blocks ordered by next use; the last element is the one to evict.
  std::set<std::pair<uint64_t, uint32_t>> by_next_use;
  std::vector<uint64_t> key(seq.distinct, 0);
  std::vector<bool> cached(seq.distinct, false);
  uint64_t hit = 0;
  for (size_t r = 0; r + 1 < seq.begin.size(); ++r) {
    hit += PrefixHitTokens(seq, r, [&](uint32_t b) { return cached[b]; });
    for (uint64_t k = seq.begin[r]; k < seq.begin[r + 1]; ++k) {
      const uint32_t b = seq.block[k];
      const uint64_t next = next_use[k];
      if (cached[b]) {
        by_next_use.erase({key[b], b});
      } else if (by_next_use.size() >= capacity) {
        // Blocks of this request not yet refreshed still carry keys inside this request, below
        // `next`, so they are never the victim: the request's hits stay valid.
        const auto farthest = std::prev(by_next_use.end());
        if (farthest->first < next || (farthest->first == next && farthest->second < b)) {
          continue;  // bypass: the new block is needed later than anything cached
        }
        cached[farthest->second] = false;
        by_next_use.erase(farthest);
      }
      cached[b] = true;
      key[b] = next;
      by_next_use.insert({next, b});
    }
  }
  return hit;
}

double Rate(uint64_t hit, uint64_t total) {
  return total == 0 ? 0.0 : static_cast<double>(hit) / static_cast<double>(total);
}

}  // namespace

CacheBounds ComputeCacheBounds(std::span<const TraceRequest> requests, uint64_t capacity_blocks,
                               std::span<const std::vector<uint64_t>> decoded) {
  CacheBounds bounds;
  bounds.capacity_blocks = capacity_blocks;
  for (const TraceRequest& r : requests) bounds.prompt_tokens += r.input_length;
  const BlockSequence seq = Flatten(requests, decoded);
  bounds.prompt_blocks = seq.prompt_blocks;
  bounds.distinct_blocks = seq.prompt_distinct;
  bounds.decoded_blocks = seq.block.size() - seq.prompt_blocks;

  const InfiniteResult infinite = Infinite(seq);
  bounds.infinite_hit_tokens = infinite.hit_tokens;
  bounds.lru_hit_tokens = Lru(seq, capacity_blocks);
  bounds.belady_hit_tokens = Belady(seq, capacity_blocks);

  bounds.infinite_hit_rate = Rate(bounds.infinite_hit_tokens, bounds.prompt_tokens);
  bounds.infinite_block_hit_rate = Rate(infinite.hit_blocks, bounds.prompt_blocks);
  bounds.lru_hit_rate = Rate(bounds.lru_hit_tokens, bounds.prompt_tokens);
  bounds.belady_hit_rate = Rate(bounds.belady_hit_tokens, bounds.prompt_tokens);
  return bounds;
}

}  // namespace kvpool::workload
