#include "node/mempool.h"

#include <algorithm>
#include <cstddef>
#include <optional>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "common/logging.h"
#include "common/quote.h"
#include "common/units.h"
#include "node/block_handle.h"
#include "node/validation.h"
#include "storage/block_store.h"

namespace kvpool::node {

// The block hashes of a request's prompt: the caller's own hashes (borrowed, no copy) or the
// hashes of its tokens (computed into `storage`).
// Move-only: `hashes` may point into `storage`, whose buffer a move keeps but a copy would not.
struct MemPool::HashedPrompt {
  HashedPrompt() = default;
  HashedPrompt(HashedPrompt&&) = default;
  HashedPrompt& operator=(HashedPrompt&&) = default;
  HashedPrompt(const HashedPrompt&) = delete;
  HashedPrompt& operator=(const HashedPrompt&) = delete;

  uint32_t namespace_id = 0;
  std::vector<BlockHash> storage;
  std::span<const BlockHash> hashes;
};

namespace {

// Slabs of the GPU tier are capped at an eighth of it, like the host arena's.
uint64_t GpuSlabBytes(const NamespaceSpec& spec, const memory::HostArena& gpu_arena) {
  return std::max<uint64_t>(spec.block_bytes,
                            std::min<uint64_t>(32ull << 20, gpu_arena.capacity_bytes() / 8));
}

std::string DescribeState(BlockState state) {
  switch (state) {
    case BlockState::kFree: return "free";
    case BlockState::kAllocated: return "allocated";
    case BlockState::kCached: return "already inserted";
    case BlockState::kDetached: return "deleted";
  }
  return "unknown";
}

// FAILED_PRECONDITION unless every slot is an allocated block owned by `lease_id`.
Status CheckAllocatedToLease(const NamespaceState& ns, std::span<const BlockHandle> handles,
                             const std::vector<memory::Slot>& slots, uint64_t lease_id) {
  for (size_t i = 0; i < slots.size(); ++i) {
    const BlockMeta& m = ns.meta(slots[i]);
    if (m.state != BlockState::kAllocated || m.owner_lease != lease_id) {
      return FailedPreconditionError("block handle " + std::to_string(handles[i]) +
                                     " is not an allocated block of lease " +
                                     std::to_string(lease_id) + " (it is " +
                                     DescribeState(m.state) + ")");
    }
  }
  return Status::Ok();
}
}  // namespace

Result<std::unique_ptr<MemPool>> MemPool::Create(const MemPoolOptions& options, Clock* clock) {
  KVPOOL_RETURN_IF_ERROR(options.Validate());
  memory::HostArenaOptions arena_options;
  arena_options.capacity_bytes = options.capacity_bytes;
  arena_options.try_huge_pages = options.huge_pages;
  KVPOOL_ASSIGN_OR_RETURN(auto arena, memory::HostArena::Create(arena_options));
  return std::unique_ptr<MemPool>(new MemPool(options, clock, std::move(arena)));
}

Result<std::unique_ptr<MemPool>> MemPool::Create(const MemPoolOptions& options, Clock* clock,
                                                 std::unique_ptr<memory::HostArena> arena) {
  if (arena == nullptr) return InvalidArgumentError("MemPool::Create: arena must not be null");
  if (arena->free_bytes() != arena->capacity_bytes()) {
    return InvalidArgumentError("MemPool::Create: the arena has " +
                                std::to_string(arena->capacity_bytes() - arena->free_bytes()) +
                                " bytes in use; the pool needs a fresh one");
  }
  // Slab sizing and block-size limits derive from capacity_bytes: use the arena's.
  MemPoolOptions effective = options;
  effective.capacity_bytes = arena->capacity_bytes();
  KVPOOL_RETURN_IF_ERROR(effective.Validate());
  return std::unique_ptr<MemPool>(new MemPool(effective, clock, std::move(arena)));
}

MemPool::MemPool(const MemPoolOptions& options, Clock* clock,
                 std::unique_ptr<memory::HostArena> arena)
    : options_(options), clock_(clock), start_ms_(clock->NowMs()), arena_(std::move(arena)) {}

MemPool::~MemPool() {
  // Namespaces hold slabs of the arena: they must go first.
  absl::MutexLock lock(&mu_);
  namespaces_by_id_.clear();
  namespaces_.clear();
}

// ---- Helpers ---------------------------------------------------------------------------------

Result<NamespaceState*> MemPool::FindNamespaceLocked(std::string_view ns) {
  auto it = namespaces_.find(std::string(ns));
  if (it == namespaces_.end()) {
    KVPOOL_RETURN_IF_ERROR(ValidateNamespaceName(ns));
    return NotFoundError("namespace " + Quote(ns) + " does not exist");
  }
  return it->second.get();
}

Result<uint32_t> MemPool::ResolveTtl(uint32_t lease_ttl_ms) const {
  if (lease_ttl_ms == 0) return options_.default_lease_ttl_ms;
  if (lease_ttl_ms > options_.max_lease_ttl_ms) {
    return InvalidArgumentError("lease_ttl_ms " + std::to_string(lease_ttl_ms) +
                                " exceeds the limit of " + std::to_string(options_.max_lease_ttl_ms));
  }
  return lease_ttl_ms;
}

Result<LeaseRecord*> MemPool::FindLeaseLocked(uint64_t lease_id, const NamespaceState* ns) {
  if (lease_id == 0) return InvalidArgumentError("lease_id is required (got 0)");
  LeaseRecord* lease = leases_.Find(lease_id);
  if (lease == nullptr) {
    if (leases_.RecentlyExpired(lease_id)) {
      return FailedPreconditionError("lease " + std::to_string(lease_id) +
                                     " expired; its blocks were released");
    }
    return NotFoundError("lease " + std::to_string(lease_id) +
                         " is unknown (released, expired long ago, or never issued)");
  }
  if (ns != nullptr && lease->namespace_id != ns->id()) {
    return FailedPreconditionError("lease " + std::to_string(lease_id) +
                                   " belongs to another namespace, not " + Quote(ns->spec().name));
  }
  return lease;
}

Lease MemPool::LeaseFor(const LeaseRecord& lease) const {
  const int64_t left = lease.deadline_ms - clock_->NowMs();
  return Lease{lease.id, static_cast<uint32_t>(std::max<int64_t>(0, left))};
}

NamespaceInfo MemPool::InfoOf(const NamespaceState& ns) const {
  return NamespaceInfo{ns.spec(), ns.id(), ns.hasher().root(), ns.Snapshot()};
}

Result<MemPool::HashedPrompt> MemPool::HashPromptFor(std::string_view ns, PromptView prompt,
                                                     bool whole_blocks) {
  if (!prompt.tokens.empty() && !prompt.hashes.empty()) {
    return InvalidArgumentError("give the prompt as token ids or as block hashes, not both");
  }
  HashedPrompt out;
  std::optional<BlockHasher> hasher;
  {
    absl::MutexLock lock(&mu_);
    KVPOOL_ASSIGN_OR_RETURN(NamespaceState * state, FindNamespaceLocked(ns));
    out.namespace_id = state->id();
    hasher.emplace(state->hasher());
  }
  if (!prompt.hashes.empty()) {
    if (prompt.hashes.size() > options_.max_request_blocks) {
      return InvalidArgumentError("prompt has " + std::to_string(prompt.hashes.size()) +
                             " block hashes; the limit is " +
                             std::to_string(options_.max_request_blocks));
    }
    out.hashes = prompt.hashes;
    return out;
  }
  const uint32_t block_tokens = hasher->block_tokens();
  if (whole_blocks && prompt.tokens.size() % block_tokens != 0) {
    return InvalidArgumentError(std::to_string(prompt.tokens.size()) +
                                " tokens are not a whole number of " +
                                std::to_string(block_tokens) + "-token blocks");
  }
  const size_t blocks = prompt.tokens.size() / block_tokens;
  if (blocks > options_.max_request_blocks) {
    return InvalidArgumentError("prompt has " + std::to_string(blocks) + " blocks; the limit is " +
                           std::to_string(options_.max_request_blocks));
  }
  hasher->HashPrompt(prompt.tokens, &out.storage);
  out.hashes = out.storage;
  return out;
}

// ---- Namespaces --------------------------------------------------------------------------------

Result<std::pair<NamespaceInfo, bool>> MemPool::CreateNamespace(const NamespaceSpec& spec) {
  KVPOOL_RETURN_IF_ERROR(ValidateNamespaceSpec(spec, options_));
  absl::MutexLock lock(&mu_);
  if (auto it = namespaces_.find(spec.name); it != namespaces_.end()) {
    const NamespaceSpec& have = it->second->spec();
    auto conflict = [&](const char* field, const std::string& existing, const std::string& asked) {
      return AlreadyExistsError("namespace " + Quote(spec.name) + " exists with " + field + "=" +
                                existing + "; the request has " + field + "=" + asked);
    };
    if (have.block_tokens != spec.block_tokens) {
      return conflict("block_tokens", std::to_string(have.block_tokens),
                      std::to_string(spec.block_tokens));
    }
    if (have.block_bytes != spec.block_bytes) {
      return conflict("block_bytes", std::to_string(have.block_bytes),
                      std::to_string(spec.block_bytes));
    }
    if (have.salt != spec.salt) return conflict("salt", Quote(have.salt), Quote(spec.salt));
    return std::make_pair(InfoOf(*it->second), false);
  }
  if (namespaces_.size() >= options_.max_namespaces) {
    return ResourceExhaustedError("this node already has " + std::to_string(namespaces_.size()) +
                                  " namespaces (max_namespaces)");
  }
  if (next_namespace_id_ > 0xffff) {
    return ResourceExhaustedError("namespace ids are used up; restart the daemon");
  }
  const uint64_t slab_bytes = options_.SlabBytesFor(spec.block_bytes);
  const uint32_t id = next_namespace_id_;
  KVPOOL_ASSIGN_OR_RETURN(auto state, NamespaceState::Create(id, spec, arena_.get(), slab_bytes));
  if (gpu_arena_ != nullptr) {
    KVPOOL_RETURN_IF_ERROR(state->EnableGpu(gpu_arena_.get(), GpuSlabBytes(spec, *gpu_arena_)));
  }
  ++next_namespace_id_;
  if (store_ != nullptr) {
    // Persisted first: a namespace the SSD tier does not know would lose its blocks' meaning.
    KVPOOL_RETURN_IF_ERROR(store_->PutNamespace(spec, /*sync=*/true));
  }
  NamespaceState* raw = state.get();
  namespaces_.emplace(spec.name, std::move(state));
  namespaces_by_id_.emplace(id, raw);
  return std::make_pair(InfoOf(*raw), true);
}

Result<NamespaceInfo> MemPool::GetNamespace(std::string_view name) {
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(name));
  return InfoOf(*ns);
}

