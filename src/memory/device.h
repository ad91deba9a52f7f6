// Device (GPU) memory for the GPU tier: allocation, pinned host staging memory and copy streams,
// behind one interface with two implementations. The CUDA one (device_cuda.cc, built when
// KVPOOL_WITH_CUDA is on) is the only code that includes <cuda_runtime.h>; the emulated one
// keeps "device" memory in host RAM so that the GPU tier's logic is unit-tested on machines
// without a GPU (in addition to, never instead of, the [gpu] tests on a real device).
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>

#include "kvpool/status.h"

namespace kvpool::memory {

/// Device memory from DeviceRuntime::AllocateDevice; freed by the destructor (RAII).
class DeviceBuffer {
 public:
  virtual ~DeviceBuffer() = default;
  /// Device address of the first byte (not dereferenceable on the host for a real device).
  virtual uint8_t* data() const = 0;
  virtual uint64_t size_bytes() const = 0;
};

/// Page-locked host memory from DeviceRuntime::AllocatePinned (cudaHostAlloc): the device copies
/// into and out of it with DMA, and UCX may register it. Freed by the destructor (RAII).
class PinnedBuffer {
 public:
  virtual ~PinnedBuffer() = default;
  virtual uint8_t* data() const = 0;
  virtual uint64_t size_bytes() const = 0;
};

/// An ordered queue of copies on its own device stream (cudaStreamNonBlocking): copies run in
/// submission order, asynchronously to the host. Mark/WaitFor let a caller wait for a prefix of
/// the queue, which is how staged transfers overlap the device copy of one chunk with the
/// network transfer of the previous. Not thread-safe: one user at a time.
class CopyStream {
 public:
  virtual ~CopyStream() = default;
  /// Queues a copy of `bytes` from `src` to `dst`; either side may be device memory of this
  /// runtime or pinned memory (the runtime infers the direction from the addresses). INTERNAL
  /// with the runtime's message when it refuses the copy.
  virtual Status CopyAsync(void* dst, const void* src, uint64_t bytes) = 0;
  /// A ticket for "everything queued so far"; WaitFor(ticket) returns once it all ran.
  virtual Result<uint64_t> Mark() = 0;
  /// Blocks until the copies queued before Mark() returned `ticket` have completed. INTERNAL
  /// when one of them failed. A ticket that was already waited for returns OK at once.
  virtual Status WaitFor(uint64_t ticket) = 0;
  /// Blocks until every queued copy completed.
  virtual Status Synchronize() = 0;
};

/// One GPU (or its emulation). Thread-safe: any thread may allocate and create streams.
class DeviceRuntime {
 public:
  virtual ~DeviceRuntime() = default;
  /// For logs and stats: "cuda:0 NVIDIA H100 80GB HBM3 (79 GiB)" or "emulated (host memory)".
  virtual std::string Describe() const = 0;
  /// True for the emulation: device addresses are host addresses.
  virtual bool emulated() const = 0;
  /// Device memory that can hold `bytes`, from cudaMalloc (never managed memory): at least 4 KiB
  /// aligned. INVALID_ARGUMENT for 0; RESOURCE_EXHAUSTED when the device has not enough free.
  virtual Result<std::unique_ptr<DeviceBuffer>> AllocateDevice(uint64_t bytes) = 0;
  /// Page-locked host memory of `bytes` (4 KiB aligned). INVALID_ARGUMENT for 0;
  /// RESOURCE_EXHAUSTED when it cannot be pinned.
  virtual Result<std::unique_ptr<PinnedBuffer>> AllocatePinned(uint64_t bytes) = 0;
  /// A new stream for copies. INTERNAL when the runtime cannot create one.
  virtual Result<std::unique_ptr<CopyStream>> NewStream() = 0;
  /// True when `ptr` is memory of this device (cudaPointerGetAttributes says device memory).
  virtual bool IsDevicePointer(const void* ptr) const = 0;
  /// Synchronous copy for the cold paths (checksums, tests); either side may be device memory.
  Status CopySync(void* dst, const void* src, uint64_t bytes);
};

/// Opens CUDA device `ordinal`. UNIMPLEMENTED when kvpool was built without CUDA
/// (KVPOOL_WITH_CUDA off); UNAVAILABLE, with the CUDA runtime's own words, when there is no
/// driver or no such device (e.g. "cudaGetDeviceCount failed: CUDA driver version is
/// insufficient for CUDA runtime version (35)"); INVALID_ARGUMENT for a negative ordinal.
Result<std::unique_ptr<DeviceRuntime>> OpenCudaDevice(int ordinal);

/// True when this build has the CUDA implementation.
bool BuiltWithCuda();

/// The emulation: "device" and pinned memory are plain (page-aligned) host allocations and
/// copies are memcpy on the calling thread. For unit tests of the GPU tier's logic.
std::unique_ptr<DeviceRuntime> NewEmulatedDevice();

}  // namespace kvpool::memory
