#include "bench/tiers_bench.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <iostream>
#include <random>
#include <thread>
#include <vector>

#include "bench/bench_stats.h"
#include "bench/dd_reference.h"
#include "common/clock.h"
#include "common/table.h"
#include "common/units.h"
#include "memory/host_arena.h"
#include "node/mempool.h"
#include "storage/block_store.h"

namespace kvpool::bench {
namespace {

constexpr uint32_t kBlockTokens = 16;

// A scratch directory removed with its contents.
class ScratchDir {
 public:
  explicit ScratchDir(const std::string& parent) {
    std::string tmpl = (std::filesystem::path(parent) / "kvpool-bench-tiers-XXXXXX").string();
    if (mkdtemp(tmpl.data()) != nullptr) path_ = tmpl;
  }
  ~ScratchDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  ScratchDir(const ScratchDir&) = delete;
  ScratchDir& operator=(const ScratchDir&) = delete;
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// An open file descriptor, closed on destruction.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  int fd_;
};

// Drops the page cache of every file under `dir` (only those files), so reads hit the disk.
void DropCache(const std::string& dir) {
  std::error_code ec;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir, ec)) {
    if (!entry.is_regular_file()) continue;
    Fd fd(::open(entry.path().c_str(), O_RDONLY));
    if (fd.get() < 0) continue;
    ::fdatasync(fd.get());
    ::posix_fadvise(fd.get(), 0, 0, POSIX_FADV_DONTNEED);
  }
}

std::vector<uint32_t> PromptTokens(uint32_t seed, uint64_t blocks) {
  std::vector<uint32_t> t(blocks * kBlockTokens);
  for (size_t i = 0; i < t.size(); ++i) t[i] = seed * 7919 + static_cast<uint32_t>(i);
  return t;
}

struct FreeDeleter {
  void operator()(uint8_t* p) const { std::free(p); }
};

// A pool on memory filled with random bytes (so the tier moves incompressible data), with an
// SSD tier. Members are pointers so the whole can be moved.
struct PoolOnDisk {
  std::unique_ptr<ManualClock> clock = std::make_unique<ManualClock>();
  std::unique_ptr<uint8_t, FreeDeleter> memory;
  std::unique_ptr<node::MemPool> pool;  // declared last: destroyed first
};

Result<PoolOnDisk> MakePool(const std::string& ssd_dir, uint64_t block_bytes, uint64_t blocks,
                            uint64_t disk_bytes, uint64_t write_behind_bytes = 0) {
  PoolOnDisk p;
  node::MemPoolOptions o;
  o.write_behind_bytes = write_behind_bytes;
  const uint64_t bytes = ((blocks + 8) * block_bytes + 4095) / 4096 * 4096;
  o.huge_pages = false;
  o.max_request_blocks = 1 << 20;
  o.slab_bytes = 64 * block_bytes;
  p.memory.reset(static_cast<uint8_t*>(std::aligned_alloc(4096, bytes)));
  if (p.memory == nullptr) return ResourceExhaustedError("cannot allocate " + FormatBytes(bytes));
  std::mt19937_64 rng(bytes);
  for (uint64_t i = 0; i + 8 <= bytes; i += 8) {
    const uint64_t v = rng();
    std::memcpy(p.memory.get() + i, &v, 8);
  }
  KVPOOL_ASSIGN_OR_RETURN(auto arena, memory::HostArena::Adopt(p.memory.get(), bytes));
  KVPOOL_ASSIGN_OR_RETURN(p.pool, node::MemPool::Create(o, p.clock.get(), std::move(arena)));
  storage::BlockStoreOptions so;
  so.path = ssd_dir;
  so.capacity_bytes = disk_bytes;
  KVPOOL_ASSIGN_OR_RETURN(auto store, storage::BlockStore::Open(so));
  KVPOOL_RETURN_IF_ERROR(p.pool->AttachStore(std::move(store)).status());
  KVPOOL_RETURN_IF_ERROR(
      p.pool->CreateNamespace(NamespaceSpec{"bench", kBlockTokens, block_bytes, ""}).status());
  return p;
}

