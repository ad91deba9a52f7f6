// Quoting values in error messages: `Quote("x")` is `'x'`.
#pragma once

#include <string>
#include <string_view>

namespace kvpool {

/// `s` in single quotes, for error messages that name a value.
inline std::string Quote(std::string_view s) {
  // Built with append: GCC 12 at -O3 misreports `"'" + std::string(s) + "'"` as an overlapping
  // memcpy (-Wrestrict), which breaks Release builds with -Werror.
  std::string out;
  out.reserve(s.size() + 2);
  out.append(1, '\'').append(s).append(1, '\'');
  return out;
}

}  // namespace kvpool
