#include "kvpool/block_hash.h"

#include <algorithm>
#include <bit>
#include <cstring>

// The streaming state is only needed for blocks too large for the stack buffer; static linking
// mode lets it live on the stack instead of the heap (same header version as the library).
#define XXH_STATIC_LINKING_ONLY
#include <xxhash.h>

namespace kvpool {
namespace {

// Inputs up to this size (16 hash bytes + 1020 tokens) are hashed in one shot from a stack
// buffer; XXH3 is fastest that way. Larger blocks go through the streaming state.
constexpr size_t kOneShotBytes = 4096;
// Tokens converted per round when a big-endian host has to byte-swap before streaming.
constexpr size_t kSwapChunkTokens = 256;

BlockHash FromXxh(XXH128_hash_t h) { return BlockHash{h.high64, h.low64}; }

void StoreBigEndian64(uint64_t v, uint8_t* out) {
  for (int i = 7; i >= 0; --i) {
    out[i] = static_cast<uint8_t>(v);
    v >>= 8;
  }
}

uint64_t LoadBigEndian64(const uint8_t* in) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v = (v << 8) | in[i];
  return v;
}

// Writes `tokens` as little-endian uint32 to `out` (4 * tokens.size() bytes).
void StoreTokensLittleEndian(std::span<const uint32_t> tokens, uint8_t* out) {
  if constexpr (std::endian::native == std::endian::little) {
    if (!tokens.empty()) std::memcpy(out, tokens.data(), tokens.size_bytes());
  } else {
    for (uint32_t t : tokens) {
      out[0] = static_cast<uint8_t>(t);
      out[1] = static_cast<uint8_t>(t >> 8);
      out[2] = static_cast<uint8_t>(t >> 16);
      out[3] = static_cast<uint8_t>(t >> 24);
      out += 4;
    }
  }
}

int HexDigitValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// The input quoted for an error message; long inputs are cut so a hostile request cannot make
// the message arbitrarily large.
std::string QuoteForError(std::string_view input) {
  constexpr size_t kMaxShown = 64;
  std::string out = "\"";
  out.append(input.substr(0, kMaxShown));
  out += '"';
  if (input.size() > kMaxShown) out += "... (" + std::to_string(input.size()) + " chars)";
  return out;
}

}  // namespace

std::array<uint8_t, 16> BlockHash::Bytes() const {
  std::array<uint8_t, 16> out;
  StoreBigEndian64(hi, out.data());
  StoreBigEndian64(lo, out.data() + 8);
  return out;
}

BlockHash BlockHash::FromBytes(const uint8_t* bytes) {
  return BlockHash{LoadBigEndian64(bytes), LoadBigEndian64(bytes + 8)};
}

std::string BlockHash::ToHex() const {
  static constexpr char kDigits[] = "0123456789abcdef";
  const std::array<uint8_t, 16> bytes = Bytes();
  std::string out(2 * bytes.size(), '0');
  for (size_t i = 0; i < bytes.size(); ++i) {
    out[2 * i] = kDigits[bytes[i] >> 4];
    out[2 * i + 1] = kDigits[bytes[i] & 0xf];
  }
  return out;
}

Result<BlockHash> BlockHash::FromHex(std::string_view hex) {
  if (hex.size() != 2 * kBlockHashBytes) {
    return InvalidArgumentError("block hash " + QuoteForError(hex) + " has " +
                                std::to_string(hex.size()) + " characters; expected 32 hex digits");
  }
  std::array<uint8_t, kBlockHashBytes> bytes;
  for (size_t i = 0; i < bytes.size(); ++i) {
    const int high = HexDigitValue(hex[2 * i]);
    const int low = HexDigitValue(hex[2 * i + 1]);
    if (high < 0 || low < 0) {
      return InvalidArgumentError("block hash " + QuoteForError(hex) +
                                  " is not 32 hex digits (bad character at offset " +
                                  std::to_string(high < 0 ? 2 * i : 2 * i + 1) + ")");
    }
    bytes[i] = static_cast<uint8_t>((high << 4) | low);
  }
  return BlockHash::FromBytes(bytes.data());
}

BlockHash NamespaceRootHash(std::string_view namespace_name, std::string_view salt) {
  std::string input;
  input.reserve(namespace_name.size() + 1 + salt.size());
  input.append(namespace_name);
  input.push_back('\0');
  input.append(salt);
  return FromXxh(XXH3_128bits(input.data(), input.size()));
}

uint64_t BlockChecksum(const void* data, size_t size_bytes) {
  return XXH3_64bits(data, size_bytes);
}

BlockHasher::BlockHasher(std::string_view namespace_name, std::string_view salt,
                         uint32_t block_tokens)
    : root_(NamespaceRootHash(namespace_name, salt)),
      block_tokens_(block_tokens == 0 ? 1 : block_tokens) {}

BlockHash BlockHasher::Next(const BlockHash& prev, std::span<const uint32_t> block_tokens) {
  const std::array<uint8_t, kBlockHashBytes> prev_bytes = prev.Bytes();
  const size_t total_bytes = kBlockHashBytes + block_tokens.size_bytes();

  if (total_bytes <= kOneShotBytes) {
    uint8_t buffer[kOneShotBytes];
    std::memcpy(buffer, prev_bytes.data(), kBlockHashBytes);
    StoreTokensLittleEndian(block_tokens, buffer + kBlockHashBytes);
    return FromXxh(XXH3_128bits(buffer, total_bytes));
  }

  XXH3_state_t state;
  XXH3_128bits_reset(&state);
  XXH3_128bits_update(&state, prev_bytes.data(), kBlockHashBytes);
  if constexpr (std::endian::native == std::endian::little) {
    XXH3_128bits_update(&state, block_tokens.data(), block_tokens.size_bytes());
  } else {
    uint8_t chunk[4 * kSwapChunkTokens];
    for (size_t pos = 0; pos < block_tokens.size(); pos += kSwapChunkTokens) {
      const std::span<const uint32_t> part =
          block_tokens.subspan(pos, std::min(kSwapChunkTokens, block_tokens.size() - pos));
      StoreTokensLittleEndian(part, chunk);
      XXH3_128bits_update(&state, chunk, part.size_bytes());
    }
  }
  return FromXxh(XXH3_128bits_digest(&state));
}

std::vector<BlockHash> BlockHasher::HashPrompt(std::span<const uint32_t> tokens) const {
  std::vector<BlockHash> out;
  HashPrompt(tokens, &out);
  return out;
}

void BlockHasher::HashPrompt(std::span<const uint32_t> tokens,
                             std::vector<BlockHash>* out) const {
  out->clear();
  const size_t blocks = tokens.size() / block_tokens_;
  out->reserve(blocks);
  BlockHash prev = root_;
  for (size_t i = 0; i < blocks; ++i) {
    prev = Next(prev, tokens.subspan(i * block_tokens_, block_tokens_));
    out->push_back(prev);
  }
}

}  // namespace kvpool