std::vector<NamespaceInfo> MemPool::ListNamespaces() {
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  std::vector<NamespaceInfo> out;
  out.reserve(namespaces_.size());
  for (const auto& [name, ns] : namespaces_) out.push_back(InfoOf(*ns));
  std::sort(out.begin(), out.end(),
            [](const NamespaceInfo& a, const NamespaceInfo& b) { return a.spec.name < b.spec.name; });
  return out;
}

Result<uint64_t> MemPool::DeleteNamespace(std::string_view name) {
  absl::MutexLock lock(&mu_);
  AwaitNoTierIoLocked();  // its blocks may be being written or promoted
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(name));
  if (ns->active_leases > 0) {
    return FailedPreconditionError("namespace " + Quote(name) + " has " +
                                   std::to_string(ns->active_leases) +
                                   " active leases; release them or wait for them to expire");
  }
  const uint64_t live = ns->allocator().used_blocks() + ns->disk_tree().size() +
                        (ns->has_gpu() ? ns->allocator(Tier::kGpu)->used_blocks() : 0);
  if (store_ != nullptr) {
    KVPOOL_RETURN_IF_ERROR(store_->DeleteNamespace(name).status());
  }
  if (event_sink_ != nullptr && (ns->tree().size() > 0 || ns->disk_tree().size() > 0)) {
    std::vector<BlockHash> cached;
    cached.reserve(ns->tree().size());
    ns->tree().ForEach([&](const BlockHash& hash, const std::optional<BlockHash>&,
                           index::BlockRef) { cached.push_back(hash); });
    ns->disk_tree().ForEach([&](const BlockHash& hash, const std::optional<BlockHash>&,
                                index::BlockRef) {
      if (!ns->tree().Contains(hash)) cached.push_back(hash);
    });
    EmitLocked(PoolEvent::Kind::kRemoved, *ns, std::nullopt, std::move(cached));
  }
  namespaces_by_id_.erase(ns->id());
  namespaces_.erase(std::string(name));
  return live;
}

// ---- Memory ------------------------------------------------------------------------------------

