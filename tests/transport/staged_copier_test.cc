// StagedCopier: device memory to and from a peer's registered memory through pinned staging, on
// loopback tcp and shm; with the emulated device everywhere and a CUDA device where there is
// one ([gpu]).
#include "transport/staged_copier.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <future>
#include <vector>

#include "transport_test_util.h"

namespace kvpool::transport {
namespace {

using testing::Address;
using testing::EnginePair;
using testing::FillPattern;
using testing::HasPattern;
using testing::kKiB;
using testing::MakeEnginePair;

constexpr int64_t kWaitMs = 10'000;

// Ops that cross chunk boundaries, share chunks and scatter on the remote side.
std::vector<TransferOp> ScatteredOps(uint64_t device_base, uint64_t remote_base,
                                     std::vector<uint64_t>* sizes) {
  *sizes = {1, 4 * kKiB, 100 * kKiB + 3, 64 * kKiB, 7, 200 * kKiB};
  std::vector<TransferOp> ops;
  uint64_t dev = 0;
  uint64_t rem = 400 * kKiB;  // remote order differs from device order
  for (uint64_t size : *sizes) {
    rem -= size + 16;
    ops.push_back(TransferOp{device_base + dev, remote_base + rem, size});
    dev += size + 32;
  }
  return ops;
}

// Device bytes -> peer (Put), then peer -> zeroed device bytes (Get), byte-exact.
void CheckRoundTrip(memory::DeviceRuntime& device, const std::string& tls) {
  EnginePair pair = MakeEnginePair(tls);
  StagingOptions options;
  options.chunk_bytes = 64 * kKiB;  // many chunks: the pipeline wraps around its slots
  options.chunks_in_flight = 3;
  options.lanes = 2;
  auto copier = StagedCopier::Create(pair.a.get(), &device, options);
  REQUIRE(copier.ok());
  auto remote = pair.b->AllocateMemory(512 * kKiB);
  REQUIRE(remote.ok());
  std::memset(remote->data, 0, remote->size_bytes);
  auto dev = device.AllocateDevice(512 * kKiB);
  REQUIRE(dev.ok());
  std::vector<uint64_t> sizes;
  const std::vector<TransferOp> ops =
      ScatteredOps(Address((*dev)->data()), Address(remote->data), &sizes);
  std::vector<uint8_t> host(512 * kKiB);
  for (size_t i = 0; i < ops.size(); ++i) {
    FillPattern({host.data(), sizes[i]}, 40 + i);
    REQUIRE(device.CopySync(reinterpret_cast<void*>(ops[i].local_address), host.data(), sizes[i])
                .ok());
  }
  REQUIRE((*copier)->Put(pair.a_to_b, remote->Describe(), ops, kWaitMs).ok());
  for (size_t i = 0; i < ops.size(); ++i) {
    CAPTURE(i);
    CHECK(HasPattern({reinterpret_cast<uint8_t*>(ops[i].remote_address), sizes[i]}, 40 + i));
  }
  // Nothing outside the ops' ranges was written: the guard bytes between them are still zero.
  CHECK(remote->data[0] == 0);

  std::vector<uint8_t> zeros(512 * kKiB, 0);
  REQUIRE(device.CopySync((*dev)->data(), zeros.data(), zeros.size()).ok());
  REQUIRE((*copier)->Get(pair.a_to_b, remote->Describe(), ops, kWaitMs).ok());
  for (size_t i = 0; i < ops.size(); ++i) {
    CAPTURE(i);
    REQUIRE(device.CopySync(host.data(), reinterpret_cast<void*>(ops[i].local_address), sizes[i])
                .ok());
    CHECK(HasPattern({host.data(), sizes[i]}, 40 + i));
  }
  // An op outside the remote region is refused by the engine.
  std::vector<TransferOp> bad = {TransferOp{Address((*dev)->data()),
                                            Address(remote->data) + remote->size_bytes, 16}};
  CHECK((*copier)->Put(pair.a_to_b, remote->Describe(), bad, kWaitMs).code() ==
        StatusCode::kInvalidArgument);
}

TEST_CASE("StagedCopier: emulated device memory round-trips byte-exact over tcp and shm",
          "[ucx]") {
  for (const std::string& tls : testing::TestTransports()) {
    CAPTURE(tls);
    std::unique_ptr<memory::DeviceRuntime> device = memory::NewEmulatedDevice();
    CheckRoundTrip(*device, tls);
  }
}

TEST_CASE("StagedCopier: concurrent transfers share the lanes", "[ucx]") {
  EnginePair pair = MakeEnginePair("shm");
  std::unique_ptr<memory::DeviceRuntime> device = memory::NewEmulatedDevice();
  StagingOptions options;
  options.chunk_bytes = 16 * kKiB;
  options.lanes = 1;  // the second transfer waits for the first one's lane
  auto copier = StagedCopier::Create(pair.a.get(), device.get(), options);
  REQUIRE(copier.ok());
  CHECK(StagedCopier::Create(pair.a.get(), device.get(), StagingOptions{0, 1, 1}).status().code() ==
        StatusCode::kInvalidArgument);
  auto remote = pair.b->AllocateMemory(2 * 256 * kKiB);
  REQUIRE(remote.ok());
  auto dev = device->AllocateDevice(2 * 256 * kKiB);
  REQUIRE(dev.ok());
  FillPattern({(*dev)->data(), 2 * 256 * kKiB}, 9);
  auto run = [&](uint64_t half) {
    const std::vector<TransferOp> ops = {TransferOp{Address((*dev)->data() + half * 256 * kKiB),
                                                    Address(remote->data + half * 256 * kKiB),
                                                    256 * kKiB}};
    return (*copier)->Put(pair.a_to_b, remote->Describe(), ops, kWaitMs);
  };
  auto first = std::async(std::launch::async, run, 0);
  auto second = std::async(std::launch::async, run, 1);
  CHECK(first.get().ok());
  CHECK(second.get().ok());
  CHECK(HasPattern({remote->data, 2 * 256 * kKiB}, 9));
}

TEST_CASE("StagedCopier: CUDA device memory round-trips byte-exact over tcp and shm", "[gpu]") {
  Result<std::unique_ptr<memory::DeviceRuntime>> device = memory::OpenCudaDevice(0);
  if (!device.ok()) {
    WARN("skipping [gpu] test: " << device.status().ToString());
    return;
  }
  for (const std::string& tls : testing::TestTransports()) {
    CAPTURE(tls);
    CheckRoundTrip(**device, tls);
  }
}

}  // namespace
}  // namespace kvpool::transport
