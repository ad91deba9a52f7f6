// kvpoolctl drain / undrain: take a node out of service for maintenance and bring it back
// (docs/operations.md "Drain a node"). Admin methods: give the admin token with --token-file.
#pragma once

#include <cstdint>
#include <string>

#include "client/kvpoolctl/commands.h"
#include "kvpool/client.h"

namespace CLI {
class App;
}  // namespace CLI

namespace kvpool::ctl {

struct DrainFlags {
  /// Host blocks demoted per Drain call (each call holds the node's pool lock while it writes
  /// them to the SSD tier, so calls stay short). Default: 512.
  uint64_t batch_blocks = 512;
  /// How long to keep going while blocks pinned by leases (or allocated and not yet inserted)
  /// stay in memory, in ms; 0: do not wait for them. Default: 30000.
  uint32_t wait_ms = 30'000;
  /// Only mark the node draining; demote nothing. Default: false.
  bool no_demote = false;
  /// Before demoting, copy the node's cached blocks to this peer node id. Default: none.
  std::string handoff_to;
  /// Time each chain's transfer may take, in ms; 0: the node's default. Default: 0.
  uint32_t handoff_timeout_ms = 0;
};

/// Adds the `drain` and `undrain` subcommands to `app`; returns them through the pointers.
void AddDrainCommands(CLI::App& app, DrainFlags* flags, CLI::App** drain, CLI::App** undrain);

/// Marks the node draining, then demotes its host blocks to its SSD tier batch by batch,
/// printing progress to stderr and a summary to stdout (JSON with --json). Exit code 0 when the
/// node is draining and nothing movable is left in memory; 1 on an error; 3 when blocks pinned
/// by leases are still in memory after --wait-ms (the node is draining all the same).
int RunDrain(Client& client, const GlobalFlags& flags, const DrainFlags& drain);
/// Ends draining. 0 on success, 1 on an error.
int RunUndrain(Client& client, const GlobalFlags& flags);

}  // namespace kvpool::ctl
