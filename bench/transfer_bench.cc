#include "bench/transfer_bench.h"

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <memory>
#include <optional>
#include <span>
#include <thread>

#include "bench/bench_stats.h"
#include "bench/ucx_perftest.h"
#include "common/table.h"
#include "common/units.h"
#include "kvpool/client.h"
#include "kvpool/data_plane.h"
#include "launch/local_kvpoold.h"

namespace kvpool::bench {
namespace {

constexpr double kBytesPerGB = 1e9;
constexpr uint64_t kHugePage = 2ull << 20;
// Longest wait for one batch before the benchmark gives up on the node.
constexpr int64_t kTransferTimeoutMs = 30'000;
// Leases outlive every phase of one block size (the node caps them at --max-lease-ttl-ms).
constexpr uint32_t kLeaseTtlMs = 600'000;

double SecondsSince(BenchClock::time_point start) { return NanosSince(start) / 1e9; }

// The 1-minute load average: other processes on a small machine skew every number here (both
// sides of a transfer spin), so the report says how busy the host was.
std::optional<double> LoadAverage() {
  std::ifstream in("/proc/loadavg");
  double one_minute = 0;
  if (in >> one_minute) return one_minute;
  return std::nullopt;
}

std::string NamespaceFor(uint64_t block_bytes) {
  return "bench-transfer-" + std::to_string(block_bytes);
}

// Anonymous memory, pre-faulted, optionally 2 MiB aligned with transparent huge pages asked
// for: the engine's registered buffer and memcpy's operands. Not thread-safe; owned by one run.
class HostBuffer {
 public:
  static Result<std::unique_ptr<HostBuffer>> Allocate(uint64_t size_bytes, bool huge) {
    const uint64_t page = huge ? kHugePage : static_cast<uint64_t>(::sysconf(_SC_PAGESIZE));
    const uint64_t rounded = (size_bytes + page - 1) / page * page;
    // Over-map by one huge page so that the start can be aligned to it.
    const uint64_t mapped = rounded + (huge ? kHugePage : 0);
    void* p = ::mmap(nullptr, mapped, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) {
      return ResourceExhaustedError("mmap of " + std::to_string(mapped) + " bytes failed");
    }
    auto buffer = std::unique_ptr<HostBuffer>(new HostBuffer(p, mapped));
    auto base = reinterpret_cast<uint64_t>(p);
    if (huge) {
      base = (base + kHugePage - 1) / kHugePage * kHugePage;
      // Best effort: without THP the buffer is still aligned, just backed by small pages.
      ::madvise(reinterpret_cast<void*>(base), rounded, MADV_HUGEPAGE);
    }
    buffer->data_ = reinterpret_cast<uint8_t*>(base);
    buffer->size_bytes_ = rounded;
    // Fault every page in now, so neither registration nor the first timed copy pays for it.
    std::memset(buffer->data_, 0x5a, rounded);
    return buffer;
  }
  ~HostBuffer() { ::munmap(mapping_, mapping_bytes_); }
  HostBuffer(const HostBuffer&) = delete;
  HostBuffer& operator=(const HostBuffer&) = delete;

  uint8_t* data() const { return data_; }
  uint64_t size_bytes() const { return size_bytes_; }

