// The GPU tier end to end with real kvpoold processes: GPU blocks written and read by clients
// through the node's pinned staging, node-to-node transfers from GPU blocks, refusals, and a
// client's own device memory (RegisterMemory kDevice). Each runs on the emulated device
// (--gpu-emulate) on every machine and on the CUDA device where there is one ([gpu]).
#include <algorithm>
#include <cstring>
#include <memory>
#include <string>
#include <vector>

#include "kvpool/data_plane.h"
#include "memory/device.h"
#include "tests/integration/daemon_fixture.h"

namespace kvpool::itest {
namespace {

constexpr uint64_t kKiB = 1ull << 10;
constexpr uint32_t kBlockTokens = 16;
constexpr uint64_t kBlockBytes = 192 * kKiB;  // not a power of two: staging chunks straddle blocks
constexpr uint32_t kBlocks = 12;

std::vector<uint64_t> Offsets(size_t n, uint64_t first = 0) {
  std::vector<uint64_t> out;
  for (size_t i = 0; i < n; ++i) out.push_back(first + i * kBlockBytes);
  return out;
}

DaemonConfig GpuNode(const std::string& node_id, const std::vector<std::string>& gpu_flags,
                     std::vector<std::string> more = {}) {
  DaemonConfig config;
  config.extra_args = {"--node-id=" + node_id};
  config.extra_args.insert(config.extra_args.end(), gpu_flags.begin(), gpu_flags.end());
  config.extra_args.insert(config.extra_args.end(), more.begin(), more.end());
  return config;
}

// A client's data plane with a host buffer registered.
struct HostEndpoint {
  explicit HostEndpoint(Client& client) {
    dp = KVPOOL_IT_VALUE(DataPlane::Connect(client));
    buffer.assign(kBlocks * kBlockBytes + 4096, 0);
    region = KVPOOL_IT_VALUE(dp->RegisterMemory(buffer.data(), buffer.size()));
  }
  std::unique_ptr<DataPlane> dp;
  std::vector<uint8_t> buffer;
  RegionId region{};
};

// False (after a WARN) when the daemon runs host-only: no CUDA device on this machine.
bool HasGpuTier(TestDaemon& node) {
  const PoolStats stats = KVPOOL_IT_VALUE(node.client().GetStats());
  if (stats.gpu_capacity_bytes == 0) {
    WARN("skipping [gpu] test: kvpoold runs host-only here: " << node.Log());
    return false;
  }
  return true;
}

void CheckGpuBlocks(const std::vector<std::string>& gpu_flags) {
  TestDaemon b(GpuNode("b", gpu_flags));
  TestDaemon a(GpuNode("a", gpu_flags, {"--peer=b=" + b.address()}));
  const NamespaceSpec spec{"g", kBlockTokens, kBlockBytes, ""};
  KVPOOL_IT_REQUIRE_OK(a.client().CreateNamespace(spec));
  const std::vector<uint8_t> data = RandomBytes(kBlocks * kBlockBytes, 21);
  const std::vector<uint32_t> tokens = MakeTokens(kBlocks * kBlockTokens, 8);

  // A writer puts into GPU blocks: the node pulls the region and stages the bytes to its device.
  HostEndpoint writer(a.client());
  const Allocation gpu = KVPOOL_IT_VALUE(a.client().AllocMem("g", kBlocks, Tier::kGpu));
  for (const BlockLocation& block : gpu.blocks) CHECK(block.tier == Tier::kGpu);
  std::memcpy(writer.buffer.data(), data.data(), data.size());
  KVPOOL_IT_REQUIRE_OK(
      KVPOOL_IT_VALUE(writer.dp->Put(writer.region, Offsets(kBlocks), gpu.blocks)).Wait(30'000));
  KVPOOL_IT_REQUIRE_OK(a.client().Insert("g", PromptView::Tokens(tokens), 0, HandlesOf(gpu),
                                         gpu.lease.id));
  KVPOOL_IT_REQUIRE_OK(a.client().Release(gpu.lease.id));
  const ExistsResult where = KVPOOL_IT_VALUE(a.client().Exists("g", PromptView::Tokens(tokens)));
  CHECK(where.tiers == std::vector<Tier>(kBlocks, Tier::kGpu));

  // A reader on another connection matches and gets them: the node stages and sends them.
  std::unique_ptr<Client> reader_client = a.Connect();
  HostEndpoint reader(*reader_client);
  const uint32_t got = KVPOOL_IT_VALUE(reader.dp->MatchAndGet(
      *reader_client, "g", PromptView::Tokens(tokens), reader.region, Offsets(kBlocks, 4096)));
  REQUIRE(got == kBlocks);
  CHECK(std::memcmp(reader.buffer.data() + 4096, data.data(), data.size()) == 0);
  CHECK(std::all_of(reader.buffer.begin(), reader.buffer.begin() + 4096,
                    [](uint8_t v) { return v == 0; }));

  // Node to node from GPU blocks: b receives host blocks, byte-exact.
  const MatchResult pinned =
      KVPOOL_IT_VALUE(a.client().Match("g", PromptView::Tokens(tokens), 0, /*lease=*/true));
  REQUIRE(pinned.matched_blocks == kBlocks);
  const TransferWithInsertResult moved = KVPOOL_IT_VALUE(a.client().TransferWithInsert(
      "b", "g", PromptView::Tokens(tokens), 0, pinned.lease.id, HandlesOf(pinned.blocks)));
  CHECK(moved.inserted_blocks == kBlocks);
  HostEndpoint on_b(b.client());
  CHECK(KVPOOL_IT_VALUE(on_b.dp->MatchAndGet(b.client(), "g", PromptView::Tokens(tokens),
                                             on_b.region, Offsets(kBlocks))) == kBlocks);
  CHECK(std::memcmp(on_b.buffer.data(), data.data(), data.size()) == 0);

  // GPU blocks of another node cannot be written one-sided: refused before any byte moves.
  const Allocation b_gpu = KVPOOL_IT_VALUE(b.client().AllocMem("g", 2, Tier::kGpu));
  KVPOOL_IT_CHECK_ERROR(
      a.client().TransferToNode(pinned.lease.id, std::vector<BlockHandle>{pinned.blocks[0].handle,
                                                                          pinned.blocks[1].handle},
                                NodeBlocks{"b", b_gpu.lease.id, HandlesOf(b_gpu)}),
      StatusCode::kFailedPrecondition, "GPU tier");
  KVPOOL_IT_REQUIRE_OK(a.client().Release(pinned.lease.id));
  const PoolStats stats = KVPOOL_IT_VALUE(a.client().GetStats());
  CHECK(stats.gpu_capacity_bytes > 0);
  CHECK_FALSE(stats.gpu_device.empty());
  CHECK(stats.active_leases == 0);
}

TEST_CASE("GPU tier: clients and nodes move GPU blocks through staging (emulated device)",
          "[ucx]") {
  CheckGpuBlocks({"--gpu-capacity=8MiB", "--gpu-emulate"});
}

TEST_CASE("GPU tier: clients and nodes move GPU blocks through staging (CUDA)", "[gpu]") {
  {
    TestDaemon probe(GpuNode("probe", {"--gpu-capacity=8MiB"}));
    if (!HasGpuTier(probe)) return;
  }
  CheckGpuBlocks({"--gpu-capacity=64MiB"});
}

TEST_CASE("GPU tier: without a device the node says why in one line and runs host-only",
          "[ucx]") {
  TestDaemon node(GpuNode("n", {"--gpu-capacity=8MiB"}));
  const PoolStats stats = KVPOOL_IT_VALUE(node.client().GetStats());
  KVPOOL_IT_REQUIRE_OK(
      node.client().CreateNamespace(NamespaceSpec{"g", kBlockTokens, kBlockBytes, ""}));
  if (stats.gpu_capacity_bytes > 0) {
    WARN("this machine has a CUDA device: " << stats.gpu_device);
    CHECK(node.client().AllocMem("g", 1, Tier::kGpu).ok());
    return;
  }
  const std::string log = node.Log();
  CHECK_THAT(log, Catch::Contains("GPU tier off, running host-only"));
  KVPOOL_IT_CHECK_ERROR(node.client().AllocMem("g", 1, Tier::kGpu),
                        StatusCode::kFailedPrecondition, "--gpu-capacity");
  CHECK(node.client().AllocMem("g", 1, Tier::kHost).ok());
}

// A client's own device memory (the engine's KV cache in HBM) as a region, on a node with a GPU
// tier: to and from host blocks (the client's staging) and GPU blocks (the client's bounce
// buffer and the node's staging). `device` allocates the memory the DataPlanes register.
constexpr uint32_t kDeviceBlocks = 24;  // 4.5 MiB: more than one 4 MiB bounce chunk

std::vector<uint8_t> DeviceBytes(memory::DeviceRuntime& device, const memory::DeviceBuffer& buf,
                                 uint64_t offset, uint64_t size) {
  std::vector<uint8_t> out(size);
  KVPOOL_IT_REQUIRE_OK(device.CopySync(out.data(), buf.data() + offset, size));
  return out;
}

void FillDevice(memory::DeviceRuntime& device, const memory::DeviceBuffer& buf,
                const std::vector<uint8_t>& bytes) {
  REQUIRE(bytes.size() <= buf.size_bytes());
  KVPOOL_IT_REQUIRE_OK(device.CopySync(buf.data(), bytes.data(), bytes.size()));
}

// `data` with its blocks in reverse order.
std::vector<uint8_t> ReversedBlocks(const std::vector<uint8_t>& data) {
  std::vector<uint8_t> out(data.size());
  const size_t n = data.size() / kBlockBytes;
  for (size_t i = 0; i < n; ++i) {
    std::memcpy(out.data() + i * kBlockBytes, data.data() + (n - 1 - i) * kBlockBytes,
                kBlockBytes);
  }
  return out;
}

void CheckDeviceRegion(memory::DeviceRuntime& device, const std::vector<std::string>& gpu_flags,
                       const DataPlaneOptions& options) {
  TestDaemon node(GpuNode("d", gpu_flags));
  KVPOOL_IT_REQUIRE_OK(
      node.client().CreateNamespace(NamespaceSpec{"g", kBlockTokens, kBlockBytes, ""}));
  const uint64_t bytes = kDeviceBlocks * kBlockBytes;
  const std::vector<uint8_t> data = RandomBytes(bytes, 33);

  // The writer's device region holds `data`; the reader's (another Client and DataPlane) starts
  // zeroed, one page larger so that its blocks land at an offset.
  auto dp = KVPOOL_IT_VALUE(DataPlane::Connect(node.client(), options));
  auto hbm = KVPOOL_IT_VALUE(device.AllocateDevice(bytes));
  FillDevice(device, *hbm, data);
  const RegionId region =
      KVPOOL_IT_VALUE(dp->RegisterMemory(hbm->data(), hbm->size_bytes(), MemoryKind::kDevice));
  KVPOOL_IT_CHECK_ERROR(dp->ExportRegion(region), StatusCode::kFailedPrecondition, "device");
  std::unique_ptr<Client> reader_client = node.Connect();
  auto reader = KVPOOL_IT_VALUE(DataPlane::Connect(*reader_client, options));
  auto reader_hbm = KVPOOL_IT_VALUE(device.AllocateDevice(bytes + 4096));
  const std::vector<uint8_t> zeros(bytes + 4096, 0);
  FillDevice(device, *reader_hbm, zeros);
  const RegionId reader_region = KVPOOL_IT_VALUE(
      reader->RegisterMemory(reader_hbm->data(), reader_hbm->size_bytes(), MemoryKind::kDevice));
  const std::vector<uint64_t> reversed = [] {
    std::vector<uint64_t> out = Offsets(kDeviceBlocks);
    std::reverse(out.begin(), out.end());
    return out;
  }();

  // HOST blocks: PutAndInsert stages device -> pinned -> node; the reader's MatchAndGet back.
  const std::vector<uint32_t> host_tokens = MakeTokens(kDeviceBlocks * kBlockTokens, 9);
  const InsertResult stored = KVPOOL_IT_VALUE(dp->PutAndInsert(
      node.client(), "g", PromptView::Tokens(host_tokens), 0, region, Offsets(kDeviceBlocks)));
  CHECK(stored.inserted_blocks == kDeviceBlocks);
  CHECK(KVPOOL_IT_VALUE(node.client().Exists("g", PromptView::Tokens(host_tokens))).tiers ==
        std::vector<Tier>(kDeviceBlocks, Tier::kHost));
  CHECK(KVPOOL_IT_VALUE(reader->MatchAndGet(*reader_client, "g", PromptView::Tokens(host_tokens),
                                            reader_region, Offsets(kDeviceBlocks, 4096))) ==
        kDeviceBlocks);
  CHECK(DeviceBytes(device, *reader_hbm, 4096, bytes) == data);
  CHECK(DeviceBytes(device, *reader_hbm, 0, 4096) == std::vector<uint8_t>(4096, 0));

  // GPU blocks: a plain Put through the bounce buffer, offsets reversed so that every block's
  // place is checked across the chunk boundary; Insert; the reader's MatchAndGet back.
  const std::vector<uint32_t> gpu_tokens = MakeTokens(kDeviceBlocks * kBlockTokens, 10);
  const Allocation gpu = KVPOOL_IT_VALUE(node.client().AllocMem("g", kDeviceBlocks, Tier::kGpu));
  for (const BlockLocation& block : gpu.blocks) REQUIRE(block.tier == Tier::kGpu);
  KVPOOL_IT_REQUIRE_OK(KVPOOL_IT_VALUE(dp->Put(region, reversed, gpu.blocks)).Wait(30'000));
  KVPOOL_IT_REQUIRE_OK(node.client().Insert("g", PromptView::Tokens(gpu_tokens), 0,
                                            HandlesOf(gpu), gpu.lease.id));
  KVPOOL_IT_REQUIRE_OK(node.client().Release(gpu.lease.id));
  CHECK(KVPOOL_IT_VALUE(node.client().Exists("g", PromptView::Tokens(gpu_tokens))).tiers ==
        std::vector<Tier>(kDeviceBlocks, Tier::kGpu));
  FillDevice(device, *reader_hbm, zeros);
  CHECK(KVPOOL_IT_VALUE(reader->MatchAndGet(*reader_client, "g", PromptView::Tokens(gpu_tokens),
                                            reader_region, Offsets(kDeviceBlocks, 4096))) ==
        kDeviceBlocks);
  CHECK(DeviceBytes(device, *reader_hbm, 4096, bytes) == ReversedBlocks(data));
  CHECK(DeviceBytes(device, *reader_hbm, 0, 4096) == std::vector<uint8_t>(4096, 0));

  // Plain Gets under Match leases into the writer's zeroed region: the GPU blocks (reversed
  // again, so the region holds `data`), then one batch mixing a host and a GPU block.
  const MatchResult on_gpu =
      KVPOOL_IT_VALUE(node.client().Match("g", PromptView::Tokens(gpu_tokens), 0, true));
  const MatchResult on_host =
      KVPOOL_IT_VALUE(node.client().Match("g", PromptView::Tokens(host_tokens), 0, true));
  REQUIRE(on_gpu.blocks.size() == kDeviceBlocks);
  REQUIRE(on_host.blocks.size() == kDeviceBlocks);
  FillDevice(device, *hbm, std::vector<uint8_t>(bytes, 0));
  KVPOOL_IT_REQUIRE_OK(KVPOOL_IT_VALUE(dp->Get(on_gpu.blocks, region, reversed)).Wait(30'000));
  CHECK(DeviceBytes(device, *hbm, 0, bytes) == data);
  FillDevice(device, *hbm, std::vector<uint8_t>(bytes, 0));
  const std::vector<BlockLocation> mixed = {on_host.blocks[3], on_gpu.blocks[5]};
  KVPOOL_IT_REQUIRE_OK(
      KVPOOL_IT_VALUE(dp->Get(mixed, region, std::vector<uint64_t>{kBlockBytes, 0})).Wait(30'000));
  const std::vector<uint8_t> want_gpu5(data.begin() + (kDeviceBlocks - 6) * kBlockBytes,
                                       data.begin() + (kDeviceBlocks - 5) * kBlockBytes);
  const std::vector<uint8_t> want_host3(data.begin() + 3 * kBlockBytes,
                                        data.begin() + 4 * kBlockBytes);
  CHECK(DeviceBytes(device, *hbm, 0, kBlockBytes) == want_gpu5);
  CHECK(DeviceBytes(device, *hbm, kBlockBytes, kBlockBytes) == want_host3);

  // Refused before any byte moves: a region offset past the region's end, in the last op.
  std::vector<uint64_t> outside = Offsets(kDeviceBlocks);
  outside.back() = bytes;
  const std::vector<uint8_t> sentinel(bytes, 0xab);
  FillDevice(device, *hbm, sentinel);
  KVPOOL_IT_CHECK_ERROR(dp->Get(on_gpu.blocks, region, outside), StatusCode::kInvalidArgument,
                        "outside");
  CHECK(DeviceBytes(device, *hbm, 0, bytes) == sentinel);
  const Allocation fresh = KVPOOL_IT_VALUE(node.client().AllocMem("g", kDeviceBlocks, Tier::kGpu));
  KVPOOL_IT_CHECK_ERROR(dp->Put(region, outside, fresh.blocks), StatusCode::kInvalidArgument,
                        "outside");
  KVPOOL_IT_REQUIRE_OK(node.client().Release(fresh.lease.id));
  // The refused Put wrote none of the sentinel: the cached GPU blocks still read back as before.
  FillDevice(device, *reader_hbm, zeros);
  CHECK(KVPOOL_IT_VALUE(reader->MatchAndGet(*reader_client, "g", PromptView::Tokens(gpu_tokens),
                                            reader_region, Offsets(kDeviceBlocks, 4096))) ==
        kDeviceBlocks);
  CHECK(DeviceBytes(device, *reader_hbm, 4096, bytes) == ReversedBlocks(data));

  KVPOOL_IT_REQUIRE_OK(node.client().Release(on_gpu.lease.id));
  KVPOOL_IT_REQUIRE_OK(node.client().Release(on_host.lease.id));
  KVPOOL_IT_REQUIRE_OK(dp->Deregister(region));
  KVPOOL_IT_REQUIRE_OK(reader->Deregister(reader_region));
  CHECK(KVPOOL_IT_VALUE(node.client().GetStats()).active_leases == 0);
}

TEST_CASE("GPU tier: a client's device memory moves to host and GPU blocks (emulated device)",
          "[ucx]") {
  std::unique_ptr<memory::DeviceRuntime> device = memory::NewEmulatedDevice();
  DataPlaneOptions options;
  options.emulate_device = true;
  CheckDeviceRegion(*device, {"--gpu-capacity=16MiB", "--gpu-emulate"}, options);
}

TEST_CASE("GPU tier: without emulate_device host memory is no device region", "[ucx]") {
  TestDaemon node(GpuNode("d", {}));
  auto dp = KVPOOL_IT_VALUE(DataPlane::Connect(node.client()));
  std::vector<uint8_t> host(4096);
  // No device here (UNAVAILABLE or UNIMPLEMENTED), or a CUDA device that says it is host memory.
  const Status refused = dp->RegisterMemory(host.data(), host.size(), MemoryKind::kDevice).status();
  CHECK_FALSE(refused.ok());
  DataPlaneOptions emulating;
  emulating.emulate_device = true;
  auto emulated = KVPOOL_IT_VALUE(DataPlane::Connect(node.client(), emulating));
  CHECK(emulated->RegisterMemory(host.data(), host.size(), MemoryKind::kDevice).ok());
}

TEST_CASE("GPU tier: a client's device memory moves through its own staging (CUDA)", "[gpu]") {
  Result<std::unique_ptr<memory::DeviceRuntime>> device = memory::OpenCudaDevice(0);
  if (!device.ok()) {
    WARN("skipping [gpu] test: " << device.status().ToString());
    TestDaemon node(GpuNode("d", {}));
    auto dp = KVPOOL_IT_VALUE(DataPlane::Connect(node.client()));
    std::vector<uint8_t> host(4096);
    // Without a device (or CUDA) RegisterMemory says so instead of registering anything.
    const Status refused =
        dp->RegisterMemory(host.data(), host.size(), MemoryKind::kDevice).status();
    CHECK((refused.code() == StatusCode::kUnavailable ||
           refused.code() == StatusCode::kUnimplemented));
    return;
  }
  CheckDeviceRegion(**device, {"--gpu-capacity=64MiB"}, DataPlaneOptions{});
}

}  // namespace
}  // namespace kvpool::itest
