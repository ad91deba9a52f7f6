#include "bench/ucx_perftest.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <charconv>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <memory>
#include <optional>
#include <sstream>
#include <thread>

#include "bench/child_output.h"
#include "common/subprocess.h"

namespace kvpool::bench {
namespace {

// The eight numbers print_progress writes, in its order.
constexpr size_t kResultFields = 8;

std::optional<double> ParseNumber(std::string_view token) {
  token = Trim(token);
  if (token.empty()) return std::nullopt;
  double value = 0;
  const auto [ptr, ec] = std::from_chars(token.data(), token.data() + token.size(), value);
  if (ec != std::errc() || ptr != token.data() + token.size()) return std::nullopt;
  return value;
}

// Splits on `separator`, or on runs of blanks when separator is ' '.
std::vector<std::string_view> Split(std::string_view line, char separator) {
  std::vector<std::string_view> out;
  size_t pos = 0;
  while (pos <= line.size()) {
    if (separator == ' ') {
      pos = line.find_first_not_of(" \t", pos);
      if (pos == std::string_view::npos) break;
    }
    size_t end = separator == ' ' ? line.find_first_of(" \t", pos) : line.find(separator, pos);
    if (end == std::string_view::npos) end = line.size();
    out.push_back(line.substr(pos, end - pos));
    pos = end + 1;
  }
  return out;
}

// One result line, or nothing for headers, borders and other text.
std::optional<PerftestResult> ParseResultLine(std::string_view line) {
  line = Trim(line);
  bool final = true;
  // Progress lines start with "[thread N]" (UCX 1.13); the plain table's last line with "Final:".
  if (line.starts_with("[thread")) {
    const auto close = line.find(']');
    if (close == std::string_view::npos) return std::nullopt;
    line = Trim(line.substr(close + 1));
    final = false;
  } else if (line.starts_with("Final:")) {
    line = Trim(line.substr(6));
  }
  // CSV (-v) lines may start with batch-file test names: the numbers are the last eight fields.
  std::vector<std::string_view> fields =
      Split(line, line.find(',') != std::string_view::npos ? ',' : ' ');
  if (fields.size() < kResultFields) return std::nullopt;
  double v[kResultFields];
  for (size_t i = 0; i < kResultFields; ++i) {
    const auto parsed = ParseNumber(fields[fields.size() - kResultFields + i]);
    if (!parsed.has_value()) return std::nullopt;
    v[i] = *parsed;
  }
  if (v[0] < 0) return std::nullopt;
  PerftestResult r;
  r.iterations = static_cast<uint64_t>(v[0]);
  r.typical_latency_us = v[1];
  r.average_latency_us = v[2];
  r.overall_latency_us = v[3];
  r.average_bandwidth_mib_per_s = v[4];
  r.overall_bandwidth_mib_per_s = v[5];
  r.average_message_rate = v[6];
  r.overall_message_rate = v[7];
  r.final = final;
  return r;
}

// A port nobody listens on now (the kernel's choice for port 0). The server binds it a moment
// later; the caller retries with another port if that races with someone else.
Result<int> PickFreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return InternalError("socket() failed picking a port");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_ANY);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
    port = ntohs(addr.sin_port);
  }
  ::close(fd);
  if (port <= 0) return InternalError("could not bind port 0 to pick a free port");
  return port;
}

// True when some socket on this host listens on TCP `port` (from /proc/net/tcp{,6}). Probing
// with connect() is not an option: ucx_perftest's server takes the first connection as its peer.
bool Listening(int port) {
  char hex_port[8];
  std::snprintf(hex_port, sizeof(hex_port), ":%04X", port);
  for (const char* table : {"/proc/net/tcp", "/proc/net/tcp6"}) {
    std::ifstream in(table);
    std::string line;
    std::getline(in, line);  // header
    while (std::getline(in, line)) {
      const auto fields = Split(line, ' ');
      // sl local_address rem_address st ...; st 0A is LISTEN.
      if (fields.size() > 3 && fields[1].ends_with(hex_port) && fields[3] == "0A") return true;
    }
  }
  return false;
}

}  // namespace

Result<PerftestResult> ParsePerftestOutput(std::string_view output) {
  std::optional<PerftestResult> last_final, last_progress;
  size_t pos = 0;
  while (pos < output.size()) {
    size_t end = output.find('\n', pos);
    if (end == std::string_view::npos) end = output.size();
    if (auto r = ParseResultLine(output.substr(pos, end - pos))) {
      (r->final ? last_final : last_progress) = *r;
    }
    pos = end + 1;
  }
  if (last_final.has_value()) return *last_final;
  if (last_progress.has_value()) return *last_progress;
  return NotFoundError("no result line in ucx_perftest output (" +
                       std::to_string(output.size()) + " bytes)");
}