 private:
  HostBuffer(void* mapping, uint64_t mapping_bytes)
      : mapping_(mapping), mapping_bytes_(mapping_bytes) {}
  void* mapping_;
  uint64_t mapping_bytes_;
  uint8_t* data_ = nullptr;
  uint64_t size_bytes_ = 0;
};

// Single-thread memcpy between two buffers of `bytes`, repeated for about `seconds`.
Result<double> MemcpyGbps(uint64_t bytes, double seconds, bool huge) {
  KVPOOL_ASSIGN_OR_RETURN(auto src, HostBuffer::Allocate(bytes, huge));
  KVPOOL_ASSIGN_OR_RETURN(auto dst, HostBuffer::Allocate(bytes, huge));
  for (int i = 0; i < 3; ++i) std::memcpy(dst->data(), src->data(), bytes);  // warm-up
  uint64_t copies = 0;
  const auto start = BenchClock::now();
  double elapsed = 0;
  do {
    std::memcpy(dst->data(), src->data(), bytes);
    // The destination is never read: keep the compiler from dropping the copy.
    asm volatile("" : : "r"(dst->data()) : "memory");
    ++copies;
    elapsed = SecondsSince(start);
  } while (elapsed < seconds || copies < 3);
  return static_cast<double>(copies * bytes) / elapsed / kBytesPerGB;
}

struct BandwidthResult {
  uint64_t bytes = 0;
  uint64_t batches = 0;
  double seconds = 0;
  double gbps() const {
    return seconds > 0 ? static_cast<double>(bytes) / seconds / kBytesPerGB : 0;
  }
};

nlohmann::json ToJson(const BandwidthResult& r) {
  return {{"gbps", r.gbps()}, {"bytes", r.bytes}, {"batches", r.batches}, {"seconds", r.seconds}};
}

// The data plane and registered buffer every transfer of one transport uses.
struct Session {
  DataPlane* data_plane = nullptr;
  RegionId region{};
};

Result<TransferHandle> Submit(Session& s, bool put, std::span<const BlockLocation> blocks,
                              std::span<const uint64_t> offsets) {
  return put ? s.data_plane->Put(s.region, offsets, blocks)
             : s.data_plane->Get(blocks, s.region, offsets);
}

// Streams batches of `batch_blocks` from `blocks` (one slice of them per in-flight slot) until
// the time or byte budget is spent, keeping `inflight` batches submitted.
Result<BandwidthResult> StreamBatches(Session& s, bool put,
                                      const std::vector<BlockLocation>& blocks,
                                      const std::vector<uint64_t>& offsets, uint32_t batch_blocks,
                                      uint32_t inflight, double seconds, uint64_t max_bytes) {
  const uint64_t batch_bytes = blocks.front().length * batch_blocks;
  std::vector<TransferHandle> slots(inflight);
  BandwidthResult result;
  uint64_t submitted_bytes = 0;
  uint64_t submitted = 0;
  const auto start = BenchClock::now();
  while (true) {
    const uint32_t slot = static_cast<uint32_t>(submitted % inflight);
    if (slots[slot].valid()) {
      KVPOOL_RETURN_IF_ERROR(slots[slot].Wait(kTransferTimeoutMs));
      result.bytes += batch_bytes;
      ++result.batches;
      slots[slot] = TransferHandle();
    }
    if (SecondsSince(start) >= seconds || submitted_bytes + batch_bytes > max_bytes) break;
    const size_t first = static_cast<size_t>(slot) * batch_blocks;
    KVPOOL_ASSIGN_OR_RETURN(
        slots[slot],
        Submit(s, put, std::span<const BlockLocation>(blocks).subspan(first, batch_blocks),
               std::span<const uint64_t>(offsets).subspan(first, batch_blocks)));
    submitted_bytes += batch_bytes;
    ++submitted;
  }
  for (auto& h : slots) {
    if (!h.valid()) continue;
    KVPOOL_RETURN_IF_ERROR(h.Wait(kTransferTimeoutMs));
    result.bytes += batch_bytes;
    ++result.batches;
  }
  result.seconds = SecondsSince(start);
  return result;
}

// Per-call times of one-block (or one-batch) transfers, in microseconds, after a warm-up.
Result<std::vector<double>> TimeCalls(Session& s, bool put, std::span<const BlockLocation> blocks,
                                      std::span<const uint64_t> offsets, uint32_t iterations,
                                      double max_seconds) {
  const uint32_t warmup = std::max<uint32_t>(iterations / 10, 3);
  std::vector<uint64_t> ticks;
  ticks.reserve(iterations);
  const auto start = BenchClock::now();
  const TickTimer rate;  // calls are sub-microsecond: time them with the cheap tick counter
  for (uint32_t i = 0; i < warmup + iterations; ++i) {
    const uint64_t t0 = ReadTicks();
    KVPOOL_ASSIGN_OR_RETURN(TransferHandle h, Submit(s, put, blocks, offsets));
    KVPOOL_RETURN_IF_ERROR(h.Wait(kTransferTimeoutMs));
    if (i >= warmup) ticks.push_back(ReadTicks() - t0);
    if (i >= warmup + 2 && SecondsSince(start) > max_seconds) break;
  }
  const double us_per_tick = rate.NanosPerTick() / 1e3;
  std::vector<double> us;
  us.reserve(ticks.size());
  for (uint64_t t : ticks) us.push_back(static_cast<double>(t) * us_per_tick);
  return us;
}

// ---- ucx_perftest ---------------------------------------------------------------------------

// One ucx_perftest measurement; empty when it was unavailable (the warning says why).
struct Reference {
  std::optional<PerftestOutcome> outcome;
};

nlohmann::json RawJson(const PerftestResult& r) {
  return {{"iterations", r.iterations},
          {"typical_latency_us", r.typical_latency_us},
          {"average_latency_us", r.average_latency_us},
          {"overall_latency_us", r.overall_latency_us},
          {"average_bandwidth_mib_per_s", r.average_bandwidth_mib_per_s},
          {"overall_bandwidth_mib_per_s", r.overall_bandwidth_mib_per_s},
          {"average_message_rate", r.average_message_rate},
          {"overall_message_rate", r.overall_message_rate},
          {"final", r.final}};
}

nlohmann::json ReferenceJson(const Reference& ref, const std::string& test) {
  if (!ref.outcome.has_value()) return nullptr;
  const PerftestOutcome& o = *ref.outcome;
  return {{"test", test},
          {"gbps", o.result.overall_bandwidth_bytes_per_s() / kBytesPerGB},
          {"typical_latency_us", o.result.typical_latency_us},
          {"complete", o.result.final && !o.timed_out},
          {"server_command", o.server_command},
          {"client_command", o.client_command},
          {"raw", RawJson(o.result)}};
}

// Runs ucx_perftest for the benchmark, or says once why it cannot (then every Run returns an
// empty Reference). Not thread-safe; owned by RunTransferBench.
class ReferenceRunner {
 public:
  ReferenceRunner(const TransferBenchOptions& opt, std::string work_dir)
      : opt_(opt), work_dir_(std::move(work_dir)) {
    if (opt_.ucx_perftest_binary.empty()) {
      disabled_ = "disabled (--ucx-perftest '')";
    } else if (::access(opt_.ucx_perftest_binary.c_str(), X_OK) != 0) {
      disabled_ = "ucx_perftest not found at '" + opt_.ucx_perftest_binary + "'";
    }
    if (!disabled_.empty()) {
      std::cerr << "transfer: WARNING: " << disabled_
                << "; the reference columns are unavailable (null in JSON)" << std::endl;
    }
  }
  bool available() const { return disabled_.empty(); }

