#include "client/kvpoolctl/metrics_command.h"

#include <netdb.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cmath>
#include <cstring>
#include <fstream>
#include <iostream>
#include <nlohmann/json.hpp>
#include <set>

#include "common/quote.h"
#include "common/table.h"
#include "common/units.h"

namespace kvpool::ctl {
namespace {

// Owns a socket descriptor.
class Socket {
 public:
  explicit Socket(int fd) : fd_(fd) {}
  ~Socket() {
    if (fd_ >= 0) ::close(fd_);
  }
  Socket(const Socket&) = delete;
  Socket& operator=(const Socket&) = delete;
  int fd() const { return fd_; }

 private:
  int fd_;
};

// Owns a getaddrinfo result.
class AddrInfo {
 public:
  AddrInfo() = default;
  ~AddrInfo() {
    if (info_ != nullptr) freeaddrinfo(info_);
  }
  AddrInfo(const AddrInfo&) = delete;
  AddrInfo& operator=(const AddrInfo&) = delete;
  addrinfo** out() { return &info_; }
  const addrinfo* get() const { return info_; }

 private:
  addrinfo* info_ = nullptr;
};

int RemainingMs(std::chrono::steady_clock::time_point deadline) {
  const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
      deadline - std::chrono::steady_clock::now());
  return static_cast<int>(std::max<int64_t>(0, left.count()));
}

Status WaitFor(int fd, short events, std::chrono::steady_clock::time_point deadline,
               const std::string& target) {
  pollfd p{fd, events, 0};
  const int n = ::poll(&p, 1, RemainingMs(deadline));
  if (n == 0) return UnavailableError("metrics at " + Quote(target) + ": timed out");
  if (n < 0) return UnavailableError("metrics at " + Quote(target) + ": " + std::strerror(errno));
  return Status::Ok();
}

std::string LabelText(const std::map<std::string, std::string>& labels,
                      const std::set<std::string>& skip = {}) {
  std::string out;
  for (const auto& [k, v] : labels) {
    if (skip.count(k) > 0) continue;
    if (!out.empty()) out += ",";
    out += k + "=" + v;
  }
  return out;
}

std::string Number(double v) {
  if (v == std::floor(v) && std::fabs(v) < 1e15) return std::to_string(static_cast<int64_t>(v));
  return FormatFixed(v, 3);
}

double Sum(const std::vector<MetricSample>& samples, std::string_view name,
           const std::map<std::string, std::string>& match = {}) {
  double total = 0;
  for (const MetricSample& s : samples) {
    if (s.name != name) continue;
    bool ok = true;
    for (const auto& [k, v] : match) {
      auto it = s.labels.find(k);
      if (it == s.labels.end() || it->second != v) ok = false;
    }
    if (ok) total += s.value;
  }
  return total;
}

}  // namespace

Result<std::string> ReadBearerToken(const std::string& path) {
  std::ifstream in(path);
  if (!in) return NotFoundError("cannot read token file " + Quote(path));
  std::string line;
  std::getline(in, line);
  const size_t first = line.find_first_not_of(" \t\r");
  const size_t last = line.find_last_not_of(" \t\r");
  if (first == std::string::npos) {
    return InvalidArgumentError("token file " + Quote(path) + " is empty");
  }
  return line.substr(first, last - first + 1);
}

