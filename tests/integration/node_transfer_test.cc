// Daemon-driven transfers (Client::TransferToNode, TransferToRegion, TransferWithInsert)
// between real kvpoold processes on loopback: byte-exact copies on tcp and shm, refusals that
// move no byte, peers found through the scheduler, and a destination or source killed with
// SIGKILL in the middle of a large transfer.
#include <signal.h>

#include <chrono>
#include <cstdint>
#include <cstring>
#include <future>
#include <memory>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "kvpool/data_plane.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint64_t kMiB = 1ull << 20;
constexpr uint32_t kBlockTokens = 16;

std::vector<uint64_t> Offsets(size_t n, uint64_t block_bytes) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(i * block_bytes);
  return out;
}

// A node's Client with its DataPlane and a local buffer registered with it.
struct Endpoint {
  Endpoint(Client& c, const std::string& tls, size_t buffer_bytes) : client(c) {
    DataPlaneOptions options;
    options.tls = tls;
    dp = KVPOOL_IT_VALUE(DataPlane::Connect(client, options));
    buffer.assign(buffer_bytes, 0);
    region = KVPOOL_IT_VALUE(dp->RegisterMemory(buffer.data(), buffer.size()));
  }
  // Allocates n blocks, fills them with `bytes` (n * block_bytes) and returns the allocation.
  Allocation Store(const std::string& ns, const std::vector<uint8_t>& bytes, uint64_t block_bytes,
                   uint32_t lease_ttl_ms = 0) {
    const size_t n = bytes.size() / block_bytes;
    Allocation alloc = KVPOOL_IT_VALUE(client.AllocMem(ns, static_cast<uint32_t>(n), Tier::kHost,
                                                       lease_ttl_ms));
    std::memcpy(buffer.data(), bytes.data(), bytes.size());
    KVPOOL_IT_REQUIRE_OK(
        KVPOOL_IT_VALUE(dp->Put(region, Offsets(n, block_bytes), alloc.blocks)).Wait(30'000));
    return alloc;
  }
  // Reads `blocks` back (this Client must hold them).
  std::vector<uint8_t> Load(const std::vector<BlockLocation>& blocks) {
    const uint64_t block_bytes = blocks.at(0).length;
    std::fill(buffer.begin(), buffer.end(), 0);
    KVPOOL_IT_REQUIRE_OK(
        KVPOOL_IT_VALUE(dp->Get(blocks, region, Offsets(blocks.size(), block_bytes)))
            .Wait(30'000));
    return std::vector<uint8_t>(buffer.begin(),
                                buffer.begin() + static_cast<long>(blocks.size() * block_bytes));
  }

  Client& client;
  std::unique_ptr<DataPlane> dp;
  std::vector<uint8_t> buffer;
  RegionId region{};
};

DaemonConfig Node(const std::string& node_id, const std::string& tls,
                  std::vector<std::string> more = {}) {
  DaemonConfig config;
  config.extra_args = {"--node-id=" + node_id};
  if (!tls.empty()) config.extra_args.push_back("--ucx-tls=" + tls);
  config.extra_args.insert(config.extra_args.end(), more.begin(), more.end());
  return config;
}

void CheckNodeTransfers(const std::string& tls) {
  TestDaemon b(Node("b", tls));
  TestDaemon a(Node("a", tls, {"--peer=b=" + b.address()}));
  constexpr uint64_t kBlockBytes = 256 * kKiB;
  constexpr size_t kBlocks = 4;
  const NamespaceSpec spec{"xfer", kBlockTokens, kBlockBytes, ""};
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace(spec));
  KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace(spec));
  Endpoint ea(a.client(), tls, kBlocks * kBlockBytes);
  Endpoint eb(b.client(), tls, kBlocks * kBlockBytes);
  const std::vector<uint8_t> data = RandomBytes(kBlocks * kBlockBytes, 11);
  const Allocation src = ea.Store("xfer", data, kBlockBytes);

  SECTION("Transfer into another node's allocated blocks, checksums verified") {
    const Allocation dst = KVPOOL_IT_VALUE(b.client().AllocMem("xfer", kBlocks));
    const TransferResult r = KVPOOL_IT_VALUE(a.client().TransferToNode(
        src.lease.id, HandlesOf(src), NodeBlocks{"b", dst.lease.id, HandlesOf(dst)}, 0,
        /*verify_checksums=*/true));
    CHECK(r.blocks == kBlocks);
    CHECK(r.bytes == kBlocks * kBlockBytes);
    CHECK(eb.Load(dst.blocks) == data);
  }

  SECTION("TransferWithInsert makes the blocks matchable on the destination, once") {
    const std::vector<uint32_t> tokens = MakeTokens(kBlocks * kBlockTokens, 5);
    const TransferWithInsertResult r = KVPOOL_IT_VALUE(a.client().TransferWithInsert(
        "b", "xfer", PromptView::Tokens(tokens), 0, src.lease.id, HandlesOf(src)));
    CHECK(r.dst_node == "b");
    CHECK(r.inserted_blocks == kBlocks);
    CHECK(r.duplicate_blocks == 0);
    CHECK(r.bytes == kBlocks * kBlockBytes);
    const uint32_t got = KVPOOL_IT_VALUE(eb.dp->MatchAndGet(
        b.client(), "xfer", PromptView::Tokens(tokens), eb.region, Offsets(kBlocks, kBlockBytes)));
    REQUIRE(got == kBlocks);
    CHECK(std::memcmp(eb.buffer.data(), data.data(), data.size()) == 0);
    const Usage usage = UsageOf(b.client(), "xfer");
    CHECK(usage.active_leases == 0);
    CHECK(usage.allocated_blocks == 0);
    CHECK(usage.cached_blocks == kBlocks);
    // The same blocks again are deduplicated there, and nothing is left allocated.
    const TransferWithInsertResult again = KVPOOL_IT_VALUE(a.client().TransferWithInsert(
        "b", "xfer", PromptView::Tokens(tokens), 0, src.lease.id, HandlesOf(src)));
    CHECK(again.inserted_blocks == 0);
    CHECK(again.duplicate_blocks == kBlocks);
    CHECK(UsageOf(b.client(), "xfer") == usage);
    // The destination namespace was created with the source's parameters where missing.
    const std::vector<uint32_t> t2 = MakeTokens(2 * kBlockTokens, 6);
    KVPOOL_IT_REQUIRE_OK(b.client().DeleteNamespace("xfer"));
    CHECK(KVPOOL_IT_VALUE(a.client().TransferWithInsert("b", "xfer", PromptView::Tokens(t2), 0,
                                                        src.lease.id,
                                                        std::vector<BlockHandle>{
                                                            src.blocks[0].handle,
                                                            src.blocks[1].handle}))
              .inserted_blocks == 2);
    CHECK(KVPOOL_IT_VALUE(b.client().GetNamespace("xfer")).spec == spec);
  }

  SECTION("Transfer into a client's registered region (PD-basic)") {
    // A third process-side party: a fresh buffer registered with b's client data plane.
    std::vector<uint8_t> decode_kv(kBlocks * kBlockBytes + 4096, 0);
    const RegionId decode_region =
        KVPOOL_IT_VALUE(eb.dp->RegisterMemory(decode_kv.data(), decode_kv.size()));
    const RegionDescriptor desc = KVPOOL_IT_VALUE(eb.dp->ExportRegion(decode_region));
    // Blocks land in reverse order, 4096 bytes in, to catch offset mix-ups.
    std::vector<uint64_t> offsets;
    for (size_t i = 0; i < kBlocks; ++i) offsets.push_back(4096 + (kBlocks - 1 - i) * kBlockBytes);
    const TransferResult r = KVPOOL_IT_VALUE(
        a.client().TransferToRegion(src.lease.id, HandlesOf(src), desc, offsets));
    CHECK(r.bytes == kBlocks * kBlockBytes);
    for (size_t i = 0; i < kBlocks; ++i) {
      CAPTURE(i);
      CHECK(std::memcmp(decode_kv.data() + offsets[i], data.data() + i * kBlockBytes,
                        kBlockBytes) == 0);
    }
    CHECK(std::all_of(decode_kv.begin(), decode_kv.begin() + 4096, [](uint8_t v) { return v == 0; }));
  }
}

TEST_CASE("NodeTransfer: Transfer, TransferWithInsert and region transfers are byte-exact (tcp)",
          "[ucx]") {
  CheckNodeTransfers("tcp");
}

TEST_CASE("NodeTransfer: Transfer, TransferWithInsert and region transfers are byte-exact (shm)",
          "[ucx]") {
  CheckNodeTransfers("shm");
}

// Stores `data` (whole blocks) as blocks start_block.. of `tokens` on the node, through its data
// plane, and inserts them.
void StorePrompt(Endpoint& e, const std::string& ns, const std::vector<uint32_t>& tokens,
                 uint32_t start_block, const std::vector<uint8_t>& data, uint64_t block_bytes) {
  const Allocation alloc = e.Store(ns, data, block_bytes);
  KVPOOL_IT_REQUIRE_OK(e.client.Insert(ns, PromptView::Tokens(tokens), start_block,
                                       HandlesOf(alloc), alloc.lease.id));
  KVPOOL_IT_REQUIRE_OK(e.client.Release(alloc.lease.id));
}

TEST_CASE("NodeTransfer: a draining node hands its cached blocks to a peer, which serves them "
          "byte-exact", "[ucx]") {
  TestDaemon b(Node("b", ""));
  TestDaemon a(Node("a", "", {"--peer=b=" + b.address()}));
  constexpr uint64_t kBlockBytes = 64 * kKiB;
  const NamespaceSpec spec{"handoff", kBlockTokens, kBlockBytes, ""};
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace(spec));
  Endpoint ea(a.client(), "", 8 * kBlockBytes);
  Endpoint eb(b.client(), "", 8 * kBlockBytes);
  // A tree with a branch: p2 shares p1's first two blocks; p3 stands alone.
  const std::vector<uint32_t> p1 = MakeTokens(4 * kBlockTokens, 21);
  const std::vector<uint32_t> p2 = Concat(Head(p1, 2 * kBlockTokens),
                                          MakeTokens(2 * kBlockTokens, 22));
  const std::vector<uint32_t> p3 = MakeTokens(3 * kBlockTokens, 23);
  const std::vector<uint8_t> d1 = RandomBytes(4 * kBlockBytes, 31);
  const std::vector<uint8_t> d2 = RandomBytes(2 * kBlockBytes, 32);
  const std::vector<uint8_t> d3 = RandomBytes(3 * kBlockBytes, 33);
  StorePrompt(ea, "handoff", p1, 0, d1, kBlockBytes);
  StorePrompt(ea, "handoff", p2, 2, d2, kBlockBytes);
  StorePrompt(ea, "handoff", p3, 0, d3, kBlockBytes);
  const Usage a_before = UsageOf(a.client(), "handoff");
  REQUIRE(a_before.cached_blocks == 9);

  // Refused before anything happens: the node is not even marked draining.
  DrainOptions bad;
  bad.handoff_node = "nosuch";
  KVPOOL_IT_CHECK_ERROR(a.client().Drain(bad), StatusCode::kNotFound, "nosuch");
  bad.handoff_node = "a";
  KVPOOL_IT_CHECK_ERROR(a.client().Drain(bad), StatusCode::kInvalidArgument, "this node");
  bad.handoff_node = "b";
  bad.demote = false;
  KVPOOL_IT_CHECK_ERROR(a.client().Drain(bad), StatusCode::kInvalidArgument, "mark_only");
  bad.demote = true;
  bad.handoff_timeout_ms = 10'000'000;
  KVPOOL_IT_CHECK_ERROR(a.client().Drain(bad), StatusCode::kInvalidArgument, "10000000");

  DrainOptions drain;
  drain.handoff_node = "b";
  const DrainProgress done = KVPOOL_IT_VALUE(a.client().Drain(drain));
  CHECK_FALSE(done.was_draining);
  CHECK(done.handed_off_blocks == 9);
  CHECK(done.handoff_duplicate_blocks == 0);
  CHECK(done.handoff_bytes == 9 * kBlockBytes);
  CHECK(done.handoff_chains == 3);  // p1, p2's branch, p3
  CHECK_FALSE(done.has_disk_tier);
  CHECK(done.host_blocks == 9);  // copies: the blocks stay here too

  // The peer serves every prompt, byte for byte; nothing is left leased on either node.
  auto expect = [&](const std::vector<uint32_t>& prompt, std::vector<uint8_t> bytes) {
    const uint32_t n = static_cast<uint32_t>(bytes.size() / kBlockBytes);
    const uint32_t got = KVPOOL_IT_VALUE(eb.dp->MatchAndGet(
        b.client(), "handoff", PromptView::Tokens(prompt), eb.region, Offsets(n, kBlockBytes)));
    REQUIRE(got == n);
    CHECK(std::memcmp(eb.buffer.data(), bytes.data(), bytes.size()) == 0);
  };
  expect(p1, d1);
  std::vector<uint8_t> d2_whole(d1.begin(), d1.begin() + 2 * kBlockBytes);
  d2_whole.insert(d2_whole.end(), d2.begin(), d2.end());
  expect(p2, d2_whole);
  expect(p3, d3);
  const Usage b_after = UsageOf(b.client(), "handoff");
  CHECK(b_after.cached_blocks == 9);
  CHECK(b_after.allocated_blocks == 0);
  CHECK(b_after.active_leases == 0);
  CHECK(UsageOf(a.client(), "handoff") == a_before);

  // Again: the peer has them all, so everything is a duplicate and nothing is allocated there.
  const DrainProgress again = KVPOOL_IT_VALUE(a.client().Drain(drain));
  CHECK(again.was_draining);
  CHECK(again.handed_off_blocks == 0);
  CHECK(again.handoff_duplicate_blocks == 9);
  CHECK(UsageOf(b.client(), "handoff") == b_after);

  // kvpoolctl drain --handoff-to says what moved.
  const CommandResult ctl = RunKvpoolctl(a.address(), {"--json", "drain", "--handoff-to", "b"});
  CHECK(ctl.exit_code == 0);
  CHECK_THAT(ctl.out, Catch::Contains("\"handoff_duplicate_blocks\": 9"));
  KVPOOL_IT_REQUIRE_OK(a.client().Undrain());
}

TEST_CASE("NodeTransfer: refused transfers move no byte and leave nothing allocated", "[ucx]") {
  TestDaemon b(Node("b", ""));
  TestDaemon a(Node("a", "", {"--peer=b=" + b.address(), "--peer=gone=127.0.0.1:1"}));
  constexpr uint64_t kBlockBytes = 64 * kKiB;
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace({"ns", kBlockTokens, kBlockBytes, ""}));
  KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace({"ns", kBlockTokens, kBlockBytes, ""}));
  KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace({"small", kBlockTokens, 4 * kKiB, ""}));
  KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace({"other", kBlockTokens, 4 * kKiB, ""}));
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace({"other", kBlockTokens, kBlockBytes, ""}));
  Endpoint ea(a.client(), "", 2 * kBlockBytes);
  Endpoint eb(b.client(), "", 2 * kBlockBytes);
  const Allocation src = ea.Store("ns", RandomBytes(2 * kBlockBytes, 1), kBlockBytes);
  const std::vector<uint8_t> dst_bytes = RandomBytes(2 * kBlockBytes, 2);
  const Allocation dst = eb.Store("ns", dst_bytes, kBlockBytes);
  const Allocation small = KVPOOL_IT_VALUE(b.client().AllocMem("small", 2));
  const std::vector<BlockHandle> src_h = HandlesOf(src);
  const NodeBlocks to_b{"b", dst.lease.id, HandlesOf(dst)};
  const Usage b_before = UsageOf(b.client(), "ns");
  Client& ac = a.client();

  // Source side.
  KVPOOL_IT_CHECK_ERROR(ac.TransferToNode(0, src_h, to_b), StatusCode::kInvalidArgument,
                        "lease_id");
  KVPOOL_IT_CHECK_ERROR(ac.TransferToNode(12345, src_h, to_b), StatusCode::kNotFound, "12345");
  KVPOOL_IT_CHECK_ERROR(ac.TransferToNode(src.lease.id, {}, NodeBlocks{"b", dst.lease.id, {}}),
                        StatusCode::kInvalidArgument, "at least one");
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferToNode(src.lease.id, std::vector<BlockHandle>{src_h[0], src_h[0]},
                        NodeBlocks{"b", dst.lease.id, to_b.handles}),
      StatusCode::kInvalidArgument, "more than once");
  const Allocation other = KVPOOL_IT_VALUE(ac.AllocMem("other", 1));
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferToNode(src.lease.id, std::vector<BlockHandle>{other.blocks[0].handle},
                        NodeBlocks{"b", dst.lease.id, {to_b.handles[0]}}),
      StatusCode::kInvalidArgument, "namespace");
  // Counts, nodes.
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferToNode(src.lease.id, src_h, NodeBlocks{"b", dst.lease.id, {to_b.handles[0]}}),
      StatusCode::kInvalidArgument, "one destination per source block");
  KVPOOL_IT_CHECK_ERROR(ac.TransferToNode(src.lease.id, src_h, NodeBlocks{"zz", 1, to_b.handles}),
                        StatusCode::kNotFound, "'zz'");
  KVPOOL_IT_CHECK_ERROR(ac.TransferToNode(src.lease.id, src_h, NodeBlocks{"a", 1, to_b.handles}),
                        StatusCode::kInvalidArgument, "this node");
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferToNode(src.lease.id, src_h, NodeBlocks{"gone", 1, to_b.handles}),
      StatusCode::kUnavailable, "gone");
  // Destination side: wrong lease, blocks not writable, sizes that differ.
  KVPOOL_IT_CHECK_ERROR(ac.TransferToNode(src.lease.id, src_h, NodeBlocks{"b", 999, to_b.handles}),
                        StatusCode::kNotFound, "destination node 'b'");
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferToNode(src.lease.id, src_h, NodeBlocks{"b", small.lease.id, to_b.handles}),
      StatusCode::kInvalidArgument, "namespace");
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferToNode(src.lease.id, src_h, NodeBlocks{"b", small.lease.id, HandlesOf(small)}),
      StatusCode::kInvalidArgument, "bytes");
  KVPOOL_IT_CHECK_ERROR(ac.TransferToNode(src.lease.id, src_h, to_b, 300'001),
                        StatusCode::kInvalidArgument, "timeout_ms 300001");
  // Regions: out of range, a malformed engine address.
  const RegionDescriptor desc = KVPOOL_IT_VALUE(eb.dp->ExportRegion(eb.region));
  const std::vector<uint64_t> past_end = {0, kBlockBytes + 1};
  KVPOOL_IT_CHECK_ERROR(ac.TransferToRegion(src.lease.id, src_h, desc, past_end),
                        StatusCode::kInvalidArgument, "outside");
  RegionDescriptor garbage = desc;
  garbage.worker_address = "not an address";
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferToRegion(src.lease.id, src_h, garbage, Offsets(2, kBlockBytes)),
      StatusCode::kInvalidArgument, "");
  // TransferWithInsert: the prompt must cover the blocks; the namespace must match the lease
  // and, where it exists on the destination, have the same parameters.
  const std::vector<uint32_t> one_block = MakeTokens(kBlockTokens, 3);
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferWithInsert("b", "ns", PromptView::Tokens(one_block), 0, src.lease.id, src_h),
      StatusCode::kInvalidArgument, "full blocks");
  const std::vector<uint32_t> two_blocks = MakeTokens(2 * kBlockTokens, 3);
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferWithInsert("b", "other", PromptView::Tokens(two_blocks), 0, src.lease.id, src_h),
      StatusCode::kInvalidArgument, "belongs to namespace 'ns'");
  KVPOOL_IT_CHECK_ERROR(ac.TransferWithInsert("b", "other", PromptView::Tokens(one_block), 0,
                                              other.lease.id,
                                              std::vector<BlockHandle>{other.blocks[0].handle}),
                        StatusCode::kFailedPrecondition, "other parameters");
  KVPOOL_IT_CHECK_ERROR(
      ac.TransferWithInsert("", "ns", PromptView::Tokens(two_blocks), 0, src.lease.id, src_h),
      StatusCode::kFailedPrecondition, "no --scheduler");

  // Nothing moved, nothing leaked on the destination; both daemons still serve.
  CHECK(eb.Load(dst.blocks) == dst_bytes);
  CHECK(UsageOf(b.client(), "ns") == b_before);
  CHECK(KVPOOL_IT_VALUE(ac.Health()));
  CHECK(KVPOOL_IT_VALUE(b.client().Health()));
  // And a good transfer still works after all that.
  KVPOOL_IT_REQUIRE_OK(ac.TransferToNode(src.lease.id, src_h, to_b));
  // A destination lease about to end is refused: the writes could outlive it and land in
  // blocks someone else holds by then.
  const Allocation brief = KVPOOL_IT_VALUE(b.client().AllocMem("ns", 2, Tier::kHost, 50));
  const Result<TransferResult> late =
      ac.TransferToNode(src.lease.id, src_h, NodeBlocks{"b", brief.lease.id, HandlesOf(brief)});
  CHECK(late.status().code() == StatusCode::kFailedPrecondition);
  const std::string why(late.status().message());
  CAPTURE(why);
  // On a slow machine the lease may even have ended before the call arrived: refused as well.
  CHECK((why.find("too little for a transfer") != std::string::npos ||
         why.find("expired") != std::string::npos));
}

