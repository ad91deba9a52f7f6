#include "client/kvpoolctl/swap_commands.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <vector>

#include "client/kvpoolctl/token_file.h"
#include "common/units.h"

namespace kvpool::ctl {
namespace {

using nlohmann::json;

void Print(const json& j) { std::cout << j.dump(2) << std::endl; }

// What the namespace and the node's SSD tier hold, for the line after a swap.
struct TierState {
  bool known = false;
  uint64_t cached_blocks = 0;  // in host memory
  uint64_t disk_blocks = 0;    // on the SSD tier (some may be in host memory too)
  uint64_t disk_used_bytes = 0;
  uint64_t disk_capacity_bytes = 0;
};

TierState StateOf(Client& client, const std::string& ns) {
  TierState s;
  Result<PoolStats> stats = client.GetStats();
  if (!stats.ok()) return s;  // the swap itself succeeded: print it without the state
  s.disk_used_bytes = stats->disk_used_bytes;
  s.disk_capacity_bytes = stats->disk_capacity_bytes;
  for (const NamespaceInfo& info : stats->namespaces) {
    if (info.spec.name != ns) continue;
    s.known = true;
    s.cached_blocks = info.stats.cached_blocks;
    s.disk_blocks = info.stats.disk_blocks;
  }
  return s;
}

json StateJson(const TierState& s) {
  return json{{"host_blocks", s.cached_blocks},
              {"disk_blocks", s.disk_blocks},
              {"disk_used_bytes", s.disk_used_bytes},
              {"disk_capacity_bytes", s.disk_capacity_bytes}};
}

void PrintState(const std::string& ns, const TierState& s) {
  if (!s.known) return;
  std::cout << "namespace '" << ns << "' now: " << s.cached_blocks << " blocks in host memory, "
            << s.disk_blocks << " on the SSD tier; SSD tier " << FormatBytes(s.disk_used_bytes)
            << " of " << FormatBytes(s.disk_capacity_bytes) << " used\n";
}

}  // namespace

void AddSwapCommands(CLI::App& app, SwapFlags* flags, CLI::App** swap_out, CLI::App** swap_in) {
  *swap_out = app.add_subcommand(
      "swap-out", "Move a namespace's coldest unleased host blocks to the node's SSD tier");
  (*swap_out)->add_option("namespace", flags->ns, "Namespace name")->required();
  (*swap_out)
      ->add_option("n_blocks", flags->n_blocks, "Most blocks to move")
      ->required()
      ->check(CLI::PositiveNumber);
  *swap_in = app.add_subcommand(
      "swap-in", "Read a prompt's blocks on the node's SSD tier back into host memory");
  (*swap_in)->add_option("namespace", flags->ns, "Namespace name")->required();
  (*swap_in)->add_option("--tokens-file", flags->tokens_file,
                         "File of token ids separated by spaces, commas or newlines (- for stdin)");
  (*swap_in)->add_option("--hashes", flags->hashes, "Comma-separated 32-hex-digit block hashes");
  (*swap_in)->add_option("--start-block", flags->start_block, "First block to promote");
}

int RunSwapOut(Client& client, const GlobalFlags& flags, const SwapFlags& swap) {
  Result<uint64_t> demoted = client.SwapOut(swap.ns, swap.n_blocks);
  if (!demoted.ok()) return ReportError(flags, demoted.status());
  const TierState state = StateOf(client, swap.ns);
  if (flags.json) {
    json out{{"namespace", swap.ns}, {"asked_blocks", swap.n_blocks},
             {"demoted_blocks", *demoted}};
    if (state.known) out["now"] = StateJson(state);
    Print(out);
    return 0;
  }
  std::cout << "swapped out " << *demoted << " of " << swap.n_blocks << " blocks of namespace '"
            << swap.ns << "' to the SSD tier";
  if (*demoted < swap.n_blocks) {
    std::cout << " (no other unleased block of it was in host memory"
              << (*demoted == 0 ? "" : ", or the SSD tier could not take more") << ")";
  }
  std::cout << "\n";
  PrintState(swap.ns, state);
  return 0;
}

int RunSwapIn(Client& client, const GlobalFlags& flags, const SwapFlags& swap) {
  if (swap.tokens_file.empty() == swap.hashes.empty()) {
    return ReportError(flags, InvalidArgumentError("give exactly one of --tokens-file and --hashes"));
  }
  std::vector<uint32_t> tokens;
  std::vector<BlockHash> hashes;
  if (!swap.tokens_file.empty()) {
    Result<std::vector<uint32_t>> read = ReadTokenFile(swap.tokens_file);
    if (!read.ok()) return ReportError(flags, read.status());
    tokens = std::move(read).value();
  } else {
    Result<std::vector<BlockHash>> parsed = ParseHashList(swap.hashes);
    if (!parsed.ok()) return ReportError(flags, parsed.status());
    hashes = std::move(parsed).value();
  }
  const PromptView prompt = tokens.empty() ? PromptView::Hashes(hashes) : PromptView::Tokens(tokens);
  Result<uint32_t> promoted = client.SwapIn(swap.ns, prompt, swap.start_block);
  if (!promoted.ok()) return ReportError(flags, promoted.status());
  // Where each block of the prompt is now (a block that could not be promoted stays on DISK).
  Result<ExistsResult> where = client.Exists(swap.ns, prompt);
  uint32_t host = 0, disk = 0, absent = 0;
  if (where.ok()) {
    for (Tier t : where->tiers) {
      if (t == Tier::kDisk) {
        ++disk;
      } else if (t == Tier::kNone) {
        ++absent;
      } else {
        ++host;
      }
    }
  }
  const TierState state = StateOf(client, swap.ns);
  if (flags.json) {
    json out{{"namespace", swap.ns}, {"start_block", swap.start_block},
             {"promoted_blocks", *promoted}};
    if (where.ok()) {
      out["prompt_blocks"] = where->tiers.size();
      out["prompt"] = json{{"memory_blocks", host}, {"disk_blocks", disk},
                           {"absent_blocks", absent}};
    }
    if (state.known) out["now"] = StateJson(state);
    Print(out);
    return 0;
  }
  std::cout << "swapped in " << *promoted << " blocks of namespace '" << swap.ns
            << "' from the SSD tier, from block " << swap.start_block << "\n";
  if (where.ok()) {
    std::cout << "the prompt's " << where->tiers.size() << " blocks: " << host << " in memory, "
              << disk << " on the SSD tier, " << absent << " not cached\n";
  }
  PrintState(swap.ns, state);
  return 0;
}

}  // namespace kvpool::ctl
