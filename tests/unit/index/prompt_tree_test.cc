#include "index/prompt_tree.h"

#include <catch2/catch.hpp>

#include <algorithm>
#include <cstdint>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <vector>

#include "kvpool/block_hash.h"

namespace kvpool::index {
namespace {

// A well-spread synthetic hash, standing in for a real chained hash where the test only needs
// distinct keys (splitmix64 of the id, so the hash table sees realistic bits).
BlockHash H(uint64_t id) {
  auto mix = [](uint64_t x) {
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
  };
  return BlockHash{mix(id), mix(id ^ 0x5555555555555555ull)};
}

std::vector<BlockHash> Hs(std::initializer_list<uint64_t> ids) {
  std::vector<BlockHash> out;
  for (uint64_t id : ids) out.push_back(H(id));
  return out;
}

// Refs equal to the ids times 10, so a test can tell which block a ref came from.
std::vector<BlockRef> RefsFor(std::initializer_list<uint64_t> ids) {
  std::vector<BlockRef> out;
  for (uint64_t id : ids) out.push_back(id * 10);
  return out;
}

std::vector<InsertOutcome> Insert(PromptTree& tree, std::optional<uint64_t> parent,
                                  std::initializer_list<uint64_t> ids) {
  std::vector<InsertOutcome> out;
  std::optional<BlockHash> parent_hash;
  if (parent) parent_hash = H(*parent);
  tree.Insert(parent_hash, Hs(ids), RefsFor(ids), &out);
  return out;
}

// Evicts one block at a time and returns their refs / 10 (the ids), in eviction order.
std::vector<uint64_t> EvictAllIds(PromptTree& tree) {
  std::vector<uint64_t> ids;
  std::vector<RemovedBlock> removed;
  while (tree.Evict(1, &removed) == 1) {
    ids.push_back(removed.back().ref / 10);
    REQUIRE(tree.CheckInvariants());
  }
  return ids;
}

std::map<BlockHash, std::optional<BlockHash>> ParentsByForEach(const PromptTree& tree) {
  std::map<BlockHash, std::optional<BlockHash>> parents;
  tree.ForEach([&](const BlockHash& hash, const std::optional<BlockHash>& parent, BlockRef) {
    parents.emplace(hash, parent);
  });
  return parents;
}

TEST_CASE("PromptTree: longest prefix stops at first missing block", "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1, 2, 3, 4});
  std::vector<BlockRef> refs;

  CHECK(tree.Match(Hs({1, 2, 3, 4, 5}), &refs) == 4);
  CHECK(refs == std::vector<BlockRef>{10, 20, 30, 40});

  // Block 4 is cached, but the run ends at the missing third block.
  CHECK(tree.Match(Hs({1, 2, 9, 4}), &refs) == 2);
  CHECK(refs == std::vector<BlockRef>{10, 20});

  CHECK(tree.Match(Hs({9, 1, 2}), &refs) == 0);
  CHECK(refs.empty());
  CHECK(tree.Match(std::vector<BlockHash>{}, &refs) == 0);
}

TEST_CASE("PromptTree: match from a later start position takes a subspan", "[index]") {
  PromptTree tree;
  // The node holds blocks 3..5 of a prompt without its beginning (pooled placement).
  Insert(tree, 2, {3, 4, 5});
  const std::vector<BlockHash> prompt = Hs({1, 2, 3, 4, 5, 6});
  std::vector<BlockRef> refs;

  CHECK(tree.Match(prompt, &refs) == 0);
  CHECK(tree.Match(std::span<const BlockHash>(prompt).subspan(2), &refs) == 3);
  CHECK(refs == std::vector<BlockRef>{30, 40, 50});
  CHECK(tree.Match(std::span<const BlockHash>(prompt).subspan(4), &refs) == 1);
  CHECK(refs == std::vector<BlockRef>{50});
}

TEST_CASE("PromptTree: inserting a cached hash deduplicates and returns the existing ref",
          "[index]") {
  PromptTree tree;
  const std::vector<InsertOutcome> first = Insert(tree, std::nullopt, {1, 2});
  REQUIRE(first.size() == 2);
  CHECK(first[0].inserted);
  CHECK(first[0].ref == 10);

  std::vector<InsertOutcome> out;
  tree.Insert(std::nullopt, Hs({1, 2, 3}), std::vector<BlockRef>{111, 222, 333}, &out);
  REQUIRE(out.size() == 3);
  CHECK_FALSE(out[0].inserted);
  CHECK(out[0].ref == 10);
  CHECK_FALSE(out[1].inserted);
  CHECK(out[1].ref == 20);
  CHECK(out[2].inserted);
  CHECK(out[2].ref == 333);

  CHECK(tree.Find(H(2)) == BlockRef{20});
  CHECK(tree.size() == 3);
  CHECK(tree.CheckInvariants());
}

TEST_CASE("PromptTree: insert clears the outcome vector first", "[index]") {
  PromptTree tree;
  std::vector<InsertOutcome> out(5);
  tree.Insert(std::nullopt, Hs({1}), RefsFor({1}), &out);
  CHECK(out.size() == 1);
}

TEST_CASE("PromptTree: find misses uncached hashes and leaves LRU order alone",
          "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1});
  Insert(tree, std::nullopt, {2});
  CHECK_FALSE(tree.Find(H(3)).has_value());
  CHECK_FALSE(tree.Contains(H(3)));
  CHECK(tree.Find(H(1)) == BlockRef{10});
  // Find on the cold leaf did not warm it.
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{1, 2});
}

TEST_CASE("PromptTree: pinned leaves are never evicted", "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1, 2, 3});
  Insert(tree, std::nullopt, {1, 4});
  CHECK(tree.Pin(H(3)));
  CHECK(tree.Pin(H(3)));
  CHECK(tree.PinCount(H(3)) == 2);
  CHECK_FALSE(tree.Pin(H(99)));
  CHECK(tree.evictable_leaves() == 1);

  std::vector<RemovedBlock> evicted;
  CHECK(tree.Evict(100, &evicted) == 1);
  REQUIRE(evicted.size() == 1);
  CHECK(evicted[0].hash == H(4));
  CHECK(evicted[0].ref == 40);
  CHECK(tree.size() == 3);
  CHECK(tree.evictable_leaves() == 0);
  CHECK(tree.Evict(100, &evicted) == 0);

  CHECK(tree.Unpin(H(3)));
  CHECK(tree.Evict(100, &evicted) == 0);  // One pin is left.
  CHECK(tree.Unpin(H(3)));
  CHECK_FALSE(tree.Unpin(H(3)));
  CHECK_FALSE(tree.Unpin(H(99)));
  CHECK(tree.PinCount(H(3)) == 0);
  CHECK(tree.PinCount(H(99)) == 0);
  CHECK(tree.evictable_leaves() == 1);
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{3, 2, 1});
  CHECK(tree.size() == 0);
}

