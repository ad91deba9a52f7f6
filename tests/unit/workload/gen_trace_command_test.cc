#include "bench/gen_trace_command.h"

#include <unistd.h>

#include <CLI/CLI.hpp>
#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <string>
#include <vector>

#include "workload/trace.h"

namespace kvpool::bench {
namespace {

// Parses `args` (after the program name) into `opts` and `out`; returns CLI11's exit code.
int Parse(std::vector<std::string> args, workload::TraceGenOptions* opts, std::string* out) {
  CLI::App app("test");
  AddGenTraceOptions(&app, opts, out);
  std::reverse(args.begin(), args.end());  // CLI11 takes them last-first
  try {
    app.parse(args);
  } catch (const CLI::ParseError& e) {
    return e.get_exit_code();
  }
  return 0;
}

// Runs RunGenTrace with stdout and stderr captured.
int Run(const workload::TraceGenOptions& opts, const std::string& out, bool json,
        std::string* printed, std::string* errors = nullptr) {
  std::ostringstream captured, captured_errors;
  std::streambuf* old_out = std::cout.rdbuf(captured.rdbuf());
  std::streambuf* old_err = std::cerr.rdbuf(captured_errors.rdbuf());
  const int code = RunGenTrace(opts, out, json);
  std::cout.rdbuf(old_out);
  std::cerr.rdbuf(old_err);
  *printed = captured.str();
  if (errors != nullptr) *errors = captured_errors.str();
  return code;
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("kvpool_gen_trace_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

TEST_CASE("gen-trace options: flags set the generator's fields, defaults stay", "[workload]") {
  workload::TraceGenOptions opts;
  std::string out;
  REQUIRE(Parse({"--out", "t.jsonl", "--seed", "7", "--requests", "50", "--arrival", "bursty",
                 "--rate", "2.5", "--document-fraction", "0.5", "--turns-max", "4"},
                &opts, &out) == 0);
  CHECK(out == "t.jsonl");
  CHECK(opts.seed == 7);
  CHECK(opts.requests == 50);
  CHECK(opts.arrival == workload::ArrivalProcess::kBursty);
  CHECK(opts.requests_per_s == 2.5);
  CHECK(opts.document_fraction == 0.5);
  CHECK(opts.turns_max == 4);
  CHECK(opts.tenants == workload::TraceGenOptions{}.tenants);
}

TEST_CASE("gen-trace options: --out is required and --arrival takes known names only",
          "[workload]") {
  workload::TraceGenOptions opts;
  std::string out;
  CHECK(Parse({"--requests", "5"}, &opts, &out) != 0);
  CHECK(Parse({"--out", "x", "--arrival", "gamma"}, &opts, &out) != 0);
}

TEST_CASE("RunGenTrace: writes the generator's trace and summarises it as JSON",
          "[workload]") {
  workload::TraceGenOptions opts;
  opts.requests = 200;
  const std::string path = TempPath("trace.jsonl");
  std::string printed;
  REQUIRE(Run(opts, path, /*json=*/true, &printed) == 0);
  const auto back = workload::ReadTrace(path);
  std::filesystem::remove(path);
  REQUIRE(back.ok());
  CHECK(*back == workload::GenerateTrace(opts));

  const auto j = nlohmann::json::parse(printed);
  CHECK(j["requests"] == 200);
  CHECK(j["reusable_fraction"].get<double>() > 0.3);
  CHECK(j["reusable_fraction"].get<double>() < 1.0);
  CHECK(j["lru_hit_rate_10pct"].get<double>() <= j["belady_hit_rate_10pct"].get<double>());
  CHECK(j["duration_s"].get<double>() > 0);
}

TEST_CASE("RunGenTrace: a path it cannot write is exit code 1 with the reason", "[workload]") {
  workload::TraceGenOptions opts;
  opts.requests = 10;
  const std::string path = TempPath("missing_dir") + "/trace.jsonl";
  std::string printed, errors;
  CHECK(Run(opts, path, false, &printed, &errors) == 1);
  CHECK_THAT(errors, Catch::Contains("NOT_FOUND") && Catch::Contains(path));
}

TEST_CASE("RunGenTrace: prints a readable summary, and exit code 2 for bad options",
          "[workload]") {
  workload::TraceGenOptions opts;
  opts.requests = 50;
  const std::string path = TempPath("table.jsonl");
  std::string printed;
  REQUIRE(Run(opts, path, /*json=*/false, &printed) == 0);
  std::filesystem::remove(path);
  CHECK_THAT(printed, Catch::Contains("reusable fraction (infinite cache)"));
  CHECK_THAT(printed, Catch::Contains("requests"));

  opts.requests = 0;
  std::string errors;
  CHECK(Run(opts, path, false, &printed, &errors) == 2);
  CHECK(errors == "kvpool-bench gen-trace: INVALID_ARGUMENT: requests must be positive (0)\n");
  CHECK(printed.empty());
  CHECK_FALSE(std::filesystem::exists(path));
}

}  // namespace
}  // namespace kvpool::bench