uint64_t MemPool::EvictFromLocked(NamespaceState& ns, uint64_t n_blocks, Tier tier) {
  std::vector<index::RemovedBlock> removed;
  size_t evicted = 0;
  if (tier == Tier::kNone || !ns.has_gpu()) {
    evicted = ns.tree().Evict(n_blocks, &removed);
  } else {
    evicted = ns.tree().EvictIf(
        n_blocks,
        [tier](index::BlockRef ref) {
          return NamespaceState::TierOfSlot(DecodeHandle(ref).slot) == tier;
        },
        &removed);
  }
  const bool gpu = tier == Tier::kGpu && ns.has_gpu();
  // GPU blocks go down to HOST when it has or can make room (GPU -> HOST -> DISK), else as HOST
  // blocks do. A block whose parent was cached (in the tree, or evicted in this call) goes to
  // HOST only while that parent still is: host eviction for an earlier block, or the parent's
  // own fall to DISK, may have taken it, and the block would then hang below a hole.
  absl::flat_hash_set<BlockHash, BlockHashHasher> under_cached;
  if (gpu) {
    absl::flat_hash_set<BlockHash, BlockHashHasher> batch;
    for (const auto& block : removed) batch.insert(block.hash);
    for (const auto& block : removed) {
      const BlockMeta& m = ns.meta(DecodeHandle(block.ref).slot);
      if (m.has_parent && (batch.contains(m.parent) || ns.tree().Contains(m.parent))) {
        under_cached.insert(block.hash);
      }
    }
  }
  std::vector<BlockHash> demoted;
  std::vector<BlockHash> dropped;
  auto leave = [&](const index::RemovedBlock& block, bool may_go_to_host) {
    mu_.AssertHeld();  // called below, under the lock this method holds
    const memory::Slot slot = DecodeHandle(block.ref).slot;
    if (may_go_to_host && NamespaceState::IsGpuSlot(slot)) {
      const BlockMeta& m = ns.meta(slot);
      if (!under_cached.contains(block.hash) || ns.tree().Contains(m.parent)) {
        if (std::optional<memory::Slot> host = CopyGpuToHostLocked(ns, slot)) {
          // Back under the same parent (still cached, or a segment root as before).
          const index::BlockRef ref = ns.HandleOf(*host);
          std::vector<index::InsertOutcome> outcome;
          ns.tree().Insert(m.has_parent ? std::optional<BlockHash>(m.parent) : std::nullopt,
                           std::span(&block.hash, 1), std::span(&ref, 1), &outcome);
          ns.OnRemovedFromTree(slot);
          if (m.has_parent && ns.TierOf(m.parent) == Tier::kGpu) ns.gpu_blocks_over_host = true;
          // Now, not with the batch: host eviction for the next block may move this one on.
          ++ns.counters().demoted_blocks;
          EmitLocked(PoolEvent::Kind::kTierChanged, ns, std::nullopt, {block.hash}, Tier::kHost);
          return;
        }
      }
    }
    // With an SSD tier the block goes down a tier instead of away (it may be there already).
    bool kept = false;
    BlockMeta& meta = ns.meta(slot);
    if (store_ != nullptr && meta.write_behind != WriteBehindState::kNone) {
      // Being written by the write-behind, which puts it in the DISK tree when the write
      // lands (and announces it gone if the write fails): nothing to write here.
      meta.write_behind = WriteBehindState::kWritingDemoted;
      kept = true;
    } else if (store_ != nullptr) {
      const Status st = WriteToDiskLocked(ns, slot, /*sync=*/false);
      if (st.ok()) {
        kept = true;
      } else {
        KVPOOL_LOG(WARNING) << "dropping block " << block.hash.ToHex() << " of namespace "
                            << Quote(ns.spec().name) << " instead of demoting it: " << st;
      }
    }
    (kept ? demoted : dropped).push_back(block.hash);
    ns.OnRemovedFromTree(slot);
  };
  if (gpu) {
    // EvictIf lists a leaf before the parent it exposed: parents first here.
    for (auto it = removed.rbegin(); it != removed.rend(); ++it) leave(*it, true);
    if (evicted < n_blocks && ns.gpu_blocks_over_host) {
      std::vector<index::RemovedBlock> subtrees;  // parents first
      evicted += EvictGpuInteriorLocked(ns, n_blocks - evicted, &subtrees);
      for (const auto& block : subtrees) leave(block, false);
    }
  } else {
    for (const auto& block : removed) leave(block, false);
  }
  ns.counters().evicted_blocks += dropped.size();
  ns.counters().demoted_blocks += demoted.size();
  EmitLocked(PoolEvent::Kind::kTierChanged, ns, std::nullopt, std::move(demoted), Tier::kDisk);
  EmitLocked(PoolEvent::Kind::kRemoved, ns, std::nullopt, std::move(dropped));
  return evicted;
}

uint64_t MemPool::EvictGpuInteriorLocked(NamespaceState& ns, uint64_t n_blocks,
                                         std::vector<index::RemovedBlock>* removed) {
  // A GPU block whose children went to HOST is no leaf, so EvictIf never sees it again; without
  // this pass such blocks would fill the GPU tier for good.
  struct Cached {
    BlockHash hash;
    index::BlockRef ref;
  };
  std::vector<Cached> gpu_blocks;
  absl::flat_hash_set<BlockHash, BlockHashHasher> gpu_parents;
  ns.tree().ForEach([&](const BlockHash& hash, const std::optional<BlockHash>& parent,
                        index::BlockRef ref) {
    if (!NamespaceState::IsGpuSlot(DecodeHandle(ref).slot)) return;
    gpu_blocks.push_back(Cached{hash, ref});
    if (parent.has_value()) gpu_parents.insert(*parent);
  });
  uint64_t moved = 0;
  bool more = false;  // candidates left for a later call (pinned, or past n_blocks)
  // Children before parents: a parent whose only GPU child moves is still skipped this call.
  for (auto it = gpu_blocks.rbegin(); it != gpu_blocks.rend(); ++it) {
    if (gpu_parents.contains(it->hash)) continue;
    if (moved == n_blocks || ns.tree().PinCount(it->hash) > 0) {
      more = true;
      continue;
    }
    const memory::Slot slot = DecodeHandle(it->ref).slot;
    const BlockMeta& m = ns.meta(slot);
    if (std::optional<memory::Slot> host = CopyGpuToHostLocked(ns, slot)) {
      ns.tree().SetRef(it->hash, ns.HandleOf(*host));
      ++ns.counters().demoted_blocks;
      EmitLocked(PoolEvent::Kind::kTierChanged, ns, std::nullopt, {it->hash}, Tier::kHost);
      if (m.has_parent && ns.TierOf(m.parent) == Tier::kGpu) more = true;
      ns.OnRemovedFromTree(slot);
    } else {
      // HOST is full: the block leaves with its (GPU-free) subtree, as it would have before.
      ns.tree().Delete(it->hash, removed);
    }
    ++moved;
  }
  ns.gpu_blocks_over_host = more;
  return moved;
}