TEST_CASE("PromptTree: a pinned interior entry keeps itself and its ancestors", "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1, 2, 3});
  CHECK(tree.Pin(H(2)));
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{3});
  CHECK(tree.Contains(H(1)));
  CHECK(tree.Contains(H(2)));
  CHECK(tree.evictable_leaves() == 0);
  CHECK(tree.Unpin(H(2)));
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{2, 1});
}

TEST_CASE("PromptTree: interior nodes are not evicted before their children", "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1, 2, 3});
  Insert(tree, std::nullopt, {1, 2, 4});
  Insert(tree, std::nullopt, {1, 5});
  CHECK(tree.evictable_leaves() == 3);
  // Leaves go oldest first; a parent goes only once its last child has gone.
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{3, 4, 2, 5, 1});
}

TEST_CASE("PromptTree: an interior node that becomes a leaf is evicted before warmer leaves",
          "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1, 2});
  Insert(tree, std::nullopt, {7});
  std::vector<RemovedBlock> evicted;
  // In one call: 2 is coldest; then 1, a new leaf, joins the cold end ahead of 7.
  CHECK(tree.Evict(2, &evicted) == 2);
  REQUIRE(evicted.size() == 2);
  CHECK(evicted[0].hash == H(2));
  CHECK(evicted[1].hash == H(1));
  CHECK(tree.Contains(H(7)));
  CHECK(tree.CheckInvariants());
}

