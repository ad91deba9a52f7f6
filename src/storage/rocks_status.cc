#include "storage/rocks_status.h"

namespace kvpool::storage {

Status FromRocks(const rocksdb::Status& status, const std::string& what) {
  if (status.ok()) return Status::Ok();
  std::string message = what + ": " + status.ToString();
  if (status.IsNoSpace()) return ResourceExhaustedError("device full while " + message);
  if (status.IsCorruption()) return DataLossError(std::move(message));
  if (status.IsNotFound()) return NotFoundError(std::move(message));
  if (status.IsBusy() || status.IsTryAgain() || status.IsIncomplete() || status.IsTimedOut()) {
    return UnavailableError(std::move(message));
  }
  if (status.IsInvalidArgument()) return InvalidArgumentError(std::move(message));
  return InternalError(std::move(message));
}

}  // namespace kvpool::storage
