#include "workload/decoded_blocks.h"

#include <algorithm>
#include <unordered_map>

namespace kvpool::workload {
namespace {

// Chains ids into one key per prefix length; equality is checked on the ids themselves, so a
// collision costs time, never a wrong answer.
uint64_t ChainKey(uint64_t previous, uint64_t id) {
  uint64_t x = (previous ^ id) + 0x9e3779b97f4a7c15ull + (previous << 6);
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
  return x ^ (x >> 31);
}

}  // namespace

std::vector<std::vector<uint64_t>> DecodedBlockIds(std::span<const TraceRequest> trace) {
  // Requests by each of their prefixes of full blocks (key of ids [0, j) -> requests, in order).
  std::unordered_map<uint64_t, std::vector<uint32_t>> by_prefix;
  std::vector<uint64_t> full_key(trace.size(), 0);  // key of each request's full blocks
  for (uint32_t i = 0; i < trace.size(); ++i) {
    const TraceRequest& r = trace[i];
    const uint64_t full = std::min<uint64_t>(r.hash_ids.size(), r.input_length / kTraceBlockTokens);
    uint64_t key = 0;
    for (uint64_t j = 0; j < r.hash_ids.size(); ++j) {
      key = ChainKey(key, r.hash_ids[j]);
      by_prefix[key].push_back(i);
      if (j + 1 == full) full_key[i] = key;
    }
  }

  std::vector<std::vector<uint64_t>> decoded(trace.size());
  for (uint32_t i = 0; i < trace.size(); ++i) {
    const TraceRequest& r = trace[i];
    const uint64_t k = r.input_length / kTraceBlockTokens;
    const uint64_t history_tokens = uint64_t{r.input_length} + r.output_length;
    const uint64_t m = history_tokens / kTraceBlockTokens;
    // No full block: nothing ties the request to one conversation.
    if (m <= k || k == 0 || k > r.hash_ids.size()) continue;
    const bool partial_tail = r.hash_ids.size() > k;
    const auto it = by_prefix.find(full_key[i]);
    if (it == by_prefix.end()) continue;
    const std::vector<uint32_t>& same_prefix = it->second;
    const std::span<const uint64_t> head(r.hash_ids.data(), k);
    std::span<const uint64_t> answer;  // the first candidate's ids [k, m)
    bool ambiguous = false;
    for (auto c_it = std::upper_bound(same_prefix.begin(), same_prefix.end(), i);
         c_it != same_prefix.end() && !ambiguous; ++c_it) {
      const TraceRequest& c = trace[*c_it];
      if (c.input_length < history_tokens || c.hash_ids.size() < m) continue;
      if (!std::equal(head.begin(), head.end(), c.hash_ids.begin())) continue;
      if (partial_tail && c.hash_ids[k] == r.hash_ids[k]) continue;  // r's prompt again
      const std::span<const uint64_t> ids(c.hash_ids.data() + k, m - k);
      if (answer.empty()) {
        answer = ids;
      } else if (!std::equal(ids.begin(), ids.end(), answer.begin())) {
        ambiguous = true;
      }
    }
    if (!ambiguous) decoded[i].assign(answer.begin(), answer.end());
  }
  return decoded;
}

}  // namespace kvpool::workload
