// The commands of kvpoolctl. Each prints a table (or JSON with --json) and returns the
// process exit code: 0 success, 1 the node answered an error or could not be reached.
#pragma once

#include <cstdint>
#include <string>

#include "kvpool/client.h"

namespace kvpool::ctl {

struct GlobalFlags {
  std::string address = "127.0.0.1:7700";
  bool json = false;
  uint32_t timeout_ms = 10'000;
};

struct MatchFlags {
  std::string ns;
  std::string tokens_file;  ///< token ids, or
  std::string hashes;       ///< comma-separated hex hashes
  uint32_t start_block = 0;
  bool show_blocks = false;
};

int RunStatus(Client& client, const GlobalFlags& flags);
int RunNamespaces(Client& client, const GlobalFlags& flags);
int RunCreateNamespace(Client& client, const GlobalFlags& flags, const NamespaceSpec& spec);
int RunDeleteNamespace(Client& client, const GlobalFlags& flags, const std::string& name);
int RunStats(Client& client, const GlobalFlags& flags);
int RunMatch(Client& client, const GlobalFlags& flags, const MatchFlags& match);
int RunEvict(Client& client, const GlobalFlags& flags, const std::string& ns, uint64_t n_blocks);

/// Prints "kvpoolctl: CODE: message" to stderr (or a JSON error object to stdout with --json)
/// and returns 1.
int ReportError(const GlobalFlags& flags, const Status& status);

}  // namespace kvpool::ctl
