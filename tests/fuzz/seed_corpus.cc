// kvpool_fuzz_seeds OUT_DIR: writes the seed corpus of every fuzz target to OUT_DIR/<target>/
// and libFuzzer dictionaries to OUT_DIR/<target>.dict. The corpus is generated here, never
// stored in git; regression inputs of bugs the fuzzers found are written here too, so every
// run replays them.
#include <cstdint>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <vector>

#include "fuzz_records.h"
#include "kvpool/block_hash.h"
#include "kvpool/v1/mempool.pb.h"
#include "kvpool/v1/scheduler.pb.h"
#include "workload/trace.h"

namespace kvpool::fuzz {
namespace {

namespace fs = std::filesystem;

class CorpusWriter {
 public:
  explicit CorpusWriter(fs::path root) : root_(std::move(root)) {}

  void Seed(const std::string& target, const std::string& name, const std::string& bytes) {
    fs::create_directories(root_ / target);
    Write(root_ / target / name, bytes);
  }
  void Dict(const std::string& target, const std::vector<std::string>& words) {
    std::string text;
    for (const std::string& w : words) {
      text += '"';
      for (char c : w) {
        const auto byte = static_cast<unsigned char>(c);
        if (byte < 0x20 || byte >= 0x7f) {
          char hex[5];
          std::snprintf(hex, sizeof(hex), "\\x%02X", byte);
          text += hex;
          continue;
        }
        if (c == '"' || c == '\\') text += '\\';
        text += c;
      }
      text += "\"\n";
    }
    Write(root_ / (target + ".dict"), text);
  }
  int files() const { return files_; }

 private:
  void Write(const fs::path& path, const std::string& bytes) {
    std::ofstream out(path, std::ios::binary | std::ios::trunc);
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
    if (!out) {
      std::fprintf(stderr, "kvpool_fuzz_seeds: cannot write %s\n", path.c_str());
      std::exit(1);
    }
    ++files_;
  }

