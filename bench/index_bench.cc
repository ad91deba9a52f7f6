#include "bench/index_bench.h"

#include <iostream>
#include <random>

#include "bench/bench_stats.h"
#include "common/clock.h"
#include "common/table.h"
#include "index/prompt_tree.h"
#include "kvpool/block_hash.h"
#include "node/mempool.h"

namespace kvpool::bench {
namespace {

constexpr uint32_t kSystemPromptTokens = 1024;

std::vector<std::vector<uint32_t>> MakePrompts(uint32_t count, uint32_t tokens, uint32_t seed) {
  std::mt19937 rng(seed);
  std::uniform_int_distribution<uint32_t> vocab(0, 128'255);
  std::vector<uint32_t> system(std::min(kSystemPromptTokens, tokens));
  for (auto& t : system) t = vocab(rng);
  std::vector<std::vector<uint32_t>> out(count);
  for (auto& p : out) {
    p = system;
    p.resize(tokens);
    for (size_t i = system.size(); i < p.size(); ++i) p[i] = vocab(rng);
  }
  return out;
}

struct LengthResult {
  uint32_t tokens = 0;
  uint32_t blocks = 0;
  double hash_ns_per_block = 0;
  Summary tree_insert_ns, tree_match_ns, node_insert_ns, node_match_ns;
  double index_bytes_per_block = 0;
  size_t cached_blocks = 0;
};

LengthResult BenchLength(const IndexBenchOptions& opt, uint32_t tokens) {
  LengthResult r;
  r.tokens = tokens;
  r.blocks = tokens / opt.block_tokens;
  const auto prompts = MakePrompts(opt.prompts, tokens, tokens);
  const BlockHasher hasher("bench", "", opt.block_tokens);

  std::vector<std::vector<BlockHash>> hashes(prompts.size());
  auto t0 = BenchClock::now();
  for (size_t i = 0; i < prompts.size(); ++i) hasher.HashPrompt(prompts[i], &hashes[i]);
  r.hash_ns_per_block = NanosSince(t0) / static_cast<double>(prompts.size() * r.blocks);

  // The prompt tree alone: what the index costs.
  index::PromptTree tree;
  std::vector<double> insert_ns, match_ns;
  std::vector<index::InsertOutcome> outcomes;
  std::vector<index::BlockRef> refs;
  uint64_t next_ref = 1;
  for (const auto& h : hashes) {
    std::vector<index::BlockRef> ids(h.size());
    for (auto& id : ids) id = next_ref++;
    t0 = BenchClock::now();
    tree.Insert(std::nullopt, h, ids, &outcomes);
    insert_ns.push_back(NanosSince(t0));
  }
  for (uint32_t round = 0; round < opt.match_rounds; ++round) {
    for (const auto& h : hashes) {
      t0 = BenchClock::now();
      const size_t matched = tree.Match(h, &refs);
      match_ns.push_back(NanosSince(t0));
      if (matched != h.size()) std::cerr << "index bench: unexpected partial match\n";
    }
  }
  r.cached_blocks = tree.size();
  r.index_bytes_per_block =
      static_cast<double>(tree.MemoryBytes()) / static_cast<double>(std::max<size_t>(1, tree.size()));
  r.tree_insert_ns = Summarize(insert_ns);
  r.tree_match_ns = Summarize(match_ns);

  // A whole node in-process: validation, lock, handles, locations, stats.
  node::MemPoolOptions pool_options;
  pool_options.capacity_bytes = uint64_t{r.blocks} * opt.prompts * 64 * 2 + (64ull << 20);
  pool_options.huge_pages = false;
  pool_options.slab_bytes = 1ull << 20;
  auto pool = node::MemPool::Create(pool_options, SteadyClock::Default());
  if (!pool.ok()) {
    std::cerr << "index bench: " << pool.status() << "\n";
    return r;
  }
  NamespaceSpec spec{"bench", opt.block_tokens, 64, ""};
  (*pool)->CreateNamespace(spec).status().IgnoreError();
  std::vector<double> node_insert, node_match;
  for (const auto& h : hashes) {
    auto alloc = (*pool)->AllocMem("bench", r.blocks, Tier::kHost, 0);
    if (!alloc.ok()) {
      std::cerr << "index bench: " << alloc.status() << "\n";
      return r;
    }
    std::vector<BlockHandle> handles;
    for (const auto& b : alloc->blocks) handles.push_back(b.handle);
    t0 = BenchClock::now();
    auto ins = (*pool)->Insert("bench", PromptView::Hashes(h), 0, handles, alloc->lease.id, false);
    node_insert.push_back(NanosSince(t0));
    if (!ins.ok()) std::cerr << "index bench: " << ins.status() << "\n";
    (*pool)->Release(alloc->lease.id).status().IgnoreError();
  }
  for (uint32_t round = 0; round < opt.match_rounds; ++round) {
    for (const auto& h : hashes) {
      t0 = BenchClock::now();
      auto m = (*pool)->Match("bench", PromptView::Hashes(h), 0, false, 0);
      node_match.push_back(NanosSince(t0));
      if (!m.ok() || m->matched_blocks != h.size()) std::cerr << "index bench: node match short\n";
    }
  }
  r.node_insert_ns = Summarize(node_insert);
  r.node_match_ns = Summarize(node_match);
  return r;
}

}  // namespace

nlohmann::json RunIndexBench(const IndexBenchOptions& opt, bool quiet) {
  nlohmann::json results = nlohmann::json::array();
  TextTable table({"PROMPT TOKENS", "BLOCKS", "HASH ns/blk", "INSERT us p50", "INSERT ns/blk",
                   "MATCH us p50", "MATCH us p99", "MATCH ns/blk", "NODE MATCH us p50",
                   "NODE INSERT us p50", "INDEX B/blk"});
  for (uint32_t tokens : opt.prompt_tokens) {
    if (!quiet) std::cerr << "index: " << tokens << "-token prompts ..." << std::endl;
    const LengthResult r = BenchLength(opt, tokens);
    const double blocks = std::max(1.0, static_cast<double>(r.blocks));
    table.AddRow({std::to_string(r.tokens), std::to_string(r.blocks),
                  FormatFixed(r.hash_ns_per_block, 1), FormatFixed(r.tree_insert_ns.p50 / 1e3, 1),
                  FormatFixed(r.tree_insert_ns.p50 / blocks, 1),
                  FormatFixed(r.tree_match_ns.p50 / 1e3, 2), FormatFixed(r.tree_match_ns.p99 / 1e3, 2),
                  FormatFixed(r.tree_match_ns.p50 / blocks, 2),
                  FormatFixed(r.node_match_ns.p50 / 1e3, 1), FormatFixed(r.node_insert_ns.p50 / 1e3, 1),
                  FormatFixed(r.index_bytes_per_block, 1)});
    results.push_back({{"prompt_tokens", r.tokens},
                       {"blocks", r.blocks},
                       {"cached_blocks", r.cached_blocks},
                       {"hash_ns_per_block", r.hash_ns_per_block},
                       {"tree_insert_ns", ToJson(r.tree_insert_ns)},
                       {"tree_match_ns", ToJson(r.tree_match_ns)},
                       {"tree_insert_ns_per_block", r.tree_insert_ns.p50 / blocks},
                       {"tree_match_ns_per_block", r.tree_match_ns.p50 / blocks},
                       {"node_insert_ns", ToJson(r.node_insert_ns)},
                       {"node_match_ns", ToJson(r.node_match_ns)},
                       {"index_bytes_per_block", r.index_bytes_per_block}});
  }
  if (!quiet) {
    std::cout << "\nindex: in-process prompt tree (MATCH/INSERT) and whole node (NODE ...), "
              << opt.block_tokens << "-token blocks, " << opt.prompts
              << " prompts per length sharing a 1K-token prefix\n";
    table.Print(std::cout);
    std::cout << "targets (DESIGN.md): 128K-token Match <= 20 us; index <= 64 B/block\n";
  }
  return {{"benchmark", "index"},
          {"block_tokens", opt.block_tokens},
          {"prompts", opt.prompts},
          {"results", results}};
}

}  // namespace kvpool::bench