  // One measurement; a failure is warned about on stderr and appended to `errors`.
  Reference Run(const std::string& tls, const std::string& test, uint64_t size_bytes,
                uint64_t iterations, uint32_t max_outstanding, std::vector<std::string>& errors) {
    Reference ref;
    if (!available()) return ref;
    PerftestRun run;
    run.binary = opt_.ucx_perftest_binary;
    run.test = test;
    run.size_bytes = size_bytes;
    run.iterations = std::max<uint64_t>(iterations, 100);
    run.warmup_iterations = std::max<uint64_t>(run.iterations / 10, 10);
    run.max_outstanding = max_outstanding;
    run.tls = tls;
    run.timeout_ms = static_cast<int>((std::max(2 * opt_.seconds, 1.0) + 3) * 1000);
    run.work_dir = work_dir_;
    Result<PerftestOutcome> outcome = RunPerftest(run);
    if (!outcome.ok()) {
      const std::string why = outcome.status().ToString();
      std::cerr << "transfer: WARNING: ucx_perftest " << test << " " << tls << " "
                << FormatBytes(size_bytes) << " unavailable: " << why << std::endl;
      errors.push_back(test + " " + std::to_string(size_bytes) + ": " + why);
      return ref;
    }
    if (outcome->timed_out) {
      std::cerr << "transfer: WARNING: ucx_perftest " << test << " " << tls << " "
                << FormatBytes(size_bytes) << " stopped after " << run.timeout_ms
                << " ms; using its last progress report (" << outcome->result.iterations
                << " iterations)" << std::endl;
    }
    ref.outcome = std::move(outcome).value();
    return ref;
  }

