// Human-readable sizes: "64MiB", "1.5GB", "4096".
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "kvpool/status.h"

namespace kvpool {

/// Parses a byte count: a non-negative number with an optional unit (B, K/KB/KiB, M/MB/MiB,
/// G/GB/GiB, T/TB/TiB; binary units are powers of 1024, decimal ones of 1000; a bare K/M/G/T
/// is binary). INVALID_ARGUMENT names the text when it is not a size or overflows 64 bits.
Result<uint64_t> ParseBytes(std::string_view text);

/// "1.5 GiB", "512 KiB", "100 B".
std::string FormatBytes(uint64_t bytes);

}  // namespace kvpool
