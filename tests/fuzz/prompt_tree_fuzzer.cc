// libFuzzer target: random sequences of PromptTree operations (Insert, Match, Delete, Evict,
// Pin, Unpin) checked step by step against a plain reference model (std::map of cached
// hashes), plus the tree's own CheckInvariants.
//
// Hashes are real chained hashes of tiny prompts (4 token values, up to 8 blocks), so prompts
// share prefixes often and a hash always names the same parent, as in production.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <set>
#include <vector>

#include "fuzz_check.h"
#include "index/prompt_tree.h"
#include "kvpool/block_hash.h"

namespace kvpool::index {
namespace {

constexpr size_t kMaxPromptBlocks = 8;
constexpr uint32_t kTokenValues = 4;

struct ModelEntry {
  BlockRef ref = 0;
  std::optional<BlockHash> parent;  // nullopt for a prompt's first block
  uint32_t pins = 0;
};

// The reference model: what the tree must hold, keyed by hash.
class Model {
 public:
  std::map<BlockHash, ModelEntry> entries;

  bool HasCachedChild(const BlockHash& hash) const {
    for (const auto& [h, e] : entries) {
      if (e.parent == hash) return true;
    }
    return false;
  }
  // True when `hash` is `ancestor` or reaches it through cached parents only.
  bool UnderCached(BlockHash hash, const BlockHash& ancestor) const {
    for (;;) {
      if (hash == ancestor) return true;
      auto it = entries.find(hash);
      if (it == entries.end() || !it->second.parent) return false;
      if (!entries.contains(*it->second.parent)) return false;
      hash = *it->second.parent;
    }
  }
  // Blocks Evict could remove with an unbounded budget: those with no pin in their subtree.
  size_t EventuallyEvictable() const {
    std::set<BlockHash> blocked;
    for (const auto& [h, e] : entries) {
      if (e.pins == 0) continue;
      // A pinned entry blocks itself and every cached ancestor.
      std::optional<BlockHash> cur = h;
      while (cur && entries.contains(*cur)) {
        blocked.insert(*cur);
        cur = entries.at(*cur).parent;
      }
    }
    return entries.size() - blocked.size();
  }
  size_t EvictableLeaves() const {
    size_t n = 0;
    for (const auto& [h, e] : entries) {
      if (e.pins == 0 && !HasCachedChild(h)) ++n;
    }
    return n;
  }
};

// The chained hashes of a prompt drawn from the input.
std::vector<BlockHash> DrawPrompt(FuzzedDataProvider& in, const BlockHash& root) {
  const size_t blocks = in.ConsumeIntegralInRange<size_t>(1, kMaxPromptBlocks);
  std::vector<BlockHash> chain;
  BlockHash prev = root;
  for (size_t i = 0; i < blocks; ++i) {
    const uint32_t token = in.ConsumeIntegralInRange<uint32_t>(0, kTokenValues - 1);
    prev = BlockHasher::Next(prev, std::span<const uint32_t>(&token, 1));
    chain.push_back(prev);
  }
  return chain;
}

void CheckState(const PromptTree& tree, const Model& model) {
  KVPOOL_FUZZ_CHECK(tree.CheckInvariants());
  KVPOOL_FUZZ_CHECK(tree.size() == model.entries.size());
  KVPOOL_FUZZ_CHECK(tree.evictable_leaves() == model.EvictableLeaves());
}

void CheckForEach(const PromptTree& tree, const Model& model) {
  std::set<BlockHash> seen;
  size_t calls = 0;
  tree.ForEach([&](const BlockHash& hash, const std::optional<BlockHash>& parent, BlockRef ref) {
    ++calls;
    auto it = model.entries.find(hash);
    KVPOOL_FUZZ_CHECK(it != model.entries.end());
    KVPOOL_FUZZ_CHECK(it->second.ref == ref);
    KVPOOL_FUZZ_CHECK(it->second.parent == parent);
    // Parents before children.
    if (parent && model.entries.contains(*parent)) KVPOOL_FUZZ_CHECK(seen.contains(*parent));
    seen.insert(hash);
  });
  KVPOOL_FUZZ_CHECK(calls == model.entries.size());
}

void Run(FuzzedDataProvider& in) {
  const BlockHash root = NamespaceRootHash("fuzz", "");
  PromptTree tree;
  Model model;
  BlockRef next_ref = 1;
  std::vector<InsertOutcome> outcomes;
  std::vector<BlockRef> refs;
  std::vector<RemovedBlock> removed;

  while (in.remaining_bytes() > 0) {
    const uint8_t op = in.ConsumeIntegralInRange<uint8_t>(0, 5);
    const std::vector<BlockHash> chain = DrawPrompt(in, root);
    const size_t start = in.ConsumeIntegralInRange<size_t>(0, chain.size() - 1);
    switch (op) {
      case 0: {  // Insert chain[start, end) with its parent
        const size_t end = in.ConsumeIntegralInRange<size_t>(start + 1, chain.size());
        std::span<const BlockHash> hashes(chain.data() + start, end - start);
        std::vector<BlockRef> new_refs;
        for (size_t i = 0; i < hashes.size(); ++i) new_refs.push_back(next_ref++);
        std::optional<BlockHash> parent;
        if (start > 0) parent = chain[start - 1];
        tree.Insert(parent, hashes, new_refs, &outcomes);
        KVPOOL_FUZZ_CHECK(outcomes.size() == hashes.size());
        for (size_t i = 0; i < hashes.size(); ++i) {
          auto it = model.entries.find(hashes[i]);
          if (it != model.entries.end()) {
            KVPOOL_FUZZ_CHECK(!outcomes[i].inserted);
            KVPOOL_FUZZ_CHECK(outcomes[i].ref == it->second.ref);
          } else {
            KVPOOL_FUZZ_CHECK(outcomes[i].inserted);
            KVPOOL_FUZZ_CHECK(outcomes[i].ref == new_refs[i]);
            model.entries[hashes[i]] =
                ModelEntry{new_refs[i], i == 0 ? parent : std::optional(hashes[i - 1]), 0};
          }
        }
        break;
      }
      case 1: {  // Match from chain[start]
        std::span<const BlockHash> hashes(chain.data() + start, chain.size() - start);
        const size_t k = tree.Match(hashes, &refs);
        size_t expected = 0;
        while (expected < hashes.size() && model.entries.contains(hashes[expected])) ++expected;
        KVPOOL_FUZZ_CHECK(k == expected);
        KVPOOL_FUZZ_CHECK(refs.size() == k);
        for (size_t i = 0; i < k; ++i) {
          KVPOOL_FUZZ_CHECK(refs[i] == model.entries.at(hashes[i]).ref);
        }
        break;
      }
      case 2: {  // Delete chain[start] and its cached subtree
        const BlockHash target = chain[start];
        std::map<BlockHash, BlockRef> expected;
        if (model.entries.contains(target)) {
          for (const auto& [h, e] : model.entries) {
            if (model.UnderCached(h, target)) expected[h] = e.ref;
          }
        }
        removed.clear();
        const size_t n = tree.Delete(target, &removed);
        KVPOOL_FUZZ_CHECK(n == expected.size());
        KVPOOL_FUZZ_CHECK(removed.size() == n);
        for (const RemovedBlock& b : removed) {
          auto it = expected.find(b.hash);
          KVPOOL_FUZZ_CHECK(it != expected.end() && it->second == b.ref);
          expected.erase(it);
        }
        for (const RemovedBlock& b : removed) model.entries.erase(b.hash);
        break;
      }
      case 3: {  // Evict up to n blocks
        const size_t budget = in.ConsumeIntegralInRange<size_t>(0, 2 * kMaxPromptBlocks);
        const size_t expected = std::min(budget, model.EventuallyEvictable());
        removed.clear();
        const size_t n = tree.Evict(budget, &removed);
        KVPOOL_FUZZ_CHECK(n == expected);
        KVPOOL_FUZZ_CHECK(removed.size() == n);
        // Each victim was an unpinned leaf when it went: no holes below a node's first block.
        for (const RemovedBlock& b : removed) {
          auto it = model.entries.find(b.hash);
          KVPOOL_FUZZ_CHECK(it != model.entries.end());
          KVPOOL_FUZZ_CHECK(it->second.ref == b.ref);
          KVPOOL_FUZZ_CHECK(it->second.pins == 0);
          KVPOOL_FUZZ_CHECK(!model.HasCachedChild(b.hash));
          model.entries.erase(it);
        }
        break;
      }
      case 4: {  // Pin
        const BlockHash target = chain[start];
        auto it = model.entries.find(target);
        KVPOOL_FUZZ_CHECK(tree.Pin(target) == (it != model.entries.end()));
        if (it != model.entries.end()) ++it->second.pins;
        break;
      }
      case 5: {  // Unpin
        const BlockHash target = chain[start];
        auto it = model.entries.find(target);
        const bool expected = it != model.entries.end() && it->second.pins > 0;
        KVPOOL_FUZZ_CHECK(tree.Unpin(target) == expected);
        if (expected) --it->second.pins;
        break;
      }
    }
    CheckState(tree, model);
    const BlockHash probe = chain[start];
    auto it = model.entries.find(probe);
    KVPOOL_FUZZ_CHECK(tree.Find(probe) ==
                      (it == model.entries.end() ? std::nullopt : std::optional(it->second.ref)));
    KVPOOL_FUZZ_CHECK(tree.PinCount(probe) == (it == model.entries.end() ? 0 : it->second.pins));
  }
  CheckForEach(tree, model);
}

}  // namespace
}  // namespace kvpool::index

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider in(data, size);
  kvpool::index::Run(in);
  return 0;
}
