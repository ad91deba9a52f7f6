#include "bench/control_bench.h"

#include <unistd.h>

#include <filesystem>
#include <iostream>
#include <random>

#include "bench/bench_stats.h"
#include "common/table.h"
#include "kvpool/client.h"
#include "launch/local_kvpoold.h"

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
  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<Client> client, Client::Connect(address));
  const uint32_t blocks = opt.prompt_tokens / opt.block_tokens;
  // Small blocks: this measures the control plane, not memory.
  const NamespaceSpec spec{kNamespace, opt.block_tokens, 1024, ""};
  KVPOOL_RETURN_IF_ERROR(client->CreateNamespace(spec).status());

  std::vector<double> floor_ns, insert_ns, match_ns, alloc_ns, free_ns;
  for (uint32_t i = 0; i < opt.iterations; ++i) {
    auto t0 = BenchClock::now();
    KVPOOL_RETURN_IF_ERROR(client->Health().status());
    floor_ns.push_back(NanosSince(t0));
  }

  if (!quiet) std::cerr << "control: " << opt.iterations << " inserts of " << opt.prompt_tokens << " tokens ..." << std::endl;
  std::mt19937 rng(7);
  std::vector<std::vector<uint32_t>> prompts;
  for (uint32_t i = 0; i < opt.iterations; ++i) {
    prompts.push_back(RandomPrompt(rng, blocks * opt.block_tokens));
    KVPOOL_ASSIGN_OR_RETURN(Allocation alloc, client->AllocMem(kNamespace, blocks));
    const auto handles = HandlesOf(alloc);
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(InsertResult ins, client->Insert(kNamespace, PromptView::Tokens(prompts.back()),
                                                             0, handles, alloc.lease.id));
    insert_ns.push_back(NanosSince(t0));
    if (ins.inserted_blocks != blocks) return InternalError("insert did not insert every block");
    KVPOOL_RETURN_IF_ERROR(client->Release(alloc.lease.id).status());
  }
  if (!quiet) std::cerr << "control: " << opt.iterations << " matches ..." << std::endl;
  for (const auto& p : prompts) {
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(MatchResult m, client->Match(kNamespace, PromptView::Tokens(p)));
    match_ns.push_back(NanosSince(t0));
    if (m.matched_blocks != blocks) return InternalError("match missed blocks that were inserted");
  }
  if (!quiet) std::cerr << "control: " << opt.batch_rounds << " batched alloc/free of " << opt.batch_blocks << " blocks ..." << std::endl;
  for (uint32_t i = 0; i < opt.batch_rounds; ++i) {
    auto t0 = BenchClock::now();
    KVPOOL_ASSIGN_OR_RETURN(Allocation alloc, client->AllocMem(kNamespace, opt.batch_blocks));
    alloc_ns.push_back(NanosSince(t0) / opt.batch_blocks);
    const auto handles = HandlesOf(alloc);
    t0 = BenchClock::now();
    KVPOOL_RETURN_IF_ERROR(client->FreeMem(kNamespace, alloc.lease.id, handles).status());
    free_ns.push_back(NanosSince(t0) / opt.batch_blocks);
    KVPOOL_RETURN_IF_ERROR(client->Release(alloc.lease.id).status());
  }

  const Summary floor = Summarize(floor_ns), ins = Summarize(insert_ns), mat = Summarize(match_ns);
  const Summary al = Summarize(alloc_ns), fr = Summarize(free_ns);
  if (!quiet) {
    std::cout << "\ncontrol: gRPC on loopback to kvpoold at " << address << ", "
              << opt.prompt_tokens << "-token prompts (" << blocks << " blocks of "
              << opt.block_tokens << " tokens)\n";
    TextTable t({"OPERATION", "UNIT", "p50", "p90", "p99", "N"});
    auto row = [&](const char* name, const char* unit, const Summary& s, double scale) {
      t.AddRow({name, unit, FormatFixed(s.p50 / scale, 1), FormatFixed(s.p90 / scale, 1),
                FormatFixed(s.p99 / scale, 1), std::to_string(s.n)});
    };
    row("empty RPC (health check, reference)", "us", floor, 1e3);
    row("Insert 4K-token prompt", "us", ins, 1e3);
    row("Match 4K-token prompt (full hit)", "us", mat, 1e3);
    row("AllocMem, batched", "ns/block", al, 1);
    row("FreeMem, batched", "ns/block", fr, 1);
    t.Print(std::cout);
    std::cout << "targets (DESIGN.md): Insert p50 <= 100 us; batched Alloc/Free <= 100 ns/block\n";
  }
  return nlohmann::json{{"benchmark", "control"},
                        {"address", address},
                        {"prompt_tokens", opt.prompt_tokens},
                        {"block_tokens", opt.block_tokens},
                        {"batch_blocks", opt.batch_blocks},
                        {"rpc_floor_ns", ToJson(floor)},
                        {"insert_ns", ToJson(ins)},
                        {"match_ns", ToJson(mat)},
                        {"alloc_ns_per_block", ToJson(al)},
                        {"free_ns_per_block", ToJson(fr)}};
}

}  // namespace kvpool::bench