TEST_CASE("PromptTree: evict appends and stops at max_blocks", "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1, 2, 3, 4});
  std::vector<RemovedBlock> evicted(1);  // Not cleared by Evict.
  CHECK(tree.Evict(2, &evicted) == 2);
  CHECK(evicted.size() == 3);
  CHECK(tree.size() == 2);
  CHECK(tree.Evict(0, &evicted) == 0);
  CHECK(tree.size() == 2);
}

TEST_CASE("PromptTree: match makes matched leaves most recently used", "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1, 2});
  Insert(tree, std::nullopt, {3});
  Insert(tree, std::nullopt, {4});
  std::vector<BlockRef> refs;
  CHECK(tree.Match(Hs({3}), &refs) == 1);
  CHECK(tree.Match(Hs({1, 2}), &refs) == 2);
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{4, 3, 2, 1});
}

TEST_CASE("PromptTree: unpinning a leaf's last pin makes it most recently used", "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1});
  Insert(tree, std::nullopt, {2});
  Insert(tree, std::nullopt, {3});
  CHECK(tree.Pin(H(1)));
  CHECK(tree.evictable_leaves() == 2);
  CHECK(tree.Unpin(H(1)));
  CHECK(tree.evictable_leaves() == 3);
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{2, 3, 1});
}

TEST_CASE("PromptTree: delete removes the whole subtree including pinned entries", "[index]") {
  PromptTree tree;
  Insert(tree, std::nullopt, {1, 2, 3});
  Insert(tree, std::nullopt, {1, 2, 4});
  Insert(tree, std::nullopt, {1, 5});
  CHECK(tree.Pin(H(4)));
  CHECK(tree.Pin(H(2)));

  std::vector<RemovedBlock> removed(1);  // Not cleared by Delete.
  CHECK(tree.Delete(H(2), &removed) == 3);
  REQUIRE(removed.size() == 4);
  std::set<BlockRef> refs;
  for (size_t i = 1; i < removed.size(); ++i) refs.insert(removed[i].ref);
  CHECK(refs == std::set<BlockRef>{20, 30, 40});
  CHECK_FALSE(tree.Contains(H(2)));
  CHECK_FALSE(tree.Contains(H(4)));
  CHECK(tree.PinCount(H(4)) == 0);
  CHECK(tree.Contains(H(1)));
  CHECK(tree.Contains(H(5)));
  CHECK(tree.size() == 2);
  CHECK(tree.CheckInvariants());

  CHECK(tree.Delete(H(2), &removed) == 0);
  CHECK(tree.Delete(H(5), &removed) == 1);
  // 1 lost its last child: it is an evictable leaf now.
  CHECK(tree.evictable_leaves() == 1);
  CHECK(tree.CheckInvariants());
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{1});
}

TEST_CASE("PromptTree: segment roots are adopted when their parent arrives", "[index]") {
  PromptTree tree;
  // Blocks 3..4 arrive first, e.g. published here after blocks 1..2 were pulled from elsewhere.
  CHECK(Insert(tree, 2, {3, 4})[0].inserted);
  Insert(tree, 2, {6});  // A second segment waiting for the same parent.
  CHECK(tree.CheckInvariants());
  auto parents = ParentsByForEach(tree);
  CHECK(parents.at(H(3)) == H(2));  // Known but not cached.
  CHECK(parents.at(H(4)) == H(3));

  Insert(tree, std::nullopt, {1, 2});
  CHECK(tree.CheckInvariants());
  parents = ParentsByForEach(tree);
  CHECK(parents.at(H(1)) == std::nullopt);
  CHECK(parents.at(H(3)) == H(2));
  CHECK(parents.at(H(6)) == H(2));

  std::vector<BlockRef> refs;
  CHECK(tree.Match(Hs({1, 2, 3, 4}), &refs) == 4);
  // 2 has children now, so it is not a leaf; the whole prompt leaves in tree order.
  CHECK(tree.evictable_leaves() == 2);
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{6, 4, 3, 2, 1});
}