TEST_CASE("NodeTransfer: a node reads a client's region into its blocks (TransferFromRegion)",
          "[ucx]") {
  TestDaemon node(Node("a", ""));
  constexpr uint64_t kBlockBytes = 64 * kKiB;
  constexpr size_t kBlocks = 3;
  KVPOOL_IT_REQUIRE_OK(node.client().CreateNamespace({"pull", kBlockTokens, kBlockBytes, ""}));
  // The "prefill instance": its KV in its own registered memory, blocks in reverse order.
  std::unique_ptr<Client> prefill = node.Connect();
  auto prefill_dp = KVPOOL_IT_VALUE(DataPlane::Connect(*prefill));
  const std::vector<uint8_t> kv = RandomBytes((kBlocks + 1) * kBlockBytes, 41);
  std::vector<uint8_t> kv_buffer = kv;
  const RegionId kv_region =
      KVPOOL_IT_VALUE(prefill_dp->RegisterMemory(kv_buffer.data(), kv_buffer.size()));
  const RegionDescriptor desc = KVPOOL_IT_VALUE(prefill_dp->ExportRegion(kv_region));
  std::vector<uint64_t> offsets;
  for (size_t i = 0; i < kBlocks; ++i) offsets.push_back((kBlocks - i) * kBlockBytes);

  // The pool side allocates, the node pulls, and the bytes are there.
  Endpoint pool(node.client(), "", kBlocks * kBlockBytes);
  const Allocation dst = KVPOOL_IT_VALUE(node.client().AllocMem("pull", kBlocks));
  const TransferResult r = KVPOOL_IT_VALUE(
      node.client().TransferFromRegion(desc, offsets, dst.lease.id, HandlesOf(dst)));
  CHECK(r.blocks == kBlocks);
  CHECK(r.bytes == kBlocks * kBlockBytes);
  const std::vector<uint8_t> got = pool.Load(dst.blocks);
  for (size_t i = 0; i < kBlocks; ++i) {
    CAPTURE(i);
    CHECK(std::memcmp(got.data() + i * kBlockBytes, kv.data() + offsets[i], kBlockBytes) == 0);
  }

  // Refused before any byte moves: a range outside the region, counts that differ, blocks the
  // lease does not hold for writing (inserted ones).
  const std::vector<uint64_t> outside = {0, 0, kv.size()};
  KVPOOL_IT_CHECK_ERROR(
      node.client().TransferFromRegion(desc, outside, dst.lease.id, HandlesOf(dst)),
      StatusCode::kInvalidArgument, "outside");
  KVPOOL_IT_CHECK_ERROR(node.client().TransferFromRegion(
                            desc, std::vector<uint64_t>{0}, dst.lease.id, HandlesOf(dst)),
                        StatusCode::kInvalidArgument, "one region offset per destination block");
  // A lease about to end: the pull could outlive it and write blocks it no longer holds.
  const Allocation brief = KVPOOL_IT_VALUE(node.client().AllocMem("pull", 1, Tier::kHost, 50));
  const Result<TransferResult> late = node.client().TransferFromRegion(
      desc, std::vector<uint64_t>{0}, brief.lease.id, HandlesOf(brief));
  CHECK(late.status().code() == StatusCode::kFailedPrecondition);
  const std::string why(late.status().message());
  CAPTURE(why);
  // On a slow machine the lease may even have ended before the call arrived: refused as well.
  CHECK((why.find("too little for a transfer") != std::string::npos ||
         why.find("expired") != std::string::npos));
  const std::vector<uint32_t> tokens = MakeTokens(kBlocks * kBlockTokens, 42);
  KVPOOL_IT_REQUIRE_OK(node.client().Insert("pull", PromptView::Tokens(tokens), 0,
                                            HandlesOf(dst), dst.lease.id, true));
  KVPOOL_IT_CHECK_ERROR(
      node.client().TransferFromRegion(desc, offsets, dst.lease.id, HandlesOf(dst)),
      StatusCode::kFailedPrecondition, "already inserted");
  // The inserted blocks still hold the pulled bytes.
  CHECK(pool.Load(dst.blocks) == got);
}