// Allocates and inserts `blocks` blocks of one prompt (their bytes: the arena's random fill).
// Returns the tokens.
Result<std::vector<uint32_t>> Publish(node::MemPool& pool, uint32_t seed, uint64_t blocks) {
  auto tokens = PromptTokens(seed, blocks);
  KVPOOL_ASSIGN_OR_RETURN(Allocation alloc,
                          pool.AllocMem("bench", static_cast<uint32_t>(blocks), Tier::kHost, 0));
  std::vector<BlockHandle> handles;
  for (const auto& b : alloc.blocks) handles.push_back(b.handle);
  KVPOOL_RETURN_IF_ERROR(
      pool.Insert("bench", PromptView::Tokens(tokens), 0, handles, alloc.lease.id, false)
          .status());
  KVPOOL_RETURN_IF_ERROR(pool.Release(alloc.lease.id).status());
  return tokens;
}

double GBps(uint64_t bytes, double seconds) { return seconds > 0 ? bytes / seconds / 1e9 : 0; }

struct Throughput {
  double demote_s = 0, promote_s = 0, write_s = 0, read_s = 0;
  uint64_t bytes = 0;
  DdResult dd_write, dd_read;  // the reference the issue names: dd in the same directory
};

// dd gets a minute per GiB, at least ten seconds: far more than any disk here needs.
int DdTimeoutMs(uint64_t bytes) {
  return static_cast<int>(std::max<uint64_t>(10'000, 60'000 * (bytes >> 30)));
}

Result<Throughput> MeasureThroughput(const TiersBenchOptions& opt, const std::string& dir) {
  const uint64_t blocks = std::max<uint64_t>(1, opt.total_bytes / opt.block_bytes);
  Throughput t;
  t.bytes = blocks * opt.block_bytes;
  {
    KVPOOL_ASSIGN_OR_RETURN(PoolOnDisk p, MakePool(dir + "/ssd", opt.block_bytes, blocks,
                                                   2 * t.bytes));
    KVPOOL_ASSIGN_OR_RETURN(auto tokens, Publish(*p.pool, 1, blocks));
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(node::SwapOutResult out, p.pool->SwapOut("bench", blocks));
    // DemoteAll on an empty HOST tier only syncs the WAL: the demotion is on the disk after it.
    KVPOOL_RETURN_IF_ERROR(p.pool->DemoteAll().status());
    t.demote_s = NanosSince(t0) / 1e9;
    if (out.demoted_blocks != blocks) {
      return InternalError("demoted " + std::to_string(out.demoted_blocks) + " of " +
                           std::to_string(blocks) + " blocks");
    }
    DropCache(dir + "/ssd");
    t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(MatchResult m,
                            p.pool->Match("bench", PromptView::Tokens(tokens), 0, true, 0));
    t.promote_s = NanosSince(t0) / 1e9;
    if (m.matched_blocks != blocks) {
      return InternalError("promoted " + std::to_string(m.matched_blocks) + " of " +
                           std::to_string(blocks) + " blocks");
    }
    KVPOOL_RETURN_IF_ERROR(p.pool->Release(m.lease.id).status());
  }
  // The same bytes with plain sequential I/O in the same directory.
  std::vector<uint8_t> buf(opt.block_bytes);
  std::mt19937_64 rng(7);
  for (size_t i = 0; i < buf.size(); i += 8) {
    const uint64_t v = rng();
    std::memcpy(buf.data() + i, &v, std::min<size_t>(8, buf.size() - i));
  }
  const std::string path = dir + "/plain.bin";
  {
    Fd fd(::open(path.c_str(), O_CREAT | O_TRUNC | O_WRONLY, 0644));
    if (fd.get() < 0) return InternalError("cannot create " + path + ": " + std::strerror(errno));
    auto t0 = BenchClock::now();
    for (uint64_t i = 0; i < blocks; ++i) {
      if (::pwrite(fd.get(), buf.data(), buf.size(), static_cast<off_t>(i * buf.size())) !=
          static_cast<ssize_t>(buf.size())) {
        return InternalError("pwrite to " + path + " failed: " + std::strerror(errno));
      }
    }
    ::fsync(fd.get());
    t.write_s = NanosSince(t0) / 1e9;
  }
  DropCache(dir);
  {
    Fd fd(::open(path.c_str(), O_RDONLY));
    if (fd.get() < 0) return InternalError("cannot open " + path + ": " + std::strerror(errno));
    auto t0 = BenchClock::now();
    for (uint64_t i = 0; i < blocks; ++i) {
      if (::pread(fd.get(), buf.data(), buf.size(), static_cast<off_t>(i * buf.size())) !=
          static_cast<ssize_t>(buf.size())) {
        return InternalError("pread of " + path + " failed: " + std::strerror(errno));
      }
    }
    t.read_s = NanosSince(t0) / 1e9;
  }
  // dd copies the same bytes (plain.bin, in the page cache after the read) to a new file and
  // syncs it, then reads that file back with its cache dropped.
  const std::string dd_path = dir + "/dd.bin", dd_log = dir + "/dd.log";
  const std::string bs = "bs=" + std::to_string(opt.block_bytes);
  const std::string count = "count=" + std::to_string(blocks);
  KVPOOL_ASSIGN_OR_RETURN(t.dd_write, RunDd({"if=" + path, "of=" + dd_path, bs, count,
                                             "conv=fsync"},
                                            dd_log, DdTimeoutMs(t.bytes)));
  DropCache(dir);
  KVPOOL_ASSIGN_OR_RETURN(t.dd_read, RunDd({"if=" + dd_path, "of=/dev/null", bs, count}, dd_log,
                                           DdTimeoutMs(t.bytes)));
  for (const auto& dd : {t.dd_write, t.dd_read}) {
    if (dd.bytes != t.bytes) {
      return InternalError("'" + dd.command + "' copied " + std::to_string(dd.bytes) +
                           " bytes, not " + std::to_string(t.bytes));
    }
  }
  std::filesystem::remove(path);
  std::filesystem::remove(dd_path);
  return t;
}

