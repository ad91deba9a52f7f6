#include "rpc/convert.h"

#include <cstring>
#include <string>

namespace kvpool::rpc {

v1::Tier ToProto(Tier tier) {
  switch (tier) {
    case Tier::kNone: return v1::TIER_UNSPECIFIED;
    case Tier::kGpu: return v1::TIER_GPU;
    case Tier::kHost: return v1::TIER_HOST;
    case Tier::kDisk: return v1::TIER_DISK;
  }
  return v1::TIER_UNSPECIFIED;
}

Result<Tier> FromProto(v1::Tier tier) {
  switch (tier) {
    case v1::TIER_UNSPECIFIED: return Tier::kNone;
    case v1::TIER_GPU: return Tier::kGpu;
    case v1::TIER_HOST: return Tier::kHost;
    case v1::TIER_DISK: return Tier::kDisk;
    default: break;
  }
  return InvalidArgumentError("tier " + std::to_string(static_cast<int>(tier)) + " is not a known tier");
}

void ToProto(const NamespaceSpec& spec, v1::NamespaceSpec* out) {
  out->set_name(spec.name);
  out->set_block_tokens(spec.block_tokens);
  out->set_block_bytes(spec.block_bytes);
  out->set_salt(spec.salt);
}

NamespaceSpec FromProto(const v1::NamespaceSpec& spec) {
  return NamespaceSpec{spec.name(), spec.block_tokens(), spec.block_bytes(), spec.salt()};
}

// The two stats types list the same fields in the same order; one table keeps them in step.
#define KVPOOL_NAMESPACE_STATS_FIELDS_(X)                                                   \
  X(allocated_blocks) X(cached_blocks) X(pinned_blocks) X(reserved_bytes) X(used_bytes)     \
  X(hit_blocks) X(miss_blocks) X(match_requests) X(inserted_blocks) X(deduplicated_blocks)  \
  X(evicted_blocks) X(deleted_blocks) X(index_bytes) X(disk_blocks) X(demoted_blocks)        \
  X(promoted_blocks) X(gpu_used_bytes) X(written_behind_blocks)

void ToProto(const NamespaceStats& stats, v1::NamespaceStats* out) {
#define KVPOOL_SET_(f) out->set_##f(stats.f);
  KVPOOL_NAMESPACE_STATS_FIELDS_(KVPOOL_SET_)
#undef KVPOOL_SET_
}

NamespaceStats FromProto(const v1::NamespaceStats& stats) {
  NamespaceStats out;
#define KVPOOL_GET_(f) out.f = stats.f();
  KVPOOL_NAMESPACE_STATS_FIELDS_(KVPOOL_GET_)
#undef KVPOOL_GET_
  return out;
}
#undef KVPOOL_NAMESPACE_STATS_FIELDS_

void ToProto(const NamespaceInfo& info, v1::NamespaceInfo* out) {
  ToProto(info.spec, out->mutable_spec());
  out->set_id(info.id);
  const auto bytes = info.root_hash.Bytes();
  out->set_root_hash(std::string(bytes.begin(), bytes.end()));
  ToProto(info.stats, out->mutable_stats());
}

NamespaceInfo FromProto(const v1::NamespaceInfo& info) {
  NamespaceInfo out;
  out.spec = FromProto(info.spec());
  out.id = info.id();
  if (info.root_hash().size() == kBlockHashBytes) {
    out.root_hash = BlockHash::FromBytes(reinterpret_cast<const uint8_t*>(info.root_hash().data()));
  }
  out.stats = FromProto(info.stats());
  return out;
}

void ToProto(const Lease& lease, v1::Lease* out) {
  out->set_id(lease.id);
  out->set_ttl_ms(lease.ttl_ms);
}

Lease FromProto(const v1::Lease& lease) { return Lease{lease.id(), lease.ttl_ms()}; }

void ToProto(std::span<const BlockLocation> blocks, v1::BlockList* out) {
  out->mutable_handles()->Reserve(static_cast<int>(blocks.size()));
  out->mutable_offsets()->Reserve(static_cast<int>(blocks.size()));
  out->mutable_tiers()->Reserve(static_cast<int>(blocks.size()));
  for (const BlockLocation& b : blocks) {
    out->add_handles(b.handle);
    out->add_offsets(b.offset);
    out->add_tiers(ToProto(b.tier));
  }
  out->set_block_bytes(blocks.empty() ? 0 : blocks.front().length);
}

Result<std::vector<BlockLocation>> FromProto(const v1::BlockList& blocks) {
  const int n = blocks.handles_size();
  if (blocks.offsets_size() != n || blocks.tiers_size() != n) {
    return InvalidArgumentError("block list arrays differ in length: " + std::to_string(n) +
                                " handles, " + std::to_string(blocks.offsets_size()) +
                                " offsets, " + std::to_string(blocks.tiers_size()) + " tiers");
  }
  std::vector<BlockLocation> out;
  out.reserve(n);
  for (int i = 0; i < n; ++i) {
    KVPOOL_ASSIGN_OR_RETURN(Tier tier, FromProto(static_cast<v1::Tier>(blocks.tiers(i))));
    out.push_back(BlockLocation{blocks.handles(i), tier, blocks.offsets(i), blocks.block_bytes()});
  }
  return out;
}

void ToProto(const PoolStats& stats, v1::GetStatsResponse* out) {
  out->set_node_id(stats.node_id);
  out->set_capacity_bytes(stats.capacity_bytes);
  out->set_used_bytes(stats.used_bytes);
  out->set_reserved_bytes(stats.reserved_bytes);
  out->set_free_bytes(stats.free_bytes);
  out->set_page_mode(stats.page_mode);
  out->set_active_leases(stats.active_leases);
  out->set_expired_leases(stats.expired_leases);
  out->set_uptime_ms(stats.uptime_ms);
  out->set_disk_capacity_bytes(stats.disk_capacity_bytes);
  out->set_disk_used_bytes(stats.disk_used_bytes);
  out->set_disk_read_bytes_per_s(stats.disk_read_bytes_per_s);
  out->set_gpu_capacity_bytes(stats.gpu_capacity_bytes);
  out->set_gpu_free_bytes(stats.gpu_free_bytes);
  out->set_gpu_device(stats.gpu_device);
  for (const NamespaceInfo& ns : stats.namespaces) ToProto(ns, out->add_namespaces());
}

PoolStats FromProto(const v1::GetStatsResponse& stats) {
  PoolStats out;
  out.node_id = stats.node_id();
  out.capacity_bytes = stats.capacity_bytes();
  out.used_bytes = stats.used_bytes();
  out.reserved_bytes = stats.reserved_bytes();
  out.free_bytes = stats.free_bytes();
  out.page_mode = stats.page_mode();
  out.active_leases = stats.active_leases();
  out.expired_leases = stats.expired_leases();
  out.uptime_ms = stats.uptime_ms();
  out.disk_capacity_bytes = stats.disk_capacity_bytes();
  out.disk_used_bytes = stats.disk_used_bytes();
  out.disk_read_bytes_per_s = stats.disk_read_bytes_per_s();
  out.gpu_capacity_bytes = stats.gpu_capacity_bytes();
  out.gpu_free_bytes = stats.gpu_free_bytes();
  out.gpu_device = stats.gpu_device();
  for (const auto& ns : stats.namespaces()) out.namespaces.push_back(FromProto(ns));
  return out;
}

void HashesToBytes(std::span<const BlockHash> hashes, std::string* out) {
  out->resize(hashes.size() * kBlockHashBytes);
  char* p = out->data();
  for (const BlockHash& h : hashes) {
    const auto bytes = h.Bytes();
    std::memcpy(p, bytes.data(), kBlockHashBytes);
    p += kBlockHashBytes;
  }
}

Status HashesFromBytes(const std::string& bytes, std::vector<BlockHash>* out) {
  if (bytes.size() % kBlockHashBytes != 0) {
    return InvalidArgumentError("block_hashes is " + std::to_string(bytes.size()) +
                                " bytes long, not a multiple of 16");
  }
  const size_t n = bytes.size() / kBlockHashBytes;
  out->resize(n);
  const auto* p = reinterpret_cast<const uint8_t*>(bytes.data());
  for (size_t i = 0; i < n; ++i) (*out)[i] = BlockHash::FromBytes(p + i * kBlockHashBytes);
  return Status::Ok();
}

void ToProto(PromptView prompt, v1::Prompt* out) {
  if (!prompt.tokens.empty()) {
    out->mutable_tokens()->Add(prompt.tokens.begin(), prompt.tokens.end());
  }
  if (!prompt.hashes.empty()) HashesToBytes(prompt.hashes, out->mutable_block_hashes());
}

Result<PromptView> FromProto(const v1::Prompt& prompt, std::vector<BlockHash>* hash_storage) {
  PromptView view;
  if (prompt.tokens_size() > 0) {
    view.tokens = std::span<const uint32_t>(prompt.tokens().data(), prompt.tokens_size());
  }
  if (!prompt.block_hashes().empty()) {
    KVPOOL_RETURN_IF_ERROR(HashesFromBytes(prompt.block_hashes(), hash_storage));
    view.hashes = *hash_storage;
  }
  return view;
}

}  // namespace kvpool::rpc
