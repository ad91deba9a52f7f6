#include "kvpool/status.h"

namespace kvpool {

std::string_view StatusCodeName(StatusCode code) {
  switch (code) {
    case StatusCode::kOk: return "OK";
    case StatusCode::kCancelled: return "CANCELLED";
    case StatusCode::kUnknown: return "UNKNOWN";
    case StatusCode::kInvalidArgument: return "INVALID_ARGUMENT";
    case StatusCode::kDeadlineExceeded: return "DEADLINE_EXCEEDED";
    case StatusCode::kNotFound: return "NOT_FOUND";
    case StatusCode::kAlreadyExists: return "ALREADY_EXISTS";
    case StatusCode::kPermissionDenied: return "PERMISSION_DENIED";
    case StatusCode::kResourceExhausted: return "RESOURCE_EXHAUSTED";
    case StatusCode::kFailedPrecondition: return "FAILED_PRECONDITION";
    case StatusCode::kAborted: return "ABORTED";
    case StatusCode::kOutOfRange: return "OUT_OF_RANGE";
    case StatusCode::kUnimplemented: return "UNIMPLEMENTED";
    case StatusCode::kInternal: return "INTERNAL";
    case StatusCode::kUnavailable: return "UNAVAILABLE";
    case StatusCode::kDataLoss: return "DATA_LOSS";
    case StatusCode::kUnauthenticated: return "UNAUTHENTICATED";
  }
  return "UNKNOWN_CODE";
}

std::string Status::ToString() const {
  if (ok()) return "OK";
  std::string out(StatusCodeName(code_));
  out += ": ";
  out += message_;
  return out;
}

Status Status::WithContext(std::string_view context) const {
  if (ok()) return *this;
  std::string msg(context);
  msg += ": ";
  msg += message_;
  return Status(code_, std::move(msg));
}

std::ostream& operator<<(std::ostream& os, const Status& status) {
  return os << status.ToString();
}

#define KVPOOL_DEFINE_ERROR_FACTORY_(Name, Code) \
  Status Name(std::string message) { return Status(StatusCode::Code, std::move(message)); }

KVPOOL_DEFINE_ERROR_FACTORY_(CancelledError, kCancelled)
KVPOOL_DEFINE_ERROR_FACTORY_(UnknownError, kUnknown)
KVPOOL_DEFINE_ERROR_FACTORY_(InvalidArgumentError, kInvalidArgument)
KVPOOL_DEFINE_ERROR_FACTORY_(DeadlineExceededError, kDeadlineExceeded)
KVPOOL_DEFINE_ERROR_FACTORY_(NotFoundError, kNotFound)
KVPOOL_DEFINE_ERROR_FACTORY_(AlreadyExistsError, kAlreadyExists)
KVPOOL_DEFINE_ERROR_FACTORY_(PermissionDeniedError, kPermissionDenied)
KVPOOL_DEFINE_ERROR_FACTORY_(ResourceExhaustedError, kResourceExhausted)
KVPOOL_DEFINE_ERROR_FACTORY_(FailedPreconditionError, kFailedPrecondition)
KVPOOL_DEFINE_ERROR_FACTORY_(AbortedError, kAborted)
KVPOOL_DEFINE_ERROR_FACTORY_(OutOfRangeError, kOutOfRange)
KVPOOL_DEFINE_ERROR_FACTORY_(UnimplementedError, kUnimplemented)
KVPOOL_DEFINE_ERROR_FACTORY_(InternalError, kInternal)
KVPOOL_DEFINE_ERROR_FACTORY_(UnavailableError, kUnavailable)
KVPOOL_DEFINE_ERROR_FACTORY_(DataLossError, kDataLoss)
KVPOOL_DEFINE_ERROR_FACTORY_(UnauthenticatedError, kUnauthenticated)

#undef KVPOOL_DEFINE_ERROR_FACTORY_

}  // namespace kvpool