  fs::path root_;
  int files_ = 0;
};

// Bytes from a fixed PRNG: inputs for the targets that read a FuzzedDataProvider, where any
// bytes are a valid operation sequence.
std::string RandomBytes(uint32_t seed, size_t n) {
  std::mt19937 rng(seed);
  std::string out(n, '\0');
  for (char& c : out) c = static_cast<char>(rng() & 0xFF);
  return out;
}

void OperationSeeds(CorpusWriter& w, const std::string& target) {
  const size_t sizes[] = {16, 64, 256, 1024, 4096};
  uint32_t seed = 1;
  for (size_t n : sizes) {
    for (int i = 0; i < 2; ++i, ++seed) {
      w.Seed(target, "random-" + std::to_string(n) + "-" + std::to_string(i), RandomBytes(seed, n));
    }
  }
}

void TraceSeeds(CorpusWriter& w) {
  std::vector<workload::TraceRequest> trace = {
      {0, 1000, 10, {0, 1}},
      {5, 512, 0, {0}},
      {5, 1537, 3, {0, 1, 2, 3}},
      {90, 40160, 6, {}},
  };
  for (uint64_t i = 0; i < workload::TraceBlockCount(40160); ++i) trace[3].hash_ids.push_back(i);
  std::ostringstream out;
  if (!workload::WriteTrace(trace, out).ok()) std::exit(1);
  w.Seed("trace", "mooncake", out.str());
  w.Seed("trace", "one-line", R"({"timestamp": 0, "input_length": 3, "output_length": 1, "hash_ids": [7]})"
                              "\n");
  w.Seed("trace", "reordered-crlf",
         "{\"hash_ids\": [1, 2], \"output_length\": 0, \"input_length\": 600, \"timestamp\": 12, "
         "\"extra\": {\"a\": [1]}}\r\n\n");
  w.Seed("trace", "empty", "");
  w.Dict("trace", {"\"timestamp\"", "\"input_length\"", "\"output_length\"", "\"hash_ids\"",
                   "18446744073709551615", "4294967296", "-1", "1e3", "null", "true", "\r\n"});
}

void OptionsSeeds(CorpusWriter& w) {
  const std::string kvpoold = std::string(1, '\0');
  const std::string scheduler = std::string(1, '\1');
  auto with_args = [](std::string head, const std::string& config,
                      const std::vector<std::string>& args) {
    head += config;
    for (const std::string& a : args) {
      head += '\0';
      head += a;
    }
    return head;
  };
  w.Seed("options", "kvpoold-config",
         with_args(kvpoold,
                   "listen = \"127.0.0.1:0\"\ncapacity = \"64MiB\"\nslab = \"4MiB\"\n"
                   "no-huge-pages = true\nnode-id = \"node-a\"\nlease-ttl-ms = 30000\n"
                   "scheduler = \"127.0.0.1:7800\"\npeer = [\"b=127.0.0.1:7701\"]\n"
                   "log-level = \"warning\"\n",
                   {}));
  w.Seed("options", "kvpoold-flags",
         with_args(kvpoold, "", {"--listen", "0.0.0.0:7700", "--capacity", "1GiB", "--peer",
                                 "n2=10.0.0.2:7700", "--transfer-timeout-ms", "500",
                                 "--no-data-plane"}));
  w.Seed("options", "scheduler-config",
         with_args(scheduler,
                   "listen = \"127.0.0.1:0\"\ndefault-policy = \"cost\"\n"
                   "heartbeat-timeout-ms = 3000\nlink-bandwidth = 1.25e10\n"
                   "namespace-model = [\"llama3-70b:16:5MiB:2e-4:4e-9\"]\n",
                   {}));
  w.Seed("options", "scheduler-flags",
         with_args(scheduler, "", {"--namespace-model", "m:64:2MiB:1e-4:0", "--block-tokens", "16",
                                   "--default-policy", "prefix", "--max-message", "1GiB"}));
  w.Dict("options",
         {"--listen", "--capacity", "--slab", "--peer", "--node-id", "--lease-ttl-ms",
          "--max-lease-ttl-ms", "--max-request-blocks", "--max-namespaces", "--max-message",
          "--scheduler", "--ucx-tls", "--namespace-model", "--block-tokens", "--block-bytes",
          "--token-s", "--attention-s", "--link-bandwidth", "--default-policy",
          "--heartbeat-timeout-ms", "--help", "--version", "nan", "inf", "-inf", "1e400", "-1",
          "0x10", "KiB", "MiB", "GiB", "TiB", "18446744073709551615", "=", ":", "[", "]", "\"",
          "true", "false"});
}

template <typename Message>
std::string Bytes(const Message& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

std::string HashBytes(size_t n, uint64_t salt = 0) {
  std::string out;
  for (size_t i = 0; i < n; ++i) {
    const auto b = BlockHash{i + 1, salt}.Bytes();
    out.append(reinterpret_cast<const char*>(b.data()), b.size());
  }
  return out;
}

void MemPoolSeeds(CorpusWriter& w) {
  using M = MemPoolMethod;
  auto rec = [](std::string* out, M m, const std::string& payload, uint8_t flags = 0) {
    AppendRecord(out, static_cast<uint8_t>(m), flags, payload);
  };
  v1::CreateNamespaceRequest create;
  create.mutable_spec()->set_name("ns");
  create.mutable_spec()->set_block_tokens(4);
  create.mutable_spec()->set_block_bytes(4096);
  v1::AllocMemRequest alloc;
  alloc.set_namespace_("ns");
  alloc.set_n_blocks(4);
  v1::InsertRequest insert;
  insert.set_namespace_("ns");
  for (uint32_t t = 0; t < 16; ++t) insert.mutable_prompt()->add_tokens(t);
  v1::MatchRequest match;
  match.set_namespace_("ns");
  *match.mutable_prompt() = insert.prompt();
  match.set_lease(true);
  v1::ExistsRequest exists;
  exists.set_namespace_("ns");
  *exists.mutable_prompt() = insert.prompt();
  v1::DeleteRequest del;
  del.set_namespace_("ns");
  for (uint32_t t = 0; t < 8; ++t) del.mutable_prompt()->add_tokens(t);
  v1::RenewRequest renew;
  renew.set_lease_ttl_ms(5000);
  v1::ReleaseRequest release;
  v1::FreeMemRequest free;
  free.set_namespace_("ns");
  v1::EvictRequest evict;
  evict.set_n_blocks(2);
  v1::ResolveBlocksRequest resolve;
  resolve.set_for_write(true);
  resolve.set_checksums(true);
  v1::GetNamespaceRequest get;
  get.set_name("ns");
  v1::DeleteNamespaceRequest delete_ns;
  delete_ns.set_name("ns");
  const uint8_t kLease = kUseLastLease | kUseLastHandles;

  std::string flow;
  rec(&flow, M::kCreateNamespace, Bytes(create));
  rec(&flow, M::kAllocMem, Bytes(alloc));
  rec(&flow, M::kResolveBlocks, Bytes(resolve), kLease);
  rec(&flow, M::kInsert, Bytes(insert), kLease);
  rec(&flow, M::kRelease, Bytes(release), kUseLastLease);
  rec(&flow, M::kMatch, Bytes(match));
  rec(&flow, M::kRenew, Bytes(renew), kUseLastLease);
  rec(&flow, M::kExists, Bytes(exists));
  rec(&flow, M::kDelete, Bytes(del));
  rec(&flow, M::kGetStats, "");
  rec(&flow, M::kAllocMem, Bytes(alloc), kAdvanceClock | (2 << 3));
  rec(&flow, M::kFreeMem, Bytes(free), kLease);
  rec(&flow, M::kEvict, Bytes(evict));
  rec(&flow, M::kDrain, "");
  rec(&flow, M::kUndrain, "");
  rec(&flow, M::kGetNamespace, Bytes(get));
  rec(&flow, M::kListNamespaces, "");
  rec(&flow, M::kDeleteNamespace, Bytes(delete_ns));
  w.Seed("mempool_service", "flow", flow);

  // A cached prompt matched under a lease that is kept (the end-of-input leak check releases it
  // by expiry), and a namespace filled until allocation has to evict.
  std::string pinned;
  rec(&pinned, M::kCreateNamespace, Bytes(create));
  rec(&pinned, M::kAllocMem, Bytes(alloc));
  insert.set_keep_pinned(true);
  rec(&pinned, M::kInsert, Bytes(insert), kLease);
  rec(&pinned, M::kMatch, Bytes(match));
  rec(&pinned, M::kDelete, Bytes(del));
  alloc.set_n_blocks(1000);
  rec(&pinned, M::kAllocMem, Bytes(alloc));
  w.Seed("mempool_service", "pinned-delete-fill", pinned);

  // Each data-plane call once (no data plane: FAILED_PRECONDITION), with hashes for a prompt.
  std::string other;
  rec(&other, M::kCreateNamespace, Bytes(create));
  v1::ExistsRequest by_hash;
  by_hash.set_namespace_("ns");
  by_hash.mutable_prompt()->set_block_hashes(HashBytes(3));
  rec(&other, M::kExists, Bytes(by_hash));
  v1::TransferRequest transfer;
  transfer.add_src_handles(1);
  transfer.mutable_node()->set_node_id("peer");
  rec(&other, M::kTransfer, Bytes(transfer));
  v1::TransferWithInsertRequest twi;
  twi.set_namespace_("ns");
  *twi.mutable_prompt() = insert.prompt();
  twi.add_src_handles(1);
  rec(&other, M::kTransferWithInsert, Bytes(twi));
  v1::TransferFromRegionRequest from_region;
  from_region.add_dst_handles(1);
  from_region.mutable_src()->add_offsets(0);
  rec(&other, M::kTransferFromRegion, Bytes(from_region));
  rec(&other, M::kGetDataPlane, "");
  w.Seed("mempool_service", "data-plane-calls", other);
}

void SchedulerSeeds(CorpusWriter& w) {
  using M = SchedulerMethod;
  auto rec = [](std::string* out, M m, const std::string& payload, uint8_t flags = 0) {
    AppendRecord(out, static_cast<uint8_t>(m), flags, payload);
  };
  std::string flow;
  for (const char* node : {"n0", "n1"}) {
    v1::RegisterNodeRequest reg;
    reg.set_node_id(node);
    reg.set_address(std::string("127.0.0.1:770") + (node[1] == '0' ? "0" : "1"));
    reg.mutable_capacity_bytes()->set_host(1ull << 30);
    rec(&flow, M::kRegisterNode, Bytes(reg));
    v1::SyncSnapshotRequest snap;
    snap.set_node_id(node);
    snap.set_epoch(7);
    v1::NamespaceBlocks* ns = snap.add_namespaces();
    ns->set_namespace_("ns");
    ns->set_block_hashes(HashBytes(4));
    ns->add_tiers(v1::TIER_HOST);
    rec(&flow, M::kSyncSnapshot, Bytes(snap));
  }
  v1::PublishEventsRequest pub;
  pub.set_node_id("n0");
  pub.set_epoch(7);
  pub.set_seq(1);
  v1::KvEvent* stored = pub.add_events();
  stored->set_kind(v1::KV_EVENT_STORED);
  stored->set_namespace_("ns");
  stored->set_parent_hash(HashBytes(1, 0).substr(0, 16));
  stored->set_block_hashes(HashBytes(6, 9));
  stored->set_tier(v1::TIER_HOST);
  v1::KvEvent* removed = pub.add_events();
  removed->set_kind(v1::KV_EVENT_REMOVED);
  removed->set_namespace_("ns");
  removed->set_block_hashes(HashBytes(2));
  rec(&flow, M::kPublishEvents, Bytes(pub));
  pub.set_seq(3);  // a gap: resync needed
  rec(&flow, M::kPublishEvents, Bytes(pub));
  v1::NodeHeartbeatRequest hb;
  hb.set_node_id("n1");
  hb.mutable_used_bytes()->set_host(4096);
  rec(&flow, M::kNodeHeartbeat, Bytes(hb));
  for (const char* role : {"prefill", "decode"}) {
    v1::RegisterInstanceRequest inst;
    inst.set_instance_id(std::string("i-") + role);
    inst.set_role(role);
    inst.set_node_id(role[0] == 'p' ? "n0" : "n1");
    inst.set_max_running_requests(8);
    rec(&flow, M::kRegisterInstance, Bytes(inst));
  }
  v1::ReportLoadRequest load;
  load.set_instance_id("i-prefill");
  load.set_queued_prompt_tokens(4096);
  load.set_running_requests(2);
  load.set_queued_prefill_s(0.25);
  rec(&flow, M::kReportLoad, Bytes(load));
  v1::LookupRequest lookup;
  lookup.set_namespace_("ns");
  lookup.set_block_hashes(HashBytes(6));
  rec(&flow, M::kLookup, Bytes(lookup));
  v1::RouteRequest route;
  route.set_namespace_("ns");
  route.set_block_hashes(HashBytes(6));
  route.set_prompt_tokens(100);
  route.set_role("prefill");
  route.set_explain(true);
  route.set_commit(true);
  rec(&flow, M::kRoute, Bytes(route));
  route.set_policy("prefix");
  route.add_candidates("i-decode");
  route.set_role("");
  rec(&flow, M::kRoute, Bytes(route));
  v1::PlaceRequest place;
  place.set_namespace_("ns");
  place.set_n_blocks(10);
  place.add_allowed_nodes("n1");
  rec(&flow, M::kPlace, Bytes(place));
  rec(&flow, M::kListNodes, "");
  rec(&flow, M::kListInstances, "");
  v1::GetIndexStatsRequest stats;
  stats.set_top(3);
  rec(&flow, M::kGetIndexStats, Bytes(stats));
  rec(&flow, M::kExpireDead, "", 11);
  v1::DeregisterInstanceRequest dereg_inst;
  dereg_inst.set_instance_id("i-decode");
  rec(&flow, M::kDeregisterInstance, Bytes(dereg_inst));
  v1::DeregisterNodeRequest dereg;
  dereg.set_node_id("n1");
  rec(&flow, M::kDeregisterNode, Bytes(dereg));
  w.Seed("scheduler_service", "flow", flow);
}

}  // namespace
}  // namespace kvpool::fuzz

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: kvpool_fuzz_seeds OUT_DIR\n");
    return 2;
  }
  kvpool::fuzz::CorpusWriter w{std::filesystem::path(argv[1])};
  kvpool::fuzz::OperationSeeds(w, "prompt_tree");
  kvpool::fuzz::OperationSeeds(w, "global_index");
  kvpool::fuzz::TraceSeeds(w);
  kvpool::fuzz::OptionsSeeds(w);
  kvpool::fuzz::MemPoolSeeds(w);
  kvpool::fuzz::SchedulerSeeds(w);
  std::printf("kvpool_fuzz_seeds: wrote %d files under %s\n", w.files(), argv[1]);
  return 0;
}
