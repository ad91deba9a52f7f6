#include "bench/control_bench.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <random>

#include "bench/bench_stats.h"
#include "common/clock.h"
#include "common/table.h"
#include "kvpool/client.h"
#include "launch/local_kvpoold.h"
#include "node/mempool.h"

namespace kvpool::bench {
namespace {

constexpr const char* kNamespace = "bench-control";

std::vector<uint32_t> RandomPrompt(std::mt19937& rng, uint32_t tokens) {
  std::uniform_int_distribution<uint32_t> vocab(0, 128'255);
  std::vector<uint32_t> out(tokens);
  for (auto& t : out) t = vocab(rng);
  return out;
}

std::vector<BlockHandle> HandlesOf(const Allocation& alloc) {
  std::vector<BlockHandle> out;
  out.reserve(alloc.blocks.size());
  for (const auto& b : alloc.blocks) out.push_back(b.handle);
  return out;
}

struct Timings {
  Summary insert_ns, match_ns, alloc_ns_per_block, free_ns_per_block;
};

// The same calls against a remote node (kvpool::Client) or an in-process node::MemPool: both
// expose these methods with the same arguments, so the difference is the transport.
template <typename Pool>
Result<Timings> RunWorkload(Pool& pool, const ControlBenchOptions& opt, const char* label,
                            bool quiet) {
  const uint32_t blocks = opt.prompt_tokens / opt.block_tokens;
  std::vector<double> insert_ns, match_ns, alloc_ns, free_ns;
  if (!quiet) std::cerr << "control (" << label << "): " << opt.iterations << " inserts ..." << std::endl;
  std::mt19937 rng(7);
  std::vector<std::vector<uint32_t>> prompts;
  for (uint32_t i = 0; i < opt.iterations; ++i) {
    prompts.push_back(RandomPrompt(rng, blocks * opt.block_tokens));
    KVPOOL_ASSIGN_OR_RETURN(Allocation alloc, pool.AllocMem(kNamespace, blocks, Tier::kHost, 0));
    const auto handles = HandlesOf(alloc);
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(InsertResult ins,
                            pool.Insert(kNamespace, PromptView::Tokens(prompts.back()), 0, handles,
                                        alloc.lease.id, false));
    insert_ns.push_back(NanosSince(t0));
    if (ins.inserted_blocks != blocks) return InternalError("insert did not insert every block");
    KVPOOL_RETURN_IF_ERROR(pool.Release(alloc.lease.id).status());
  }
  if (!quiet) std::cerr << "control (" << label << "): " << opt.iterations << " matches ..." << std::endl;
  for (const auto& p : prompts) {
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(MatchResult m, pool.Match(kNamespace, PromptView::Tokens(p), 0, false, 0));
    match_ns.push_back(NanosSince(t0));
    if (m.matched_blocks != blocks) return InternalError("match missed blocks that were inserted");
  }
  if (!quiet) {
    std::cerr << "control (" << label << "): " << opt.batch_rounds << " batched alloc/free of "
              << opt.batch_blocks << " blocks ..." << std::endl;
  }
  for (uint32_t i = 0; i < opt.batch_rounds; ++i) {
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(Allocation alloc,
                            pool.AllocMem(kNamespace, opt.batch_blocks, Tier::kHost, 0));
    alloc_ns.push_back(NanosSince(t0) / opt.batch_blocks);
    const auto handles = HandlesOf(alloc);
    t0 = BenchClock::now();
    KVPOOL_RETURN_IF_ERROR(pool.FreeMem(kNamespace, alloc.lease.id, handles).status());
    free_ns.push_back(NanosSince(t0) / opt.batch_blocks);
    KVPOOL_RETURN_IF_ERROR(pool.Release(alloc.lease.id).status());
  }
  return Timings{Summarize(insert_ns), Summarize(match_ns), Summarize(alloc_ns), Summarize(free_ns)};
}

nlohmann::json TimingsJson(const Timings& t) {
  return {{"insert_ns", ToJson(t.insert_ns)},
          {"match_ns", ToJson(t.match_ns)},
          {"alloc_ns_per_block", ToJson(t.alloc_ns_per_block)},
          {"free_ns_per_block", ToJson(t.free_ns_per_block)}};
}

}  // namespace

Result<nlohmann::json> RunControlBench(const ControlBenchOptions& opt, bool quiet) {
  std::unique_ptr<launch::LocalKvpoold> daemon;
  std::string address = opt.address;
  if (address.empty()) {
    launch::LocalKvpooldOptions lo;
    lo.binary = opt.kvpoold_binary;
    lo.work_dir = (std::filesystem::temp_directory_path() /
                   ("kvpool-bench-control-" + std::to_string(::getpid())))
                      .string();
    lo.capacity = "1GiB";
    lo.extra_args = {"--log-level=warning"};
    KVPOOL_ASSIGN_OR_RETURN(daemon, launch::LocalKvpoold::Start(lo));
    address = daemon->address();
  }
  // Small blocks: this measures the control plane, not memory.
  const NamespaceSpec spec{kNamespace, opt.block_tokens, 1024, ""};

  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(address));
  KVPOOL_RETURN_IF_ERROR(client->CreateNamespace(spec).status());
  std::vector<double> floor_ns;
  for (uint32_t i = 0; i < opt.iterations; ++i) {
    auto t0 = BenchClock::now();
    KVPOOL_RETURN_IF_ERROR(client->Health().status());
    floor_ns.push_back(NanosSince(t0));
  }
  KVPOOL_ASSIGN_OR_RETURN(Timings remote, RunWorkload(*client, opt, "gRPC", quiet));

