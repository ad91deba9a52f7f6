// The emulated device: "device" memory in host RAM, copies with memcpy. See device.h.
#include <cstdlib>
#include <cstring>
#include <string>

#include "memory/device.h"

namespace kvpool::memory {
namespace {

constexpr uint64_t kAlign = 4096;

// One page-aligned host allocation; serves as both DeviceBuffer and PinnedBuffer.
class HostBlock {
 public:
  static Result<uint8_t*> Allocate(uint64_t bytes) {
    if (bytes == 0) return InvalidArgumentError("cannot allocate 0 bytes");
    const uint64_t rounded = (bytes + kAlign - 1) / kAlign * kAlign;
    void* p = std::aligned_alloc(kAlign, rounded);
    if (p == nullptr) {
      return ResourceExhaustedError("cannot allocate " + std::to_string(bytes) +
                                    " bytes of emulated device memory");
    }
    return static_cast<uint8_t*>(p);
  }
};

class EmulatedBuffer final : public DeviceBuffer, public PinnedBuffer {
 public:
  EmulatedBuffer(uint8_t* data, uint64_t size) : data_(data), size_(size) {}
  ~EmulatedBuffer() override { std::free(data_); }
  EmulatedBuffer(const EmulatedBuffer&) = delete;
  EmulatedBuffer& operator=(const EmulatedBuffer&) = delete;
  uint8_t* data() const override { return data_; }
  uint64_t size_bytes() const override { return size_; }

 private:
  uint8_t* data_;
  uint64_t size_;
};

class EmulatedStream final : public CopyStream {
 public:
  Status CopyAsync(void* dst, const void* src, uint64_t bytes) override {
    std::memcpy(dst, src, bytes);
    return Status::Ok();
  }
  Result<uint64_t> Mark() override { return ++marks_; }
  Status WaitFor(uint64_t) override { return Status::Ok(); }
  Status Synchronize() override { return Status::Ok(); }

 private:
  uint64_t marks_ = 0;
};

class EmulatedDevice final : public DeviceRuntime {
 public:
  std::string Describe() const override { return "emulated (host memory)"; }
  bool emulated() const override { return true; }
  Result<std::unique_ptr<DeviceBuffer>> AllocateDevice(uint64_t bytes) override {
    KVPOOL_ASSIGN_OR_RETURN(uint8_t * p, HostBlock::Allocate(bytes));
    return std::unique_ptr<DeviceBuffer>(new EmulatedBuffer(p, bytes));
  }
  Result<std::unique_ptr<PinnedBuffer>> AllocatePinned(uint64_t bytes) override {
    KVPOOL_ASSIGN_OR_RETURN(uint8_t * p, HostBlock::Allocate(bytes));
    return std::unique_ptr<PinnedBuffer>(new EmulatedBuffer(p, bytes));
  }
  Result<std::unique_ptr<CopyStream>> NewStream() override {
    return std::unique_ptr<CopyStream>(new EmulatedStream());
  }
  bool IsDevicePointer(const void*) const override { return false; }
};

}  // namespace

std::unique_ptr<DeviceRuntime> NewEmulatedDevice() { return std::make_unique<EmulatedDevice>(); }

Status DeviceRuntime::CopySync(void* dst, const void* src, uint64_t bytes) {
  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<CopyStream> stream, NewStream());
  KVPOOL_RETURN_IF_ERROR(stream->CopyAsync(dst, src, bytes));
  return stream->Synchronize();
}

}  // namespace kvpool::memory
