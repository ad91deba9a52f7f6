#include "common/malloc_tuning.h"

#include <malloc.h>

namespace kvpool {

bool TuneMallocForBlockBuffers() {
  // 32 MiB is the largest threshold glibc accepts on 64-bit (HEAP_MAX_SIZE / 2); setting it
  // also turns off the dynamic adjustment, which never covered a buffer of exactly the size
  // freed before.
  constexpr int kMmapThresholdBytes = 32 << 20;
  constexpr int kTrimThresholdBytes = 256 << 20;
  const bool mmap_ok = mallopt(M_MMAP_THRESHOLD, kMmapThresholdBytes) == 1;
  const bool trim_ok = mallopt(M_TRIM_THRESHOLD, kTrimThresholdBytes) == 1;
  return mmap_ok && trim_ok;
}

}  // namespace kvpool