struct Latency {
  Summary host_us, disk_us;
};

Result<Latency> MeasureMatchLatency(const TiersBenchOptions& opt, const std::string& dir) {
  KVPOOL_ASSIGN_OR_RETURN(PoolOnDisk p, MakePool(dir + "/ssd-latency", opt.block_bytes, 16,
                                                 64 * opt.block_bytes));
  KVPOOL_ASSIGN_OR_RETURN(auto tokens, Publish(*p.pool, 2, 1));
  std::vector<double> host_us, disk_us;
  for (uint32_t i = 0; i < opt.match_rounds; ++i) {
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(MatchResult m,
                            p.pool->Match("bench", PromptView::Tokens(tokens), 0, true, 0));
    host_us.push_back(MicrosSince(t0));
    KVPOOL_RETURN_IF_ERROR(p.pool->Release(m.lease.id).status());
  }
  for (uint32_t i = 0; i < opt.match_rounds; ++i) {
    // The SSD tier keeps its copy: this only frees the HOST copy, so the Match reads the store.
    KVPOOL_RETURN_IF_ERROR(p.pool->SwapOut("bench", 1).status());
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(MatchResult m,
                            p.pool->Match("bench", PromptView::Tokens(tokens), 0, true, 0));
    disk_us.push_back(MicrosSince(t0));
    if (m.matched_blocks != 1 || m.blocks[0].tier != Tier::kHost) {
      return InternalError("a DISK hit was not promoted");
    }
    KVPOOL_RETURN_IF_ERROR(p.pool->Release(m.lease.id).status());
  }
  return Latency{Summarize(host_us), Summarize(disk_us)};
}