Result<std::vector<MetricSample>> ParsePrometheusText(std::string_view text) {
  std::vector<MetricSample> out;
  size_t line_no = 0;
  while (!text.empty()) {
    const size_t nl = text.find('\n');
    std::string_view line = text.substr(0, nl);
    text = nl == std::string_view::npos ? std::string_view() : text.substr(nl + 1);
    ++line_no;
    if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    if (line.empty() || line.front() == '#') continue;
    auto bad = [&](std::string_view why) {
      return InvalidArgumentError("metrics line " + std::to_string(line_no) + " " +
                                  Quote(line) + ": " + std::string(why));
    };
    MetricSample s;
    size_t i = 0;
    while (i < line.size() && line[i] != '{' && line[i] != ' ') ++i;
    s.name = std::string(line.substr(0, i));
    if (s.name.empty()) return bad("no metric name");
    if (i < line.size() && line[i] == '{') {
      ++i;
      while (i < line.size() && line[i] != '}') {
        const size_t eq = line.find('=', i);
        if (eq == std::string_view::npos || eq + 1 >= line.size() || line[eq + 1] != '"') {
          return bad("a label is not name=\"value\"");
        }
        std::string key(line.substr(i, eq - i));
        std::string value;
        size_t j = eq + 2;
        for (; j < line.size() && line[j] != '"'; ++j) {
          if (line[j] == '\\' && j + 1 < line.size()) {
            ++j;
            value += line[j] == 'n' ? '\n' : line[j];
          } else {
            value += line[j];
          }
        }
        if (j >= line.size()) return bad("unterminated label value");
        s.labels[std::move(key)] = std::move(value);
        i = j + 1;
        if (i < line.size() && line[i] == ',') ++i;
      }
      if (i >= line.size()) return bad("unterminated label set");
      ++i;
    }
    while (i < line.size() && line[i] == ' ') ++i;
    const std::string value_text(line.substr(i, line.find(' ', i) - i));
    if (value_text.empty()) return bad("no value");
    if (value_text == "+Inf") {
      s.value = INFINITY;
    } else if (value_text == "-Inf") {
      s.value = -INFINITY;
    } else if (value_text == "NaN") {
      s.value = NAN;
    } else {
      char* end = nullptr;
      s.value = std::strtod(value_text.c_str(), &end);
      if (end == nullptr || *end != '\0') return bad("the value is not a number");
    }
    out.push_back(std::move(s));
  }
  return out;
}

Result<std::string> ScrapeMetrics(const std::string& target, uint32_t timeout_ms) {
  const auto colon = target.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == target.size()) {
    return InvalidArgumentError("target must be host:port, got " + Quote(target));
  }
  std::string host = target.substr(0, colon);
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  const std::string port = target.substr(colon + 1);
  const auto deadline =
      std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  addrinfo hints{};
  hints.ai_socktype = SOCK_STREAM;
  AddrInfo info;
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, info.out()); rc != 0) {
    return UnavailableError("cannot resolve " + Quote(target) + ": " + gai_strerror(rc));
  }
  const addrinfo* ai = info.get();
  Socket sock(::socket(ai->ai_family, ai->ai_socktype | SOCK_NONBLOCK, ai->ai_protocol));
  if (sock.fd() < 0) return UnavailableError(std::string("socket: ") + std::strerror(errno));
  if (::connect(sock.fd(), ai->ai_addr, ai->ai_addrlen) != 0 && errno != EINPROGRESS) {
    return UnavailableError("cannot connect to " + Quote(target) + ": " + std::strerror(errno));
  }
  KVPOOL_RETURN_IF_ERROR(WaitFor(sock.fd(), POLLOUT, deadline, target));
  int err = 0;
  socklen_t len = sizeof(err);
  getsockopt(sock.fd(), SOL_SOCKET, SO_ERROR, &err, &len);
  if (err != 0) {
    return UnavailableError("cannot connect to " + Quote(target) + ": " + std::strerror(err));
  }
  const std::string request = "GET /metrics HTTP/1.0\r\nHost: " + target +
                              "\r\nAccept: text/plain\r\nConnection: close\r\n\r\n";
  size_t sent = 0;
  while (sent < request.size()) {
    KVPOOL_RETURN_IF_ERROR(WaitFor(sock.fd(), POLLOUT, deadline, target));
    const ssize_t n = ::send(sock.fd(), request.data() + sent, request.size() - sent, MSG_NOSIGNAL);
    if (n < 0 && errno != EAGAIN && errno != EINTR) {
      return UnavailableError("send to " + Quote(target) + ": " + std::strerror(errno));
    }
    if (n > 0) sent += static_cast<size_t>(n);
  }
  std::string response;
  char buf[16384];
  for (;;) {
    KVPOOL_RETURN_IF_ERROR(WaitFor(sock.fd(), POLLIN, deadline, target));
    const ssize_t n = ::recv(sock.fd(), buf, sizeof(buf), 0);
    if (n == 0) break;
    if (n < 0) {
      if (errno == EAGAIN || errno == EINTR) continue;
      return UnavailableError("recv from " + Quote(target) + ": " + std::strerror(errno));
    }
    response.append(buf, static_cast<size_t>(n));
  }
  const size_t header_end = response.find("\r\n\r\n");
  if (header_end == std::string::npos) {
    return InternalError("metrics at " + Quote(target) + ": no HTTP header in the answer");
  }
  const std::string status_line = response.substr(0, response.find("\r\n"));
  if (status_line.find(" 200") == std::string::npos) {
    return InternalError("metrics at " + Quote(target) + " answered " + Quote(status_line));
  }
  return response.substr(header_end + 4);
}

