#include "workload/trace.h"

#include <unistd.h>

#include <catch2/catch.hpp>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

namespace kvpool::workload {
namespace {

Result<std::vector<TraceRequest>> Parse(const std::string& text) {
  std::istringstream in(text);
  return ParseTrace(in, "t.jsonl");
}

std::string TempPath(const std::string& name) {
  return (std::filesystem::temp_directory_path() /
          ("kvpool_trace_test_" + std::to_string(::getpid()) + "_" + name))
      .string();
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::ostringstream text;
  text << in.rdbuf();
  return text.str();
}

TraceRequest Request(uint64_t ts, uint32_t input, uint32_t output, std::vector<uint64_t> ids) {
  TraceRequest r;
  r.timestamp_ms = ts;
  r.input_length = input;
  r.output_length = output;
  r.hash_ids = std::move(ids);
  return r;
}

TEST_CASE("ParseTrace: reads Mooncake lines, any field order, other fields ignored",
          "[workload]") {
  const auto trace = Parse(
      "{\"timestamp\": 0, \"input_length\": 1030, \"output_length\": 6, \"hash_ids\": [0, 1, "
      "2]}\n"
      "{\"hash_ids\": [0, 3], \"output_length\": 0, \"session\": \"x\", \"input_length\": 600, "
      "\"timestamp\": 40}\r\n"
      "{\"timestamp\": 40, \"input_length\": 512, \"output_length\": 9, \"hash_ids\": [7]}");
  REQUIRE(trace.ok());
  REQUIRE(trace->size() == 3);
  CHECK((*trace)[0] == Request(0, 1030, 6, {0, 1, 2}));
  CHECK((*trace)[1] == Request(40, 600, 0, {0, 3}));
  CHECK((*trace)[2] == Request(40, 512, 9, {7}));
}

TEST_CASE("ParseTrace: empty lines at the end are allowed, empty input gives no requests",
          "[workload]") {
  const auto trace = Parse(
      "{\"timestamp\": 5, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [4]}\n\n  \n");
  REQUIRE(trace.ok());
  CHECK(trace->size() == 1);
  const auto empty = Parse("");
  REQUIRE(empty.ok());
  CHECK(empty->empty());
}

TEST_CASE("ParseTrace: every malformed line fails with INVALID_ARGUMENT naming its line",
          "[workload]") {
  const std::string good =
      "{\"timestamp\": 10, \"input_length\": 1000, \"output_length\": 5, \"hash_ids\": [1, "
      "2]}\n";
  struct Case {
    std::string bad_line;  // appended after `good`, so the error is on line 2
    std::string expected;  // a fragment of the message after "t.jsonl:2: "
  };
  const std::vector<Case> cases = {
      {"{\"timestamp\": 10, \"input_length\": 1000", "malformed JSON"},
      {"not json at all", "malformed JSON"},
      {"[1, 2, 3]", "expected a JSON object ([1,2,3])"},
      {"{\"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1]}",
       "missing field 'timestamp'"},
      {"{\"timestamp\": 10, \"output_length\": 1, \"hash_ids\": [1]}",
       "missing field 'input_length'"},
      {"{\"timestamp\": 10, \"input_length\": 1, \"hash_ids\": [1]}",
       "missing field 'output_length'"},
      {"{\"timestamp\": 10, \"input_length\": 1, \"output_length\": 1}",
       "missing field 'hash_ids'"},
      {"{\"timestamp\": 10, \"input_length\": \"512\", \"output_length\": 1, \"hash_ids\": [1]}",
       "input_length must be a non-negative integer (\"512\")"},
      {"{\"timestamp\": 10.5, \"input_length\": 512, \"output_length\": 1, \"hash_ids\": [1]}",
       "timestamp must be a non-negative integer (10.5)"},
      {"{\"timestamp\": 10, \"input_length\": 512, \"output_length\": -3, \"hash_ids\": [1]}",
       "output_length is negative (-3)"},
      {"{\"timestamp\": 10, \"input_length\": 4294967296, \"output_length\": 1, \"hash_ids\": "
       "[1]}",
       "input_length is out of range, at most 4294967295 (4294967296)"},
      {"{\"timestamp\": 10, \"input_length\": 0, \"output_length\": 1, \"hash_ids\": []}",
       "input_length must be positive (0)"},
      {"{\"timestamp\": 10, \"input_length\": 512, \"output_length\": 1, \"hash_ids\": 1}",
       "hash_ids must be an array of non-negative integers (1)"},
      {"{\"timestamp\": 10, \"input_length\": 1024, \"output_length\": 1, \"hash_ids\": [1, "
       "-2]}",
       "hash_ids[1] is negative (-2)"},
      {"{\"timestamp\": 10, \"input_length\": 1024, \"output_length\": 1, \"hash_ids\": [1, "
       "\"a\"]}",
       "hash_ids[1] must be a non-negative integer (\"a\")"},
      {"{\"timestamp\": 10, \"input_length\": 1025, \"output_length\": 1, \"hash_ids\": [1, 2]}",
       "hash_ids has 2 ids, but input_length 1025 needs ceil(1025 / 512) = 3"},
      {"{\"timestamp\": 10, \"input_length\": 512, \"output_length\": 1, \"hash_ids\": [1, 2]}",
       "hash_ids has 2 ids, but input_length 512 needs ceil(512 / 512) = 1"},
      {"{\"timestamp\": 9, \"input_length\": 512, \"output_length\": 1, \"hash_ids\": [1]}",
       "timestamp goes backwards (9 after 10)"},
  };
  for (const Case& c : cases) {
    INFO(c.bad_line);
    const auto trace = Parse(good + c.bad_line + "\n" + good);
    REQUIRE_FALSE(trace.ok());
    CHECK(trace.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(trace.status().message(), Catch::StartsWith("t.jsonl:2: "));
    CHECK_THAT(trace.status().message(), Catch::Contains(c.expected));
  }
}

TEST_CASE("ParseTrace: an empty line before more requests names the empty line",
          "[workload]") {
  const std::string line =
      "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1]}\n";
  const auto trace = Parse(line + line + "\n" + line);
  REQUIRE_FALSE(trace.ok());
  CHECK(trace.status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(trace.status().message(),
             Catch::StartsWith("t.jsonl:3: empty line before the end of the trace (line 4"));
}

TEST_CASE("ReadTrace: a missing file is NOT_FOUND naming the path", "[workload]") {
  const std::string path = TempPath("does_not_exist.jsonl");
  const auto trace = ReadTrace(path);
  REQUIRE_FALSE(trace.ok());
  CHECK(trace.status().code() == StatusCode::kNotFound);
  CHECK_THAT(trace.status().message(), Catch::Contains(path));
}

TEST_CASE("ReadTrace: errors name the file and the line", "[workload]") {
  const std::string path = TempPath("bad.jsonl");
  {
    std::ofstream out(path);
    out << "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1, \"hash_ids\": [1]}\n"
        << "{\"timestamp\": 0, \"input_length\": 1, \"output_length\": 1}\n";
  }
  const auto trace = ReadTrace(path);
  std::filesystem::remove(path);
  REQUIRE_FALSE(trace.ok());
  CHECK(trace.status().message() == path + ":2: missing field 'hash_ids'");
}

TEST_CASE("WriteTrace: writes the Mooncake layout and ReadTrace reads it back equal",
          "[workload]") {
  const std::vector<TraceRequest> requests = {Request(0, 512, 6, {0}),
                                              Request(277, 1025, 92, {0, 5, 6}),
                                              Request(277, 3, 0, {7})};
  const std::string path = TempPath("roundtrip.jsonl");
  REQUIRE(WriteTrace(requests, path).ok());
  CHECK(ReadAll(path) ==
        "{\"timestamp\": 0, \"input_length\": 512, \"output_length\": 6, \"hash_ids\": [0]}\n"
        "{\"timestamp\": 277, \"input_length\": 1025, \"output_length\": 92, \"hash_ids\": [0, "
        "5, 6]}\n"
        "{\"timestamp\": 277, \"input_length\": 3, \"output_length\": 0, \"hash_ids\": [7]}\n");
  const auto back = ReadTrace(path);
  std::filesystem::remove(path);
  REQUIRE(back.ok());
  CHECK(*back == requests);
  CHECK_FALSE(std::filesystem::exists(path + ".tmp"));
}

TEST_CASE("WriteTrace: refuses an invalid trace and writes nothing", "[workload]") {
  const std::vector<TraceRequest> requests = {Request(10, 512, 1, {1}),
                                              Request(5, 512, 1, {2})};
  const std::string path = TempPath("invalid.jsonl");
  const Status status = WriteTrace(requests, path);
  CHECK(status.code() == StatusCode::kInvalidArgument);
  CHECK(status.message() == "requests[1]: timestamp goes backwards (5 after 10)");
  CHECK_FALSE(std::filesystem::exists(path));

  std::ostringstream out;
  CHECK(WriteTrace(std::vector<TraceRequest>{Request(0, 513, 1, {1})}, out).code() ==
        StatusCode::kInvalidArgument);
  CHECK(out.str().empty());
}

TEST_CASE("WriteTrace: an unwritable path is an error naming it", "[workload]") {
  const std::string path = TempPath("no_such_dir") + "/trace.jsonl";
  const Status status = WriteTrace(std::vector<TraceRequest>{Request(0, 1, 1, {1})}, path);
  CHECK(status.code() == StatusCode::kNotFound);
  CHECK_THAT(status.message(), Catch::Contains(path));
}

TEST_CASE("ExpandTokens: input_length deterministic ids in the pseudo vocabulary",
          "[workload]") {
  const TraceRequest r = Request(0, 1300, 1, {42, 43, 44});
  const std::vector<uint32_t> tokens = ExpandTokens(r);
  REQUIRE(tokens.size() == 1300);
  CHECK(tokens == ExpandTokens(r));
  for (uint32_t t : tokens) REQUIRE(t < kPseudoTokenVocab);
  // The last block is the first 276 tokens of id 44's block.
  const std::vector<uint32_t> last = ExpandBlockTokens(44, 512);
  CHECK(std::equal(tokens.begin() + 1024, tokens.end(), last.begin()));
  // Not constant: a block of 512 draws from 128,000 ids has many distinct values.
  std::vector<uint32_t> sorted(last);
  std::sort(sorted.begin(), sorted.end());
  CHECK(std::unique(sorted.begin(), sorted.end()) - sorted.begin() > 400);
}

TEST_CASE("ExpandTokens: equal hash-id prefixes give equal token prefixes at block sizes 16, "
          "64 and 512",
          "[workload]") {
  // Three shared blocks (1,536 tokens), then each request goes its own way; the second one's
  // last block is partial.
  const TraceRequest a = Request(0, 5 * 512, 1, {100, 101, 102, 200, 201});
  const TraceRequest b = Request(0, 4 * 512 - 100, 1, {100, 101, 102, 300});
  const std::vector<uint32_t> ta = ExpandTokens(a);
  const std::vector<uint32_t> tb = ExpandTokens(b);
  for (const size_t block_tokens : {size_t{16}, size_t{64}, size_t{512}}) {
    INFO("block size " << block_tokens);
    size_t equal_blocks = 0;
    while ((equal_blocks + 1) * block_tokens <= std::min(ta.size(), tb.size()) &&
           std::equal(ta.begin() + equal_blocks * block_tokens,
                      ta.begin() + (equal_blocks + 1) * block_tokens,
                      tb.begin() + equal_blocks * block_tokens)) {
      ++equal_blocks;
    }
    // Exactly the shared 1,536 tokens match: no more (the next pool block differs) and no less.
    CHECK(equal_blocks * block_tokens == 3 * 512);
  }
}

TEST_CASE("ExpandTokens: one request that extends another keeps its tokens as a prefix",
          "[workload]") {
  const TraceRequest turn1 = Request(0, 1024, 1, {7, 8});
  const TraceRequest turn2 = Request(0, 1800, 1, {7, 8, 9, 10});
  const std::vector<uint32_t> t1 = ExpandTokens(turn1);
  const std::vector<uint32_t> t2 = ExpandTokens(turn2);
  CHECK(std::equal(t1.begin(), t1.end(), t2.begin()));
}

}  // namespace
}  // namespace kvpool::workload