std::optional<memory::Slot> MemPool::CopyGpuToHostLocked(NamespaceState& ns,
                                                         memory::Slot gpu_slot) {
  const uint64_t bytes = ns.spec().block_bytes;
  const BlockMeta& gpu_meta = ns.meta(gpu_slot);
  // The usual host allocation (quota, then this namespace's cold HOST leaves, then others'),
  // with the block's parent pinned so that making room never takes it: the block goes below it.
  const bool parent_pinned = gpu_meta.has_parent && ns.tree().Pin(gpu_meta.parent);
  std::vector<memory::Slot> slots;
  const Status allocated = AllocateWithEvictionLocked(ns, 1, /*lease_id=*/0, &slots, Tier::kHost);
  if (parent_pinned) ns.tree().Unpin(gpu_meta.parent);
  if (!allocated.ok()) return std::nullopt;
  const memory::Slot slot = slots[0];
  const Status copied = device_->CopySync(arena_->base() + ns.ArenaOffset(slot),
                                          gpu_base_ + ns.ArenaOffset(gpu_slot), bytes);
  if (!copied.ok()) {
    KVPOOL_LOG(WARNING) << "cannot copy GPU block " << gpu_meta.hash.ToHex()
                        << " of namespace " << Quote(ns.spec().name) << " to HOST: " << copied;
    ns.FreeBlock(slot);
    return std::nullopt;
  }
  ns.MarkCached(slot, gpu_meta.hash,
                gpu_meta.has_parent ? std::optional<BlockHash>(gpu_meta.parent) : std::nullopt);
  return slot;
}

Status MemPool::AllocateWithEvictionLocked(NamespaceState& ns, size_t n, uint64_t lease_id,
                                           std::vector<memory::Slot>* slots, Tier tier) {
  if (tier == Tier::kHost) KVPOOL_RETURN_IF_ERROR(EnforceQuotaLocked(ns, n));
  Status st = ns.AllocateBlocks(n, lease_id, slots, tier);
  if (st.ok() || st.code() != StatusCode::kResourceExhausted) return st;

  // Cold leaves of this namespace and tier first: their blocks become free slots of its slabs.
  for (;;) {
    const memory::BlockAllocator& alloc = *ns.allocator(tier);
    const uint64_t free_in_slabs = alloc.reserved_blocks() - alloc.used_blocks();
    const uint64_t shortfall = n > free_in_slabs ? n - free_in_slabs : 1;
    if (EvictFromLocked(ns, shortfall, tier) == 0) break;
    st = ns.AllocateBlocks(n, lease_id, slots, tier);
    if (st.ok()) return st;
  }
  // Then other namespaces' cold leaves, a slab's worth at a time, returning the slabs that
  // empty to the arena.
  for (auto& [name, other] : namespaces_) {
    if (other.get() == &ns) continue;
    for (;;) {
      memory::BlockAllocator& other_alloc = *other->allocator(tier);
      const uint64_t chunk = std::max<uint64_t>(other_alloc.blocks_per_slab(), 64);
      const uint64_t evicted = EvictFromLocked(*other, chunk, tier);
      other_alloc.ReleaseEmptySlabs();
      st = ns.AllocateBlocks(n, lease_id, slots, tier);
      if (st.ok()) return st;
      if (evicted == 0) break;
    }
  }
  const uint64_t capacity =
      tier == Tier::kGpu ? gpu_arena_->capacity_bytes() : arena_->capacity_bytes();
  return ResourceExhaustedError(
      "cannot allocate " + std::to_string(n) + " " + std::string(TierName(tier)) + " blocks of " +
      std::to_string(ns.spec().block_bytes) + " bytes in namespace " + Quote(ns.spec().name) +
      ": pool of " + FormatBytes(capacity) + " is full of leased or pinned blocks (" +
      std::to_string(ns.allocated_blocks) + " allocated, " + std::to_string(ns.pinned_blocks) +
      " pinned here; " + std::string(st.message()) + ")");
}

Result<Allocation> MemPool::AllocMem(std::string_view ns_name, uint32_t n_blocks, Tier tier,
                                     uint32_t lease_ttl_ms) {
  KVPOOL_RETURN_IF_ERROR(ValidateBlockCount("n_blocks", n_blocks, options_));
  if (tier == Tier::kNone) tier = Tier::kHost;
  if (tier == Tier::kDisk) {
    return FailedPreconditionError(
        "blocks cannot be allocated on the disk tier: allocate host blocks (the pool demotes "
        "cold blocks to its SSD tier)");
  }
  if (tier != Tier::kHost && tier != Tier::kGpu) {
    return InvalidArgumentError("tier " + std::to_string(static_cast<int>(tier)) +
                                " is not a tier");
  }
  KVPOOL_ASSIGN_OR_RETURN(const uint32_t ttl, ResolveTtl(lease_ttl_ms));
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  if (tier == Tier::kGpu && gpu_arena_ == nullptr) {
    return FailedPreconditionError(
        "tier gpu is not available on this node: it has no GPU tier (start kvpoold with "
        "--gpu-capacity on a machine with a CUDA device)");
  }
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
  const uint64_t lease_id = leases_.Create(ns->id(), clock_->NowMs() + ttl).id;
  std::vector<memory::Slot> slots;
  slots.reserve(n_blocks);
  if (Status st = AllocateWithEvictionLocked(*ns, n_blocks, lease_id, &slots, tier); !st.ok()) {
    leases_.Remove(lease_id);
    return st;
  }
  ++ns->active_leases;
  LeaseRecord& lease = *leases_.Find(lease_id);
  Allocation out;
  out.lease = LeaseFor(lease);
  out.blocks.reserve(slots.size());
  lease.allocated.reserve(slots.size());
  for (memory::Slot slot : slots) {
    out.blocks.push_back(ns->LocationOf(slot));
    lease.allocated.push_back(out.blocks.back().handle);
  }
  return out;
}

Result<uint32_t> MemPool::FreeMem(std::string_view ns_name, uint64_t lease_id,
                                  std::span<const BlockHandle> handles) {
  KVPOOL_RETURN_IF_ERROR(ValidateBlockCount("handles", handles.size(), options_));
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
  KVPOOL_RETURN_IF_ERROR(FindLeaseLocked(lease_id, ns).status());
  std::vector<memory::Slot> slots;
  KVPOOL_RETURN_IF_ERROR(ns->ResolveAll(handles, &slots));
  KVPOOL_RETURN_IF_ERROR(CheckAllocatedToLease(*ns, handles, slots, lease_id));
  for (memory::Slot slot : slots) ns->FreeBlock(slot);
  return static_cast<uint32_t>(slots.size());
}

// ---- Index -------------------------------------------------------------------------------------