Result<PerftestOutcome> RunPerftest(const PerftestRun& run) {
  if (run.test.empty() || run.size_bytes == 0 || run.tls.empty() || run.work_dir.empty()) {
    return InvalidArgumentError("ucx_perftest run needs a test, a size, a transport and a "
                                "work_dir (test '" + run.test + "', size " +
                                std::to_string(run.size_bytes) + ", tls '" + run.tls + "')");
  }
  if (::access(run.binary.c_str(), X_OK) != 0) {
    return NotFoundError("ucx_perftest not found or not executable at '" + run.binary + "'");
  }
  std::error_code ec;
  std::filesystem::create_directories(run.work_dir, ec);
  if (ec) return InternalError("cannot create '" + run.work_dir + "': " + ec.message());
  const std::string stem = run.work_dir + "/" + run.tls + "-" + run.test + "-" +
                           std::to_string(run.size_bytes);
  const std::string server_log = stem + "-server.log";
  const std::string client_log = stem + "-client.log";
  const std::string env_tls = "UCX_TLS=" + run.tls;

  constexpr int kPortAttempts = 3;
  constexpr int kListenTimeoutMs = 10'000;
  for (int attempt = 1; attempt <= kPortAttempts; ++attempt) {
    KVPOOL_ASSIGN_OR_RETURN(const int port, PickFreePort());
    std::filesystem::remove(server_log, ec);
    std::filesystem::remove(client_log, ec);
    const std::vector<std::string> server_argv = {"/usr/bin/env", env_tls, run.binary, "-p",
                                                  std::to_string(port)};
    std::vector<std::string> client_argv = {
        "/usr/bin/env", env_tls, run.binary, "127.0.0.1", "-p", std::to_string(port),
        "-t", run.test, "-s", std::to_string(run.size_bytes),
        "-n", std::to_string(run.iterations), "-w", std::to_string(run.warmup_iterations)};
    if (run.max_outstanding > 0) {
      client_argv.insert(client_argv.end(), {"-O", std::to_string(run.max_outstanding)});
    }
    client_argv.push_back("-v");  // CSV: one line per report, easy to parse

    // Declared first, destroyed last: the destructor stops the server (SIGTERM, then SIGKILL)
    // on every path out of this scope.
    KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> server,
                            Subprocess::Start(server_argv, server_log));
    const auto deadline =
        std::chrono::steady_clock::now() + std::chrono::milliseconds(kListenTimeoutMs);
    bool listening = false;
    while (std::chrono::steady_clock::now() < deadline) {
      if (Listening(port)) {
        listening = true;
        break;
      }
      if (!server->Running()) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(5));
    }
    if (!listening) {
      if (!server->Running() && attempt < kPortAttempts) continue;  // lost the port: retry
      return UnavailableError("ucx_perftest server did not listen on port " +
                              std::to_string(port) + " (output in " + server_log + ": '" +
                              LastLine(ReadFile(server_log)) + "')");
    }

    PerftestOutcome outcome;
    outcome.server_command = JoinCommand(server_argv);
    outcome.client_command = JoinCommand(client_argv);
    int client_status = 0;
    {
      KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<Subprocess> client,
                              Subprocess::Start(client_argv, client_log));
      Result<int> waited = client->Wait(run.timeout_ms);
      if (!waited.ok()) {
        outcome.timed_out = true;
        client->Signal(SIGTERM);
        waited = client->Wait(2'000);
        if (!waited.ok()) {
          client->Signal(SIGKILL);
          waited = client->Wait(2'000);
        }
      }
      client_status = waited.ok() ? *waited : -1;
    }
    // The server ends by itself after a complete run; give it a moment before the destructor
    // stops it.
    if (!outcome.timed_out) server->Wait(2'000).status().IgnoreError();

    const std::string output = ReadFile(client_log);
    const bool exited_ok = WIFEXITED(client_status) && WEXITSTATUS(client_status) == 0;
    if (!outcome.timed_out && !exited_ok) {
      return UnavailableError("ucx_perftest client failed (" + outcome.client_command +
                              "; output in " + client_log + ": '" + LastLine(output) + "')");
    }
    Result<PerftestResult> parsed = ParsePerftestOutput(output);
    if (!parsed.ok()) {
      return UnavailableError("ucx_perftest client printed no result" +
                              std::string(outcome.timed_out ? " before it was stopped" : "") +
                              " (" + outcome.client_command + "; output in " + client_log +
                              ": '" + LastLine(output) + "')");
    }
    outcome.result = *parsed;
    return outcome;
  }
  return UnavailableError("ucx_perftest server could not get a port");
}

}  // namespace kvpool::bench
