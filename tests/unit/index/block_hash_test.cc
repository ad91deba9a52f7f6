#include "kvpool/block_hash.h"

#include <catch2/catch.hpp>

#include <cstdint>
#include <numeric>
#include <string>
#include <vector>

namespace kvpool {
namespace {

// Expected values below were computed with independent implementations (the `xxhsum -H2` CLI
// and Python's `xxhash` module, which agreed) over byte strings built by hand, never with this
// code. docs/hashing.md publishes the same vectors.

std::vector<uint32_t> Iota(size_t n, uint32_t first = 0) {
  std::vector<uint32_t> v(n);
  std::iota(v.begin(), v.end(), first);
  return v;
}

// Tokens i * 2654435761 mod 2^32: every byte position of the little-endian encoding varies.
std::vector<uint32_t> SpreadTokens(size_t n, uint32_t multiplier = 2654435761u) {
  std::vector<uint32_t> v(n);
  for (size_t i = 0; i < n; ++i) v[i] = static_cast<uint32_t>(i) * multiplier;
  return v;
}

std::vector<std::string> ToHex(const std::vector<BlockHash>& hashes) {
  std::vector<std::string> out;
  for (const BlockHash& h : hashes) out.push_back(h.ToHex());
  return out;
}

TEST_CASE("BlockHash: namespace root hashes match the published vectors", "[index]") {
  CHECK(NamespaceRootHash("llama3-8b", "").ToHex() == "2e09a9159db71cd805a030c40d28edf4");
  CHECK(NamespaceRootHash("llama3-8b", "tenant-a").ToHex() ==
        "87bc5b60328888a99974b79161feb7ae");
  CHECK(BlockHasher("llama3-8b", "tenant-a", 16).root() ==
        NamespaceRootHash("llama3-8b", "tenant-a"));
}

TEST_CASE("BlockHash: 4-token block chain matches the published vectors", "[index]") {
  const BlockHasher hasher("llama3-8b", "", 4);
  const std::vector<uint32_t> tokens = Iota(12);
  CHECK(ToHex(hasher.HashPrompt(tokens)) ==
        std::vector<std::string>{"edc5806e83bcbf7974dedfbc41d577fc",
                                 "0f16b7e2b9f945568ac27075d6e90b3f",
                                 "7588203ade3a6e3868a7d1d739445cce"});
}

TEST_CASE("BlockHash: 16-token block chain with a salt matches the published vectors", "[index]") {
  const BlockHasher hasher("llama3-8b", "tenant-a", 16);
  const std::vector<uint32_t> tokens = SpreadTokens(32);
  CHECK(ToHex(hasher.HashPrompt(tokens)) ==
        std::vector<std::string>{"c5c47e2d9f531892c1eb3f7f1cd96130",
                                 "8ddcd9596799b9879eff53afee40fe2e"});
}

TEST_CASE("BlockHash: large blocks on the one-shot and streaming paths match the vectors",
          "[index]") {
  const BlockHash root = NamespaceRootHash("llama3-8b", "");
  // 16 + 4 * 1020 = 4096 bytes: the largest one-shot input.
  CHECK(BlockHasher::Next(root, Iota(1020)).ToHex() == "c1983b80d7b4dc9de55ea3eddd5e8e4f");
  // 16 + 4 * 1024 bytes: just past it, streamed.
  CHECK(BlockHasher::Next(root, Iota(1024)).ToHex() == "2d0d1c290971781bd3274ac6f62700fa");
  CHECK(BlockHasher::Next(root, SpreadTokens(4096, 40503u)).ToHex() ==
        "561a44bfcf0ec32c5c34e0e1a1052291");
}

TEST_CASE("BlockHash: equal tokens under different salts never share a hash", "[index]") {
  const std::vector<uint32_t> tokens = Iota(64);
  const std::vector<BlockHash> plain = BlockHasher("m", "", 16).HashPrompt(tokens);
  const std::vector<BlockHash> salted = BlockHasher("m", "tenant-a", 16).HashPrompt(tokens);
  const std::vector<BlockHash> other = BlockHasher("m", "tenant-b", 16).HashPrompt(tokens);
  REQUIRE(plain.size() == 4);
  REQUIRE(salted.size() == 4);
  REQUIRE(other.size() == 4);
  for (size_t i = 0; i < plain.size(); ++i) {
    for (size_t j = 0; j < plain.size(); ++j) {
      CHECK(plain[i] != salted[j]);
      CHECK(salted[i] != other[j]);
      CHECK(plain[i] != other[j]);
    }
  }
}

TEST_CASE("BlockHash: namespace name and salt are separated by a zero byte", "[index]") {
  // Without the separator ("ab", "c") and ("a", "bc") would hash the same bytes.
  CHECK(NamespaceRootHash("ab", "c") != NamespaceRootHash("a", "bc"));
  CHECK(NamespaceRootHash("m", "") != NamespaceRootHash("", "m"));
}

TEST_CASE("BlockHash: a partial trailing block is not hashed", "[index]") {
  const BlockHasher hasher("llama3-8b", "", 4);
  const std::vector<BlockHash> full = hasher.HashPrompt(Iota(12));
  CHECK(hasher.HashPrompt(Iota(15)) == full);
  CHECK(hasher.HashPrompt(Iota(3)).empty());
  CHECK(hasher.HashPrompt(std::vector<uint32_t>{}).empty());
}

TEST_CASE("BlockHash: each hash names its whole prefix", "[index]") {
  const BlockHasher hasher("llama3-8b", "", 4);
  std::vector<uint32_t> a = Iota(12);
  std::vector<uint32_t> b = a;
  b[1] = 99;  // Differs in block 0 only; every later block must differ too.
  const std::vector<BlockHash> ha = hasher.HashPrompt(a);
  const std::vector<BlockHash> hb = hasher.HashPrompt(b);
  for (size_t i = 0; i < ha.size(); ++i) CHECK(ha[i] != hb[i]);
  // Next() reproduces the chain one block at a time.
  BlockHash prev = hasher.root();
  for (size_t i = 0; i < ha.size(); ++i) {
    prev = BlockHasher::Next(prev, std::span<const uint32_t>(a).subspan(4 * i, 4));
    CHECK(prev == ha[i]);
  }
}

TEST_CASE("BlockHash: HashPrompt into a reused vector clears it first", "[index]") {
  const BlockHasher hasher("llama3-8b", "", 4);
  std::vector<BlockHash> out(7, BlockHash{1, 2});
  hasher.HashPrompt(Iota(12), &out);
  CHECK(out == hasher.HashPrompt(Iota(12)));
  hasher.HashPrompt(Iota(4), &out);
  REQUIRE(out.size() == 1);
  CHECK(out[0].ToHex() == "edc5806e83bcbf7974dedfbc41d577fc");
}

TEST_CASE("BlockHash: zero block_tokens is treated as one", "[index]") {
  const BlockHasher hasher("m", "", 0);
  CHECK(hasher.block_tokens() == 1);
  CHECK(hasher.HashPrompt(Iota(3)).size() == 3);
}

TEST_CASE("BlockHash: canonical bytes are big-endian hi then lo", "[index]") {
  const BlockHash h{0x0102030405060708ull, 0x090a0b0c0d0e0f10ull};
  const std::array<uint8_t, 16> bytes = h.Bytes();
  for (size_t i = 0; i < bytes.size(); ++i) CHECK(bytes[i] == i + 1);
  CHECK(BlockHash::FromBytes(bytes.data()) == h);
  CHECK(h.ToHex() == "0102030405060708090a0b0c0d0e0f10");
}

TEST_CASE("BlockHash: hex round trips and accepts either case", "[index]") {
  const BlockHash h = NamespaceRootHash("llama3-8b", "tenant-a");
  Result<BlockHash> parsed = BlockHash::FromHex(h.ToHex());
  REQUIRE(parsed.ok());
  CHECK(*parsed == h);

  Result<BlockHash> upper = BlockHash::FromHex("87BC5B60328888A99974B79161FEB7AE");
  REQUIRE(upper.ok());
  CHECK(*upper == h);
}

TEST_CASE("BlockHash: malformed hex is INVALID_ARGUMENT naming the input", "[index]") {
  const std::vector<std::string> bad = {
      "",
      "87bc5b60328888a99974b79161feb7a",    // 31 digits
      "87bc5b60328888a99974b79161feb7ae0",  // 33 digits
      "87bc5b60328888a99974b79161feb7ag",   // not a hex digit
      "0x87bc5b60328888a99974b79161feb7",   // prefix
      " 87bc5b60328888a99974b79161feb7a",   // whitespace
  };
  for (const std::string& input : bad) {
    INFO("input: \"" << input << "\"");
    Result<BlockHash> parsed = BlockHash::FromHex(input);
    REQUIRE_FALSE(parsed.ok());
    CHECK(parsed.status().code() == StatusCode::kInvalidArgument);
    CHECK(parsed.status().message().find("\"" + input + "\"") != std::string::npos);
  }
}

TEST_CASE("BlockHash: error message for very long hex input is bounded", "[index]") {
  const std::string input(100000, 'a');
  Result<BlockHash> parsed = BlockHash::FromHex(input);
  REQUIRE_FALSE(parsed.ok());
  CHECK(parsed.status().message().size() < 256);
  CHECK(parsed.status().message().find("100000") != std::string::npos);
}

}  // namespace
}  // namespace kvpool
