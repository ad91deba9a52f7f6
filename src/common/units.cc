#include "common/units.h"

#include <cctype>
#include <charconv>
#include <cmath>
#include <cstdio>

namespace kvpool {

Result<uint64_t> ParseBytes(std::string_view text) {
  // Built with append: GCC 12 at -O3 misreports `"'" + std::string(...)` as an overlapping
  // memcpy (-Wrestrict), which broke Release builds.
  std::string quoted;
  quoted.reserve(text.size() + 2);
  quoted.append(1, '\'').append(text).append(1, '\'');
  size_t pos = 0;
  while (pos < text.size() && (std::isdigit(static_cast<unsigned char>(text[pos])) || text[pos] == '.')) {
    ++pos;
  }
  if (pos == 0) return InvalidArgumentError("not a byte size: " + quoted);
  double number = 0;
  const auto [ptr, ec] = std::from_chars(text.data(), text.data() + pos, number);
  if (ec != std::errc() || ptr != text.data() + pos) {
    return InvalidArgumentError("not a byte size: " + quoted);
  }
  std::string_view unit = text.substr(pos);
  while (!unit.empty() && unit.front() == ' ') unit.remove_prefix(1);
  std::string lower;
  for (char c : unit) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  double scale = 1;
  if (lower.empty() || lower == "b") scale = 1;
  else if (lower == "k" || lower == "kib") scale = 1024.0;
  else if (lower == "m" || lower == "mib") scale = 1024.0 * 1024;
  else if (lower == "g" || lower == "gib") scale = 1024.0 * 1024 * 1024;
  else if (lower == "t" || lower == "tib") scale = 1024.0 * 1024 * 1024 * 1024;
  else if (lower == "kb") scale = 1e3;
  else if (lower == "mb") scale = 1e6;
  else if (lower == "gb") scale = 1e9;
  else if (lower == "tb") scale = 1e12;
  else return InvalidArgumentError("unknown size unit in " + quoted + " (use B, KiB, MiB, GiB, TiB, KB, MB, GB, TB)");
  const double bytes = number * scale;
  if (!std::isfinite(bytes) || bytes >= 18446744073709551615.0) {
    return InvalidArgumentError("byte size out of range: " + quoted);
  }
  if (bytes != std::floor(bytes)) {
    return InvalidArgumentError("byte size is not a whole number of bytes: " + quoted);
  }
  return static_cast<uint64_t>(bytes);
}

std::string FormatBytes(uint64_t bytes) {
  static constexpr const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double value = static_cast<double>(bytes);
  int unit = 0;
  while (value >= 1024.0 && unit < 5) {
    value /= 1024.0;
    ++unit;
  }
  char buf[32];
  if (unit == 0) {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(bytes));
  } else {
    std::snprintf(buf, sizeof(buf), "%.4g %s", value, kUnits[unit]);
  }
  return buf;
}

}  // namespace kvpool
