#include "common/table.h"

#include <algorithm>
#include <cctype>
#include <cstdio>

namespace kvpool {
namespace {
bool LooksNumeric(const std::string& cell) {
  if (cell.empty() || cell == "-") return true;  // "-" marks a missing number
  const char c = cell.front();
  return std::isdigit(static_cast<unsigned char>(c)) || ((c == '-' || c == '+') && cell.size() > 1);
}
}  // namespace

TextTable::TextTable(std::vector<std::string> header) : header_(std::move(header)) {}

void TextTable::AddRow(std::vector<std::string> cells) {
  cells.resize(header_.size());
  rows_.push_back(std::move(cells));
}

void TextTable::Print(std::ostream& os) const {
  const size_t n = header_.size();
  std::vector<size_t> width(n);
  std::vector<bool> right(n, true);
  for (size_t c = 0; c < n; ++c) {
    width[c] = header_[c].size();
    for (const auto& row : rows_) {
      width[c] = std::max(width[c], row[c].size());
      if (!LooksNumeric(row[c])) right[c] = false;
    }
  }
  auto print_row = [&](const std::vector<std::string>& row) {
    std::string line;
    for (size_t c = 0; c < n; ++c) {
      const std::string pad(width[c] - row[c].size(), ' ');
      line += right[c] ? pad + row[c] : row[c] + (c + 1 < n ? pad : "");
      if (c + 1 < n) line += "  ";
    }
    while (!line.empty() && line.back() == ' ') line.pop_back();
    os << line << '\n';
  };
  print_row(header_);
  size_t total = 0;
  for (size_t c = 0; c < n; ++c) total += width[c] + (c + 1 < n ? 2 : 0);
  os << std::string(total, '-') << '\n';
  for (const auto& row : rows_) print_row(row);
}

std::string FormatFixed(double value, int precision) {
  char buf[64];
  std::snprintf(buf, sizeof(buf), "%.*f", precision, value);
  return buf;
}

}  // namespace kvpool