TEST_CASE("NodeTransfer: a node without a data plane refuses transfers", "[ucx]") {
  TestDaemon a(Node("a", "", {"--no-data-plane"}));
  KVPOOL_IT_CHECK_ERROR(a.client().TransferToNode(1, std::vector<BlockHandle>{1},
                                                  NodeBlocks{"b", 1, {1}}),
                        StatusCode::kFailedPrecondition, "without a data plane");
}

// Waits until the scheduler shows `node_id` alive at `address`.
void AwaitNode(SchedulerClient& sched, const std::string& node_id, const std::string& address) {
  const bool seen = PollUntil(15'000, [&] {
    Result<std::vector<PoolNode>> nodes = sched.ListNodes();
    if (!nodes.ok()) return false;
    for (const PoolNode& n : *nodes) {
      if (n.node_id == node_id && n.alive && n.address == address) return true;
    }
    return false;
  });
  INFO("node " << node_id << " at " << address);
  REQUIRE(seen);
}

TEST_CASE("NodeTransfer: with peers from the scheduler, a destination killed mid-transfer fails "
          "the call quickly and is reconnected after its restart",
          "[ucx][slow]") {
  TempDir dir;
  TestScheduler sched(dir, 0, "1");
  // tcp is the slowest transport here: the large transfer is still running when b dies.
  const std::vector<std::string> flags = {"--ucx-tls=tcp"};
  DaemonConfig a_config = NodeConfig(sched.address(), "node-a");
  a_config.capacity = "512MiB";
  a_config.extra_args.insert(a_config.extra_args.end(), flags.begin(), flags.end());
  DaemonConfig b_config = NodeConfig(sched.address(), "node-b");
  b_config.capacity = "512MiB";
  b_config.extra_args.insert(b_config.extra_args.end(), flags.begin(), flags.end());
  TestDaemon a(a_config);
  auto b = std::make_unique<TestDaemon>(b_config);
  AwaitNode(sched.client(), "node-a", a.address());
  AwaitNode(sched.client(), "node-b", b->address());

  constexpr uint64_t kBlockBytes = 4 * kMiB;
  constexpr uint32_t kBlocks = 96;  // 384 MiB
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace({"big", kBlockTokens, kBlockBytes, ""}));
  const Allocation src = KVPOOL_IT_VALUE(a.client().AllocMem("big", kBlocks));
  const std::vector<uint32_t> tokens = MakeTokens(kBlocks * kBlockTokens, 9);

  // Without a destination the scheduler's Place picks the only other node.
  {
    const std::vector<uint32_t> small_prompt = Head(tokens, 2 * kBlockTokens);
    const TransferWithInsertResult r = KVPOOL_IT_VALUE(a.client().TransferWithInsert(
        "", "big", PromptView::Tokens(small_prompt), 0, src.lease.id,
        std::vector<BlockHandle>{src.blocks[0].handle, src.blocks[1].handle}));
    CHECK(r.dst_node == "node-b");
    CHECK(r.inserted_blocks == 2);
  }

  const auto start = std::chrono::steady_clock::now();
  auto transfer = std::async(std::launch::async, [&] {
    return a.client().TransferWithInsert("node-b", "big", PromptView::Tokens(tokens), 0,
                                         src.lease.id, HandlesOf(src));
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(150));
  b->daemon().process().Signal(SIGKILL);
  const Result<TransferWithInsertResult> r = transfer.get();
  const auto elapsed_ms = std::chrono::duration_cast<std::chrono::milliseconds>(
                              std::chrono::steady_clock::now() - start)
                              .count();
  INFO("TransferWithInsert -> " << r.status().ToString() << " after " << elapsed_ms << " ms");
  REQUIRE_FALSE(r.ok());
  CHECK((r.status().code() == StatusCode::kUnavailable ||
         r.status().code() == StatusCode::kCancelled));
  CHECK(elapsed_ms < 10'000);
  // The source keeps serving, its lease and blocks intact.
  CHECK(KVPOOL_IT_VALUE(a.client().Health()));
  CHECK(UsageOf(a.client(), "big").allocated_blocks == kBlocks);

  // b comes back on another port; a finds it through the scheduler and reconnects.
  b.reset();
  b = std::make_unique<TestDaemon>(b_config);
  AwaitNode(sched.client(), "node-b", b->address());
  const std::vector<uint32_t> head = Head(tokens, 4 * kBlockTokens);
  const std::vector<BlockHandle> all = HandlesOf(src);
  const TransferWithInsertResult again = KVPOOL_IT_VALUE(a.client().TransferWithInsert(
      "node-b", "big", PromptView::Tokens(head), 0, src.lease.id,
      std::vector<BlockHandle>(all.begin(), all.begin() + 4)));
  CHECK(again.inserted_blocks == 4);
  CHECK(KVPOOL_IT_VALUE(b->client().Match("big", PromptView::Tokens(head))).matched_blocks == 4);
}

TEST_CASE("NodeTransfer: a source killed mid-transfer over tcp leaves the destination serving "
          "and nothing matchable there",
          "[ucx][slow]") {
  // Over a TCP-only link the source sends the blocks as eager messages: with one-sided Puts,
  // UCX 1.13 aborted the destination in about one such kill in five (docs/transport.md).
  DaemonConfig b_config = Node("b", "tcp", {"--lease-sweep-ms=100"});
  b_config.capacity = "512MiB";
  TestDaemon b(b_config);
  constexpr uint64_t kBlockBytes = 4 * kMiB;
  constexpr uint32_t kBlocks = 64;  // 256 MiB
  for (int round = 0; round < 3; ++round) {
    CAPTURE(round);
    DaemonConfig a_config = Node("a", "tcp", {"--peer=b=" + b.address()});
    a_config.capacity = "512MiB";
    auto a = std::make_unique<TestDaemon>(a_config);
    const std::string ns = "kill" + std::to_string(round);
    KVPOOL_IT_REQUIRE_OK(a->client().CreateNamespace({ns, kBlockTokens, kBlockBytes, ""}));
    KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace({ns, kBlockTokens, kBlockBytes, ""}));
    const Allocation src = KVPOOL_IT_VALUE(a->client().AllocMem(ns, kBlocks));
    const std::vector<uint32_t> tokens = MakeTokens(kBlocks * kBlockTokens, 20 + round);
    auto transfer = std::async(std::launch::async, [&] {
      // A 2 s timeout: b's allocation lease lasts 2 s + 2 s of slack.
      return a->client().TransferWithInsert("b", ns, PromptView::Tokens(tokens), 0,
                                            src.lease.id, HandlesOf(src), 2000);
    });
    const bool allocated = PollUntil(
        5'000, [&] { return UsageOf(b.client(), ns).allocated_blocks == kBlocks; });
    std::this_thread::sleep_for(std::chrono::milliseconds(20 * round));
    a->daemon().process().Signal(SIGKILL);
    const Result<TransferWithInsertResult> r = transfer.get();
    INFO("TransferWithInsert -> " << r.status().ToString());
    a.reset();
    REQUIRE(allocated);
    // b is alive and serving; none of the half-sent blocks is matchable, and the allocation
    // goes with its lease.
    CHECK(KVPOOL_IT_VALUE(b.client().Health()));
    CHECK(KVPOOL_IT_VALUE(b.client().Match(ns, PromptView::Tokens(tokens))).matched_blocks == 0);
    const bool freed = PollUntil(10'000, [&] {
      const Usage u = UsageOf(b.client(), ns);
      return u.allocated_blocks == 0 && u.active_leases == 0;
    });
    CHECK(freed);
    CHECK(KVPOOL_IT_VALUE(b.client().Match(ns, PromptView::Tokens(tokens))).matched_blocks == 0);
  }
}

