#include "tests/integration/daemon_fixture.h"

#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <random>
#include <sstream>
#include <thread>

#include <nlohmann/json.hpp>

extern char** environ;

namespace kvpool::itest {

// ---- TempDir -----------------------------------------------------------------------------------

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern =
      std::string(base != nullptr && *base != '\0' ? base : "/tmp") + "/kvpool-it-XXXXXX";
  std::vector<char> buf(pattern.begin(), pattern.end());
  buf.push_back('\0');
  REQUIRE(::mkdtemp(buf.data()) != nullptr);
  path_ = buf.data();
}

TempDir::~TempDir() {
  // KVPOOL_IT_KEEP_DIRS=1 keeps them (daemon logs) for a look after a failure.
  const char* keep = std::getenv("KVPOOL_IT_KEEP_DIRS");
  if (keep != nullptr && std::string_view(keep) == "1") return;
  std::error_code ec;
  std::filesystem::remove_all(path_, ec);  // best effort: a destructor must not throw
}

std::string TempDir::File(std::string_view name) const { return path_ + "/" + std::string(name); }

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

void WriteFile(const std::string& path, std::string_view text) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out << text;
  out.close();
  REQUIRE(out.good());
}

// ---- TestDaemon --------------------------------------------------------------------------------

TestDaemon::TestDaemon(DaemonConfig config) {
  launch::LocalKvpooldOptions options;
  options.binary = kKvpooldPath;
  options.work_dir = dir_.path();
  options.capacity = config.capacity;
  options.extra_args = std::move(config.extra_args);
  Result<std::unique_ptr<launch::LocalKvpoold>> started = launch::LocalKvpoold::Start(options);
  if (!started.ok()) {
    FAIL("kvpoold did not start: " << started.status().ToString() << "\nlog:\n"
                                   << ReadFile(dir_.File("kvpoold.log")));
  }
  daemon_ = std::move(started).value();
  client_ = KVPOOL_IT_VALUE(Client::Connect(daemon_->address()));
}

TestDaemon::~TestDaemon() {
  client_.reset();
  daemon_.reset();  // SIGTERM, then SIGKILL after 5 s
}

std::unique_ptr<Client> TestDaemon::Connect(const ClientOptions& options) const {
  return KVPOOL_IT_VALUE(Client::Connect(daemon_->address(), options));
}

// ---- ChildProcess ------------------------------------------------------------------------------

ChildProcess::ChildProcess(const std::vector<std::string>& argv, const std::string& stdout_path,
                           const std::string& stderr_path,
                           const std::vector<std::string>& extra_env) {
  REQUIRE(!argv.empty());
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  std::vector<char*> env;
  for (char** e = environ; *e != nullptr; ++e) env.push_back(*e);
  for (const std::string& e : extra_env) env.push_back(const_cast<char*>(e.c_str()));
  env.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, stdout_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  posix_spawn_file_actions_addopen(&actions, STDERR_FILENO, stderr_path.c_str(),
                                   O_WRONLY | O_CREAT | O_TRUNC, 0644);
  // The test binary may block signals in some threads; children start with none blocked.
  posix_spawnattr_t attr;
  posix_spawnattr_init(&attr);
  sigset_t none;
  sigemptyset(&none);
  posix_spawnattr_setsigmask(&attr, &none);
  posix_spawnattr_setflags(&attr, POSIX_SPAWN_SETSIGMASK);
  const int rc = posix_spawn(&pid_, args[0], &actions, &attr, args.data(), env.data());
  posix_spawnattr_destroy(&attr);
  posix_spawn_file_actions_destroy(&actions);
  INFO("posix_spawn " << argv[0] << ": " << std::strerror(rc));
  REQUIRE(rc == 0);
}

