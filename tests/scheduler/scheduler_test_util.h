// Helpers shared by the scheduler tests.
#pragma once

#include <catch2/catch.hpp>

#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "kvpool/block_hash.h"
#include "scheduler/global_index.h"
#include "scheduler/kv_event.h"

namespace kvpool::scheduler::testing {

// A well-spread synthetic hash standing in for a chained hash where a test only needs distinct
// keys (splitmix64 of the id, so the tables see realistic bits).
inline BlockHash H(uint64_t id) {
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  return BlockHash{mix(id), mix(id ^ 0x5555555555555555ull)};
}

inline std::vector<BlockHash> Hs(std::initializer_list<uint64_t> ids) {
  std::vector<BlockHash> out;
  for (uint64_t id : ids) out.push_back(H(id));
  return out;
}

// Hashes of ids [first, first + n).
inline std::vector<BlockHash> Range(uint64_t first, uint64_t n) {
  std::vector<BlockHash> out;
  for (uint64_t i = 0; i < n; ++i) out.push_back(H(first + i));
  return out;
}

// Syncs `node` with an empty snapshot at (epoch, seq 0), so its events apply from seq 1.
inline void Join(GlobalIndex& index, const std::string& node, uint64_t epoch = 1) {
  Status s = index.ReplaceNode(NodeSnapshot{node, epoch, 0, {}});
  REQUIRE(s.ok());
}

// Sends one Stored batch and returns its outcome (the batch must be valid).
inline ApplyResult Store(GlobalIndex& index, const std::string& node, uint64_t seq,
                         const std::string& ns, std::vector<BlockHash> hashes,
                         Tier tier = Tier::kHost, uint64_t epoch = 1) {
  KvEventBatch batch{node, epoch, seq, {}};
  batch.events.push_back(KvEvent::Stored(ns, std::nullopt, std::move(hashes), tier));
  Result<ApplyResult> r = index.Apply(batch);
  REQUIRE(r.ok());
  return *r;
}

}  // namespace kvpool::scheduler::testing
