// The CUDA implementation of device.h: the only code that includes <cuda_runtime.h>.
#include <cuda_runtime.h>

#include <deque>
#include <string>
#include <utility>
#include <vector>

#include "common/units.h"
#include "memory/device.h"

namespace kvpool::memory {
namespace {

std::string CudaMessage(std::string_view call, cudaError_t err) {
  return std::string(call) + " failed: " + cudaGetErrorString(err) + " (" +
         std::to_string(static_cast<int>(err)) + ")";
}

Status CudaError(std::string_view call, cudaError_t err) {
  if (err == cudaErrorMemoryAllocation) return ResourceExhaustedError(CudaMessage(call, err));
  return InternalError(CudaMessage(call, err));
}

class CudaDeviceBuffer final : public DeviceBuffer {
 public:
  CudaDeviceBuffer(int device, uint8_t* data, uint64_t size)
      : device_(device), data_(data), size_(size) {}
  ~CudaDeviceBuffer() override {
    cudaSetDevice(device_);
    cudaFree(data_);
  }
  CudaDeviceBuffer(const CudaDeviceBuffer&) = delete;
  CudaDeviceBuffer& operator=(const CudaDeviceBuffer&) = delete;
  uint8_t* data() const override { return data_; }
  uint64_t size_bytes() const override { return size_; }

 private:
  int device_;
  uint8_t* data_;
  uint64_t size_;
};

class CudaPinnedBuffer final : public PinnedBuffer {
 public:
  CudaPinnedBuffer(uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  ~CudaPinnedBuffer() override { cudaFreeHost(data_); }
  CudaPinnedBuffer(const CudaPinnedBuffer&) = delete;
  CudaPinnedBuffer& operator=(const CudaPinnedBuffer&) = delete;
  uint8_t* data() const override { return data_; }
  uint64_t size_bytes() const override { return size_; }

 private:
  uint8_t* data_;
  uint64_t size_;
};

class CudaCopyStream final : public CopyStream {
 public:
  CudaCopyStream(int device, cudaStream_t stream) : device_(device), stream_(stream) {}
  ~CudaCopyStream() override {
    cudaSetDevice(device_);
    cudaStreamSynchronize(stream_);
    for (auto& [ticket, event] : marks_) cudaEventDestroy(event);
    for (cudaEvent_t event : spare_) cudaEventDestroy(event);
    cudaStreamDestroy(stream_);
  }
  CudaCopyStream(const CudaCopyStream&) = delete;
  CudaCopyStream& operator=(const CudaCopyStream&) = delete;

  Status CopyAsync(void* dst, const void* src, uint64_t bytes) override {
    cudaSetDevice(device_);
    const cudaError_t err = cudaMemcpyAsync(dst, src, bytes, cudaMemcpyDefault, stream_);
    if (err != cudaSuccess) return CudaError("cudaMemcpyAsync", err);
    return Status::Ok();
  }

  Result<uint64_t> Mark() override {
    cudaSetDevice(device_);
    cudaEvent_t event = nullptr;
    if (!spare_.empty()) {
      event = spare_.back();
      spare_.pop_back();
    } else if (cudaError_t err = cudaEventCreateWithFlags(&event, cudaEventDisableTiming);
               err != cudaSuccess) {
      return CudaError("cudaEventCreateWithFlags", err);
    }
    if (cudaError_t err = cudaEventRecord(event, stream_); err != cudaSuccess) {
      spare_.push_back(event);
      return CudaError("cudaEventRecord", err);
    }
    marks_.emplace_back(++last_ticket_, event);
    return last_ticket_;
  }

  Status WaitFor(uint64_t ticket) override {
    cudaSetDevice(device_);
    Status result = Status::Ok();
    // Events complete in stream order: everything up to `ticket` is done once its event is.
    while (!marks_.empty() && marks_.front().first <= ticket) {
      auto [t, event] = marks_.front();
      marks_.pop_front();
      if (t == ticket) {
        if (cudaError_t err = cudaEventSynchronize(event); err != cudaSuccess) {
          result = CudaError("cudaEventSynchronize", err);
        }
      }
      spare_.push_back(event);
    }
    return result;
  }

  Status Synchronize() override {
    cudaSetDevice(device_);
    if (cudaError_t err = cudaStreamSynchronize(stream_); err != cudaSuccess) {
      return CudaError("cudaStreamSynchronize", err);
    }
    while (!marks_.empty()) {
      spare_.push_back(marks_.front().second);
      marks_.pop_front();
    }
    return Status::Ok();
  }

