// The one place where kvpool::Status meets grpc::Status.
#pragma once

#include <grpcpp/support/status.h>

#include "kvpool/status.h"

namespace kvpool::rpc {

/// Same code (the enums mirror each other), same message.
grpc::Status ToGrpcStatus(const Status& status);
/// Same code and message; UNAVAILABLE and DEADLINE_EXCEEDED pass through unchanged so callers
/// can retry on them.
Status FromGrpcStatus(const grpc::Status& status);

}  // namespace kvpool::rpc