 private:
  const TransferBenchOptions& opt_;
  const std::string work_dir_;
  std::string disabled_;
};

// Iterations for about `seconds` at the rate kvpool just reached (ucx_perftest has no time
// limit of its own in 1.13).
uint64_t IterationsFor(double seconds, double gbps, uint64_t size_bytes) {
  const double n = seconds * gbps * kBytesPerGB / static_cast<double>(size_bytes);
  return static_cast<uint64_t>(std::clamp(n, 200.0, 2'000'000.0));
}

std::optional<double> RefGbps(const Reference& r) {
  if (!r.outcome.has_value()) return std::nullopt;
  return r.outcome->result.overall_bandwidth_bytes_per_s() / kBytesPerGB;
}

std::optional<double> Ratio(double kvpool, std::optional<double> reference) {
  if (!reference.has_value() || *reference <= 0) return std::nullopt;
  return kvpool / *reference;
}

nlohmann::json OrNull(std::optional<double> v) {
  return v.has_value() ? nlohmann::json(*v) : nlohmann::json(nullptr);
}

// A table cell: the number, "*" when ucx_perftest was stopped early, "-" when unavailable.
std::string Cell(std::optional<double> v, int precision, const Reference* ref = nullptr) {
  if (!v.has_value()) return "-";
  std::string s = FormatFixed(*v, precision);
  if (ref != nullptr && ref->outcome.has_value() &&
      (ref->outcome->timed_out || !ref->outcome->result.final)) {
    s += "*";
  }
  return s;
}

// ---- One transport ---------------------------------------------------------------------------

// One block size, one direction; one entry per repetition in each vector.
struct BandwidthRow {
  uint64_t block_bytes = 0;
  bool put = true;
  // Distinct blocks and buffer ranges (batch_blocks x inflight of each).
  std::vector<BandwidthResult> spread;
  // Every op on the same block and buffer range: ucx_perftest's access pattern.
  std::vector<BandwidthResult> one_block;
  std::vector<Reference> reference;
  double memcpy_set_gbps = 0;
  double memcpy_block_gbps = 0;
};

// The repetition with the highest bandwidth: on a shared machine the others lost time to
// unrelated processes.
const BandwidthResult& Best(const std::vector<BandwidthResult>& results) {
  return *std::max_element(results.begin(), results.end(),
                           [](const auto& a, const auto& b) { return a.gbps() < b.gbps(); });
}

// The best available reference run, or an empty one.
const Reference& Best(const std::vector<Reference>& refs) {
  static const Reference kNone;
  const Reference* best = &kNone;
  for (const Reference& r : refs) {
    if (r.outcome.has_value() &&
        (!best->outcome.has_value() || RefGbps(r) > RefGbps(*best))) {
      best = &r;
    }
  }
  return *best;
}

nlohmann::json SamplesJson(const std::vector<BandwidthResult>& results) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : results) out.push_back(r.gbps());
  return out;
}

nlohmann::json SamplesJson(const std::vector<Reference>& refs) {
  nlohmann::json out = nlohmann::json::array();
  for (const auto& r : refs) out.push_back(OrNull(RefGbps(r)));
  return out;
}

struct LatencyResult {
  uint64_t block_bytes = 0;
  Summary kv_get_us, kv_put_us;
  Reference ref_get, ref_put_lat;
};

struct BigBatchResult {
  uint32_t blocks = 0;
  uint64_t block_bytes = 0;
  Summary batch_us;
  double gbps = 0;
  double memcpy_gbps = 0;
};

