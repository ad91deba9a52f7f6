// What a process costs the machine, read from /proc: resident memory and open file
// descriptors, and the least-squares slope of a series of such samples (a leak shows as a
// positive slope once warm-up is over).
#pragma once

#include <cstdint>
#include <span>

#include "kvpool/status.h"

namespace kvpool::bench {

/// One reading of a process.
struct ProcSample {
  /// VmRSS, in bytes: the sum of the three below.
  uint64_t rss_bytes = 0;
  /// RssAnon (heap, stacks, private mappings), RssFile (mapped files) and RssShmem (shared
  /// memory: a pool allocated as shared memory, transports' segments), in bytes. A leak on the
  /// heap shows in the first; memory touched once (a pool, a segment) in the others.
  uint64_t rss_anon_bytes = 0;
  uint64_t rss_file_bytes = 0;
  uint64_t rss_shmem_bytes = 0;
  /// Entries of /proc/<pid>/fd.
  uint64_t open_fds = 0;
};

/// Reads /proc/<pid>/status and /proc/<pid>/fd. NOT_FOUND when the process does not exist
/// (any more); PERMISSION_DENIED when its fd table cannot be listed. Thread-safe.
Result<ProcSample> SampleProcess(int pid);

/// Slope of the least-squares line through (x[i], y[i]), in y units per x unit; 0 for fewer than
/// two points or when every x is equal. `x` and `y` must have the same length. Thread-safe.
double LeastSquaresSlope(std::span<const double> x, std::span<const double> y);

}  // namespace kvpool::bench
