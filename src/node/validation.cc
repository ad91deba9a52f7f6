#include "node/validation.h"

#include <algorithm>
#include <string>

namespace kvpool::node {

Status ValidateNamespaceName(std::string_view name) {
  if (name.empty()) return InvalidArgumentError("namespace name must not be empty");
  if (name.size() > 128) {
    return InvalidArgumentError("namespace name is " + std::to_string(name.size()) +
                                " characters long; the limit is 128");
  }
  for (char c : name) {
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                    c == '.' || c == '_' || c == '-';
    if (!ok) {
      return InvalidArgumentError("namespace name '" + std::string(name) +
                                  "' has a character outside [A-Za-z0-9._-]");
    }
  }
  return Status::Ok();
}

Status ValidateNamespaceSpec(const NamespaceSpec& spec, const MemPoolOptions& options) {
  KVPOOL_RETURN_IF_ERROR(ValidateNamespaceName(spec.name));
  if (spec.block_tokens == 0 || spec.block_tokens > options.max_block_tokens) {
    return InvalidArgumentError("block_tokens must be in 1.." +
                                std::to_string(options.max_block_tokens) + ", got " +
                                std::to_string(spec.block_tokens));
  }
  if (spec.block_bytes == 0 || spec.block_bytes % 64 != 0) {
    return InvalidArgumentError("block_bytes must be a positive multiple of 64, got " +
                                std::to_string(spec.block_bytes));
  }
  const uint64_t max_bytes = std::min(options.max_block_bytes, options.capacity_bytes);
  if (spec.block_bytes > max_bytes) {
    return InvalidArgumentError("block_bytes " + std::to_string(spec.block_bytes) +
                                " exceeds this node's limit of " + std::to_string(max_bytes));
  }
  if (spec.salt.size() > 256) {
    return InvalidArgumentError("salt is " + std::to_string(spec.salt.size()) +
                                " bytes long; the limit is 256");
  }
  return Status::Ok();
}

Status ValidateBlockCount(std::string_view what, size_t count, const MemPoolOptions& options) {
  if (count == 0) return InvalidArgumentError(std::string(what) + " must be > 0");
  if (count > options.max_request_blocks) {
    return InvalidArgumentError(std::string(what) + " is " + std::to_string(count) +
                           "; one request may name at most " +
                           std::to_string(options.max_request_blocks) + " blocks");
  }
  return Status::Ok();
}

}  // namespace kvpool::node