Result<InsertResult> MemPool::Insert(std::string_view ns_name, PromptView prompt,
                                     uint32_t start_block, std::span<const BlockHandle> handles,
                                     uint64_t lease_id, bool keep_pinned, bool durable) {
  KVPOOL_RETURN_IF_ERROR(ValidateBlockCount("handles", handles.size(), options_));
  KVPOOL_ASSIGN_OR_RETURN(HashedPrompt hashed, HashPromptFor(ns_name, prompt, true));
  const size_t n = handles.size();
  if (static_cast<uint64_t>(start_block) + n > hashed.hashes.size()) {
    return InvalidArgumentError("the prompt has " + std::to_string(hashed.hashes.size()) +
                                " full blocks, but start_block " + std::to_string(start_block) +
                                " + " + std::to_string(n) + " handles needs " +
                                std::to_string(static_cast<uint64_t>(start_block) + n));
  }

  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
  if (ns->id() != hashed.namespace_id) {
    return AbortedError("namespace " + Quote(ns_name) + " was re-created during the request");
  }
  KVPOOL_ASSIGN_OR_RETURN(LeaseRecord * lease, FindLeaseLocked(lease_id, ns));
  std::vector<memory::Slot> slots;
  KVPOOL_RETURN_IF_ERROR(ns->ResolveAll(handles, &slots));
  KVPOOL_RETURN_IF_ERROR(CheckAllocatedToLease(*ns, handles, slots, lease->id));

  const std::span<const BlockHash> hashes(hashed.hashes.data() + start_block, n);
  const std::optional<BlockHash> parent =
      start_block > 0 ? std::optional<BlockHash>(hashed.hashes[start_block - 1]) : std::nullopt;
  for (size_t i = 0; i < n; ++i) {
    BlockMeta& m = ns->meta(slots[i]);
    const std::optional<BlockHash> p = i > 0 ? std::optional<BlockHash>(hashes[i - 1]) : parent;
    m.has_parent = p.has_value();
    m.parent = p.value_or(BlockHash{});
    m.hash = hashes[i];
  }
  if (durable) {
    if (store_ == nullptr) {
      return FailedPreconditionError(
          "durable Insert needs the SSD tier; this node has none (kvpoold --disk-capacity)");
    }
    // Written and synced before anything becomes matchable: on failure nothing is inserted.
    for (size_t i = 0; i < n; ++i) {
      KVPOOL_RETURN_IF_ERROR(WriteToDiskLocked(*ns, slots[i], /*sync=*/false));
    }
    KVPOOL_RETURN_IF_ERROR(store_->Sync());
  }
  std::vector<index::InsertOutcome> outcomes;
  ns->tree().Insert(parent, hashes, handles, &outcomes);

  InsertResult out;
  out.handles.reserve(n);
  out.duplicate.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (outcomes[i].inserted) {
      BlockMeta& m = ns->meta(slots[i]);
      m.state = BlockState::kCached;
      m.hash = hashes[i];
      m.owner_lease = 0;
      --ns->allocated_blocks;
      ++out.inserted_blocks;
    } else {
      ns->FreeBlock(slots[i]);
      ++out.duplicate_blocks;
    }
    out.handles.push_back(outcomes[i].ref);
    out.duplicate.push_back(!outcomes[i].inserted);
    if (keep_pinned) {
      ns->Pin(DecodeHandle(outcomes[i].ref).slot);
      lease->pinned.push_back(outcomes[i].ref);
    }
  }
  ns->counters().inserted_blocks += out.inserted_blocks;
  ns->counters().deduplicated_blocks += out.duplicate_blocks;
  if (event_sink_ != nullptr && out.inserted_blocks > 0) {
    // One event per run of inserted blocks of one tier (a lease's blocks share one tier).
    std::vector<BlockHash> stored;
    stored.reserve(out.inserted_blocks);
    std::optional<BlockHash> first_parent;
    Tier run_tier = Tier::kHost;
    for (size_t i = 0; i < n; ++i) {
      if (!outcomes[i].inserted) continue;
      const Tier tier = NamespaceState::TierOfSlot(slots[i]);
      if (!stored.empty() && tier != run_tier) {
        EmitLocked(PoolEvent::Kind::kStored, *ns, first_parent, std::move(stored), run_tier);
        stored.clear();
      }
      if (stored.empty()) {
        first_parent = i > 0 ? std::optional<BlockHash>(hashes[i - 1]) : parent;
        run_tier = tier;
      }
      stored.push_back(hashes[i]);
    }
    EmitLocked(PoolEvent::Kind::kStored, *ns, first_parent, std::move(stored), run_tier);
  }
  return out;
}

Result<MatchResult> MemPool::Match(std::string_view ns_name, PromptView prompt,
                                   uint32_t start_block, bool lease, uint32_t lease_ttl_ms) {
  uint32_t ttl = 0;
  if (lease) {
    KVPOOL_ASSIGN_OR_RETURN(ttl, ResolveTtl(lease_ttl_ms));
  }
  KVPOOL_ASSIGN_OR_RETURN(HashedPrompt hashed, HashPromptFor(ns_name, prompt, false));
  const size_t total = hashed.hashes.size();
  if (start_block > total) {
    return InvalidArgumentError("start_block " + std::to_string(start_block) +
                                " is past the prompt's " + std::to_string(total) + " full blocks");
  }

  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
  if (ns->id() != hashed.namespace_id) {
    return AbortedError("namespace " + Quote(ns_name) + " was re-created during the request");
  }
  std::vector<index::BlockRef> refs;
  const std::span<const BlockHash> wanted(hashed.hashes.data() + start_block, total - start_block);
  // HOST blocks first (the common case, one tree walk), then a mixed HOST/DISK run.
  size_t matched = ns->tree().Match(wanted, &refs);
  std::vector<Tier> tiers;
  tiers.reserve(matched);
  for (size_t i = 0; i < matched; ++i) {
    tiers.push_back(NamespaceState::TierOfSlot(DecodeHandle(refs[i]).slot));
  }
  if (matched < wanted.size() && ns->disk_tree().size() > 0) {
    std::vector<index::BlockRef> one;
    for (size_t i = matched; i < wanted.size(); ++i) {
      const std::span<const BlockHash> block(&wanted[i], 1);
      if (ns->tree().Match(block, &one) == 1) {
        tiers.push_back(NamespaceState::TierOfSlot(DecodeHandle(one[0]).slot));
        refs.push_back(one[0]);
      } else if (ns->disk_tree().Match(block, &one) == 1) {
        tiers.push_back(Tier::kDisk);
        refs.push_back(0);
      } else {
        break;
      }
    }
    matched = tiers.size();
  }

  MatchResult out;
  out.prompt_blocks = static_cast<uint32_t>(total);
  LeaseRecord* record = nullptr;
  if (lease && matched > 0) {
    // Blocks in memory are pinned before any promotion, which may evict to make room.
    for (size_t i = 0; i < matched; ++i) {
      if (tiers[i] != Tier::kDisk) ns->Pin(DecodeHandle(refs[i]).slot);
    }
    // The lock is released while the SSD tier is read (the namespace stays: DeleteNamespace
    // waits for promotions in flight).
    matched = PromoteRunLocked(*ns, wanted.first(matched), refs, tiers);
    // The lease, once the lock is held for good: exactly the blocks of the answer, each pinned
    // once.
    if (matched > 0) {
      record = &leases_.Create(ns->id(), clock_->NowMs() + ttl);
      ++ns->active_leases;
      record->pinned.assign(refs.begin(), refs.begin() + static_cast<ptrdiff_t>(matched));
    }
  }
  out.matched_blocks = static_cast<uint32_t>(matched);
  out.blocks.reserve(matched);
  for (size_t i = 0; i < matched; ++i) {
    if (tiers[i] == Tier::kDisk) {
      out.blocks.push_back(BlockLocation{0, Tier::kDisk, 0, ns->spec().block_bytes});
    } else {
      out.blocks.push_back(ns->LocationOf(DecodeHandle(refs[i]).slot));
    }
  }
  NamespaceStats& c = ns->counters();
  ++c.match_requests;
  c.hit_blocks += matched;
  c.miss_blocks += wanted.size() - matched;
  if (record != nullptr) out.lease = LeaseFor(*record);
  return out;
}

