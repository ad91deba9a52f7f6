// TuneMallocForBlockBuffers: glibc takes both settings (its limits are easy to overstep: the
// mmap threshold may not exceed 32 MiB on 64-bit).
#include "common/malloc_tuning.h"

#include <catch2/catch.hpp>
#include <cstdlib>
#include <cstring>

// GCC says so with __SANITIZE_*__, clang 14 (the sanitizer builds) only with __has_feature.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
#define KVPOOL_SANITIZED_MALLOC 1
#elif defined(__has_feature)
#if __has_feature(address_sanitizer) || __has_feature(thread_sanitizer) || \
    __has_feature(memory_sanitizer)
#define KVPOOL_SANITIZED_MALLOC 1
#endif
#endif
#ifndef KVPOOL_SANITIZED_MALLOC
#define KVPOOL_SANITIZED_MALLOC 0
#endif

namespace kvpool {
namespace {

TEST_CASE("TuneMallocForBlockBuffers: glibc takes both settings, and blocks still allocate",
          "[unit]") {
#if KVPOOL_SANITIZED_MALLOC
  // The sanitizers replace malloc and answer mallopt with a refusal.
  SUCCEED("built with a sanitizer: its allocator ignores mallopt");
#else
  REQUIRE(TuneMallocForBlockBuffers());
#endif
  // A block-sized buffer, freed and allocated again, as a promotion's reads do.
  for (int i = 0; i < 4; ++i) {
    void* p = std::malloc(1 << 20);
    REQUIRE(p != nullptr);
    std::memset(p, i, 1 << 20);
    std::free(p);
  }
}

}  // namespace
}  // namespace kvpool
