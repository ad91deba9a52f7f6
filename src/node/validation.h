// Argument checks shared by the node's operations.
#pragma once

#include <cstddef>
#include <string_view>

#include "kvpool/status.h"
#include "kvpool/types.h"
#include "node/options.h"

namespace kvpool::node {

/// INVALID_ARGUMENT unless `name` is 1..128 characters of [A-Za-z0-9._-].
Status ValidateNamespaceName(std::string_view name);
/// Checks every field of a namespace against the node's limits.
Status ValidateNamespaceSpec(const NamespaceSpec& spec, const MemPoolOptions& options);
/// INVALID_ARGUMENT for 0 or above max_request_blocks. `what` names the count.
Status ValidateBlockCount(std::string_view what, size_t count, const MemPoolOptions& options);

}  // namespace kvpool::node