Result<ExistsResult> MemPool::Exists(std::string_view ns_name, PromptView prompt) {
  KVPOOL_ASSIGN_OR_RETURN(HashedPrompt hashed, HashPromptFor(ns_name, prompt, false));
  absl::MutexLock lock(&mu_);
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
  ExistsResult out;
  out.tiers.reserve(hashed.hashes.size());
  for (const BlockHash& h : hashed.hashes) {
    const Tier tier = ns->TierOf(h);
    out.tiers.push_back(tier);
    out.present_blocks += tier != Tier::kNone ? 1 : 0;
  }
  return out;
}

Result<uint32_t> MemPool::Delete(std::string_view ns_name, PromptView prompt) {
  KVPOOL_ASSIGN_OR_RETURN(HashedPrompt hashed, HashPromptFor(ns_name, prompt, false));
  if (hashed.hashes.empty()) {
    return InvalidArgumentError("the prompt has no full block to delete");
  }
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
  std::vector<index::RemovedBlock> removed;
  const size_t n = ns->tree().Delete(hashed.hashes.back(), &removed);
  for (const auto& block : removed) ns->OnRemovedFromTree(DecodeHandle(block.ref).slot);
  std::vector<BlockHash> hashes;
  hashes.reserve(removed.size());
  absl::flat_hash_set<BlockHash, BlockHashHasher> seen;
  for (const auto& block : removed) {
    hashes.push_back(block.hash);
    seen.insert(block.hash);
  }
  // The SSD tier's copies go too; blocks only there count as deleted.
  std::vector<index::RemovedBlock> on_disk;
  ns->disk_tree().Delete(hashed.hashes.back(), &on_disk);
  size_t disk_only = 0;
  for (const auto& block : on_disk) {
    if (store_ != nullptr) store_->Delete(ns->spec().name, block.hash).IgnoreError();
    if (!ns->tree().Contains(block.hash) && !seen.contains(block.hash)) {
      hashes.push_back(block.hash);
      ++disk_only;
    }
  }
  ns->counters().deleted_blocks += n + disk_only;
  EmitLocked(PoolEvent::Kind::kRemoved, *ns, std::nullopt, std::move(hashes));
  return static_cast<uint32_t>(n + disk_only);
}

// ---- Leases ------------------------------------------------------------------------------------

uint32_t MemPool::EndLeaseLocked(const LeaseRecord& lease) {
  auto it = namespaces_by_id_.find(lease.namespace_id);
  if (it == namespaces_by_id_.end()) return 0;
  NamespaceState& ns = *it->second;
  uint32_t held = 0;
  for (BlockHandle handle : lease.allocated) {
    const std::optional<memory::Slot> slot = ns.Lookup(handle);
    if (!slot) continue;  // freed or reused since: nothing of this lease is left there
    const BlockMeta& m = ns.meta(*slot);
    if (m.state == BlockState::kAllocated && m.owner_lease == lease.id) {
      ns.FreeBlock(*slot);
      ++held;
    }
  }
  for (BlockHandle handle : lease.pinned) {
    const std::optional<memory::Slot> slot = ns.Lookup(handle);
    if (!slot) continue;
    ns.Unpin(*slot);
    ++held;
  }
  --ns.active_leases;
  return held;
}

void MemPool::ExpireLeasesLocked() {
  const int64_t now = clock_->NowMs();
  if (leases_.NextDeadlineMs() > now) return;
  std::vector<LeaseRecord> expired;
  leases_.TakeExpired(now, &expired);
  for (const LeaseRecord& lease : expired) EndLeaseLocked(lease);
  expired_leases_ += expired.size();
}

size_t MemPool::ExpireLeases() {
  absl::MutexLock lock(&mu_);
  const uint64_t before = expired_leases_;
  ExpireLeasesLocked();
  return static_cast<size_t>(expired_leases_ - before);
}

Result<Lease> MemPool::Renew(uint64_t lease_id, uint32_t lease_ttl_ms) {
  KVPOOL_ASSIGN_OR_RETURN(const uint32_t ttl, ResolveTtl(lease_ttl_ms));
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(LeaseRecord * lease, FindLeaseLocked(lease_id, nullptr));
  leases_.Renew(*lease, clock_->NowMs() + ttl);
  return LeaseFor(*lease);
}

Result<uint32_t> MemPool::Release(uint64_t lease_id) {
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_RETURN_IF_ERROR(FindLeaseLocked(lease_id, nullptr).status());
  const LeaseRecord lease = leases_.Remove(lease_id);
  return EndLeaseLocked(lease);
}

