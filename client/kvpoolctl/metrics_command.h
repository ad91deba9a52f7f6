// `kvpoolctl metrics`: scrape a daemon's Prometheus endpoint and summarise it.
#pragma once

#include <map>
#include <string>
#include <string_view>
#include <vector>

#include "client/kvpoolctl/commands.h"
#include "kvpool/status.h"

namespace kvpool::ctl {

/// Reads a bearer token: the first line of `path`, whitespace trimmed. NOT_FOUND if unreadable,
/// INVALID_ARGUMENT if empty.
Result<std::string> ReadBearerToken(const std::string& path);

/// One sample of the Prometheus text format.
struct MetricSample {
  std::string name;
  std::map<std::string, std::string> labels;
  double value = 0;
};

/// Parses the Prometheus text exposition format (comments skipped). INVALID_ARGUMENT naming the
/// first line that is not `name{labels} value [timestamp]`.
Result<std::vector<MetricSample>> ParsePrometheusText(std::string_view text);

/// GET http://`target`/metrics (target host:port, IPv4 or a resolvable name) with a plain HTTP/1.0
/// request over a socket. UNAVAILABLE if the connection fails or times out after `timeout_ms`;
/// INTERNAL for a non-200 answer.
Result<std::string> ScrapeMetrics(const std::string& target, uint32_t timeout_ms);

/// Scrapes `target` and prints the pool, namespaces, RPCs and scheduler sections as tables (all
/// samples as JSON with --json). Exit code 0, or 1 after ReportError.
int RunMetrics(const GlobalFlags& flags, const std::string& target);

}  // namespace kvpool::ctl
