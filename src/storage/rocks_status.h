// RocksDB status -> kvpool::Status, in one place (src/storage only).
#pragma once

#include <rocksdb/status.h>

#include <string>

#include "kvpool/status.h"

namespace kvpool::storage {

/// Maps a non-OK RocksDB status: no space -> RESOURCE_EXHAUSTED, corruption -> DATA_LOSS,
/// not found -> NOT_FOUND, busy / try again / incomplete -> UNAVAILABLE, invalid argument ->
/// INVALID_ARGUMENT, anything else (I/O errors) -> INTERNAL. The message is "`what`: <RocksDB's
/// text>". OK maps to OK.
Status FromRocks(const rocksdb::Status& status, const std::string& what);

}  // namespace kvpool::storage
