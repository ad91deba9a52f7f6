#include "client/kvpoolctl/token_file.h"

#include <charconv>
#include <fstream>
#include <iostream>
#include <iterator>
#include <sstream>

namespace kvpool::ctl {
namespace {
// Splits on whitespace and commas.
std::vector<std::string> Words(const std::string& text) {
  std::vector<std::string> out;
  std::string cur;
  for (char c : text) {
    if (c == ',' || c == ' ' || c == '\n' || c == '\t' || c == '\r') {
      if (!cur.empty()) out.push_back(std::move(cur));
      cur.clear();
    } else {
      cur += c;
    }
  }
  if (!cur.empty()) out.push_back(std::move(cur));
  return out;
}
}  // namespace

Result<std::vector<uint32_t>> ReadTokenFile(const std::string& path) {
  std::string text;
  if (path == "-") {
    text.assign(std::istreambuf_iterator<char>(std::cin), std::istreambuf_iterator<char>());
  } else {
    std::ifstream in(path);
    if (!in) return NotFoundError("cannot open token file '" + path + "'");
    text.assign(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
  }
  std::vector<uint32_t> tokens;
  const std::vector<std::string> words = Words(text);
  tokens.reserve(words.size());
  for (size_t i = 0; i < words.size(); ++i) {
    const std::string& w = words[i];
    uint32_t value = 0;
    const auto [ptr, ec] = std::from_chars(w.data(), w.data() + w.size(), value);
    if (ec != std::errc() || ptr != w.data() + w.size()) {
      return InvalidArgumentError("token " + std::to_string(i) + " in '" + path + "' is '" + w +
                                  "', not an unsigned 32-bit integer");
    }
    tokens.push_back(value);
  }
  if (tokens.empty()) return InvalidArgumentError("token file '" + path + "' holds no token ids");
  return tokens;
}

Result<std::vector<BlockHash>> ParseHashList(const std::string& text) {
  std::vector<BlockHash> out;
  for (const std::string& w : Words(text)) {
    KVPOOL_ASSIGN_OR_RETURN(BlockHash h, BlockHash::FromHex(w));
    out.push_back(h);
  }
  if (out.empty()) return InvalidArgumentError("no block hashes given");
  return out;
}

}  // namespace kvpool::ctl
