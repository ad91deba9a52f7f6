// Aligned plain-text tables for the CLI, the examples and the benchmarks.
#pragma once

#include <ostream>
#include <string>
#include <vector>

namespace kvpool {

/// Collects rows and prints them with aligned columns:
///
///   NAME        BLOCKS  HIT RATE
///   llama3-8b     1024    87.5 %
///
/// Columns whose cells all look numeric are right-aligned. Not thread-safe.
class TextTable {
 public:
  explicit TextTable(std::vector<std::string> header);
  /// Adds a row; missing cells print empty, extra cells are dropped.
  void AddRow(std::vector<std::string> cells);
  /// Prints header, rule and rows.
  void Print(std::ostream& os) const;
  bool empty() const { return rows_.empty(); }

 private:
  std::vector<std::string> header_;
  std::vector<std::vector<std::string>> rows_;
};

/// Formats a double with `precision` digits after the point.
std::string FormatFixed(double value, int precision);

}  // namespace kvpool
