#include "bench/soak/soak.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <iostream>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <span>
#include <sstream>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "bench/cluster_command.h"
#include "bench/soak/latency_histogram.h"
#include "bench/soak/proc_sampler.h"
#include "common/table.h"
#include "common/units.h"
#include "kvpool/block_hash.h"
#include "kvpool/client.h"
#include "kvpool/data_plane.h"
#include "kvpool/scheduler_client.h"
#include "launch/local_cluster.h"

namespace kvpool::bench {
namespace {

using Clock = std::chrono::steady_clock;
constexpr const char* kNs = "soak";
// Blocks shared by the 8 prompts of a group.
constexpr uint32_t kPrefixBlocks = 4;
constexpr uint32_t kGroupSize = 8;
// Every call waits at most this long; a longer wait would be a hang, counted as an error.
constexpr uint32_t kCallTimeoutMs = 10'000;

double SecondsSince(Clock::time_point t0) {
  return std::chrono::duration<double>(Clock::now() - t0).count();
}

struct Prompt {
  std::vector<uint32_t> tokens;
  std::vector<BlockHash> hashes;
};

// Token ids for `blocks` blocks, deterministic in `seed`.
std::vector<uint32_t> Tokens(uint32_t blocks, uint32_t block_tokens, uint64_t seed) {
  std::mt19937_64 rng(seed);
  std::vector<uint32_t> out(static_cast<size_t>(blocks) * block_tokens);
  for (uint32_t& t : out) t = static_cast<uint32_t>(rng() % 50'000);
  return out;
}

std::vector<Prompt> MakePrompts(const SoakOptions& o) {
  const BlockHasher hasher(kNs, "", o.block_tokens);
  std::mt19937_64 rng(o.seed);
  std::vector<Prompt> prompts(o.prompts);
  for (uint32_t p = 0; p < o.prompts; ++p) {
    const uint32_t tail = 1 + static_cast<uint32_t>(rng() % (o.max_prompt_blocks - kPrefixBlocks));
    prompts[p].tokens = Tokens(kPrefixBlocks, o.block_tokens, o.seed * 1'000'003 + p / kGroupSize);
    const std::vector<uint32_t> rest = Tokens(tail, o.block_tokens, o.seed * 7'919 + 1'000'000 + p);
    prompts[p].tokens.insert(prompts[p].tokens.end(), rest.begin(), rest.end());
    prompts[p].hashes = hasher.HashPrompt(prompts[p].tokens);
  }
  return prompts;
}

// Expected: a full pool answers RESOURCE_EXHAUSTED while its blocks are pinned or allocated.
bool Expected(StatusCode code) { return code == StatusCode::kResourceExhausted; }

struct OpStats {
  uint64_t count = 0;
  LatencyHistogram latency;
  std::map<StatusCode, uint64_t> errors;
};

struct WorkerStats {
  std::map<std::string, OpStats> ops;
  uint64_t corrupt_blocks = 0;
  uint64_t unexpected = 0;
  std::string first_unexpected;

  void Merge(const WorkerStats& other) {
    for (const auto& [name, s] : other.ops) {
      OpStats& mine = ops[name];
      mine.count += s.count;
      mine.latency.Merge(s.latency);
      for (const auto& [code, n] : s.errors) mine.errors[code] += n;
    }
    corrupt_blocks += other.corrupt_blocks;
    unexpected += other.unexpected;
    if (first_unexpected.empty()) first_unexpected = other.first_unexpected;
  }
};

// Counters the progress line reads while the workers run. Relaxed: they are only statistics.
struct LiveCounters {
  std::atomic<uint64_t> ops{0};
  std::atomic<uint64_t> unexpected{0};
};

std::vector<BlockHandle> HandlesOf(const std::vector<BlockLocation>& blocks) {
  std::vector<BlockHandle> out;
  out.reserve(blocks.size());
  for (const BlockLocation& b : blocks) out.push_back(b.handle);
  return out;
}

// One client thread: a Client to every node, a DataPlane to its home node, a SchedulerClient.
// Not thread-safe; owned by its thread.
class Worker {
 public:
  Worker(const SoakOptions& options, const std::vector<Prompt>& prompts, size_t index,
         LiveCounters& live)
      : options_(options), prompts_(prompts), rng_(options.seed * 31 + index), live_(live) {}

  Status Connect(const launch::ClusterState& cluster, size_t home) {
    home_ = home;
    ClientOptions copts;
    copts.timeout_ms = kCallTimeoutMs;
    for (const launch::ClusterMember& n : cluster.nodes) {
      KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<Client> c, Client::Connect(n.address, copts));
      clients_.push_back(std::move(c));
      node_ids_.push_back(n.id);
    }
    KVPOOL_ASSIGN_OR_RETURN(sched_, SchedulerClient::Connect(cluster.scheduler.address, copts));
    DataPlaneOptions dopts;
    dopts.tls = options_.ucx_tls;
    dopts.transfer_timeout_ms = kCallTimeoutMs;
    KVPOOL_ASSIGN_OR_RETURN(dp_, DataPlane::Connect(*clients_[home_], dopts));
    buffer_.assign(static_cast<size_t>(options_.max_prompt_blocks) * options_.block_bytes, 0);
    KVPOOL_ASSIGN_OR_RETURN(region_, dp_->RegisterMemory(buffer_.data(), buffer_.size()));
    for (uint32_t i = 0; i < options_.max_prompt_blocks; ++i) {
      offsets_.push_back(uint64_t{i} * options_.block_bytes);
    }
    return Status::Ok();
  }

  void Run(const std::atomic<bool>& stop) {
    // Weights of the operation mix, in percent.
    static constexpr std::pair<int, void (Worker::*)(const Prompt&)> kMix[] = {
        {20, &Worker::PutInsert}, {30, &Worker::MatchGet},   {8, &Worker::AllocFree},
        {6, &Worker::ExistsOp},   {4, &Worker::DeleteOp},    {6, &Worker::TransferOp},
        {6, &Worker::TransferWithInsertOp}, {14, &Worker::RouteOp}, {6, &Worker::LookupOp}};
    while (!stop.load(std::memory_order_relaxed)) {
      const Prompt& prompt = prompts_[rng_() % prompts_.size()];
      int pick = static_cast<int>(rng_() % 100);
      for (const auto& [weight, op] : kMix) {
        if (pick < weight) {
          (this->*op)(prompt);
          break;
        }
        pick -= weight;
      }
    }
  }

  const WorkerStats& stats() const { return stats_; }

 private:
  // Runs `call`, records its latency and status under `op`, returns its result.
  template <typename F>
  auto Timed(const char* op, F&& call) {
    const auto t0 = Clock::now();
    auto result = call();
    const double us = std::chrono::duration<double, std::micro>(Clock::now() - t0).count();
    OpStats& s = stats_.ops[op];
    ++s.count;
    s.latency.Add(us);
    const Status& st = internal::AsStatus(result);
    if (!st.ok()) {
      ++s.errors[st.code()];
      if (!Expected(st.code())) {
        ++stats_.unexpected;
        live_.unexpected.fetch_add(1, std::memory_order_relaxed);
        if (stats_.first_unexpected.empty()) {
          stats_.first_unexpected = std::string(op) + ": " + st.ToString();
        }
      }
    }
    live_.ops.fetch_add(1, std::memory_order_relaxed);
    return result;
  }

  Client& home() { return *clients_[home_]; }
  size_t OtherNode() {
    const size_t step = 1 + rng_() % (clients_.size() - 1);
    return (home_ + step) % clients_.size();
  }
  std::span<const uint64_t> Offsets(size_t n) const { return {offsets_.data(), n}; }
  uint8_t* BlockBytes(size_t i) { return buffer_.data() + i * options_.block_bytes; }

  // Each block's first 16 bytes are its hash, so a Get can tell a right block from a wrong one.
  void StampBlocks(const Prompt& p, size_t n) {
    for (size_t i = 0; i < n; ++i) std::memcpy(BlockBytes(i), &p.hashes[i], sizeof(BlockHash));
  }
  void CheckBlocks(const Prompt& p, size_t n) {
    for (size_t i = 0; i < n; ++i) {
      if (std::memcmp(BlockBytes(i), &p.hashes[i], sizeof(BlockHash)) != 0) {
        ++stats_.corrupt_blocks;
        ++stats_.unexpected;
        live_.unexpected.fetch_add(1, std::memory_order_relaxed);
        if (stats_.first_unexpected.empty()) {
          stats_.first_unexpected = "get: block " + std::to_string(i) + " holds other bytes";
        }
      }
    }
  }

  Status PutAndWait(const std::vector<BlockLocation>& blocks) {
    KVPOOL_ASSIGN_OR_RETURN(TransferHandle h, dp_->Put(region_, Offsets(blocks.size()), blocks));
    return h.Wait(kCallTimeoutMs);
  }
  Status GetAndWait(const std::vector<BlockLocation>& blocks) {
    KVPOOL_ASSIGN_OR_RETURN(TransferHandle h, dp_->Get(blocks, region_, Offsets(blocks.size())));
    return h.Wait(kCallTimeoutMs);
  }

  // A read lease on the longest cached prefix of `p` on the home node; nullopt when none.
  std::optional<MatchResult> MatchLeased(const Prompt& p) {
    Result<MatchResult> m =
        Timed("match", [&] { return home().Match(kNs, PromptView::Tokens(p.tokens), 0, true); });
    if (!m.ok() || m->matched_blocks == 0) return std::nullopt;
    return std::move(m).value();
  }
  void Release(Client& c, uint64_t lease_id) {
    if (lease_id != 0) Timed("release", [&] { return c.Release(lease_id); }).status().IgnoreError();
  }

  void PutInsert(const Prompt& p) {
    const uint32_t n = static_cast<uint32_t>(p.hashes.size());
    Result<Allocation> alloc = Timed("alloc", [&] { return home().AllocMem(kNs, n); });
    if (!alloc.ok()) return;
    StampBlocks(p, n);
    const Status put = Timed("put", [&] { return PutAndWait(alloc->blocks); });
    if (put.ok()) {
      Timed("insert", [&] {
        return home().Insert(kNs, PromptView::Tokens(p.tokens), 0, HandlesOf(alloc->blocks),
                             alloc->lease.id);
      }).status().IgnoreError();
    }
    Release(home(), alloc->lease.id);
  }

  void MatchGet(const Prompt& p) {
    std::optional<MatchResult> m = MatchLeased(p);
    if (!m) return;
    const size_t n = m->blocks.size();
    for (size_t i = 0; i < n; ++i) std::memset(BlockBytes(i), 0, sizeof(BlockHash));
    if (Timed("get", [&] { return GetAndWait(m->blocks); }).ok()) CheckBlocks(p, n);
    if (rng_() % 4 == 0) Timed("renew", [&] { return home().Renew(m->lease.id); }).status().IgnoreError();
    Release(home(), m->lease.id);
  }

  void AllocFree(const Prompt&) {
    const uint32_t n = 1 + static_cast<uint32_t>(rng_() % 8);
    Result<Allocation> alloc = Timed("alloc", [&] { return home().AllocMem(kNs, n); });
    if (!alloc.ok()) return;
    const std::vector<BlockHandle> handles = HandlesOf(alloc->blocks);
    Timed("free", [&] { return home().FreeMem(kNs, alloc->lease.id, handles); }).status().IgnoreError();
    Release(home(), alloc->lease.id);
  }

  void ExistsOp(const Prompt& p) {
    Timed("exists", [&] { return home().Exists(kNs, PromptView::Tokens(p.tokens)); })
        .status().IgnoreError();
  }

  void DeleteOp(const Prompt& p) {
    // A tail only, most of the time: the shared prefixes stay hot.
    const size_t blocks = kPrefixBlocks + 1 + rng_() % (p.hashes.size() - kPrefixBlocks);
    const std::span<const uint32_t> head(p.tokens.data(), blocks * options_.block_tokens);
    Timed("delete", [&] { return home().Delete(kNs, PromptView::Tokens(head)); }).status().IgnoreError();
  }

  void TransferOp(const Prompt& p) {
    std::optional<MatchResult> m = MatchLeased(p);
    if (!m) return;
    const size_t other = OtherNode();
    Client& dst = *clients_[other];
    const uint32_t n = m->matched_blocks;
    Result<Allocation> alloc = Timed("alloc", [&] { return dst.AllocMem(kNs, n); });
    if (alloc.ok()) {
      Timed("transfer", [&] {
        return home().TransferToNode(
            m->lease.id, HandlesOf(m->blocks),
            NodeBlocks{node_ids_[other], alloc->lease.id, HandlesOf(alloc->blocks)});
      }).status().IgnoreError();
      Release(dst, alloc->lease.id);
    }
    Release(home(), m->lease.id);
  }

  void TransferWithInsertOp(const Prompt& p) {
    std::optional<MatchResult> m = MatchLeased(p);
    if (!m) return;
    const std::span<const uint32_t> head(p.tokens.data(),
                                         size_t{m->matched_blocks} * options_.block_tokens);
    const size_t other = OtherNode();
    Timed("transfer_with_insert", [&] {
      return home().TransferWithInsert(node_ids_[other], kNs, PromptView::Tokens(head), 0,
                                       m->lease.id, HandlesOf(m->blocks));
    }).status().IgnoreError();
    Release(home(), m->lease.id);
  }

  void RouteOp(const Prompt& p) {
    RouteQuery q;
    q.ns = kNs;
    q.hashes = p.hashes;
    Timed("route", [&] { return sched_->Route(q); }).status().IgnoreError();
  }

  void LookupOp(const Prompt& p) {
    Timed("lookup", [&] { return sched_->Lookup(kNs, p.hashes); }).status().IgnoreError();
  }

  const SoakOptions& options_;
  const std::vector<Prompt>& prompts_;
  std::mt19937_64 rng_;
  LiveCounters& live_;
  size_t home_ = 0;
  std::vector<std::unique_ptr<Client>> clients_;
  std::vector<std::string> node_ids_;
  std::unique_ptr<SchedulerClient> sched_;
  std::unique_ptr<DataPlane> dp_;
  std::vector<uint8_t> buffer_;
  RegionId region_{};
  std::vector<uint64_t> offsets_;
  WorkerStats stats_;
};

// RSS and fds of one process over the run.
struct ProcessSeries {
  std::string id;
  int pid = 0;
  std::vector<double> t_s, rss_bytes, fds;
  std::vector<double> anon_bytes, shmem_bytes;
  bool gone = false;

  void Sample(double t) {
    Result<ProcSample> s = SampleProcess(pid);
    if (!s.ok()) {
      gone = true;
      return;
    }
    t_s.push_back(t);
    rss_bytes.push_back(static_cast<double>(s->rss_bytes));
    fds.push_back(static_cast<double>(s->open_fds));
    anon_bytes.push_back(static_cast<double>(s->rss_anon_bytes));
    shmem_bytes.push_back(static_cast<double>(s->rss_shmem_bytes));
  }
  // Index of the first sample past the warm-up.
  size_t FirstSteady(double warmup_s) const {
    size_t i = 0;
    while (i < t_s.size() && t_s[i] < warmup_s) ++i;
    return std::min(i, t_s.size() > 2 ? t_s.size() - 2 : size_t{0});
  }
  nlohmann::json Json(double warmup_s) const {
    const size_t from = FirstSteady(warmup_s);
    auto tail = [&](const std::vector<double>& v) {
      return std::span<const double>(v.data() + from, v.size() - from);
    };
    nlohmann::json samples = nlohmann::json::array();
    for (size_t i = 0; i < t_s.size(); ++i) {
      // [t, RSS, fds, RssAnon, RssShmem]
      samples.push_back({t_s[i], static_cast<uint64_t>(rss_bytes[i]), static_cast<uint64_t>(fds[i]),
                         static_cast<uint64_t>(anon_bytes[i]),
                         static_cast<uint64_t>(shmem_bytes[i])});
    }
    const double rss_max =
        rss_bytes.empty() ? 0 : *std::max_element(rss_bytes.begin(), rss_bytes.end());
    return {{"id", id},
            {"pid", pid},
            {"exited", gone},
            {"rss_start_bytes", rss_bytes.empty() ? 0 : rss_bytes[from]},
            {"rss_end_bytes", rss_bytes.empty() ? 0 : rss_bytes.back()},
            {"rss_max_bytes", rss_max},
            {"rss_slope_bytes_per_s", LeastSquaresSlope(tail(t_s), tail(rss_bytes))},
            {"rss_anon_end_bytes", anon_bytes.empty() ? 0 : anon_bytes.back()},
            {"rss_anon_slope_bytes_per_s", LeastSquaresSlope(tail(t_s), tail(anon_bytes))},
            {"rss_shmem_end_bytes", shmem_bytes.empty() ? 0 : shmem_bytes.back()},
            {"rss_shmem_slope_bytes_per_s", LeastSquaresSlope(tail(t_s), tail(shmem_bytes))},
            {"fds_start", fds.empty() ? 0 : fds[from]},
            {"fds_end", fds.empty() ? 0 : fds.back()},
            {"fds_slope_per_s", LeastSquaresSlope(tail(t_s), tail(fds))},
            {"samples", std::move(samples)}};
  }
};

std::string ProgressLine(double t, uint64_t ops, double rate, uint64_t unexpected,
                         const std::vector<ProcessSeries>& procs) {
  std::ostringstream line;
  line << "soak " << FormatFixed(t, 0) << " s: " << ops << " ops (" << FormatFixed(rate, 0)
       << "/s), unexpected errors " << unexpected << " | RSS MiB / fds:";
  for (const ProcessSeries& p : procs) {
    if (p.rss_bytes.empty()) continue;
    line << " " << p.id << " " << FormatFixed(p.rss_bytes.back() / (1 << 20), 1) << "/"
         << p.fds.back();
  }
  return line.str();
}

struct Check {
  std::string node, what;
  uint64_t want = 0, got = 0;
  bool ok() const { return want == got; }
};

// The end-of-run accounting of every node, once the workers stopped: all leases end (released,
// or expired after a failed call), then the counters must add up, the blocks an independent
// Exists sweep finds must be exactly the cached ones, and the scheduler's index must agree.
std::vector<Check> CheckAccounting(const launch::ClusterState& cluster,
                                   const std::vector<Prompt>& prompts,
                                   const SoakOptions& options) {
  std::vector<Check> checks;
  auto sched = SchedulerClient::Connect(cluster.scheduler.address);
  for (const launch::ClusterMember& node : cluster.nodes) {
    auto client = Client::Connect(node.address);
    if (!client.ok()) {
      checks.push_back({node.id, "reachable (" + client.status().ToString() + ")", 1, 0});
      continue;
    }
    Client& c = **client;
    const auto deadline = Clock::now() + std::chrono::milliseconds(options.lease_ttl_ms + 5'000);
    Result<PoolStats> stats = c.GetStats();
    while (stats.ok() && stats->active_leases != 0 && Clock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
      stats = c.GetStats();
    }
    if (!stats.ok()) {
      checks.push_back({node.id, "GetStats (" + stats.status().ToString() + ")", 1, 0});
      continue;
    }
    checks.push_back({node.id, "active leases", 0, stats->active_leases});
    uint64_t ns_used = 0, ns_reserved = 0, cached = 0;
    for (const NamespaceInfo& ns : stats->namespaces) {
      const NamespaceStats& s = ns.stats;
      checks.push_back({node.id, ns.spec.name + ": allocated blocks", 0, s.allocated_blocks});
      checks.push_back({node.id, ns.spec.name + ": pinned blocks", 0, s.pinned_blocks});
      checks.push_back({node.id, ns.spec.name + ": used bytes = live blocks x block bytes",
                        (s.allocated_blocks + s.cached_blocks) * ns.spec.block_bytes,
                        s.used_bytes});
      ns_used += s.used_bytes;
      ns_reserved += s.reserved_bytes;
      if (ns.spec.name == kNs) cached = s.cached_blocks;
    }
    checks.push_back({node.id, "node used bytes = sum of namespaces", ns_used, stats->used_bytes});
    checks.push_back(
        {node.id, "node reserved bytes = sum of namespaces", ns_reserved, stats->reserved_bytes});
    // Every cached block is a block of some prompt of the working set: count them from outside.
    std::set<std::pair<uint64_t, uint64_t>> present;
    for (const Prompt& p : prompts) {
      Result<ExistsResult> e = c.Exists(kNs, PromptView::Tokens(p.tokens));
      if (!e.ok()) continue;
      for (size_t i = 0; i < e->tiers.size(); ++i) {
        if (e->tiers[i] != Tier::kNone) present.insert({p.hashes[i].hi, p.hashes[i].lo});
      }
    }
    checks.push_back({node.id, "cached blocks = blocks Exists finds", present.size(), cached});
    // The memory accounting against the live blocks counted from outside: with no lease left,
    // every byte in use is a cached block's.
    checks.push_back({node.id, "node used bytes = blocks Exists finds x block bytes",
                      present.size() * options.block_bytes, stats->used_bytes});
    // The scheduler's index converges to the node's blocks.
    uint64_t indexed = ~uint64_t{0};
    const auto index_deadline = Clock::now() + std::chrono::seconds(10);
    while (sched.ok() && Clock::now() < index_deadline) {
      Result<std::vector<PoolNode>> nodes = (*sched)->ListNodes();
      if (nodes.ok()) {
        for (const PoolNode& n : *nodes) {
          if (n.node_id == node.id) indexed = n.indexed_blocks.total();
        }
      }
      if (indexed == cached) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    checks.push_back({node.id, "scheduler index blocks = cached blocks", cached, indexed});
  }
  return checks;
}

Status Validate(const SoakOptions& o) {
  if (o.kvpoold_binary.empty() || o.scheduler_binary.empty() || o.work_dir.empty()) {
    return InvalidArgumentError("soak needs the kvpoold and kvpool-scheduler binaries and a work dir");
  }
  if (o.duration_s <= 0) return InvalidArgumentError("--duration must be > 0");
  if (o.clients == 0) return InvalidArgumentError("--clients must be >= 1");
  if (o.nodes < 2) return InvalidArgumentError("--nodes must be >= 2 (transfers need two)");
  if (o.prompts == 0) return InvalidArgumentError("--prompts must be >= 1");
  if (o.max_prompt_blocks <= kPrefixBlocks) {
    return InvalidArgumentError("--max-prompt-blocks must be > " + std::to_string(kPrefixBlocks));
  }
  if (o.block_tokens == 0 || o.block_bytes == 0 || o.block_bytes % 64 != 0) {
    return InvalidArgumentError("--block-tokens must be > 0 and --block-bytes a multiple of 64");
  }
  if (o.sample_interval_ms == 0) return InvalidArgumentError("--sample-ms must be > 0");
  if (o.warmup_fraction < 0 || o.warmup_fraction >= 1) {
    return InvalidArgumentError("--warmup must be in [0, 1)");
  }
  return Status::Ok();
}

void PrintTables(const nlohmann::json& out, const std::vector<Check>& checks) {
  std::cout << "\nkvpool-bench soak: " << out["clients"] << " clients, " << out["nodes"]
            << " nodes, " << FormatFixed(out["duration_s"].get<double>(), 1) << " s\n\n";
  TextTable ops({"OP", "CALLS", "OPS/S", "ERRORS", "P50 US", "P99 US", "MAX US"});
  for (const auto& [name, op] : out["ops"].items()) {
    uint64_t errors = 0;
    for (const auto& [code, n] : op["errors"].items()) errors += n.get<uint64_t>();
    ops.AddRow({name, std::to_string(op["count"].get<uint64_t>()),
                FormatFixed(op["ops_per_s"].get<double>(), 1), std::to_string(errors),
                FormatFixed(op["p50_us"].get<double>(), 0), FormatFixed(op["p99_us"].get<double>(), 0),
                FormatFixed(op["max_us"].get<double>(), 0)});
  }
  ops.AddRow({"total", std::to_string(out["total_ops"].get<uint64_t>()),
              FormatFixed(out["ops_per_s"].get<double>(), 1), "", "", "", ""});
  ops.Print(std::cout);

  std::cout << "\nerrors by code:";
  if (out["errors_by_code"].empty()) std::cout << " none";
  for (const auto& [code, n] : out["errors_by_code"].items()) std::cout << " " << code << "=" << n;
  std::cout << "\nunexpected errors: " << out["unexpected_errors"];
  if (!out["first_unexpected_error"].get<std::string>().empty()) {
    std::cout << " (first: " << out["first_unexpected_error"].get<std::string>() << ")";
  }
  std::cout << "\n\n";

  TextTable procs({"PROCESS", "RSS START", "RSS END", "RSS MAX", "RSS SLOPE B/S",
                   "ANON SLOPE B/S", "SHMEM SLOPE B/S", "FDS START", "FDS END", "FDS SLOPE /S"});
  for (const nlohmann::json& p : out["processes"]) {
    procs.AddRow({p["id"].get<std::string>(),
                  FormatBytes(static_cast<uint64_t>(p["rss_start_bytes"].get<double>())),
                  FormatBytes(static_cast<uint64_t>(p["rss_end_bytes"].get<double>())),
                  FormatBytes(static_cast<uint64_t>(p["rss_max_bytes"].get<double>())),
                  FormatFixed(p["rss_slope_bytes_per_s"].get<double>(), 0),
                  FormatFixed(p["rss_anon_slope_bytes_per_s"].get<double>(), 0),
                  FormatFixed(p["rss_shmem_slope_bytes_per_s"].get<double>(), 0),
                  FormatFixed(p["fds_start"].get<double>(), 0),
                  FormatFixed(p["fds_end"].get<double>(), 0),
                  FormatFixed(p["fds_slope_per_s"].get<double>(), 4)});
  }
  procs.Print(std::cout);
  std::cout << "(slopes fitted after the first " << out["warmup_s"] << " s)\n\n";

  TextTable acc({"NODE", "CHECK", "WANT", "GOT", "OK"});
  for (const Check& c : checks) {
    acc.AddRow({c.node, c.what, std::to_string(c.want), std::to_string(c.got), c.ok() ? "yes" : "NO"});
  }
  acc.Print(std::cout);
  std::cout << "\nresult: " << (out["ok"].get<bool>() ? "OK" : "FAILED") << std::endl;
}

}  // namespace

Result<nlohmann::json> RunSoak(const SoakOptions& options, bool quiet) {
  KVPOOL_RETURN_IF_ERROR(Validate(options));
  const std::vector<Prompt> prompts = MakePrompts(options);

  launch::LocalClusterOptions copts;
  copts.kvpoold_binary = options.kvpoold_binary;
  copts.scheduler_binary = options.scheduler_binary;
  copts.work_dir = options.work_dir;
  copts.nodes = options.nodes;
  copts.node_capacity = options.node_capacity;
  copts.ucx_tls = options.ucx_tls;
  copts.kvpoold_args = {"--lease-ttl-ms=" + std::to_string(options.lease_ttl_ms),
                        "--no-huge-pages", "--log-level=warning"};
  copts.scheduler_args = {"--instance-timeout-ms=86400000",
                          "--block-tokens=" + std::to_string(options.block_tokens),
                          "--block-bytes=" + std::to_string(options.block_bytes),
                          "--log-level=warning"};
  KVPOOL_ASSIGN_OR_RETURN(auto cluster, launch::LocalCluster::Start(copts));
  KVPOOL_RETURN_IF_ERROR(WaitClusterReady(cluster->scheduler_address(), options.nodes, 20'000));
  const launch::ClusterState& state = cluster->state();
  {
    KVPOOL_ASSIGN_OR_RETURN(auto sched, SchedulerClient::Connect(state.scheduler.address));
    for (size_t i = 0; i < state.nodes.size(); ++i) {
      KVPOOL_ASSIGN_OR_RETURN(auto c, Client::Connect(state.nodes[i].address));
      KVPOOL_RETURN_IF_ERROR(
          c->CreateNamespace({kNs, options.block_tokens, options.block_bytes, ""}).status());
      KVPOOL_RETURN_IF_ERROR(sched->RegisterInstance("soak-" + std::to_string(i), "colocated",
                                                     state.nodes[i].id));
    }
  }

  LiveCounters live;
  std::vector<std::unique_ptr<Worker>> workers;
  for (uint32_t i = 0; i < options.clients; ++i) {
    workers.push_back(std::make_unique<Worker>(options, prompts, i, live));
    KVPOOL_RETURN_IF_ERROR(workers.back()->Connect(state, i % state.nodes.size()));
  }
  std::vector<ProcessSeries> procs;
  procs.push_back({"scheduler", state.scheduler.pid, {}, {}, {}, {}, {}, false});
  for (const launch::ClusterMember& n : state.nodes) {
    procs.push_back({n.id, n.pid, {}, {}, {}, {}, {}, false});
  }
  procs.push_back({"clients", static_cast<int>(::getpid()), {}, {}, {}, {}, {}, false});

  std::atomic<bool> stop{false};
  const auto t0 = Clock::now();
  std::vector<std::thread> threads;
  for (auto& w : workers) threads.emplace_back([&stop, &w] { w->Run(stop); });
  for (ProcessSeries& p : procs) p.Sample(0);
  uint64_t last_ops = 0;
  double last_t = 0;
  for (;;) {
    const double t = SecondsSince(t0);
    if (t >= options.duration_s) break;
    const double next = std::min(options.duration_s, last_t + options.sample_interval_ms / 1e3);
    std::this_thread::sleep_for(std::chrono::duration<double>(std::max(0.0, next - t)));
    const double now = SecondsSince(t0);
    for (ProcessSeries& p : procs) p.Sample(now);
    const uint64_t ops = live.ops.load(std::memory_order_relaxed);
    if (options.progress) {
      std::cerr << ProgressLine(now, ops, (ops - last_ops) / std::max(1e-9, now - last_t),
                                live.unexpected.load(std::memory_order_relaxed), procs)
                << std::endl;
    }
    last_ops = ops;
    last_t = now;
  }
  stop.store(true, std::memory_order_relaxed);
  for (std::thread& t : threads) t.join();
  const double elapsed_s = SecondsSince(t0);

  WorkerStats total;
  for (const auto& w : workers) total.Merge(w->stats());
  workers.clear();  // drop every client's connections before the accounting
  if (options.progress) std::cerr << "soak: load stopped, checking the accounting" << std::endl;
  const std::vector<Check> checks = CheckAccounting(state, prompts, options);

  nlohmann::json out;
  out["duration_s"] = elapsed_s;
  out["clients"] = options.clients;
  out["nodes"] = options.nodes;
  out["node_capacity"] = options.node_capacity;
  out["block_bytes"] = options.block_bytes;
  out["prompts"] = options.prompts;
  out["ucx_tls"] = options.ucx_tls;
  const double warmup_s = options.warmup_fraction * options.duration_s;
  out["warmup_s"] = warmup_s;
  uint64_t total_ops = 0;
  std::map<std::string, uint64_t> by_code;
  out["ops"] = nlohmann::json::object();
  for (const auto& [name, s] : total.ops) {
    nlohmann::json errors = nlohmann::json::object();
    for (const auto& [code, n] : s.errors) {
      const std::string code_name(StatusCodeName(code));
      errors[code_name] = n;
      by_code[code_name] += n;
    }
    out["ops"][name] = {{"count", s.count},
                        {"ops_per_s", s.count / elapsed_s},
                        {"errors", std::move(errors)},
                        {"p50_us", s.latency.Percentile(0.5)},
                        {"p99_us", s.latency.Percentile(0.99)},
                        {"max_us", s.latency.max_micros()}};
    total_ops += s.count;
  }
  out["total_ops"] = total_ops;
  out["ops_per_s"] = total_ops / elapsed_s;
  out["errors_by_code"] = by_code;
  out["unexpected_errors"] = total.unexpected;
  out["corrupt_blocks"] = total.corrupt_blocks;
  out["first_unexpected_error"] = total.first_unexpected;
  out["processes"] = nlohmann::json::array();
  for (const ProcessSeries& p : procs) out["processes"].push_back(p.Json(warmup_s));
  bool accounting_ok = true;
  nlohmann::json jchecks = nlohmann::json::array();
  for (const Check& c : checks) {
    accounting_ok = accounting_ok && c.ok();
    jchecks.push_back({{"node", c.node}, {"check", c.what}, {"want", c.want}, {"got", c.got},
                       {"ok", c.ok()}});
  }
  out["accounting"] = {{"ok", accounting_ok}, {"checks", std::move(jchecks)}};
  out["ok"] = accounting_ok && total.unexpected == 0;
  if (!quiet) PrintTables(out, checks);
  return out;
}

}  // namespace kvpool::bench
