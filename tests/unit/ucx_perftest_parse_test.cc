// ParsePerftestOutput against output captured from ucx_perftest 1.13 (Debian ucx-utils).
#include <catch2/catch.hpp>

#include "bench/ucx_perftest.h"

namespace kvpool::bench {
namespace {

// ucx_perftest 127.0.0.1 -t ucp_get -s 16384 -n 20000 -v (UCX_TLS=tcp), shortened.
constexpr const char* kCsvWithProgress =
    "iterations,50.0_percentile_lat,avg_lat,overall_lat,avg_bw,overall_bw,avg_mr,overall_mr\n"
    "[thread 0]3981,29.602,251.360,251.360,62.16,62.16,3978,3978\n"
    "[thread 0]19470,1144.233,1147.317,975.589,13.62,16.02,872,1025\n"
    "20000,1142.919,1152.321,980.273,13.56,15.94,868,1020\n";

// ucx_perftest 127.0.0.1 -t ucp_put_bw -s 1048576 -n 2000 -f (UCX_TLS=shm): plain table.
constexpr const char* kPlainFinalOnly =
    "+--------------+--------------+------------------------------+---------------------+----"
    "-------------------+\n"
    "|              |              |       overhead (usec)        |   bandwidth (MB/s)  |  mes"
    "sage rate (msg/s) |\n"
    "|     Test     | # iterations | 50.0%ile | average | overall |  average |  overall |  ave"
    "rage  |  overall  |\n"
    "                        2000     19.759    20.967    20.967    47693.98   47693.98       "
    "47694       47694\n";

// ucx_perftest 127.0.0.1 -t ucp_put_bw -s 1048576 -n 2000 (UCX_TLS=tcp): progress + "Final:".
constexpr const char* kPlainWithFinal =
    "[thread 0]              1006      0.110   995.036   995.036     1004.99    1004.99      "
    "  1005        1005\n"
    "Final:                  2000      0.120 56063.313  1532.818       17.84     652.39       "
    "   18         652\n";

TEST_CASE("ParsePerftestOutput: CSV output gives the final line, not a progress line",
          "[bench]") {
  auto r = ParsePerftestOutput(kCsvWithProgress);
  REQUIRE(r.ok());
  CHECK(r->final);
  CHECK(r->iterations == 20000);
  CHECK(r->typical_latency_us == Approx(1142.919));
  CHECK(r->average_latency_us == Approx(1152.321));
  CHECK(r->overall_latency_us == Approx(980.273));
  CHECK(r->average_bandwidth_mib_per_s == Approx(13.56));
  CHECK(r->overall_bandwidth_mib_per_s == Approx(15.94));
  CHECK(r->average_message_rate == Approx(868));
  CHECK(r->overall_message_rate == Approx(1020));
}

TEST_CASE("ParsePerftestOutput: ucx_perftest's MB/s is MiB/s (message rate x size)",
          "[bench]") {
  auto r = ParsePerftestOutput(kPlainFinalOnly);
  REQUIRE(r.ok());
  CHECK(r->final);
  CHECK(r->iterations == 2000);
  CHECK(r->typical_latency_us == Approx(19.759));
  // 47694 messages/s of 1 MiB each are 47694 MiB/s: the column divides by 2^20, not 1e6.
  CHECK(r->overall_bandwidth_mib_per_s == Approx(r->overall_message_rate).epsilon(1e-4));
  CHECK(r->overall_bandwidth_bytes_per_s() == Approx(47693.98 * 1048576.0));
}

TEST_CASE("ParsePerftestOutput: the plain table's 'Final:' line wins over progress lines",
          "[bench]") {
  auto r = ParsePerftestOutput(kPlainWithFinal);
  REQUIRE(r.ok());
  CHECK(r->final);
  CHECK(r->iterations == 2000);
  CHECK(r->overall_bandwidth_mib_per_s == Approx(652.39));
}

TEST_CASE("ParsePerftestOutput: a stopped run yields its last progress line, marked not final",
          "[bench]") {
  auto r = ParsePerftestOutput(
      "iterations,50.0_percentile_lat,avg_lat,overall_lat,avg_bw,overall_bw,avg_mr,overall_mr\n"
      "[thread 0]3981,29.602,251.360,251.360,62.16,62.16,3978,3978\n"
      "[thread 0]4813,1139.119,1201.546,415.614,13.00,37.59,832,2406\n");
  REQUIRE(r.ok());
  CHECK_FALSE(r->final);
  CHECK(r->iterations == 4813);
  CHECK(r->overall_bandwidth_mib_per_s == Approx(37.59));
}

TEST_CASE("ParsePerftestOutput: output without a result line is NOT_FOUND", "[bench]") {
  CHECK(ParsePerftestOutput("").status().code() == StatusCode::kNotFound);
  CHECK(ParsePerftestOutput("Waiting for connection...\n"
                            "[1700000000.1] ucp_context.c:1 UCX ERROR no usable transports\n")
            .status()
            .code() == StatusCode::kNotFound);
  // Seven numbers, or a non-number among eight, is not a result line.
  CHECK(ParsePerftestOutput("1,2,3,4,5,6,7\n").status().code() == StatusCode::kNotFound);
  CHECK(ParsePerftestOutput("1,2,3,x,5,6,7,8\n").status().code() == StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvpool::bench
