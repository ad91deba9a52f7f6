// Conversions between the wire messages (proto/kvpool/v1) and kvpool's value types.
// Functions that read requests validate wire-level shape (lengths, enum values) and answer
// INVALID_ARGUMENT naming the field; semantic checks belong to the node.
#pragma once

#include <span>
#include <vector>

#include "kvpool/status.h"
#include "kvpool/types.h"
#include "kvpool/v1/mempool.pb.h"

namespace kvpool::rpc {

namespace v1 = ::kvpool::v1;

v1::Tier ToProto(Tier tier);
/// INVALID_ARGUMENT for values outside the enum.
Result<Tier> FromProto(v1::Tier tier);

void ToProto(const NamespaceSpec& spec, v1::NamespaceSpec* out);
NamespaceSpec FromProto(const v1::NamespaceSpec& spec);
void ToProto(const NamespaceStats& stats, v1::NamespaceStats* out);
NamespaceStats FromProto(const v1::NamespaceStats& stats);
void ToProto(const NamespaceInfo& info, v1::NamespaceInfo* out);
NamespaceInfo FromProto(const v1::NamespaceInfo& info);
void ToProto(const Lease& lease, v1::Lease* out);
Lease FromProto(const v1::Lease& lease);
void ToProto(std::span<const BlockLocation> blocks, v1::BlockList* out);
/// INVALID_ARGUMENT when the parallel arrays differ in length.
Result<std::vector<BlockLocation>> FromProto(const v1::BlockList& blocks);
void ToProto(const PoolStats& stats, v1::GetStatsResponse* out);
PoolStats FromProto(const v1::GetStatsResponse& stats);

/// Serialises hashes as concatenated canonical bytes.
void HashesToBytes(std::span<const BlockHash> hashes, std::string* out);
/// Parses concatenated canonical hashes; INVALID_ARGUMENT unless the length is a multiple of 16.
Status HashesFromBytes(const std::string& bytes, std::vector<BlockHash>* out);

/// Fills a wire prompt from a view.
void ToProto(PromptView prompt, v1::Prompt* out);
/// A view of a wire prompt. Token ids are borrowed from `prompt`; hashes are decoded into
/// `*hash_storage`. Both must outlive the view. INVALID_ARGUMENT for malformed hashes.
Result<PromptView> FromProto(const v1::Prompt& prompt, std::vector<BlockHash>* hash_storage);

/// A wire list of block handles as a span, without copying (valid while `field` lives).
inline std::span<const BlockHandle> HandlesOf(
    const google::protobuf::RepeatedField<uint64_t>& field) {
  return std::span<const BlockHandle>(field.data(), static_cast<size_t>(field.size()));
}

}  // namespace kvpool::rpc
