#include "bench/soak/proc_sampler.h"

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <string_view>

namespace kvpool::bench {

Result<ProcSample> SampleProcess(int pid) {
  const std::string dir = "/proc/" + std::to_string(pid);
  std::ifstream status(dir + "/status");
  if (!status) return NotFoundError("no process " + std::to_string(pid));
  ProcSample sample;
  std::string line;
  const auto read_kib = [&line](const char* key, uint64_t* bytes) {
    const std::string_view k(key);
    if (line.compare(0, k.size(), k) != 0) return;
    std::istringstream fields(line.substr(k.size()));
    uint64_t kib = 0;
    fields >> kib;
    *bytes = kib * 1024;
  };
  while (std::getline(status, line)) {
    read_kib("VmRSS:", &sample.rss_bytes);
    read_kib("RssAnon:", &sample.rss_anon_bytes);
    read_kib("RssFile:", &sample.rss_file_bytes);
    read_kib("RssShmem:", &sample.rss_shmem_bytes);
  }
  std::error_code ec;
  std::filesystem::directory_iterator it(dir + "/fd", ec);
  if (ec) {
    return PermissionDeniedError("cannot list " + dir + "/fd: " + ec.message());
  }
  for (; it != std::filesystem::directory_iterator(); it.increment(ec)) {
    if (ec) break;
    ++sample.open_fds;
  }
  return sample;
}

double LeastSquaresSlope(std::span<const double> x, std::span<const double> y) {
  const size_t n = std::min(x.size(), y.size());
  if (n < 2) return 0;
  double mean_x = 0, mean_y = 0;
  for (size_t i = 0; i < n; ++i) {
    mean_x += x[i];
    mean_y += y[i];
  }
  mean_x /= static_cast<double>(n);
  mean_y /= static_cast<double>(n);
  double sxy = 0, sxx = 0;
  for (size_t i = 0; i < n; ++i) {
    sxy += (x[i] - mean_x) * (y[i] - mean_y);
    sxx += (x[i] - mean_x) * (x[i] - mean_x);
  }
  return sxx == 0 ? 0 : sxy / sxx;
}

}  // namespace kvpool::bench
