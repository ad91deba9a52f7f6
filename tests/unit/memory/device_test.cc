// The device layer: the emulation everywhere; the CUDA implementation on a machine with a GPU
// (tests tagged [gpu] report why they skip elsewhere).
#include "memory/device.h"

#include <catch2/catch.hpp>
#include <cstring>
#include <numeric>
#include <vector>

namespace kvpool::memory {
namespace {

// The CUDA device, or nullptr after a WARN saying why the [gpu] test skips.
std::unique_ptr<DeviceRuntime> CudaOrSkip() {
  Result<std::unique_ptr<DeviceRuntime>> device = OpenCudaDevice(0);
  if (!device.ok()) {
    WARN("skipping [gpu] test: " << device.status().ToString());
    return nullptr;
  }
  return std::move(device).value();
}

// Round trip host -> device -> pinned -> host through one stream, with Mark/WaitFor.
void CheckRoundTrip(DeviceRuntime& device) {
  constexpr uint64_t kBytes = (4 << 20) + 123;
  auto dev = device.AllocateDevice(kBytes);
  REQUIRE(dev.ok());
  auto pinned = device.AllocatePinned(kBytes);
  REQUIRE(pinned.ok());
  CHECK(reinterpret_cast<uintptr_t>((*pinned)->data()) % 4096 == 0);
  std::vector<uint8_t> src(kBytes);
  std::iota(src.begin(), src.end(), uint8_t{7});
  std::memcpy((*pinned)->data(), src.data(), kBytes);
  auto stream = device.NewStream();
  REQUIRE(stream.ok());
  REQUIRE((*stream)->CopyAsync((*dev)->data(), (*pinned)->data(), kBytes).ok());
  auto first = (*stream)->Mark();
  REQUIRE(first.ok());
  REQUIRE((*stream)->WaitFor(*first).ok());
  std::memset((*pinned)->data(), 0, kBytes);
  REQUIRE((*stream)->CopyAsync((*pinned)->data(), (*dev)->data(), kBytes).ok());
  REQUIRE((*stream)->Synchronize().ok());
  CHECK(std::memcmp((*pinned)->data(), src.data(), kBytes) == 0);
  // A ticket already waited for returns at once.
  CHECK((*stream)->WaitFor(*first).ok());
  std::vector<uint8_t> back(100);
  REQUIRE(device.CopySync(back.data(), (*dev)->data() + 1000, back.size()).ok());
  CHECK(std::memcmp(back.data(), src.data() + 1000, back.size()) == 0);
}

TEST_CASE("Device: the emulation round-trips bytes through device and pinned memory",
          "[memory]") {
  std::unique_ptr<DeviceRuntime> device = NewEmulatedDevice();
  CHECK(device->emulated());
  CheckRoundTrip(*device);
  CHECK(device->AllocateDevice(0).status().code() == StatusCode::kInvalidArgument);
  CHECK(device->AllocatePinned(0).status().code() == StatusCode::kInvalidArgument);
}

TEST_CASE("Device: OpenCudaDevice says why there is no device", "[memory]") {
  CHECK(OpenCudaDevice(-1).status().code() == StatusCode::kInvalidArgument);
  Result<std::unique_ptr<DeviceRuntime>> device = OpenCudaDevice(0);
  if (device.ok()) {
    CHECK_FALSE((*device)->emulated());
    CHECK((*device)->Describe().rfind("cuda:0 ", 0) == 0);
  } else if (BuiltWithCuda()) {
    // No driver or no device: UNAVAILABLE with the runtime's words.
    CHECK(device.status().code() == StatusCode::kUnavailable);
    CHECK_FALSE(device.status().message().empty());
  } else {
    CHECK(device.status().code() == StatusCode::kUnimplemented);
  }
  CHECK(OpenCudaDevice(1000).status().code() != StatusCode::kOk);
}

TEST_CASE("Device: CUDA device memory, pinned memory and streams round-trip bytes", "[gpu]") {
  std::unique_ptr<DeviceRuntime> device = CudaOrSkip();
  if (device == nullptr) return;
  CheckRoundTrip(*device);
  auto dev = device->AllocateDevice(1 << 20);
  REQUIRE(dev.ok());
  CHECK(device->IsDevicePointer((*dev)->data()));
  std::vector<uint8_t> host(16);
  CHECK_FALSE(device->IsDevicePointer(host.data()));
  // More than the device has: RESOURCE_EXHAUSTED, and the device keeps working.
  CHECK(device->AllocateDevice(1ull << 50).status().code() == StatusCode::kResourceExhausted);
  CheckRoundTrip(*device);
}

}  // namespace
}  // namespace kvpool::memory
