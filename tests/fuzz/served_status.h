// The check every gRPC handler fuzzer makes on each answer (DESIGN.md "Failure and security
// model": bad input gets a canonical status that says what was wrong, never a crash).
#pragma once

#include <grpcpp/support/status.h>

#include "fuzz_check.h"

namespace kvpool::fuzz {

/// Aborts when a handler answers UNKNOWN or INTERNAL (an input the service did not validate),
/// or an error without a message.
inline void CheckServed(const grpc::Status& status) {
  KVPOOL_FUZZ_CHECK(status.error_code() != grpc::StatusCode::UNKNOWN);
  KVPOOL_FUZZ_CHECK(status.error_code() != grpc::StatusCode::INTERNAL);
  if (!status.ok()) KVPOOL_FUZZ_CHECK(!status.error_message().empty());
}

}  // namespace kvpool::fuzz
