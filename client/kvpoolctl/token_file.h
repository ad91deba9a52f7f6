// Reading prompts for `kvpoolctl match`: token ids from a file, block hashes as hex.
#pragma once

#include <cstdint>
#include <string>
#include <vector>

#include "kvpool/block_hash.h"
#include "kvpool/status.h"

namespace kvpool::ctl {

/// Reads unsigned 32-bit token ids separated by whitespace or commas ("-" reads stdin).
/// INVALID_ARGUMENT names the first bad token and its position, or says the file is empty;
/// NOT_FOUND if the file is missing.
Result<std::vector<uint32_t>> ReadTokenFile(const std::string& path);
/// Parses hashes given as 32-hex-digit strings separated by commas or whitespace.
Result<std::vector<BlockHash>> ParseHashList(const std::string& text);

}  // namespace kvpool::ctl