TEST_CASE("PromptTree: an existing segment root met inside a longer insert is linked",
          "[index]") {
  PromptTree tree;
  Insert(tree, 2, {3, 4});
  const std::vector<InsertOutcome> out = Insert(tree, std::nullopt, {1, 2, 3, 4, 5});
  REQUIRE(out.size() == 5);
  CHECK(out[0].inserted);
  CHECK(out[1].inserted);
  CHECK_FALSE(out[2].inserted);
  CHECK_FALSE(out[3].inserted);
  CHECK(out[4].inserted);
  CHECK(tree.CheckInvariants());
  const auto parents = ParentsByForEach(tree);
  CHECK(parents.at(H(3)) == H(2));
  CHECK(parents.at(H(5)) == H(4));

  std::vector<RemovedBlock> removed;
  CHECK(tree.Delete(H(1), &removed) == 5);
  CHECK(tree.size() == 0);
  CHECK(tree.CheckInvariants());
}

TEST_CASE("PromptTree: one insert adopts segment roots all along its chain", "[index]") {
  // Every odd block of a 2000-block prompt is cached first, each waiting for its parent; one
  // insert of the whole prompt then links them all.
  constexpr uint64_t kBlocks = 2000;
  PromptTree tree;
  for (uint64_t i = 1; i < kBlocks; i += 2) Insert(tree, i - 1, {i});
  REQUIRE(tree.CheckInvariants());
  std::vector<BlockHash> prompt;
  std::vector<BlockRef> refs;
  for (uint64_t i = 0; i < kBlocks; ++i) {
    prompt.push_back(H(i));
    refs.push_back(i * 10);
  }
  std::vector<InsertOutcome> out;
  tree.Insert(std::nullopt, prompt, refs, &out);
  REQUIRE(tree.CheckInvariants());
  const auto parents = ParentsByForEach(tree);
  REQUIRE(parents.size() == kBlocks);
  CHECK(parents.at(H(0)) == std::nullopt);
  for (uint64_t i = 1; i < kBlocks; ++i) CHECK(parents.at(H(i)) == H(i - 1));
  std::vector<RemovedBlock> removed;
  CHECK(tree.Delete(H(0), &removed) == kBlocks);
}

TEST_CASE("PromptTree: a segment root evicted before its parent arrives is forgotten",
          "[index]") {
  PromptTree tree;
  Insert(tree, 2, {3});
  std::vector<RemovedBlock> evicted;
  CHECK(tree.Evict(1, &evicted) == 1);
  CHECK(tree.CheckInvariants());
  Insert(tree, std::nullopt, {1, 2});
  CHECK(tree.size() == 2);
  CHECK(tree.CheckInvariants());
  std::vector<RemovedBlock> removed;
  CHECK(tree.Delete(H(3), &removed) == 0);
}

TEST_CASE("PromptTree: hashes that would form a cycle leave the tree consistent", "[index]") {
  // Honest chained hashes cannot do this; a hostile client sending raw hashes can.
  PromptTree tree;
  Insert(tree, 2, {1});  // 1 claims parent 2.
  Insert(tree, 1, {2});  // 2 claims parent 1: adopting 1 under 2 would close a loop.
  CHECK(tree.CheckInvariants());
  Insert(tree, 5, {5});  // Its own parent.
  CHECK(tree.CheckInvariants());
  CHECK(ParentsByForEach(tree).size() == 3);
  std::vector<RemovedBlock> removed;
  CHECK(tree.Delete(H(1), &removed) == 2);
  CHECK(tree.Delete(H(5), &removed) == 1);
  CHECK(tree.size() == 0);
  CHECK(tree.CheckInvariants());
}

