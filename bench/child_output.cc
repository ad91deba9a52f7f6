#include "bench/child_output.h"

#include <fstream>
#include <sstream>

namespace kvpool::bench {

std::string_view Trim(std::string_view s) {
  const auto first = s.find_first_not_of(" \t\r");
  if (first == std::string_view::npos) return {};
  const auto last = s.find_last_not_of(" \t\r");
  return s.substr(first, last - first + 1);
}

std::string ReadFile(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string LastLine(std::string_view text) {
  text = Trim(text);
  while (!text.empty() && text.back() == '\n') text.remove_suffix(1);
  const auto nl = text.rfind('\n');
  return std::string(Trim(nl == std::string_view::npos ? text : text.substr(nl + 1)));
}

std::string JoinCommand(const std::vector<std::string>& argv) {
  size_t first = 0;
  if (!argv.empty() && argv[0] == "/usr/bin/env") first = 1;
  std::string out;
  for (size_t i = first; i < argv.size(); ++i) {
    if (!out.empty()) out += ' ';
    out += argv[i];
  }
  return out;
}

}  // namespace kvpool::bench