Result<nlohmann::json> RunTransport(const TransferBenchOptions& opt, const std::string& tls,
                                    const std::string& work_dir, ReferenceRunner& reference,
                                    bool quiet) {
  const uint32_t pool_blocks = opt.batch_blocks * opt.inflight_batches;
  const uint64_t max_size =
      *std::max_element(opt.block_sizes_bytes.begin(), opt.block_sizes_bytes.end());
  const uint64_t min_size =
      *std::min_element(opt.block_sizes_bytes.begin(), opt.block_sizes_bytes.end());
  const uint64_t big_bytes = uint64_t{opt.big_batch_blocks} * opt.big_batch_block_bytes;
  const uint64_t local_bytes = std::max(pool_blocks * max_size, big_bytes);

  // Room for every namespace's blocks plus the slab each namespace claims (32 MiB by default).
  uint64_t capacity = 64ull << 20;
  for (uint64_t size : opt.block_sizes_bytes) capacity += pool_blocks * size + (64ull << 20);
  capacity += big_bytes + (64ull << 20);
  capacity = (capacity + kHugePage - 1) / kHugePage * kHugePage;

  const std::optional<double> load_before = LoadAverage();
  std::cerr << "transfer: " << tls << ": starting kvpoold (--ucx-tls=" << tls << ", "
            << FormatBytes(capacity) << ") ..." << std::endl;
  launch::LocalKvpooldOptions lo;
  lo.binary = opt.kvpoold_binary;
  lo.work_dir = work_dir + "/kvpoold-" + tls;
  lo.capacity = std::to_string(capacity);
  lo.extra_args = {"--log-level=warning", "--ucx-tls=" + tls};
  KVPOOL_ASSIGN_OR_RETURN(auto daemon, launch::LocalKvpoold::Start(lo));
  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(daemon->address()));
  DataPlaneOptions dpo;
  dpo.tls = tls;
  Result<std::unique_ptr<DataPlane>> connected = DataPlane::Connect(*client, dpo);
  if (!connected.ok()) {
    return connected.status().WithContext("DataPlane::Connect with tls " + tls + " (kvpoold log " +
                                          daemon->log_path() + ")");
  }
  std::unique_ptr<DataPlane> data_plane = std::move(connected).value();
  KVPOOL_ASSIGN_OR_RETURN(auto local, HostBuffer::Allocate(local_bytes, opt.huge_local_buffer));
  KVPOOL_ASSIGN_OR_RETURN(RegionId region,
                          data_plane->RegisterMemory(local->data(), local->size_bytes()));
  Session session{data_plane.get(), region};
  std::vector<std::string> ref_errors;

  // Fresh blocks of one size under a long lease; released (freed: never inserted) at the end.
  auto allocate = [&](uint64_t block_bytes, uint32_t n) -> Result<Allocation> {
    const NamespaceSpec spec{NamespaceFor(block_bytes), 16, block_bytes, ""};
    KVPOOL_RETURN_IF_ERROR(client->CreateNamespace(spec).status());
    return client->AllocMem(spec.name, n, Tier::kHost, kLeaseTtlMs);
  };
  auto offsets_for = [](const std::vector<BlockLocation>& blocks) {
    std::vector<uint64_t> offsets;
    for (size_t i = 0; i < blocks.size(); ++i) offsets.push_back(i * blocks[i].length);
    return offsets;
  };

  std::vector<BandwidthRow> rows;
  std::optional<LatencyResult> latency;
  for (uint64_t size : opt.block_sizes_bytes) {
    const std::string label = tls + " " + FormatBytes(size);
    KVPOOL_ASSIGN_OR_RETURN(Allocation alloc, allocate(size, pool_blocks));
    const std::vector<uint64_t> offsets = offsets_for(alloc.blocks);
    // ucx_perftest's pattern: one message buffer on each side, reused by every operation.
    const std::vector<BlockLocation> same_blocks(alloc.blocks.size(), alloc.blocks.front());
    const std::vector<uint64_t> same_offsets(alloc.blocks.size(), 0);

    std::cerr << "transfer: " << label << " memcpy ..." << std::endl;
    const double memcpy_seconds = std::min(opt.seconds, 0.5);
    // The ceiling of each pattern: memcpy over the same working set (all in-flight batches'
    // buffer ranges, or one block).
    KVPOOL_ASSIGN_OR_RETURN(const double memcpy_set,
                            MemcpyGbps(pool_blocks * size, memcpy_seconds,
                                       opt.huge_local_buffer));
    KVPOOL_ASSIGN_OR_RETURN(const double memcpy_block,
                            MemcpyGbps(size, memcpy_seconds, opt.huge_local_buffer));
    for (const bool put : {true, false}) {
      // Iterations of the next ucx_perftest run: from kvpool's rate at first, then from
      // ucx_perftest's own (its tcp get can be 100x slower than kvpool's).
      double ucx_rate_gbps = 0;
      BandwidthRow row;
      row.block_bytes = size;
      row.put = put;
      row.memcpy_set_gbps = memcpy_set;
      row.memcpy_block_gbps = memcpy_block;
      const char* verb = put ? "put" : "get";
      auto stream = [&](const std::vector<BlockLocation>& blocks,
                        const std::vector<uint64_t>& offs) -> Result<BandwidthResult> {
        // Warm-up: wire-up, rkey unpacking, first touch of the pages.
        KVPOOL_RETURN_IF_ERROR(StreamBatches(session, put, blocks, offs, opt.batch_blocks,
                                             opt.inflight_batches, opt.seconds / 10,
                                             opt.max_bytes)
                                   .status());
        return StreamBatches(session, put, blocks, offs, opt.batch_blocks, opt.inflight_batches,
                             opt.seconds, opt.max_bytes);
      };
      // Repetitions interleave kvpool and ucx_perftest, so both see the same interference.
      for (uint32_t rep = 1; rep <= opt.repeat; ++rep) {
        const std::string round =
            opt.repeat > 1 ? " (" + std::to_string(rep) + "/" + std::to_string(opt.repeat) + ")"
                           : "";
        std::cerr << "transfer: " << label << " " << verb << round << " ..." << std::endl;
        KVPOOL_ASSIGN_OR_RETURN(BandwidthResult spread, stream(alloc.blocks, offsets));
        row.spread.push_back(spread);
        std::cerr << "transfer: " << label << " " << verb << ", one block" << round << " ..."
                  << std::endl;
        KVPOOL_ASSIGN_OR_RETURN(BandwidthResult one, stream(same_blocks, same_offsets));
        row.one_block.push_back(one);
        if (!reference.available()) continue;
        const char* test = put ? "ucp_put_bw" : "ucp_get";
        std::cerr << "transfer: " << label << " ucx_perftest " << test << round << " ..."
                  << std::endl;
        if (ucx_rate_gbps <= 0) ucx_rate_gbps = one.gbps();
        Reference ref = reference.Run(tls, test, size,
                                      IterationsFor(opt.seconds, ucx_rate_gbps, size), 0,
                                      ref_errors);
        if (ref.outcome.has_value()) ucx_rate_gbps = *RefGbps(ref);
        row.reference.push_back(std::move(ref));
      }
      rows.push_back(std::move(row));
    }

    if (size == min_size) {
      LatencyResult lat;
      lat.block_bytes = size;
      const auto one_block = std::span<const BlockLocation>(alloc.blocks).first(1);
      const auto one_offset = std::span<const uint64_t>(offsets).first(1);
      const double budget = std::max(4 * opt.seconds, 2.0);
      for (const bool put : {false, true}) {
        std::cerr << "transfer: " << label << " one-block " << (put ? "put" : "get")
                  << " latency ..." << std::endl;
        KVPOOL_ASSIGN_OR_RETURN(
            std::vector<double> us,
            TimeCalls(session, put, one_block, one_offset, opt.latency_iterations, budget));
        (put ? lat.kv_put_us : lat.kv_get_us) = Summarize(us);
      }
      if (reference.available()) {
        std::cerr << "transfer: " << label << " ucx_perftest ucp_get -O 1, ucp_put_lat ..."
                  << std::endl;
        lat.ref_get = reference.Run(tls, "ucp_get", size, opt.latency_iterations, 1, ref_errors);
        lat.ref_put_lat =
            reference.Run(tls, "ucp_put_lat", size, opt.latency_iterations, 0, ref_errors);
      }
      latency = std::move(lat);
    }
    KVPOOL_RETURN_IF_ERROR(client->Release(alloc.lease.id).status());
  }

  // One KV cache in one call: the batched Get an engine issues for a long prompt.
  BigBatchResult big;
  big.blocks = opt.big_batch_blocks;
  big.block_bytes = opt.big_batch_block_bytes;
  {
    std::cerr << "transfer: " << tls << " batched get " << big.blocks << " x "
              << FormatBytes(big.block_bytes) << " ..." << std::endl;
    KVPOOL_ASSIGN_OR_RETURN(Allocation alloc, allocate(big.block_bytes, big.blocks));
    const std::vector<uint64_t> offsets = offsets_for(alloc.blocks);
    const uint32_t iterations = static_cast<uint32_t>(
        std::clamp<uint64_t>(opt.max_bytes / big_bytes, 5, 100'000));
    KVPOOL_ASSIGN_OR_RETURN(
        std::vector<double> us,
        TimeCalls(session, false, alloc.blocks, offsets, iterations, opt.seconds));
    double total_us = 0;
    for (double t : us) total_us += t;
    big.gbps = static_cast<double>(us.size() * big_bytes) / (total_us / 1e6) / kBytesPerGB;
    big.batch_us = Summarize(us);
    KVPOOL_ASSIGN_OR_RETURN(big.memcpy_gbps,
                            MemcpyGbps(big_bytes, std::min(opt.seconds, 0.5),
                                       opt.huge_local_buffer));
    KVPOOL_RETURN_IF_ERROR(client->Release(alloc.lease.id).status());
  }
  KVPOOL_RETURN_IF_ERROR(data_plane->Deregister(region));

  // ---- Report ----
  nlohmann::json bandwidth = nlohmann::json::array();
  for (const BandwidthRow& r : rows) {
    const char* test = r.put ? "ucp_put_bw" : "ucp_get";
    bandwidth.push_back(
        {{"block_bytes", r.block_bytes},
         {"op", r.put ? "put" : "get"},
         {"kvpool", ToJson(Best(r.spread))},
         {"kvpool_gbps_samples", SamplesJson(r.spread)},
         {"kvpool_one_block", ToJson(Best(r.one_block))},
         {"kvpool_one_block_gbps_samples", SamplesJson(r.one_block)},
         {"ucx_perftest", ReferenceJson(Best(r.reference), test)},
         {"ucx_perftest_gbps_samples", SamplesJson(r.reference)},
         {"ratio", OrNull(Ratio(Best(r.one_block).gbps(), RefGbps(Best(r.reference))))},
         {"memcpy_set_gbps", r.memcpy_set_gbps},
         {"memcpy_block_gbps", r.memcpy_block_gbps}});
  }
  nlohmann::json latency_json = nullptr;
  std::optional<double> ref_get_us, ref_put_one_way_us, ref_put_rtt_us;
  if (latency.has_value()) {
    if (latency->ref_get.outcome.has_value()) {
      ref_get_us = latency->ref_get.outcome->result.typical_latency_us;
    }
    if (latency->ref_put_lat.outcome.has_value()) {
      ref_put_one_way_us = latency->ref_put_lat.outcome->result.typical_latency_us;
      ref_put_rtt_us = 2 * *ref_put_one_way_us;
    }
    nlohmann::json ref_put = ReferenceJson(latency->ref_put_lat, "ucp_put_lat");
    if (!ref_put.is_null()) {
      ref_put["one_way_p50_us"] = *ref_put_one_way_us;
      ref_put["round_trip_p50_us"] = *ref_put_rtt_us;
    }
    latency_json = {
        {"block_bytes", latency->block_bytes},
        {"kvpool",
         {{"get_us", ToJson(latency->kv_get_us)}, {"put_us", ToJson(latency->kv_put_us)}}},
        {"ucx_perftest",
         {{"get", ReferenceJson(latency->ref_get, "ucp_get")}, {"put_lat", ref_put}}},
        {"ratio",
         {{"get_p50", OrNull(Ratio(latency->kv_get_us.p50, ref_get_us))},
          {"put_p50_vs_round_trip", OrNull(Ratio(latency->kv_put_us.p50, ref_put_rtt_us))}}}};
  }
  const std::optional<double> load_after = LoadAverage();
  nlohmann::json result = {
      {"tls", tls},
      {"load_average_1min", {{"before", OrNull(load_before)}, {"after", OrNull(load_after)}}},
      {"kvpoold_address", daemon->address()},
      {"bandwidth", bandwidth},
      {"latency", latency_json},
      {"batched_get",
       {{"blocks", big.blocks},
        {"block_bytes", big.block_bytes},
        {"gbps", big.gbps},
        {"batch_us", ToJson(big.batch_us)},
        {"memcpy_gbps", big.memcpy_gbps}}},
      {"ucx_perftest_errors", ref_errors}};

  if (!quiet) {
    std::cout << "\ntransfer over " << tls << ": kvpool::DataPlane to kvpoold at "
              << daemon->address() << " (batches of " << opt.batch_blocks << " blocks, "
              << opt.inflight_batches << " in flight; best of " << opt.repeat
              << ") vs ucx_perftest, UCX_TLS=" << tls
              << "; GB/s = 1e9 bytes/s; load average " << Cell(load_before, 2) << " -> "
              << Cell(load_after, 2) << " on " << std::thread::hardware_concurrency()
              << " CPUs\n";
    TextTable bw({"BLOCK", "OP", "kvpool", "kvpool 1-block", "ucx_perftest", "ratio",
                  "memcpy set", "memcpy block"});
    for (const BandwidthRow& r : rows) {
      const Reference& best_ref = Best(r.reference);
      const std::optional<double> ref = RefGbps(best_ref);
      const double one = Best(r.one_block).gbps();
      bw.AddRow({FormatBytes(r.block_bytes), r.put ? "put" : "get",
                 FormatFixed(Best(r.spread).gbps(), 2), FormatFixed(one, 2),
                 Cell(ref, 2, &best_ref), Cell(Ratio(one, ref), 2),
                 FormatFixed(r.memcpy_set_gbps, 2), FormatFixed(r.memcpy_block_gbps, 2)});
    }
    bw.Print(std::cout);
    if (latency.has_value()) {
      std::cout << "\none-block latency, " << FormatBytes(latency->block_bytes) << " (us)\n";
      TextTable lt({"OPERATION", "kvpool p50", "kvpool p99", "ucx p50", "ratio p50", "ucx is"});
      lt.AddRow({"Get", FormatFixed(latency->kv_get_us.p50, 1),
                 FormatFixed(latency->kv_get_us.p99, 1), Cell(ref_get_us, 1, &latency->ref_get),
                 Cell(Ratio(latency->kv_get_us.p50, ref_get_us), 2),
                 "ucp_get -O 1: one get, issue to local completion"});
      lt.AddRow({"Put", FormatFixed(latency->kv_put_us.p50, 1),
                 FormatFixed(latency->kv_put_us.p99, 1),
                 Cell(ref_put_rtt_us, 1, &latency->ref_put_lat),
                 Cell(Ratio(latency->kv_put_us.p50, ref_put_rtt_us), 2),
                 "ucp_put_lat x2: put ping-pong round trip (one way " +
                     Cell(ref_put_one_way_us, 1) + ")"});
      lt.Print(std::cout);
    }
    std::cout << "\nbatched Get of " << big.blocks << " x " << FormatBytes(big.block_bytes)
              << " in one call: " << FormatFixed(big.gbps, 2) << " GB/s, p50 "
              << FormatFixed(big.batch_us.p50, 0) << " us, p99 " << FormatFixed(big.batch_us.p99, 0)
              << " us per batch (memcpy of " << FormatBytes(big_bytes) << ": "
              << FormatFixed(big.memcpy_gbps, 2) << " GB/s)\n";
    if (!ref_errors.empty()) {
      std::cout << "ucx_perftest unavailable for " << ref_errors.size()
                << " measurement(s) ('-'); see the warnings above\n";
    }
  }
  return result;
}

}  // namespace

