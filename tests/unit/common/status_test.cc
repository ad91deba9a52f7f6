#include "kvpool/status.h"

#include <catch2/catch.hpp>

#include "common/units.h"

namespace kvpool {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return InvalidArgumentError("odd: " + std::to_string(x));
  return x / 2;
}

Result<int> Quarter(int x) {
  KVPOOL_ASSIGN_OR_RETURN(int half, Half(x));
  KVPOOL_ASSIGN_OR_RETURN(int quarter, Half(half));
  return quarter;
}

Status CheckEven(int x) {
  KVPOOL_RETURN_IF_ERROR(Half(x).status());  // a member of a temporary: must be copied safely
  return Status::Ok();
}

}  // namespace

TEST_CASE("Status: OK has no message and error codes match gRPC's numbering", "[common]") {
  CHECK(Status::Ok().ok());
  CHECK(Status(StatusCode::kOk, "ignored").message().empty());
  CHECK(static_cast<int>(StatusCode::kResourceExhausted) == 8);
  CHECK(static_cast<int>(StatusCode::kUnauthenticated) == 16);
  const Status s = NotFoundError("namespace 'x' does not exist");
  CHECK(s.ToString() == "NOT_FOUND: namespace 'x' does not exist");
  CHECK(s.WithContext("Match").message() == "Match: namespace 'x' does not exist");
}

TEST_CASE("Result: macros propagate the first error", "[common]") {
  CHECK(*Quarter(8) == 2);
  CHECK(Quarter(6).status().message() == "odd: 3");
  CHECK(Quarter(5).status().code() == StatusCode::kInvalidArgument);
  CHECK(CheckEven(4).ok());
  CHECK(CheckEven(3).code() == StatusCode::kInvalidArgument);
  CHECK(Half(3).value_or(-1) == -1);
}

TEST_CASE("ParseBytes: units, decimals and errors", "[common]") {
  CHECK(*ParseBytes("4096") == 4096);
  CHECK(*ParseBytes("64KiB") == 65536);
  CHECK(*ParseBytes("1.5GiB") == 1610612736ull);
  CHECK(*ParseBytes("2M") == 2097152);
  CHECK(*ParseBytes("1GB") == 1000000000ull);
  CHECK(*ParseBytes("3 MiB") == 3145728);
  CHECK(ParseBytes("").status().code() == StatusCode::kInvalidArgument);
  CHECK(ParseBytes("lots").status().code() == StatusCode::kInvalidArgument);
  CHECK(ParseBytes("12XB").status().code() == StatusCode::kInvalidArgument);
  CHECK(ParseBytes("0.5B").status().code() == StatusCode::kInvalidArgument);
  CHECK(ParseBytes("99999999999TiB").status().code() == StatusCode::kInvalidArgument);
  CHECK_THAT(ParseBytes("lots").status().message(), Catch::Contains("'lots'"));
  CHECK(FormatBytes(512) == "512 B");
  CHECK(FormatBytes(1536) == "1.5 KiB");
}

}  // namespace kvpool
