// OpenCudaDevice of a build without CUDA (KVPOOL_WITH_CUDA off). See device.h.
#include <string>

#include "memory/device.h"

namespace kvpool::memory {

bool BuiltWithCuda() { return false; }

Result<std::unique_ptr<DeviceRuntime>> OpenCudaDevice(int ordinal) {
  if (ordinal < 0) {
    return InvalidArgumentError("CUDA device ordinal must be >= 0, not " +
                                std::to_string(ordinal));
  }
  return UnimplementedError(
      "this kvpool was built without CUDA (configure with the CUDA Toolkit installed and "
      "-DKVPOOL_WITH_CUDA=ON for the GPU tier)");
}

}  // namespace kvpool::memory
