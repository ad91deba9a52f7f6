// Small helpers for benchmarks that run a reference tool (ucx_perftest, dd) as a child process
// and read what it printed.
#pragma once

#include <string>
#include <string_view>
#include <vector>

namespace kvpool::bench {

/// `s` without leading and trailing spaces, tabs and carriage returns.
std::string_view Trim(std::string_view s);

/// The whole file at `path`, or "" when it cannot be read.
std::string ReadFile(const std::string& path);

/// The last non-empty line of `text`, trimmed.
std::string LastLine(std::string_view text);

/// `argv` as a shell would read it, without a leading "/usr/bin/env" (the way references are
/// started so that PATH finds them and environment variables can be set).
std::string JoinCommand(const std::vector<std::string>& argv);

}  // namespace kvpool::bench