 private:
  int device_;
  cudaStream_t stream_;
  std::deque<std::pair<uint64_t, cudaEvent_t>> marks_;
  std::vector<cudaEvent_t> spare_;
  uint64_t last_ticket_ = 0;
};

class CudaDevice final : public DeviceRuntime {
 public:
  CudaDevice(int ordinal, std::string name, uint64_t total_bytes)
      : ordinal_(ordinal), name_(std::move(name)), total_bytes_(total_bytes) {}

  std::string Describe() const override {
    return "cuda:" + std::to_string(ordinal_) + " " + name_ + " (" + FormatBytes(total_bytes_) +
           ")";
  }
  bool emulated() const override { return false; }

  Result<std::unique_ptr<DeviceBuffer>> AllocateDevice(uint64_t bytes) override {
    if (bytes == 0) return InvalidArgumentError("cannot allocate 0 bytes of device memory");
    cudaSetDevice(ordinal_);
    void* p = nullptr;
    if (cudaError_t err = cudaMalloc(&p, bytes); err != cudaSuccess) {
      cudaGetLastError();  // clear the sticky-free error state of the failed allocation
      return CudaError("cudaMalloc of " + FormatBytes(bytes) + " on " + Describe(), err);
    }
    return std::unique_ptr<DeviceBuffer>(
        new CudaDeviceBuffer(ordinal_, static_cast<uint8_t*>(p), bytes));
  }

  Result<std::unique_ptr<PinnedBuffer>> AllocatePinned(uint64_t bytes) override {
    if (bytes == 0) return InvalidArgumentError("cannot allocate 0 bytes of pinned memory");
    cudaSetDevice(ordinal_);
    void* p = nullptr;
    if (cudaError_t err = cudaHostAlloc(&p, bytes, cudaHostAllocPortable); err != cudaSuccess) {
      cudaGetLastError();
      return CudaError("cudaHostAlloc of " + FormatBytes(bytes), err);
    }
    return std::unique_ptr<PinnedBuffer>(new CudaPinnedBuffer(static_cast<uint8_t*>(p), bytes));
  }

  Result<std::unique_ptr<CopyStream>> NewStream() override {
    cudaSetDevice(ordinal_);
    cudaStream_t stream = nullptr;
    if (cudaError_t err = cudaStreamCreateWithFlags(&stream, cudaStreamNonBlocking);
        err != cudaSuccess) {
      return CudaError("cudaStreamCreateWithFlags", err);
    }
    return std::unique_ptr<CopyStream>(new CudaCopyStream(ordinal_, stream));
  }

  bool IsDevicePointer(const void* ptr) const override {
    cudaPointerAttributes attr{};
    if (cudaPointerGetAttributes(&attr, ptr) != cudaSuccess) {
      cudaGetLastError();
      return false;
    }
    return attr.type == cudaMemoryTypeDevice;
  }

 private:
  const int ordinal_;
  const std::string name_;
  const uint64_t total_bytes_;
};

}  // namespace

bool BuiltWithCuda() { return true; }

Result<std::unique_ptr<DeviceRuntime>> OpenCudaDevice(int ordinal) {
  if (ordinal < 0) {
    return InvalidArgumentError("CUDA device ordinal must be >= 0, not " +
                                std::to_string(ordinal));
  }
  int count = 0;
  if (cudaError_t err = cudaGetDeviceCount(&count); err != cudaSuccess) {
    return UnavailableError(CudaMessage("cudaGetDeviceCount", err));
  }
  if (ordinal >= count) {
    return UnavailableError("no CUDA device " + std::to_string(ordinal) + ": this machine has " +
                            std::to_string(count));
  }
  cudaDeviceProp prop{};
  if (cudaError_t err = cudaGetDeviceProperties(&prop, ordinal); err != cudaSuccess) {
    return UnavailableError(CudaMessage("cudaGetDeviceProperties", err));
  }
  if (cudaError_t err = cudaSetDevice(ordinal); err != cudaSuccess) {
    return UnavailableError(CudaMessage("cudaSetDevice", err));
  }
  return std::unique_ptr<DeviceRuntime>(
      new CudaDevice(ordinal, prop.name, static_cast<uint64_t>(prop.totalGlobalMem)));
}

}  // namespace kvpool::memory
