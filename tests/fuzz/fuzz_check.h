// What every fuzz target shares: a check that aborts (so libFuzzer records the input as a crash)
// and names the broken expression.
#pragma once

#include <cstdio>
#include <cstdlib>

/// Aborts with "file:line: check failed: expr" when `cond` is false. Fuzz targets only: a failed
/// check is a bug that libFuzzer must save as a crashing input.
#define KVPOOL_FUZZ_CHECK(cond)                                                         \
  do {                                                                                  \
    if (!(cond)) {                                                                      \
      std::fprintf(stderr, "%s:%d: check failed: %s\n", __FILE__, __LINE__, #cond);     \
      std::abort();                                                                     \
    }                                                                                   \
  } while (0)