  // The same node code in this process: the server-side share of each call.
  node::MemPoolOptions local_options;
  local_options.capacity_bytes = 1ull << 30;
  KVPOOL_ASSIGN_OR_RETURN(auto local, node::MemPool::Create(local_options, SteadyClock::Default()));
  KVPOOL_RETURN_IF_ERROR(local->CreateNamespace(spec).status());
  KVPOOL_ASSIGN_OR_RETURN(Timings in_process, RunWorkload(*local, opt, "in-process", quiet));

  const Summary floor = Summarize(floor_ns);
  if (!quiet) {
    const uint32_t blocks = opt.prompt_tokens / opt.block_tokens;
    std::cout << "\ncontrol: gRPC on loopback to kvpoold at " << address << ", "
              << opt.prompt_tokens << "-token prompts (" << blocks << " blocks of "
              << opt.block_tokens << " tokens); in-process = the same calls on a node::MemPool\n";
    TextTable t({"OPERATION", "UNIT", "gRPC p50", "gRPC p90", "gRPC p99", "IN-PROCESS p50", "N"});
    auto row = [&](const std::string& name, const char* unit, const Summary& s,
                   const Summary* local_s, double scale) {
      t.AddRow({name, unit, FormatFixed(s.p50 / scale, 1), FormatFixed(s.p90 / scale, 1),
                FormatFixed(s.p99 / scale, 1), local_s ? FormatFixed(local_s->p50 / scale, 1) : "-",
                std::to_string(s.n)});
    };
    const std::string tokens = std::to_string(opt.prompt_tokens);
    row("empty RPC (health check, reference)", "us", floor, nullptr, 1e3);
    row("Insert " + tokens + "-token prompt", "us", remote.insert_ns, &in_process.insert_ns, 1e3);
    row("Match " + tokens + "-token prompt (full hit)", "us", remote.match_ns, &in_process.match_ns, 1e3);
    row("AllocMem, " + std::to_string(opt.batch_blocks) + " blocks", "ns/block",
        remote.alloc_ns_per_block, &in_process.alloc_ns_per_block, 1);
    row("FreeMem, " + std::to_string(opt.batch_blocks) + " blocks", "ns/block",
        remote.free_ns_per_block, &in_process.free_ns_per_block, 1);
    t.Print(std::cout);
    std::cout << "targets (DESIGN.md): Insert p50 <= 100 us; batched Alloc/Free <= 100 ns/block\n";
  }
  return nlohmann::json{{"benchmark", "control"},
                        {"address", address},
                        {"prompt_tokens", opt.prompt_tokens},
                        {"block_tokens", opt.block_tokens},
                        {"batch_blocks", opt.batch_blocks},
                        {"rpc_floor_ns", ToJson(floor)},
                        {"grpc", TimingsJson(remote)},
                        {"in_process", TimingsJson(in_process)}};
}

}  // namespace kvpool::bench