TEST_CASE("PromptTree: for each visits parents before children", "[index]") {
  PromptTree tree;
  Insert(tree, 20, {21, 22});
  Insert(tree, std::nullopt, {1, 2, 3});
  Insert(tree, std::nullopt, {1, 4});
  Insert(tree, 2, {5});
  Insert(tree, std::nullopt, {19, 20});
  std::set<BlockHash> seen;
  size_t visits = 0;
  tree.ForEach([&](const BlockHash& hash, const std::optional<BlockHash>& parent, BlockRef ref) {
    ++visits;
    CHECK(tree.Find(hash) == ref);
    if (parent && tree.Contains(*parent)) CHECK(seen.count(*parent) == 1);
    seen.insert(hash);
  });
  CHECK(visits == tree.size());
  CHECK(seen.size() == tree.size());
}

TEST_CASE("PromptTree: deep chains are matched, deleted and evicted without recursion",
          "[index]") {
  // 128K tokens in 16-token blocks is an 8192-long chain; go well past it.
  constexpr uint64_t kDepth = 200000;
  std::vector<BlockHash> chain;
  std::vector<BlockRef> refs;
  for (uint64_t i = 0; i < kDepth; ++i) {
    chain.push_back(H(i));
    refs.push_back(i);
  }
  PromptTree tree;
  std::vector<InsertOutcome> out;
  tree.Insert(std::nullopt, chain, refs, &out);
  REQUIRE(tree.size() == kDepth);
  CHECK(tree.CheckInvariants());

  std::vector<BlockRef> matched;
  CHECK(tree.Match(chain, &matched) == kDepth);
  CHECK(matched == refs);

  size_t visits = 0;
  tree.ForEach([&](const BlockHash&, const std::optional<BlockHash>& parent, BlockRef ref) {
    CHECK((ref == 0) == !parent.has_value());
    ++visits;
  });
  CHECK(visits == kDepth);

  std::vector<RemovedBlock> removed;
  CHECK(tree.Delete(chain[1], &removed) == kDepth - 1);
  CHECK(tree.size() == 1);
  CHECK(tree.CheckInvariants());

  tree.Insert(std::nullopt, chain, refs, &out);
  removed.clear();
  CHECK(tree.Evict(kDepth, &removed) == kDepth);
  REQUIRE(removed.size() == kDepth);
  CHECK(removed.front().ref == kDepth - 1);  // Deepest first.
  CHECK(removed.back().ref == 0);
  CHECK(tree.size() == 0);
  CHECK(tree.CheckInvariants());
}

TEST_CASE("PromptTree: memory bytes per block stay within 64 for 100k blocks in long chains",
          "[index]") {
  // 100k is the design size; 114,700 sits just past a hash-table doubling (its worst load).
  for (const size_t total : {size_t{100000}, size_t{114700}}) {
    PromptTree tree;
    std::vector<InsertOutcome> out;
    uint64_t next_id = 0;
    while (tree.size() < total) {
      const size_t length = std::min<size_t>(8192, total - tree.size());
      std::vector<BlockHash> chain;
      std::vector<BlockRef> refs;
      for (size_t i = 0; i < length; ++i) {
        chain.push_back(H(next_id));
        refs.push_back(next_id++);
      }
      tree.Insert(std::nullopt, chain, refs, &out);
    }
    REQUIRE(tree.size() == total);
    const double bytes_per_block = static_cast<double>(tree.MemoryBytes()) / tree.size();
    INFO("blocks: " << total << ", bytes per block: " << bytes_per_block);
    REQUIRE(bytes_per_block <= 64.0);
    // Honest accounting: at least the entry hash and ref of every block.
    REQUIRE(bytes_per_block >= 24.0);
  }
}

TEST_CASE("PromptTree: moved-to tree keeps its contents", "[index]") {
  PromptTree a;
  Insert(a, std::nullopt, {1, 2});
  PromptTree b(std::move(a));
  CHECK(b.Find(H(2)) == BlockRef{20});
  PromptTree c;
  c = std::move(b);
  CHECK(c.size() == 2);
  CHECK(c.CheckInvariants());
}

// ---- Randomised tests with real chained hashes ----

