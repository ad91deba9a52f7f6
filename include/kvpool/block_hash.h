// The canonical 128-bit chained block hash (see docs/hashing.md for the exact definition and
// test vectors). Identical in every kvpool component and in clients of any language.
#pragma once

#include <array>
#include <compare>
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/status.h"

namespace kvpool {

/// A 128-bit block hash. `hi` and `lo` are the high and low 64 bits of the XXH3-128 value.
/// Its canonical byte form (Bytes()) is big-endian: hi first, then lo, as xxhash's
/// XXH128_canonical_t and Python's `xxhash.xxh3_128().digest()`.
struct BlockHash {
  uint64_t hi = 0;
  uint64_t lo = 0;

  friend bool operator==(const BlockHash&, const BlockHash&) = default;
  friend auto operator<=>(const BlockHash&, const BlockHash&) = default;

  /// The 16 canonical bytes (big-endian hi, then big-endian lo).
  std::array<uint8_t, 16> Bytes() const;
  /// Parses 16 canonical bytes at `bytes`.
  static BlockHash FromBytes(const uint8_t* bytes);
  /// 32 lowercase hex digits of the canonical bytes.
  std::string ToHex() const;
  /// Parses 32 hex digits; INVALID_ARGUMENT names the bad input otherwise.
  static Result<BlockHash> FromHex(std::string_view hex);
};

/// Hash functor for unordered containers. The value is already uniformly distributed, so the
/// low word is used as is.
struct BlockHashHasher {
  size_t operator()(const BlockHash& h) const noexcept { return static_cast<size_t>(h.lo ^ (h.hi >> 7)); }
};

/// Size in bytes of one hash on the wire (requests carry hashes as concatenated canonical bytes).
inline constexpr size_t kBlockHashBytes = 16;

/// Computes the chained hashes of a namespace's prompts.
///
///   h[-1] = XXH3-128(namespace_name || 0x00 || salt)
///   h[i]  = XXH3-128(canonical_bytes(h[i-1]) || tokens of block i as little-endian uint32)
///
/// Only full blocks are hashed: a prompt of n tokens yields n / block_tokens hashes.
/// Thread-safe (immutable after construction).
class BlockHasher {
 public:
  /// `block_tokens` must be > 0 (callers validate it; 0 is treated as 1).
  BlockHasher(std::string_view namespace_name, std::string_view salt, uint32_t block_tokens);

  /// h[-1], the hash that precedes the first block of every prompt of the namespace.
  const BlockHash& root() const { return root_; }
  uint32_t block_tokens() const { return block_tokens_; }

  /// The hash of one block given its predecessor's hash. `block_tokens` may be of any length
  /// (normally exactly block_tokens()).
  static BlockHash Next(const BlockHash& prev, std::span<const uint32_t> block_tokens);

  /// Hashes of every full block of `tokens`, in order.
  std::vector<BlockHash> HashPrompt(std::span<const uint32_t> tokens) const;
  /// Same, appending to `*out` (which is cleared first); reuse `out` to avoid allocations.
  void HashPrompt(std::span<const uint32_t> tokens, std::vector<BlockHash>* out) const;

 private:
  BlockHash root_;
  uint32_t block_tokens_;
};

/// h[-1] for a namespace: XXH3-128(namespace_name || 0x00 || salt).
BlockHash NamespaceRootHash(std::string_view namespace_name, std::string_view salt);

/// Checksum of a block's bytes, for verifying transfers while debugging: XXH3-64 with seed 0 of
/// [data, data + size_bytes). Equal to `xxhsum -H3` of the same bytes.
uint64_t BlockChecksum(const void* data, size_t size_bytes);

}  // namespace kvpool