ChildProcess::~ChildProcess() {
  if (reaped_ || pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  int status = 0;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

std::optional<int> ChildProcess::Wait(int timeout_ms) {
  if (reaped_) return status_;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    int status = 0;
    const pid_t r = ::waitpid(pid_, &status, WNOHANG);
    if (r == pid_) {
      reaped_ = true;
      status_ = status;
      return status_;
    }
    if (std::chrono::steady_clock::now() >= deadline) return std::nullopt;
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
}

void ChildProcess::Kill(int signal_number) {
  if (!reaped_) ::kill(pid_, signal_number);
}

// ---- RefusingPort ------------------------------------------------------------------------------

RefusingPort::RefusingPort() {
  fd_ = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd_ >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t len = sizeof(addr);
  const bool bound = ::bind(fd_, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0 &&
                     ::getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
  if (!bound) ::close(fd_);
  REQUIRE(bound);
  port_ = ntohs(addr.sin_port);
}

RefusingPort::~RefusingPort() { ::close(fd_); }

// ---- Commands ----------------------------------------------------------------------------------

CommandResult RunCommand(const std::vector<std::string>& argv, int timeout_ms) {
  TempDir dir;
  const std::string out_path = dir.File("stdout");
  const std::string err_path = dir.File("stderr");
  CommandResult result;
  const auto start = std::chrono::steady_clock::now();
  {
    ChildProcess child(argv, out_path, err_path);
    std::optional<int> status = child.Wait(timeout_ms);
    if (!status.has_value()) {
      result.timed_out = true;
      child.Kill(SIGKILL);
      status = child.Wait(5'000);
    }
    if (status.has_value() && WIFEXITED(*status)) result.exit_code = WEXITSTATUS(*status);
  }
  result.wall_ms =
      std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - start).count();
  result.out = ReadFile(out_path);
  result.err = ReadFile(err_path);
  return result;
}

CommandResult RunKvpoolctl(const std::string& address, const std::vector<std::string>& args) {
  std::vector<std::string> argv = {kKvpoolctlPath, "-a", address, "--timeout-ms", "5000"};
  argv.insert(argv.end(), args.begin(), args.end());
  CommandResult r = RunCommand(argv);
  UNSCOPED_INFO("kvpoolctl exit=" << r.exit_code << "\nstdout:\n"
                                  << r.out << "\nstderr:\n"
                                  << r.err);
  return r;
}

// ---- Small helpers -----------------------------------------------------------------------------

int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  REQUIRE(fd >= 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  REQUIRE(::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) == 0);
  socklen_t len = sizeof(addr);
  REQUIRE(::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0);
  ::close(fd);
  return ntohs(addr.sin_port);
}

MetricSamples Scrape(const std::string& target) {
  const CommandResult r = RunKvpoolctl("127.0.0.1:1", {"metrics", "--target", target, "--json"});
  INFO("kvpoolctl metrics: " << r.out << r.err);
  REQUIRE(r.exit_code == 0);
  const nlohmann::json doc = nlohmann::json::parse(r.out);
  MetricSamples out;
  for (const nlohmann::json& s : doc.at("samples")) {
    out[{s.at("name").get<std::string>(),
         s.at("labels").get<std::map<std::string, std::string>>()}] = s.at("value").get<double>();
  }
  return out;
}

double Value(const MetricSamples& samples, const std::string& name,
             const std::map<std::string, std::string>& labels) {
  auto it = samples.find({name, labels});
  return it == samples.end() ? -1 : it->second;
}

bool PollUntil(int timeout_ms, const std::function<bool()>& done) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
  for (;;) {
    if (done()) return true;
    if (std::chrono::steady_clock::now() >= deadline) return done();
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::vector<uint8_t> RandomBytes(size_t n, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint8_t> out(n);
  size_t i = 0;
  for (; i + 8 <= n; i += 8) {
    const uint64_t v = rng();
    std::memcpy(out.data() + i, &v, 8);
  }
  for (; i < n; ++i) out[i] = static_cast<uint8_t>(rng());
  return out;
}

std::vector<uint32_t> MakeTokens(size_t n, uint32_t seed) {
  std::vector<uint32_t> tokens(n);
  uint64_t x = 0x9e3779b97f4a7c15ull * (seed + 1);
  for (uint32_t& t : tokens) {
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    t = static_cast<uint32_t>(x % 128'000);  // a plausible vocabulary
  }
  return tokens;
}

std::vector<uint32_t> Concat(std::vector<uint32_t> a, const std::vector<uint32_t>& b) {
  a.insert(a.end(), b.begin(), b.end());
  return a;
}

std::vector<uint32_t> Head(const std::vector<uint32_t>& v, size_t n) {
  REQUIRE(n <= v.size());
  return std::vector<uint32_t>(v.begin(), v.begin() + static_cast<std::ptrdiff_t>(n));
}

std::vector<BlockHandle> HandlesOf(const Allocation& alloc) { return HandlesOf(alloc.blocks); }

std::vector<BlockHandle> HandlesOf(const std::vector<BlockLocation>& blocks) {
  std::vector<BlockHandle> out;
  out.reserve(blocks.size());
  for (const BlockLocation& b : blocks) out.push_back(b.handle);
  return out;
}

std::ostream& operator<<(std::ostream& os, const Usage& u) {
  return os << "{node_used_bytes=" << u.node_used_bytes << " active_leases=" << u.active_leases
            << " allocated_blocks=" << u.allocated_blocks << " cached_blocks=" << u.cached_blocks
            << " pinned_blocks=" << u.pinned_blocks << " used_bytes=" << u.used_bytes << "}";
}

NamespaceInfo NamespaceFromStats(Client& client, std::string_view ns) {
  PoolStats stats = KVPOOL_IT_VALUE(client.GetStats());
  for (NamespaceInfo& info : stats.namespaces) {
    if (info.spec.name == ns) return std::move(info);
  }
  FAIL("namespace '" << ns << "' is not in GetStats");
  return {};
}

Usage UsageOf(Client& client, std::string_view ns) {
  const PoolStats stats = KVPOOL_IT_VALUE(client.GetStats());
  Usage u;
  u.node_used_bytes = stats.used_bytes;
  u.active_leases = stats.active_leases;
  if (ns.empty()) return u;
  bool found = false;
  for (const NamespaceInfo& info : stats.namespaces) {
    if (info.spec.name != ns) continue;
    found = true;
    u.allocated_blocks = info.stats.allocated_blocks;
    u.cached_blocks = info.stats.cached_blocks;
    u.pinned_blocks = info.stats.pinned_blocks;
    u.used_bytes = info.stats.used_bytes;
  }
  INFO("namespace " << ns);
  REQUIRE(found);
  return u;
}

TestScheduler::TestScheduler(const TempDir& dir, int port, const std::string& tag) {
  const std::string port_file = dir.File("scheduler-" + tag + ".port");
  child_ = std::make_unique<ChildProcess>(
      std::vector<std::string>{kSchedulerPath, "--listen=127.0.0.1:" + std::to_string(port),
                               "--port-file=" + port_file,
                               "--heartbeat-timeout-ms=" + std::to_string(kHeartbeatTimeoutMs),
                               "--expire-interval-ms=100", "--log-level=debug"},
      dir.File("scheduler-" + tag + ".out"), dir.File("scheduler-" + tag + ".err"));
  log_path_ = dir.File("scheduler-" + tag + ".err");
  const bool up = PollUntil(15'000, [&] { return !ReadFile(port_file).empty(); });
  INFO("scheduler log:\n" << ReadFile(log_path_));
  REQUIRE(up);
  port_ = std::stoi(ReadFile(port_file));
  client_ = KVPOOL_IT_VALUE(SchedulerClient::Connect(address()));
}

TestScheduler::~TestScheduler() = default;

void TestScheduler::Kill() {
  client_.reset();
  child_->Kill(SIGKILL);
  REQUIRE(child_->Wait(5'000).has_value());
}

DaemonConfig NodeConfig(const std::string& scheduler, const std::string& node_id) {
  DaemonConfig config;
  config.extra_args = {"--scheduler=" + scheduler, "--node-id=" + node_id,
                       "--scheduler-heartbeat-ms=200"};
  return config;
}

}  // namespace kvpool::itest