// Prompts over a tiny alphabet share prefixes often, so the tree branches and deduplicates.
std::vector<uint32_t> RandomPrompt(std::mt19937_64& rng, size_t max_blocks, uint32_t block_tokens,
                                   uint32_t alphabet) {
  const size_t blocks = 1 + rng() % max_blocks;
  std::vector<uint32_t> tokens(blocks * block_tokens);
  for (uint32_t& t : tokens) t = static_cast<uint32_t>(rng() % alphabet);
  return tokens;
}

TEST_CASE("PromptTree: prefix property holds under random evictions", "[index]") {
  std::mt19937_64 rng(12345);
  const BlockHasher hasher("prefix-test", "", 2);
  PromptTree tree;
  std::vector<std::vector<BlockHash>> prompts;
  std::vector<InsertOutcome> out;
  std::vector<RemovedBlock> evicted;
  std::vector<BlockRef> refs;
  BlockRef next_ref = 1;

  for (int step = 0; step < 400; ++step) {
    const std::vector<BlockHash> hashes = hasher.HashPrompt(RandomPrompt(rng, 10, 2, 3));
    std::vector<BlockRef> new_refs(hashes.size());
    for (BlockRef& r : new_refs) r = next_ref++;
    tree.Insert(std::nullopt, hashes, new_refs, &out);
    prompts.push_back(hashes);
    if (rng() % 3 == 0) {
      const auto& p = prompts[rng() % prompts.size()];
      tree.Match(p, &refs);
    }
    if (rng() % 4 == 0) {
      const auto& p = prompts[rng() % prompts.size()];
      tree.Pin(p[rng() % p.size()]);
    }
    if (rng() % 4 == 0) {
      const auto& p = prompts[rng() % prompts.size()];
      tree.Unpin(p[rng() % p.size()]);
    }
    if (rng() % 2 == 0) {
      tree.Evict(rng() % 8, &evicted);
      REQUIRE(tree.CheckInvariants());
      // Every cached block's parent block is cached, and parents are visited first.
      std::set<BlockHash> seen;
      tree.ForEach([&](const BlockHash& hash, const std::optional<BlockHash>& parent, BlockRef) {
        if (parent) {
          REQUIRE(tree.Contains(*parent));
          REQUIRE(seen.count(*parent) == 1);
        }
        seen.insert(hash);
      });
      // No holes: what is cached of each prompt is exactly a prefix of it.
      for (const auto& p : prompts) {
        const size_t k = tree.Match(p, &refs);
        for (size_t j = k; j < p.size(); ++j) REQUIRE_FALSE(tree.Contains(p[j]));
      }
    }
  }
}

// The reference model: what is cached, each block's known parent hash, and pin counts. With
// honest chained hashes a block is linked under its parent exactly when the parent is cached.
struct ModelBlock {
  BlockRef ref = 0;
  std::optional<BlockHash> parent;
  uint32_t pins = 0;
};
using Model = std::map<BlockHash, ModelBlock>;

// Number of cached children of each cached block.
std::map<BlockHash, size_t> ModelChildCounts(const Model& model) {
  std::map<BlockHash, size_t> counts;
  for (const auto& [h, b] : model) {
    if (b.parent && model.count(*b.parent) != 0) ++counts[*b.parent];
  }
  return counts;
}

