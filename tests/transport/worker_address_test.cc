// The engine address envelope (no UCX involved).
#include "transport/worker_address.h"

#include <unistd.h>

#include <catch2/catch.hpp>
#include <string>

namespace kvpool::transport {
namespace {

TEST_CASE("WorkerAddress: encoding round-trips every field", "[transport]") {
  auto identity = CurrentProcessIdentity();
  REQUIRE(identity.ok());
  CHECK(identity->pid == static_cast<uint32_t>(getpid()));
  CHECK(identity->boot_id.size() == 36);
  CHECK(identity->pid_namespace != 0);
  CHECK(identity->start_time_ticks > 0);

  WorkerAddress address;
  address.process = *identity;
  address.shared_memory = true;
  address.ucx_address = std::string("\0ucx\xff bytes", 10);
  auto decoded = DecodeWorkerAddress(EncodeWorkerAddress(address));
  REQUIRE(decoded.ok());
  CHECK(decoded->process.boot_id == identity->boot_id);
  CHECK(decoded->process.pid_namespace == identity->pid_namespace);
  CHECK(decoded->process.pid == identity->pid);
  CHECK(decoded->process.start_time_ticks == identity->start_time_ticks);
  CHECK(decoded->shared_memory);
  CHECK(decoded->ucx_address == address.ucx_address);
  CHECK(decoded->process.SameHostAs(*identity));

  address.shared_memory = false;
  decoded = DecodeWorkerAddress(EncodeWorkerAddress(address));
  REQUIRE(decoded.ok());
  CHECK_FALSE(decoded->shared_memory);

  ProcessIdentity elsewhere = *identity;
  elsewhere.boot_id[0] = elsewhere.boot_id[0] == 'a' ? 'b' : 'a';
  CHECK_FALSE(elsewhere.SameHostAs(*identity));
}

TEST_CASE("WorkerAddress: malformed bytes are refused with INVALID_ARGUMENT", "[transport]") {
  WorkerAddress address;
  address.process.boot_id = std::string(36, 'x');
  address.ucx_address = "ucx";
  const std::string good = EncodeWorkerAddress(address);
  REQUIRE(DecodeWorkerAddress(good).ok());

  std::string bad_version = good;
  bad_version[4] = 9;
  std::string no_ucx = EncodeWorkerAddress(WorkerAddress{address.process, false, ""});
  for (const std::string& bytes :
       {std::string(), std::string("KVPW"), good.substr(0, good.size() - 1), good + "!",
        "XVPW" + good.substr(4), bad_version, no_ucx}) {
    CAPTURE(bytes.size());
    CHECK(DecodeWorkerAddress(bytes).status().code() == StatusCode::kInvalidArgument);
  }
}

TEST_CASE("WorkerAddress: start time of a missing process is NOT_FOUND", "[transport]") {
  // Above the kernel's pid_max limit (4194304), so no process can have it.
  CHECK(ProcessStartTimeTicks(4'194'305 + 1000).status().code() == StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvpool::transport
