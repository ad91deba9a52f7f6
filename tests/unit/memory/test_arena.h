// Shared fixture of the memory tests.
#pragma once

#include <catch2/catch.hpp>
#include <memory>

#include "memory/host_arena.h"

namespace kvpool::memory {

/// A plain-page arena: small pages keep sizes and alignment deterministic whatever the
/// machine's huge page setup.
inline std::unique_ptr<HostArena> MakePlainArena(uint64_t capacity_bytes) {
  HostArenaOptions options;
  options.capacity_bytes = capacity_bytes;
  options.try_huge_pages = false;
  auto arena = HostArena::Create(options);
  REQUIRE(arena.ok());
  return std::move(arena).value();
}

}  // namespace kvpool::memory