TEST_CASE("PromptTree: random operations agree with a reference model", "[index]") {
  std::mt19937_64 rng(777);
  const BlockHasher hasher("model-test", "salt", 2);
  std::vector<std::vector<BlockHash>> prompts;
  for (int i = 0; i < 300; ++i) prompts.push_back(hasher.HashPrompt(RandomPrompt(rng, 12, 2, 3)));

  PromptTree tree;
  Model model;
  std::vector<InsertOutcome> out;
  std::vector<BlockRef> refs;
  std::vector<RemovedBlock> removed;
  BlockRef next_ref = 1;

  size_t largest = 0;
  for (int step = 0; step < 20000; ++step) {
    const std::vector<BlockHash>& prompt = prompts[rng() % prompts.size()];
    const size_t op = rng() % 40;
    if (op < 16) {
      // Insert a whole prompt or a segment of it (pooled placement).
      const size_t begin = (rng() % 2 == 0) ? 0 : rng() % prompt.size();
      const size_t end = begin + 1 + rng() % (prompt.size() - begin);
      const std::span<const BlockHash> segment =
          std::span<const BlockHash>(prompt).subspan(begin, end - begin);
      std::optional<BlockHash> parent;
      if (begin > 0) parent = prompt[begin - 1];
      std::vector<BlockRef> new_refs(segment.size());
      for (BlockRef& r : new_refs) r = next_ref++;
      tree.Insert(parent, segment, new_refs, &out);
      REQUIRE(out.size() == segment.size());
      for (size_t i = 0; i < segment.size(); ++i) {
        auto it = model.find(segment[i]);
        if (it != model.end()) {
          CHECK_FALSE(out[i].inserted);
          CHECK(out[i].ref == it->second.ref);
        } else {
          CHECK(out[i].inserted);
          CHECK(out[i].ref == new_refs[i]);
          model[segment[i]] = ModelBlock{new_refs[i], i > 0 ? segment[i - 1] : parent, 0};
        }
      }
    } else if (op < 24) {
      const size_t start = rng() % prompt.size();
      const std::span<const BlockHash> query = std::span<const BlockHash>(prompt).subspan(start);
      std::vector<BlockRef> expected;
      for (const BlockHash& h : query) {
        auto it = model.find(h);
        if (it == model.end()) break;
        expected.push_back(it->second.ref);
      }
      CHECK(tree.Match(query, &refs) == expected.size());
      CHECK(refs == expected);
    } else if (op < 26) {
      const BlockHash& h = prompt[rng() % prompt.size()];
      auto it = model.find(h);
      if (it == model.end()) {
        CHECK_FALSE(tree.Find(h).has_value());
      } else {
        CHECK(tree.Find(h) == it->second.ref);
      }
    } else if (op < 32) {
      const BlockHash& h = prompt[rng() % prompt.size()];
      auto it = model.find(h);
      if (rng() % 2 == 0) {
        CHECK(tree.Pin(h) == (it != model.end()));
        if (it != model.end()) ++it->second.pins;
      } else {
        const bool expected = it != model.end() && it->second.pins > 0;
        CHECK(tree.Unpin(h) == expected);
        if (expected) --it->second.pins;
      }
      CHECK(tree.PinCount(h) == (it == model.end() ? 0 : it->second.pins));
    } else if (op < 33) {
      const BlockHash& h = prompt[rng() % prompt.size()];
      std::set<BlockHash> doomed;
      if (model.count(h) != 0) {
        doomed.insert(h);
        for (bool grew = true; grew;) {
          grew = false;
          for (const auto& [bh, b] : model) {
            if (b.parent && doomed.count(*b.parent) != 0 && doomed.insert(bh).second) grew = true;
          }
        }
      }
      removed.clear();
      CHECK(tree.Delete(h, &removed) == doomed.size());
      std::set<BlockHash> got;
      for (const RemovedBlock& r : removed) {
        got.insert(r.hash);
        CHECK(model.at(r.hash).ref == r.ref);
      }
      CHECK(got == doomed);
      for (const BlockHash& d : doomed) model.erase(d);
    } else {
      const size_t want = rng() % 6;
      removed.clear();
      const size_t got = tree.Evict(want, &removed);
      REQUIRE(got == removed.size());
      std::map<BlockHash, size_t> children = ModelChildCounts(model);
      for (const RemovedBlock& r : removed) {
        auto it = model.find(r.hash);
        REQUIRE(it != model.end());
        CHECK(it->second.ref == r.ref);
        CHECK(it->second.pins == 0);
        CHECK(children[r.hash] == 0);
        if (it->second.parent && model.count(*it->second.parent) != 0) {
          --children[*it->second.parent];
        }
        model.erase(it);
      }
      if (got < want) {
        // Nothing evictable is left: every block is pinned or has a cached child.
        for (const auto& [bh, b] : model) CHECK((b.pins > 0 || children[bh] > 0));
      }
    }

    largest = std::max(largest, model.size());
    REQUIRE(tree.size() == model.size());
    const std::map<BlockHash, size_t> children = ModelChildCounts(model);
    size_t model_leaves = 0;
    for (const auto& [bh, b] : model) {
      if (b.pins == 0 && children.count(bh) == 0) ++model_leaves;
    }
    REQUIRE(tree.evictable_leaves() == model_leaves);
    REQUIRE(tree.CheckInvariants());
    if (step % 100 == 0) {
      const auto parents = ParentsByForEach(tree);
      REQUIRE(parents.size() == model.size());
      for (const auto& [bh, b] : model) CHECK(parents.at(bh) == b.parent);
    }
  }
  // The run must have grown a real tree, not stayed trivially small.
  CHECK(largest >= 200);
}

}  // namespace
}  // namespace kvpool::index