Result<nlohmann::json> RunTransferBench(const TransferBenchOptions& opt, bool quiet) {
  if (opt.tls.empty()) return InvalidArgumentError("transfer: --tls names no transport");
  if (opt.block_sizes_bytes.empty()) return InvalidArgumentError("transfer: --sizes is empty");
  for (uint64_t size : opt.block_sizes_bytes) {
    if (size == 0 || size % 64 != 0) {
      return InvalidArgumentError("transfer: block size " + std::to_string(size) +
                                  " is not a positive multiple of 64");
    }
  }
  if (opt.batch_blocks == 0 || opt.inflight_batches == 0 || opt.big_batch_blocks == 0 ||
      opt.latency_iterations == 0 || opt.repeat == 0 || opt.big_batch_block_bytes % 64 != 0 ||
      opt.big_batch_block_bytes == 0 || !(opt.seconds > 0)) {
    return InvalidArgumentError("transfer: --batch-blocks, --inflight, --big-batch-blocks, "
                                "--latency-iterations, --repeat and --seconds must be positive");
  }
  const std::string work_dir = (std::filesystem::temp_directory_path() /
                                ("kvpool-bench-transfer-" + std::to_string(::getpid())))
                                   .string();
  ReferenceRunner reference(opt, work_dir + "/ucx_perftest");

  nlohmann::json transports = nlohmann::json::array();
  bool reference_failed = false;
  for (const std::string& tls : opt.tls) {
    // On an error the daemons are gone but work_dir stays: the message names its logs.
    KVPOOL_ASSIGN_OR_RETURN(nlohmann::json t, RunTransport(opt, tls, work_dir, reference, quiet));
    reference_failed = reference_failed || !t["ucx_perftest_errors"].empty();
    transports.push_back(std::move(t));
  }
  if (!reference_failed) {
    std::error_code ignored;
    std::filesystem::remove_all(work_dir, ignored);
  }
  if (!quiet) {
    std::cout
        << "\nkvpool: DataPlane::Put/Get calls of " << opt.batch_blocks << " blocks, "
        << opt.inflight_batches
        << " calls in flight, each on its own blocks and buffer range, reused; a Put completes "
           "when the node has the bytes (endpoint flush).\n"
           "kvpool 1-block: the same calls with every op on one block and one buffer range, "
           "ucx_perftest's access pattern (its message buffer is reused, so cache-warm).\n"
           "ucx_perftest: ucp_put_bw / ucp_get, one message of the block size, overall "
           "bandwidth; '*': stopped at its time limit (last progress report); '-': "
           "unavailable. Bandwidths are the best of the repetitions (--repeat).\n"
           "ratio: kvpool 1-block / ucx_perftest (target >= 0.9 at 1 MiB). memcpy: one thread "
           "copying between two buffers as large as kvpool's working set (all in-flight "
           "batches) or one block: the ceiling of kvpool and kvpool 1-block on one host.\n"
           "latency: one-block Put or Get call until Wait returns. Get is compared with "
           "ucp_get -O 1 (p50 time per get); Put with twice ucp_put_lat's p50 (ucx_perftest "
           "halves its ping-pong round trip; a Put needs the node's acknowledgement, one round "
           "trip). Target: Get ratio <= 2.\n"
           "tcp: ucx_perftest's server progresses UCX only between 1 ms socket polls in one-sided "
           "tests, so its tcp put/get figures are not an upper bound (kvpoold progresses "
           "continuously); compare tcp latency with the put round trip.\n";
  }
  return nlohmann::json{{"benchmark", "transfer"},
                        {"options",
                         {{"tls", opt.tls},
                          {"block_sizes_bytes", opt.block_sizes_bytes},
                          {"batch_blocks", opt.batch_blocks},
                          {"inflight_batches", opt.inflight_batches},
                          {"seconds", opt.seconds},
                          {"repeat", opt.repeat},
                          {"max_bytes", opt.max_bytes},
                          {"latency_iterations", opt.latency_iterations},
                          {"big_batch_blocks", opt.big_batch_blocks},
                          {"big_batch_block_bytes", opt.big_batch_block_bytes},
                          {"huge_local_buffer", opt.huge_local_buffer},
                          {"ucx_perftest", opt.ucx_perftest_binary}}},
                        {"ucx_perftest_available", reference.available()},
                        {"units",
                         {{"gbps", "1e9 bytes per second"},
                          {"us", "microseconds"},
                          {"ucx_perftest_raw_mib_per_s", "ucx_perftest's 'MB/s' = 2^20 bytes/s"}}},
                        {"transports", transports}};
}

}  // namespace kvpool::bench
