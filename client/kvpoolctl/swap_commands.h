// kvpoolctl swap-out / swap-in: move a namespace's blocks between a node's host memory and its
// SSD tier by hand (MemServe's SwapOut / SwapIn; docs/storage.md).
#pragma once

#include <cstdint>
#include <string>

#include "client/kvpoolctl/commands.h"
#include "kvpool/client.h"

namespace CLI {
class App;
}  // namespace CLI

namespace kvpool::ctl {

struct SwapFlags {
  /// swap-out and swap-in: the namespace.
  std::string ns;
  /// swap-out: most host blocks to demote (the coldest unleased ones, deepest first).
  uint64_t n_blocks = 0;
  /// swap-in: the prompt, as token ids in a file or as comma-separated hex hashes.
  std::string tokens_file;
  std::string hashes;
  /// swap-in: first block of the prompt to promote.
  uint32_t start_block = 0;
};

/// Adds the `swap-out` and `swap-in` subcommands to `app`; returns them through the pointers.
void AddSwapCommands(CLI::App& app, SwapFlags* flags, CLI::App** swap_out, CLI::App** swap_in);

/// Demotes up to flags.n_blocks of the namespace's coldest unleased host blocks to the node's
/// SSD tier and prints how many moved and what the namespace holds in each tier now (JSON with
/// --json). 0 on success, 1 on an error (FAILED_PRECONDITION when the node has no SSD tier).
int RunSwapOut(Client& client, const GlobalFlags& flags, const SwapFlags& swap);
/// Promotes the prompt's DISK blocks from flags.start_block on back into host memory and prints
/// how many moved and where each of the prompt's blocks is now. 0 on success, 1 on an error.
int RunSwapIn(Client& client, const GlobalFlags& flags, const SwapFlags& swap);

}  // namespace kvpool::ctl