namespace kvpool::index {
namespace {

TEST_CASE("PromptTree: EvictIf takes only eligible leaves and keeps the others in LRU order",
          "[index]") {
  PromptTree tree;
  // Two chains: 1 <- 2 <- 3 (odd refs: "tier A") and 4 <- 5 (even: "tier B"), plus leaf 6 (B).
  Insert(tree, std::nullopt, {1, 2, 3});
  Insert(tree, std::nullopt, {4, 5});
  Insert(tree, std::nullopt, {6});
  auto tier_b = [](BlockRef ref) { return ref == 40 || ref == 50 || ref == 60; };
  std::vector<RemovedBlock> removed;
  // Coldest eligible first; 5's parent 4 becomes a leaf and goes in the same call.
  CHECK(tree.EvictIf(2, tier_b, &removed) == 2);
  REQUIRE(removed.size() == 2);
  CHECK(removed[0].ref == 50);
  CHECK(removed[1].ref == 40);
  CHECK(tree.size() == 4);
  // Nothing else of tier B but 6; a larger budget stops when none is left.
  removed.clear();
  CHECK(tree.EvictIf(10, tier_b, &removed) == 1);
  CHECK(removed[0].ref == 60);
  // Tier A's chain is untouched and still evicts deepest first.
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{3, 2, 1});
  CHECK(tree.CheckInvariants());
}

TEST_CASE("PromptTree: eviction candidates are listed in Evict's order, without changing it",
          "[index]") {
  PromptTree tree;
  // 1-2-3 (cold), then 4-5 and 4-6 (a branch), then 7-8 (warm).
  Insert(tree, std::nullopt, {1, 2, 3});
  Insert(tree, std::nullopt, {4, 5});
  Insert(tree, 4, {6});
  Insert(tree, std::nullopt, {7, 8});
  auto listed = [&](size_t max) {
    std::vector<uint64_t> ids;
    tree.ForEachEvictionCandidate(max, [&](const BlockHash&, BlockRef ref) {
      ids.push_back(ref / 10);
      return true;
    });
    return ids;
  };
  // A leaf, then its ancestors while each is an only child's unpinned parent. 4 has two
  // children, so it is listed after neither (Evict takes it after both: 3 2 1 5 6 4 8 7).
  CHECK(listed(100) == std::vector<uint64_t>{3, 2, 1, 5, 6, 8, 7});
  CHECK(listed(4) == std::vector<uint64_t>{3, 2, 1, 5});
  // A pinned parent ends the walk up.
  REQUIRE(tree.Pin(H(2)));
  CHECK(listed(3) == std::vector<uint64_t>{3, 5, 6});
  REQUIRE(tree.Unpin(H(2)));
  // The callback stops the walk; nothing moved in the LRU order.
  size_t calls = 0;
  tree.ForEachEvictionCandidate(100, [&](const BlockHash&, BlockRef) { return ++calls < 2; });
  CHECK(calls == 2);
  CHECK(EvictAllIds(tree) == std::vector<uint64_t>{3, 2, 1, 5, 6, 4, 8, 7});
}

}  // namespace
}  // namespace kvpool::index
