// kvpool-demo: a short prefix-caching workload against a running kvpoold, printed as a table.
//
// Three tenants' chats share one system prompt; each turn of a chat extends the previous turn.
// For every request the demo does what an inference engine does with the pool:
//   Match (with a read lease) -> AllocMem for the uncached blocks -> Insert them -> Release.
// It ends with a speculative allocation that is freed unused, and the node's counters.
//
//   kvpool-demo --address 127.0.0.1:7700
#include <CLI/CLI.hpp>
#include <chrono>
#include <iostream>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "common/table.h"
#include "common/units.h"
#include "kvpool/client.h"

namespace {

using kvpool::PromptView;
using Clock = std::chrono::steady_clock;

constexpr uint32_t kBlockTokens = 16;

double MicrosSince(Clock::time_point start) {
  return std::chrono::duration<double, std::micro>(Clock::now() - start).count();
}

std::vector<uint32_t> RandomTokens(std::mt19937& rng, size_t n) {
  std::uniform_int_distribution<uint32_t> vocab(0, 128'255);  // a Llama-3-sized vocabulary
  std::vector<uint32_t> out(n);
  for (auto& t : out) t = vocab(rng);
  return out;
}

struct Request {
  std::string label;
  std::vector<uint32_t> tokens;
};

// A shared system prompt, then per chat a first question and a follow-up turn that extends it.
std::vector<Request> MakeWorkload() {
  std::mt19937 rng(42);
  const std::vector<uint32_t> system = RandomTokens(rng, 8 * kBlockTokens);
  std::vector<Request> out;
  for (const char* chat : {"chat-a", "chat-b", "chat-c"}) {
    std::vector<uint32_t> turn = system;
    for (int t = 1; t <= 2; ++t) {
      const auto more = RandomTokens(rng, (3 + t) * kBlockTokens + 5);  // ragged: 5 spare tokens
      turn.insert(turn.end(), more.begin(), more.end());
      out.push_back({std::string(chat) + " turn " + std::to_string(t), turn});
      turn.resize(turn.size() / kBlockTokens * kBlockTokens);  // the next turn builds on full blocks
    }
  }
  out.push_back({"chat-a turn 2 (repeat)", out[1].tokens});
  return out;
}

int Fail(const std::string& what, const kvpool::Status& status) {
  std::cerr << "kvpool-demo: " << what << " failed: " << status << std::endl;
  return 1;
}

}  // namespace

int main(int argc, char** argv) {
  std::string address = "127.0.0.1:7700";
  std::string ns = "demo-llama3-8b";
  CLI::App app{"kvpool-demo: a prefix-caching workload against a kvpoold node", "kvpool-demo"};
  app.add_option("-a,--address", address, "kvpoold address")->capture_default_str();
  app.add_option("--namespace", ns, "Namespace to use")->capture_default_str();
  CLI11_PARSE(app, argc, argv);

  auto connected = kvpool::Client::Connect(address);
  if (!connected.ok()) return Fail("connect to " + address, connected.status());
  kvpool::Client& client = **connected;

  // Llama-3-8B: 32 layers x 2 (K, V) x 8 KV heads x 128 dims x 2 bytes = 128 KiB per token;
  // scaled down 64x so the demo's pool stays small.
  const kvpool::NamespaceSpec spec{ns, kBlockTokens, 16 * 2048, ""};
  auto created = client.CreateNamespace(spec);
  if (!created.ok()) return Fail("CreateNamespace", created.status());
  std::cout << "namespace '" << ns << "': " << spec.block_tokens << " tokens/block, "
            << kvpool::FormatBytes(spec.block_bytes) << "/block, root hash "
            << created->first.root_hash.ToHex() << "\n\n";

  kvpool::TextTable table({"REQUEST", "TOKENS", "BLOCKS", "CACHED", "NEW", "DEDUP", "HIT RATE",
                           "MATCH us", "INSERT us"});
  uint64_t total_blocks = 0, total_hits = 0;
  for (const Request& req : MakeWorkload()) {
    const auto prompt = PromptView::Tokens(req.tokens);
    auto t0 = Clock::now();
    auto match = client.Match(ns, prompt, 0, /*lease=*/true);
    const double match_us = MicrosSince(t0);
    if (!match.ok()) return Fail("Match", match.status());

    // Only full blocks are cached: cut the ragged tail before allocating and inserting.
    const uint32_t full_blocks = match->prompt_blocks;
    const uint32_t missing = full_blocks - match->matched_blocks;
    uint32_t inserted = 0, deduped = 0;
    double insert_us = 0;
    if (missing > 0) {
      auto alloc = client.AllocMem(ns, missing);
      if (!alloc.ok()) return Fail("AllocMem", alloc.status());
      std::vector<kvpool::BlockHandle> handles;
      for (const auto& b : alloc->blocks) handles.push_back(b.handle);
      // (An engine writes the new blocks' KV here, through the data plane, before inserting.)
      const std::span<const uint32_t> whole(req.tokens.data(), full_blocks * kBlockTokens);
      t0 = Clock::now();
      auto ins = client.Insert(ns, PromptView::Tokens(whole), match->matched_blocks, handles,
                               alloc->lease.id);
      insert_us = MicrosSince(t0);
      if (!ins.ok()) return Fail("Insert", ins.status());
      inserted = ins->inserted_blocks;
      deduped = ins->duplicate_blocks;
      if (auto rel = client.Release(alloc->lease.id); !rel.ok()) return Fail("Release", rel.status());
    }
    if (match->lease.id != 0) {
      if (auto rel = client.Release(match->lease.id); !rel.ok()) return Fail("Release", rel.status());
    }
    total_blocks += full_blocks;
    total_hits += match->matched_blocks;
    table.AddRow({req.label, std::to_string(req.tokens.size()), std::to_string(full_blocks),
                  std::to_string(match->matched_blocks), std::to_string(inserted),
                  std::to_string(deduped),
                  kvpool::FormatFixed(100.0 * match->matched_blocks / std::max(1u, full_blocks), 1) + " %",
                  kvpool::FormatFixed(match_us, 0), missing ? kvpool::FormatFixed(insert_us, 0) : "-"});
  }
  table.Print(std::cout);
  std::cout << "\nprefix reuse: " << total_hits << " of " << total_blocks << " blocks ("
            << kvpool::FormatFixed(100.0 * total_hits / std::max<uint64_t>(1, total_blocks), 1)
            << " %) came from the pool instead of prefill\n";

  // A speculative allocation that the engine ends up not needing goes back with FreeMem.
  auto spare = client.AllocMem(ns, 8);
  if (!spare.ok()) return Fail("AllocMem", spare.status());
  std::vector<kvpool::BlockHandle> spare_handles;
  for (const auto& b : spare->blocks) spare_handles.push_back(b.handle);
  auto freed = client.FreeMem(ns, spare->lease.id, spare_handles);
  if (!freed.ok()) return Fail("FreeMem", freed.status());
  if (auto rel = client.Release(spare->lease.id); !rel.ok()) return Fail("Release", rel.status());
  std::cout << "allocated 8 spare blocks and freed " << *freed << " unused\n\n";

  auto stats = client.GetStats();
  if (!stats.ok()) return Fail("GetStats", stats.status());
  kvpool::TextTable summary({"NAMESPACE", "CACHED BLOCKS", "USED", "HITS", "MISSES", "INSERTED",
                             "DEDUPED", "LEASES", "INDEX"});
  for (const auto& info : stats->namespaces) {
    const auto& s = info.stats;
    summary.AddRow({info.spec.name, std::to_string(s.cached_blocks), kvpool::FormatBytes(s.used_bytes),
                    std::to_string(s.hit_blocks), std::to_string(s.miss_blocks),
                    std::to_string(s.inserted_blocks), std::to_string(s.deduplicated_blocks),
                    std::to_string(stats->active_leases), kvpool::FormatBytes(s.index_bytes)});
  }
  summary.Print(std::cout);
  return 0;
}
