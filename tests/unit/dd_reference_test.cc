// ParseDdSummary against GNU dd's output, and RunDd with the real dd (coreutils).
#include <catch2/catch.hpp>

#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <string>

#include "bench/dd_reference.h"

namespace kvpool::bench {
namespace {

TEST_CASE("ParseDdSummary reads bytes and seconds from GNU dd's summary", "[bench]") {
  // LC_ALL=C dd if=/dev/zero of=/tmp/x bs=1048576 count=256 conv=fsync (coreutils 9.1).
  const char* kOutput =
      "256+0 records in\n"
      "256+0 records out\n"
      "268435456 bytes (268 MB, 256 MiB) copied, 0.301087 s, 892 MB/s\n";
  auto r = ParseDdSummary(kOutput);
  REQUIRE(r.ok());
  CHECK(r->bytes == 268435456u);
  CHECK(r->seconds == Approx(0.301087));

  // Under a second's resolution and without the human-readable sizes.
  r = ParseDdSummary("0+0 records in\n0+0 records out\n0 bytes copied, 4.2e-05 s, 0.0 kB/s\n");
  REQUIRE(r.ok());
  CHECK(r->bytes == 0u);
  CHECK(r->seconds == Approx(4.2e-05));
}

TEST_CASE("ParseDdSummary names the text when there is no summary", "[bench]") {
  for (const char* bad : {"", "dd: failed to open 'x': No such file or directory\n",
                          "abc bytes copied, 1 s, 1 MB/s\n", "12 bytes copied, soon\n"}) {
    auto r = ParseDdSummary(bad);
    REQUIRE_FALSE(r.ok());
    CHECK(r.status().code() == StatusCode::kInvalidArgument);
    CHECK_THAT(r.status().message(), Catch::Contains("no dd summary"));
  }
}

TEST_CASE("RunDd copies with the real dd and reports what it copied", "[bench]") {
  const auto dir = std::filesystem::temp_directory_path() /
                   ("kvpool-dd-test-" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  const std::string src = (dir / "src").string(), dst = (dir / "dst").string();
  {
    std::ofstream out(src, std::ios::binary);
    out << std::string(3 * 4096, 'k');
  }
  auto r = RunDd({"if=" + src, "of=" + dst, "bs=4096", "count=3", "conv=fsync"},
                 (dir / "log").string(), 10'000);
  REQUIRE(r.ok());
  CHECK(r->bytes == 3 * 4096u);
  CHECK(r->seconds >= 0);
  CHECK(r->command == "LC_ALL=C dd if=" + src + " of=" + dst + " bs=4096 count=3 conv=fsync");
  CHECK(std::filesystem::file_size(dst) == 3 * 4096u);

  // A failing dd: the error carries dd's own message.
  r = RunDd({"if=" + (dir / "missing").string(), "of=/dev/null"}, (dir / "log").string(),
            10'000);
  REQUIRE_FALSE(r.ok());
  CHECK(r.status().code() == StatusCode::kInternal);
  CHECK_THAT(r.status().message(), Catch::Contains("No such file"));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kvpool::bench
