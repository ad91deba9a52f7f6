// kvpoolctl's commands against kvpool-scheduler (the global scheduler). Like the node commands,
// each prints a table (or JSON with --json) and returns the exit code: 0 success, 1 the
// scheduler answered an error or could not be reached.
#pragma once

#include <cstdint>
#include <string>

#include "client/kvpoolctl/commands.h"
#include "kvpool/scheduler_client.h"

namespace kvpool::ctl {

/// A prompt given on the command line: a token file hashed with the namespace's parameters,
/// or explicit hashes.
struct PromptFlags {
  std::string ns;
  std::string tokens_file;   ///< token ids, or
  std::string hashes;        ///< comma-separated hex hashes
  uint32_t block_tokens = 16;  ///< for hashing tokens
  std::string salt;            ///< for hashing tokens
};

struct RouteFlags {
  PromptFlags prompt;
  std::string role;
  std::string policy;
  std::string candidates;  ///< comma-separated instance ids
  bool explain = false;
};

int RunNodes(SchedulerClient& client, const GlobalFlags& flags);
int RunInstances(SchedulerClient& client, const GlobalFlags& flags);
int RunTree(SchedulerClient& client, const GlobalFlags& flags, uint32_t top);
int RunLookup(SchedulerClient& client, const GlobalFlags& flags, const PromptFlags& prompt);
int RunRoute(SchedulerClient& client, const GlobalFlags& flags, const RouteFlags& route);

}  // namespace kvpool::ctl