int RunMetrics(const GlobalFlags& flags, const std::string& target) {
  Result<std::string> text = ScrapeMetrics(target, flags.timeout_ms);
  if (!text.ok()) return ReportError(flags, text.status());
  Result<std::vector<MetricSample>> parsed = ParsePrometheusText(*text);
  if (!parsed.ok()) return ReportError(flags, parsed.status());
  const std::vector<MetricSample>& samples = *parsed;
  if (flags.json) {
    nlohmann::json out = nlohmann::json::array();
    for (const MetricSample& s : samples) {
      if (!std::isfinite(s.value)) continue;
      out.push_back({{"name", s.name}, {"labels", s.labels}, {"value", s.value}});
    }
    std::cout << nlohmann::json{{"target", target}, {"samples", out}}.dump(2) << std::endl;
    return 0;
  }

  // Gauges and counters that are neither per namespace nor per RPC: one row each.
  TextTable general({"METRIC", "LABELS", "VALUE"});
  std::set<std::string> namespaces;
  std::set<std::pair<std::string, std::string>> methods;  // (server, method)
  for (const MetricSample& s : samples) {
    if (s.name.rfind("kvpool_", 0) != 0) continue;
    if (s.name.rfind("kvpool_namespace_", 0) == 0) {
      namespaces.insert(s.labels.count("namespace") ? s.labels.at("namespace") : "");
      continue;
    }
    if (s.name.rfind("kvpool_rpc_duration_seconds", 0) == 0) continue;
    if (s.name == "kvpool_rpc_requests_total") {
      methods.insert({s.labels.count("server") ? s.labels.at("server") : "",
                      s.labels.count("method") ? s.labels.at("method") : ""});
      continue;
    }
    if (s.name.size() > 7 && (s.name.ends_with("_bucket"))) continue;
    const bool bytes = s.name.ends_with("_bytes");
    general.AddRow({s.name, LabelText(s.labels),
                    bytes ? FormatBytes(static_cast<uint64_t>(s.value)) : Number(s.value)});
  }
  std::cout << "metrics of " << target << "\n\n";
  general.Print(std::cout);

  if (!namespaces.empty()) {
    TextTable ns_table({"NAMESPACE", "CACHED", "HITS", "MISSES", "HIT RATE", "INSERTED",
                        "EVICTED", "USED"});
    for (const std::string& ns : namespaces) {
      const std::map<std::string, std::string> m{{"namespace", ns}};
      const double hits = Sum(samples, "kvpool_namespace_hit_blocks_total", m);
      const double misses = Sum(samples, "kvpool_namespace_miss_blocks_total", m);
      ns_table.AddRow(
          {ns, Number(Sum(samples, "kvpool_namespace_cached_blocks", m)), Number(hits),
           Number(misses),
           hits + misses > 0 ? FormatFixed(100.0 * hits / (hits + misses), 1) + " %" : "-",
           Number(Sum(samples, "kvpool_namespace_inserted_blocks_total", m)),
           Number(Sum(samples, "kvpool_namespace_evicted_blocks_total", m)),
           FormatBytes(static_cast<uint64_t>(Sum(samples, "kvpool_namespace_used_bytes", m)))});
    }
    std::cout << "\nnamespaces (blocks)\n";
    ns_table.Print(std::cout);
  }
  if (!methods.empty()) {
    TextTable rpc_table({"SERVER", "METHOD", "CALLS", "ERRORS", "MEAN MS"});
    for (const auto& [server, method] : methods) {
      const std::map<std::string, std::string> m{{"server", server}, {"method", method}};
      const double calls = Sum(samples, "kvpool_rpc_requests_total", m);
      const double ok = Sum(samples, "kvpool_rpc_requests_total",
                            {{"server", server}, {"method", method}, {"code", "OK"}});
      const double count = Sum(samples, "kvpool_rpc_duration_seconds_count", m);
      const double sum = Sum(samples, "kvpool_rpc_duration_seconds_sum", m);
      rpc_table.AddRow({server, method, Number(calls), Number(calls - ok),
                        count > 0 ? FormatFixed(1000.0 * sum / count, 3) : "-"});
    }
    std::cout << "\nrpc\n";
    rpc_table.Print(std::cout);
  }
  return 0;
}

}  // namespace kvpool::ctl