Result<LeasedBlocks> MemPool::ResolveLeased(uint64_t lease_id,
                                            std::span<const BlockHandle> handles,
                                            BlockAccess access, bool checksums) {
  if (handles.empty()) return InvalidArgumentError("at least one block handle is required");
  KVPOOL_RETURN_IF_ERROR(ValidateBlockCount("handles", handles.size(), options_));
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(LeaseRecord * lease, FindLeaseLocked(lease_id, nullptr));
  NamespaceState* ns = namespaces_by_id_.at(lease->namespace_id);
  std::vector<memory::Slot> slots;
  KVPOOL_RETURN_IF_ERROR(ns->ResolveAll(handles, &slots));
  // A read may also use the blocks the lease pins (Match with a lease, Insert keep_pinned).
  absl::flat_hash_set<BlockHandle> pinned;
  if (access == BlockAccess::kRead && !lease->pinned.empty()) {
    pinned.insert(lease->pinned.begin(), lease->pinned.end());
  }
  LeasedBlocks out;
  out.ttl_left_ms = LeaseFor(*lease).ttl_ms;
  out.spec = ns->spec();
  out.blocks.reserve(slots.size());
  for (size_t i = 0; i < slots.size(); ++i) {
    const BlockMeta& m = ns->meta(slots[i]);
    const bool owned = m.state == BlockState::kAllocated && m.owner_lease == lease_id;
    const bool held = owned || (access == BlockAccess::kRead && m.pins > 0 &&
                                (m.state == BlockState::kCached ||
                                 m.state == BlockState::kDetached) &&
                                pinned.contains(handles[i]));
    if (!held) {
      return FailedPreconditionError(
          "block handle " + std::to_string(handles[i]) + " is not " +
          (access == BlockAccess::kWrite ? "an allocated block of lease "
                                         : "allocated under or pinned by lease ") +
          std::to_string(lease_id) + " (it is " + DescribeState(m.state) + ")");
    }
    out.blocks.push_back(ns->LocationOf(slots[i]));
  }
  if (checksums) {
    out.checksums.reserve(out.blocks.size());
    std::vector<uint8_t> scratch;
    for (memory::Slot slot : slots) {
      KVPOOL_ASSIGN_OR_RETURN(std::span<const uint8_t> bytes,
                              BlockBytesLocked(*ns, slot, &scratch));
      out.checksums.push_back(BlockChecksum(bytes.data(), bytes.size()));
    }
  }
  return out;
}

// ---- Admin -------------------------------------------------------------------------------------

Result<uint64_t> MemPool::Evict(std::string_view ns_name, uint64_t n_blocks) {
  if (n_blocks == 0) return InvalidArgumentError("n_blocks must be > 0");
  // With an SSD tier the demotions are written first without the lock, as for SwapOut: for
  // one namespace its first n_blocks, for all of them each namespace's share in the order the
  // eviction below takes them.
  if (!ns_name.empty()) {
    WriteAheadOfEviction(ns_name, n_blocks);
  } else {
    for (const auto& [name, share] : PlanEviction(n_blocks)) {
      WriteAheadOfEviction(name, share);
    }
  }
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  std::vector<NamespaceState*> targets;
  if (ns_name.empty()) {
    for (auto& [name, ns] : namespaces_) targets.push_back(ns.get());
  } else {
    KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
    targets.push_back(ns);
  }
  uint64_t evicted = 0;
  for (NamespaceState* ns : targets) {
    if (evicted >= n_blocks) break;
    evicted += EvictFromLocked(*ns, n_blocks - evicted);
    ns->allocator().ReleaseEmptySlabs();
    if (ns->has_gpu()) ns->allocator(Tier::kGpu)->ReleaseEmptySlabs();
  }
  return evicted;
}

std::vector<std::pair<std::string, uint64_t>> MemPool::PlanEviction(uint64_t n_blocks) {
  absl::MutexLock lock(&mu_);
  std::vector<std::pair<std::string, uint64_t>> plan;
  if (store_ == nullptr) return plan;
  uint64_t left = n_blocks;
  // The same map, in the same order, as Evict walks it (no namespace is added in between but
  // for a race, which only makes the write-ahead miss some blocks).
  for (const auto& [name, ns] : namespaces_) {
    if (left == 0) break;
    uint64_t share = 0;
    ns->tree().ForEachEvictionCandidate(static_cast<size_t>(std::min<uint64_t>(left, SIZE_MAX)),
                                        [&](const BlockHash&, index::BlockRef) {
                                          ++share;
                                          return true;
                                        });
    if (share > 0) plan.emplace_back(name, share);
    left -= std::min(left, share);
  }
  return plan;
}

PoolStats MemPool::GetStats() {
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  PoolStats s;
  s.node_id = options_.node_id;
  s.capacity_bytes = arena_->capacity_bytes();
  s.free_bytes = arena_->free_bytes();
  s.page_mode = std::string(memory::PageModeName(arena_->page_mode()));
  s.active_leases = leases_.size();
  s.expired_leases = expired_leases_;
  s.uptime_ms = static_cast<uint64_t>(clock_->NowMs() - start_ms_);
  if (store_ != nullptr) {
    s.disk_capacity_bytes = store_->capacity_bytes();
    s.disk_used_bytes = store_->used_bytes();
    s.disk_read_bytes_per_s = store_->read_bytes_per_s();
  }
  if (gpu_arena_ != nullptr) {
    s.gpu_capacity_bytes = gpu_arena_->capacity_bytes();
    s.gpu_free_bytes = gpu_arena_->free_bytes();
    s.gpu_device = device_->Describe();
  }
  for (const auto& [name, ns] : namespaces_) {
    s.namespaces.push_back(InfoOf(*ns));
    s.used_bytes += s.namespaces.back().stats.used_bytes;
    s.reserved_bytes += s.namespaces.back().stats.reserved_bytes;
  }
  std::sort(s.namespaces.begin(), s.namespaces.end(),
            [](const NamespaceInfo& a, const NamespaceInfo& b) { return a.spec.name < b.spec.name; });
  return s;
}

// ---- Events ------------------------------------------------------------------------------------

void MemPool::SetEventSink(EventSink* sink) {
  absl::MutexLock lock(&mu_);
  event_sink_ = sink;
}

void MemPool::EmitLocked(PoolEvent::Kind kind, const NamespaceState& ns,
                         std::optional<BlockHash> parent, std::vector<BlockHash> hashes,
                         Tier tier) {
  if (event_sink_ == nullptr || hashes.empty()) return;
  PoolEvent event;
  event.kind = kind;
  event.number = ++last_event_;
  event.ns = ns.spec().name;
  event.parent = parent;
  event.hashes = std::move(hashes);
  event.tier = tier;
  event_sink_->OnEvent(std::move(event));
}