TEST_CASE("NodeTransfer: a source killed between its copy and the destination's Insert leaves "
          "nothing matchable or allocated there",
          "[ucx]") {
  DaemonConfig b_config = Node("b", "", {"--lease-sweep-ms=100"});
  TestDaemon b(b_config);
  // The source pauses 3 s after the bytes landed, before asking b to insert them.
  auto a = std::make_unique<TestDaemon>(
      Node("a", "", {"--peer=b=" + b.address(), "--fault-pause-before-insert-ms=3000"}));
  constexpr uint64_t kBlockBytes = 64 * kKiB;
  constexpr uint32_t kBlocks = 8;
  KVPOOL_IT_REQUIRE_OK(a->client().CreateNamespace({"ns", kBlockTokens, kBlockBytes, ""}));
  KVPOOL_IT_REQUIRE_OK(b.client().CreateNamespace({"ns", kBlockTokens, kBlockBytes, ""}));
  const Allocation src = KVPOOL_IT_VALUE(a->client().AllocMem("ns", kBlocks));
  const std::vector<uint32_t> tokens = MakeTokens(kBlocks * kBlockTokens, 4);

  auto transfer = std::async(std::launch::async, [&] {
    // A 1 s timeout: the destination's allocation lease lasts 1 s + 2 s of slack.
    return a->client().TransferWithInsert("b", "ns", PromptView::Tokens(tokens), 0, src.lease.id,
                                          HandlesOf(src), 1000);
  });
  const bool allocated =
      PollUntil(5'000, [&] { return UsageOf(b.client(), "ns").allocated_blocks == kBlocks; });
  a->daemon().process().Signal(SIGKILL);
  const Result<TransferWithInsertResult> r = transfer.get();
  INFO("TransferWithInsert -> " << r.status().ToString());
  REQUIRE(allocated);
  CHECK_FALSE(r.ok());
  a.reset();
  // Never matchable; the allocation is freed when its lease expires.
  CHECK(KVPOOL_IT_VALUE(b.client().Match("ns", PromptView::Tokens(tokens))).matched_blocks == 0);
  const bool freed = PollUntil(8'000, [&] {
    const Usage u = UsageOf(b.client(), "ns");
    return u.allocated_blocks == 0 && u.active_leases == 0;
  });
  CHECK(freed);
  CHECK(KVPOOL_IT_VALUE(b.client().Match("ns", PromptView::Tokens(tokens))).matched_blocks == 0);
  CHECK(UsageOf(b.client(), "ns").cached_blocks == 0);
  CHECK(KVPOOL_IT_VALUE(b.client().Health()));
}

}  // namespace
}  // namespace kvpool::itest