// Until `stop`: a leased Match of `hot` (a HOST hit), timed, every 200 us.
void SampleHostMatches(node::MemPool& pool, const std::vector<uint32_t>& hot,
                       const std::atomic<bool>& stop, std::vector<double>* out) {
  while (!stop.load()) {
    auto t0 = BenchClock::now();
    auto m = pool.Match("bench", PromptView::Tokens(hot), 0, true, 0);
    out->push_back(MicrosSince(t0));
    if (m.ok()) pool.Release(m->lease.id).status().IgnoreError();
    std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
}

// Allocations that evict, with and without write-behind (MemPool::WriteBehind).
struct Pressure {
  Summary alloc_us;        // AllocMem of alloc_blocks blocks, each evicting as many
  Summary match_us;        // a HOST-hit Match on another thread meanwhile
  uint64_t written_behind = 0;
  uint64_t demoted = 0;
};

// A full pool of 256 blocks; every `interval` an allocation of `alloc_blocks` evicts as many
// (demoting them), while another thread matches a hot prompt. With write-behind, a thread runs
// WriteBehind as kvpoold does (every 10 ms, until nothing is left).
Result<Pressure> MeasurePressure(const TiersBenchOptions& opt, const std::string& dir,
                                 bool write_behind, std::chrono::microseconds interval,
                                 uint32_t alloc_blocks) {
  constexpr uint64_t kHostBlocks = 256;
  KVPOOL_ASSIGN_OR_RETURN(
      PoolOnDisk p, MakePool(dir + (write_behind ? "/ssd-wb" : "/ssd-nowb"), opt.block_bytes,
                             kHostBlocks, 8 * kHostBlocks * opt.block_bytes,
                             write_behind ? 64ull << 20 : 0));
  KVPOOL_ASSIGN_OR_RETURN(auto hot, Publish(*p.pool, 1, 1));
  uint32_t seed = 100;
  while (p.pool->GetStats().free_bytes >= opt.block_bytes * alloc_blocks) {
    KVPOOL_RETURN_IF_ERROR(Publish(*p.pool, seed++, alloc_blocks).status());
  }
  std::atomic<bool> stop{false};
  std::thread writer([&] {
    while (write_behind && !stop.load()) {
      while (p.pool->WriteBehind().value_or(0) > 0 && !stop.load()) {
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  });
  std::vector<double> match_us;
  std::thread matcher([&] { SampleHostMatches(*p.pool, hot, stop, &match_us); });
  std::vector<double> alloc_us;
  Status failed;
  auto next = BenchClock::now();
  for (uint32_t i = 0; i < opt.pressure_rounds && failed.ok(); ++i) {
    std::this_thread::sleep_until(next);
    next += interval;
    auto tokens = PromptTokens(seed++, alloc_blocks);
    auto t0 = BenchClock::now();
    Result<Allocation> alloc =
        p.pool->AllocMem("bench", alloc_blocks, Tier::kHost, /*lease_ttl_ms=*/0);
    alloc_us.push_back(MicrosSince(t0));
    if (!alloc.ok()) {
      failed = alloc.status();
      break;
    }
    std::vector<BlockHandle> handles;
    for (const auto& b : alloc->blocks) handles.push_back(b.handle);
    failed = p.pool->Insert("bench", PromptView::Tokens(tokens), 0, handles, alloc->lease.id,
                            false).status();
    p.pool->Release(alloc->lease.id).status().IgnoreError();
  }
  stop = true;
  writer.join();
  matcher.join();
  KVPOOL_RETURN_IF_ERROR(failed);
  KVPOOL_ASSIGN_OR_RETURN(NamespaceInfo info, p.pool->GetNamespace("bench"));
  return Pressure{Summarize(alloc_us), Summarize(match_us), info.stats.written_behind_blocks,
                  info.stats.demoted_blocks};
}

// HOST-hit Match latency on one thread while another promotes runs of DISK blocks (each run
// demoted again right after), against the same without the promotions.
struct Interference {
  Summary quiet_us, promoting_us, swapping_us;
  uint64_t promoted_blocks = 0, swapped_blocks = 0;
};

// HOST-hit Match latency on one thread while another does tier I/O: promotes runs of DISK
// blocks, then publishes new runs and swaps them out (SwapOut writes them to the tier).
Result<Interference> MeasureTierIoInterference(const TiersBenchOptions& opt,
                                               const std::string& dir) {
  constexpr uint64_t kRunBlocks = 16;
  KVPOOL_ASSIGN_OR_RETURN(PoolOnDisk p, MakePool(dir + "/ssd-interference", opt.block_bytes, 64,
                                                 64 * opt.block_bytes));
  KVPOOL_ASSIGN_OR_RETURN(auto run, Publish(*p.pool, 3, kRunBlocks));
  KVPOOL_RETURN_IF_ERROR(p.pool->SwapOut("bench", kRunBlocks).status());
  KVPOOL_ASSIGN_OR_RETURN(auto hot, Publish(*p.pool, 4, 1));
  // Held for the whole measurement, so that the SwapOuts below never demote the hot block (it
  // would then be promoted, and the sample would time a DISK hit).
  KVPOOL_ASSIGN_OR_RETURN(MatchResult hot_pin,
                          p.pool->Match("bench", PromptView::Tokens(hot), 0, true, 0));

  Interference r;
  std::vector<double> quiet, promoting;
  {
    std::atomic<bool> stop{false};
    std::thread t([&] { SampleHostMatches(*p.pool, hot, stop, &quiet); });
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
    stop = true;
    t.join();
  }
  std::atomic<bool> stop{false};
  std::thread t([&] { SampleHostMatches(*p.pool, hot, stop, &promoting); });
  Status failed;
  for (uint32_t i = 0; i < opt.pressure_rounds / 4 && failed.ok(); ++i) {
    Result<MatchResult> m = p.pool->Match("bench", PromptView::Tokens(run), 0, true, 0);
    if (!m.ok()) {
      failed = m.status();
      break;
    }
    r.promoted_blocks += m->matched_blocks;
    p.pool->Release(m->lease.id).status().IgnoreError();
    failed = p.pool->SwapOut("bench", kRunBlocks).status();
  }
  stop = true;
  t.join();
  KVPOOL_RETURN_IF_ERROR(failed);

  // Fresh runs each round, so that every SwapOut writes its 16 blocks (the tier makes room by
  // dropping the oldest runs). Host memory never fills: no allocation evicts.
  std::vector<double> swapping;
  stop = false;
  std::thread s([&] { SampleHostMatches(*p.pool, hot, stop, &swapping); });
  for (uint32_t i = 0; i < opt.pressure_rounds / 8 && failed.ok(); ++i) {
    Result<std::vector<uint32_t>> fresh = Publish(*p.pool, 10'000 + i, kRunBlocks);
    if (!fresh.ok()) {
      failed = fresh.status();
      break;
    }
    Result<node::SwapOutResult> out = p.pool->SwapOut("bench", kRunBlocks);
    if (!out.ok()) {
      failed = out.status();
      break;
    }
    r.swapped_blocks += out->demoted_blocks;
  }
  stop = true;
  s.join();
  KVPOOL_RETURN_IF_ERROR(failed);
  KVPOOL_RETURN_IF_ERROR(p.pool->Release(hot_pin.lease.id).status());
  r.quiet_us = Summarize(quiet);
  r.promoting_us = Summarize(promoting);
  r.swapping_us = Summarize(swapping);
  return r;
}

struct Recovery {
  uint64_t blocks = 0;
  double seconds = 0;
  /// Of which: opening RocksDB (WAL replay) and counting the stored bytes (a metadata scan).
  double open_seconds = 0;
};

Result<Recovery> MeasureRecovery(const TiersBenchOptions& opt, const std::string& dir) {
  // Small blocks keep the store small, and at the BlockStore's min_blob_bytes they still go to
  // blob files as real blocks do; the scan reads only the metadata records.
  constexpr uint64_t kSmallBlock = 512;
  const std::string ssd = dir + "/ssd-recovery";
  const uint64_t blocks = opt.recovery_blocks;
  {
    KVPOOL_ASSIGN_OR_RETURN(PoolOnDisk p, MakePool(ssd, kSmallBlock, 4096, blocks * kSmallBlock));
    for (uint64_t done = 0; done < blocks; done += 4096) {
      const uint64_t n = std::min<uint64_t>(4096, blocks - done);
      KVPOOL_RETURN_IF_ERROR(Publish(*p.pool, 1000 + static_cast<uint32_t>(done), n).status());
      KVPOOL_RETURN_IF_ERROR(p.pool->SwapOut("bench", n).status());
    }
  }
  DropCache(ssd);
  ManualClock clock;
  node::MemPoolOptions o;
  o.capacity_bytes = 1 << 20;
  o.huge_pages = false;
  auto t0 = BenchClock::now();
  KVPOOL_ASSIGN_OR_RETURN(auto pool, node::MemPool::Create(o, &clock));
  storage::BlockStoreOptions so;
  so.path = ssd;
  so.capacity_bytes = blocks * kSmallBlock;
  so.count_on_open = false;  // as kvpoold opens it: the recovery scan counts the bytes
  KVPOOL_ASSIGN_OR_RETURN(auto store, storage::BlockStore::Open(so));
  const double open_s = NanosSince(t0) / 1e9;
  KVPOOL_ASSIGN_OR_RETURN(node::RecoveryStats stats, pool->AttachStore(std::move(store)));
  return Recovery{stats.blocks, NanosSince(t0) / 1e9, open_s};
}

}  // namespace

Result<nlohmann::json> RunTiersBench(const TiersBenchOptions& opt, bool quiet) {
  if (opt.block_bytes == 0 || opt.block_bytes % 64 != 0) {
    return InvalidArgumentError("block-bytes must be a positive multiple of 64, got " +
                                std::to_string(opt.block_bytes));
  }
  ScratchDir dir(opt.dir);
  if (dir.path().empty()) return InvalidArgumentError("cannot create a directory in " + opt.dir);
  KVPOOL_ASSIGN_OR_RETURN(Throughput t, MeasureThroughput(opt, dir.path()));
  KVPOOL_ASSIGN_OR_RETURN(Latency l, MeasureMatchLatency(opt, dir.path()));
  // Allocations at half the measured demotion throughput: the write-behind can keep up.
  const uint32_t alloc_blocks = 4;
  const double demote_bps = t.demote_s > 0 ? t.bytes / t.demote_s : 1e9;
  const auto interval = std::chrono::microseconds(static_cast<int64_t>(
      1e6 * static_cast<double>(alloc_blocks * opt.block_bytes) / (0.5 * demote_bps)));
  KVPOOL_ASSIGN_OR_RETURN(Pressure off,
                          MeasurePressure(opt, dir.path(), false, interval, alloc_blocks));
  KVPOOL_ASSIGN_OR_RETURN(Pressure on,
                          MeasurePressure(opt, dir.path(), true, interval, alloc_blocks));
  KVPOOL_ASSIGN_OR_RETURN(Interference inter, MeasureTierIoInterference(opt, dir.path()));
  KVPOOL_ASSIGN_OR_RETURN(Recovery r, MeasureRecovery(opt, dir.path()));
  const double per_million_s = r.blocks > 0 ? r.seconds * 1e6 / r.blocks : 0;

  nlohmann::json out = {
      {"dir", opt.dir},
      {"block_bytes", opt.block_bytes},
      {"bytes", t.bytes},
      {"demote_gbps", GBps(t.bytes, t.demote_s)},
      {"promote_gbps", GBps(t.bytes, t.promote_s)},
      {"plain_write_fsync_gbps", GBps(t.bytes, t.write_s)},
      {"plain_read_gbps", GBps(t.bytes, t.read_s)},
      {"dd_write_gbps", GBps(t.bytes, t.dd_write.seconds)},
      {"dd_read_gbps", GBps(t.bytes, t.dd_read.seconds)},
      {"dd_write_command", t.dd_write.command},
      {"dd_read_command", t.dd_read.command},
      {"demote_vs_dd", t.dd_write.seconds > 0 ? t.dd_write.seconds / t.demote_s : 0},
      {"promote_vs_dd", t.dd_read.seconds > 0 ? t.dd_read.seconds / t.promote_s : 0},
      {"match_host_us", ToJson(l.host_us)},
      {"match_disk_us", ToJson(l.disk_us)},
      {"pressure_alloc_blocks", alloc_blocks},
      {"pressure_interval_us", interval.count()},
      {"pressure_alloc_us", ToJson(off.alloc_us)},
      {"pressure_match_us", ToJson(off.match_us)},
      {"write_behind_alloc_us", ToJson(on.alloc_us)},
      {"write_behind_match_us", ToJson(on.match_us)},
      {"write_behind_blocks", on.written_behind},
      {"write_behind_demoted_blocks", on.demoted},
      {"host_match_quiet_us", ToJson(inter.quiet_us)},
      {"host_match_while_promoting_us", ToJson(inter.promoting_us)},
      {"interference_promoted_blocks", inter.promoted_blocks},
      {"host_match_while_swapping_out_us", ToJson(inter.swapping_us)},
      {"interference_swapped_out_blocks", inter.swapped_blocks},
      {"recovery_blocks", r.blocks},
      {"recovery_s", r.seconds},
      {"recovery_open_s", r.open_seconds},
      {"recovery_s_per_million_blocks", per_million_s},
  };
  if (!quiet) {
    std::cout << "SSD tier in " << opt.dir << ": " << FormatBytes(t.bytes) << " in "
              << FormatBytes(opt.block_bytes) << " blocks\n\n";
    TextTable table({"WHAT", "KVPOOL", "DD", "KVPOOL/DD", "PWRITE/PREAD"});
    auto row = [&](const std::string& what, double ours, double dd, double plain) {
      char a[32], b[32], c[32], d[32];
      std::snprintf(a, sizeof(a), "%.2f GB/s", ours);
      std::snprintf(b, sizeof(b), "%.2f GB/s", dd);
      std::snprintf(c, sizeof(c), "%.0f%%", dd > 0 ? 100 * ours / dd : 0);
      std::snprintf(d, sizeof(d), "%.2f GB/s", plain);
      table.AddRow({what, a, b, c, d});
    };
    row("write (demote+sync / dd conv=fsync)", GBps(t.bytes, t.demote_s),
        GBps(t.bytes, t.dd_write.seconds), GBps(t.bytes, t.write_s));
    row("read (promote / dd), cache dropped", GBps(t.bytes, t.promote_s),
        GBps(t.bytes, t.dd_read.seconds), GBps(t.bytes, t.read_s));
    table.Print(std::cout);
    std::cout << "dd: " << t.dd_write.command << "\n    " << t.dd_read.command << "\n";
    std::cout << "\n";
    TextTable lat({"MATCH WITH LEASE (1 block)", "p50 us", "p90 us", "p99 us"});
    auto lrow = [&](const std::string& what, const Summary& s) {
      char a[32], b[32], c[32];
      std::snprintf(a, sizeof(a), "%.1f", s.p50);
      std::snprintf(b, sizeof(b), "%.1f", s.p90);
      std::snprintf(c, sizeof(c), "%.1f", s.p99);
      lat.AddRow({what, a, b, c});
    };
    lrow("HOST hit", l.host_us);
    lrow("DISK hit (promoted)", l.disk_us);
    lat.Print(std::cout);
    std::printf("\nunder pressure: a full pool, AllocMem of %u blocks every %lld us (each evicts "
                "as many to the SSD tier), a HOST-hit Match on another thread\n",
                alloc_blocks, static_cast<long long>(interval.count()));
    TextTable pressure({"WRITE-BEHIND", "ALLOC p50 us", "p99 us", "MATCH p50 us", "p99 us",
                        "WRITTEN AHEAD", "DEMOTED"});
    auto prow = [&](const std::string& what, const Pressure& x) {
      char a[32], b[32], c[32], d[32];
      std::snprintf(a, sizeof(a), "%.1f", x.alloc_us.p50);
      std::snprintf(b, sizeof(b), "%.1f", x.alloc_us.p99);
      std::snprintf(c, sizeof(c), "%.1f", x.match_us.p50);
      std::snprintf(d, sizeof(d), "%.1f", x.match_us.p99);
      pressure.AddRow({what, a, b, c, d, std::to_string(x.written_behind),
                       std::to_string(x.demoted)});
    };
    prow("off", off);
    prow("on", on);
    pressure.Print(std::cout);
    std::printf("\nHOST-hit Match on one thread while another promotes runs of 16 DISK blocks "
                "(%llu promoted), or publishes runs of 16 and swaps them out (%llu demoted)\n",
                static_cast<unsigned long long>(inter.promoted_blocks),
                static_cast<unsigned long long>(inter.swapped_blocks));
    TextTable inter_table({"OTHER THREAD", "p50 us", "p90 us", "p99 us", "max us"});
    auto irow = [&](const std::string& what, const Summary& x) {
      char a[32], b[32], c[32], d[32];
      std::snprintf(a, sizeof(a), "%.1f", x.p50);
      std::snprintf(b, sizeof(b), "%.1f", x.p90);
      std::snprintf(c, sizeof(c), "%.1f", x.p99);
      std::snprintf(d, sizeof(d), "%.1f", x.max);
      inter_table.AddRow({what, a, b, c, d});
    };
    irow("idle", inter.quiet_us);
    irow("promoting", inter.promoting_us);
    irow("swapping out", inter.swapping_us);
    inter_table.Print(std::cout);
    std::printf("\nrecovery: %llu DISK blocks indexed in %.3f s (%.2f s per million; opening "
                "the store and counting its bytes: %.3f s)\n",
                static_cast<unsigned long long>(r.blocks), r.seconds, per_million_s,
                r.open_seconds);
  }
  return out;
}

}  // namespace kvpool::bench