Result<std::vector<CachedChain>> MemPool::CachedChains(std::string_view ns_name) {
  absl::MutexLock lock(&mu_);
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
  // The tree lists parents before children: number the blocks, link each to its children.
  struct Block {
    BlockHash hash;
    std::optional<BlockHash> parent;  // as the tree knows it
    std::vector<uint32_t> children;
  };
  std::vector<Block> blocks;
  blocks.reserve(ns->tree().size());
  absl::flat_hash_map<BlockHash, uint32_t, BlockHashHasher> by_hash;
  by_hash.reserve(ns->tree().size());
  std::vector<uint32_t> roots;  // blocks whose parent is not in this tree
  ns->tree().ForEach([&](const BlockHash& hash, const std::optional<BlockHash>& parent,
                         index::BlockRef) {
    const auto id = static_cast<uint32_t>(blocks.size());
    blocks.push_back(Block{hash, parent, {}});
    by_hash.emplace(hash, id);
    auto up = parent ? by_hash.find(*parent) : by_hash.end();
    if (up == by_hash.end()) roots.push_back(id);
    else blocks[up->second].children.push_back(id);
  });
  // Depth first: a chain follows the first child down to a leaf; the other children are
  // pushed to start chains of their own after it.
  std::vector<CachedChain> chains;
  std::vector<uint32_t> starts(roots.rbegin(), roots.rend());
  while (!starts.empty()) {
    uint32_t id = starts.back();
    starts.pop_back();
    CachedChain chain;
    chain.parent = blocks[id].parent;
    for (;;) {
      const Block& b = blocks[id];
      chain.hashes.push_back(b.hash);
      if (b.children.empty()) break;
      for (size_t i = b.children.size(); i-- > 1;) starts.push_back(b.children[i]);
      id = b.children.front();
    }
    chains.push_back(std::move(chain));
  }
  return chains;
}

PoolSnapshot MemPool::Snapshot() {
  absl::MutexLock lock(&mu_);
  PoolSnapshot out;
  out.last_event = last_event_;
  // Named references, not structured bindings: clang 14 cannot capture bindings in lambdas.
  for (const auto& named : namespaces_) {
    const std::string& name = named.first;
    const auto& ns = named.second;
    PoolSnapshot::Namespace entry;
    entry.ns = name;
    entry.hashes.reserve(ns->tree().size());
    ns->tree().ForEach([&](const BlockHash& hash, const std::optional<BlockHash>&,
                           index::BlockRef ref) {
      entry.hashes.push_back(hash);
      entry.tiers.push_back(NamespaceState::TierOfSlot(DecodeHandle(ref).slot));
    });
    ns->disk_tree().ForEach([&](const BlockHash& hash, const std::optional<BlockHash>&,
                                index::BlockRef) {
      if (ns->tree().Contains(hash)) return;
      entry.hashes.push_back(hash);
      entry.tiers.push_back(Tier::kDisk);
    });
    out.namespaces.push_back(std::move(entry));
  }
  std::sort(out.namespaces.begin(), out.namespaces.end(),
            [](const PoolSnapshot::Namespace& a, const PoolSnapshot::Namespace& b) {
              return a.ns < b.ns;
            });
  return out;
}

// ---- Tiers (the rest is in mempool_tiers.cc) ---------------------------------------------

Status MemPool::AttachGpu(std::unique_ptr<memory::DeviceRuntime> device,
                          uint64_t capacity_bytes) {
  constexpr uint64_t kPage = 4096;
  capacity_bytes = capacity_bytes / kPage * kPage;
  if (device == nullptr) return InvalidArgumentError("AttachGpu needs a device");
  if (capacity_bytes == 0) {
    return InvalidArgumentError("the GPU tier needs at least 4 KiB of device memory");
  }
  absl::MutexLock lock(&mu_);
  if (gpu_arena_ != nullptr) return FailedPreconditionError("a GPU tier is attached already");
  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<memory::DeviceBuffer> memory,
                          device->AllocateDevice(capacity_bytes));
  KVPOOL_ASSIGN_OR_RETURN(std::unique_ptr<memory::HostArena> arena,
                          memory::HostArena::Adopt(memory->data(), capacity_bytes));
  for (auto& named : namespaces_) {
    NamespaceState& ns = *named.second;
    KVPOOL_RETURN_IF_ERROR(ns.EnableGpu(arena.get(), GpuSlabBytes(ns.spec(), *arena)));
  }
  device_ = std::move(device);
  gpu_memory_ = std::move(memory);
  gpu_base_ = gpu_memory_->data();
  gpu_arena_ = std::move(arena);
  KVPOOL_LOG(INFO) << "GPU tier: " << FormatBytes(capacity_bytes) << " of " << device_->Describe();
  return Status::Ok();
}

Result<std::span<const uint8_t>> MemPool::BlockBytesLocked(const NamespaceState& ns,
                                                           memory::Slot slot,
                                                           std::vector<uint8_t>* scratch) {
  const uint64_t bytes = ns.spec().block_bytes;
  const uint64_t offset = ns.ArenaOffset(slot);
  if (!NamespaceState::IsGpuSlot(slot)) return std::span<const uint8_t>(arena_->base() + offset, bytes);
  scratch->resize(bytes);
  KVPOOL_RETURN_IF_ERROR(device_->CopySync(scratch->data(), gpu_base_ + offset, bytes));
  return std::span<const uint8_t>(*scratch);
}

Result<uint32_t> MemPool::SwapIn(std::string_view ns_name, PromptView prompt,
                                 uint32_t start_block) {
  KVPOOL_ASSIGN_OR_RETURN(HashedPrompt hashed, HashPromptFor(ns_name, prompt, false));
  if (start_block > hashed.hashes.size()) {
    return InvalidArgumentError("start_block " + std::to_string(start_block) +
                                " is past the prompt's " + std::to_string(hashed.hashes.size()) +
                                " full blocks");
  }
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
  if (ns->id() != hashed.namespace_id) {
    return AbortedError("namespace " + Quote(ns_name) + " was re-created during the request");
  }
  if (store_ == nullptr) {
    return FailedPreconditionError(
        "this node has no SSD tier (start kvpoold with --data-dir and --disk-capacity)");
  }
  // The DISK blocks from start_block (HOST and absent ones skipped), promoted as Match does:
  // read without the lock. The promotion pins what it promotes; SwapIn leaves them unleased.
  std::vector<BlockHash> disk;
  for (size_t i = start_block; i < hashed.hashes.size(); ++i) {
    if (ns->TierOf(hashed.hashes[i]) == Tier::kDisk) disk.push_back(hashed.hashes[i]);
  }
  std::vector<index::BlockRef> refs(disk.size(), 0);
  std::vector<Tier> tiers(disk.size(), Tier::kDisk);
  const size_t promoted = PromoteRunLocked(*ns, disk, refs, tiers);
  for (size_t i = 0; i < promoted; ++i) ns->Unpin(DecodeHandle(refs[i]).slot);
  return static_cast<uint32_t>(promoted);
}

}  // namespace kvpool::node
