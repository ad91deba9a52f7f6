// MemPool's DISK tier: demotion, promotion, SwapOut/SwapIn, recovery and the shutdown demotion
// (docs/storage.md). Every helper runs under the pool's lock. Demotions do their SSD I/O under
// it too, which keeps the index and the store in step at the cost of serialising tier moves;
// promotion (PromoteRunLocked: Match, SwapIn) reads without it, and the write-behind
// (mempool_write_behind.cc) writes ahead of eviction without it, so that most demotions find
// their blocks written already.
#include <algorithm>
#include <optional>
#include <string>
#include <utility>

#include "common/logging.h"
#include "common/quote.h"
#include "node/block_handle.h"
#include "node/mempool.h"
#include "storage/block_store.h"

namespace kvpool::node {
namespace {

Status NoStore() {
  return FailedPreconditionError(
      "this node has no SSD tier (start kvpoold with --data-dir and --disk-capacity)");
}

std::optional<BlockHash> ParentOf(const BlockMeta& m) {
  return m.has_parent ? std::optional<BlockHash>(m.parent) : std::nullopt;
}

}  // namespace

void MemPool::DropFromDiskLocked(NamespaceState& ns, std::vector<index::RemovedBlock>& removed,
                                 StoreCopy copies) {
  std::vector<BlockHash> gone;
  for (const auto& block : removed) {
    if (copies == StoreCopy::kDelete) {
      store_->Delete(ns.spec().name, block.hash).IgnoreError();
    } else if (copies == StoreCopy::kMarkForDeletion) {
      store_->MarkForDeletion(ns.spec().name, block.hash, ns.spec().block_bytes);
    }
    if (!ns.tree().Contains(block.hash)) gone.push_back(block.hash);
  }
  ns.counters().evicted_blocks += gone.size();
  EmitLocked(PoolEvent::Kind::kRemoved, ns, std::nullopt, std::move(gone));
}

Status MemPool::MakeDiskRoomLocked(NamespaceState& prefer, uint64_t bytes, bool defer_deletes) {
  for (;;) {
    const uint64_t used = store_->used_bytes() + write_behind_reserved_bytes_.load();
    if (used + bytes <= store_->capacity_bytes()) break;
    const uint64_t over = used + bytes - store_->capacity_bytes();
    std::vector<index::RemovedBlock> removed;
    NamespaceState* victim = nullptr;
    // The SSD tier's own LRU: this namespace's coldest DISK leaves first, then others'.
    const uint64_t want = std::max<uint64_t>(1, over / prefer.spec().block_bytes);
    if (prefer.disk_tree().Evict(want, &removed) > 0) {
      victim = &prefer;
    } else {
      for (auto& [name, other] : namespaces_) {
        const uint64_t n = std::max<uint64_t>(1, over / other->spec().block_bytes);
        if (other->disk_tree().Evict(n, &removed) > 0) {
          victim = other.get();
          break;
        }
      }
    }
    if (victim == nullptr) {
      return ResourceExhaustedError("the SSD tier is full (" +
                                    std::to_string(store_->used_bytes()) + " of " +
                                    std::to_string(store_->capacity_bytes()) +
                                    " bytes) and holds no block it may drop for " +
                                    std::to_string(bytes) + " more bytes");
    }
    DropFromDiskLocked(*victim, removed,
                       defer_deletes ? StoreCopy::kMarkForDeletion : StoreCopy::kDelete);
  }
  return Status::Ok();
}

Status MemPool::WriteToDiskLocked(NamespaceState& ns, memory::Slot slot, bool sync) {
  const BlockMeta& m = ns.meta(slot);
  if (ns.disk_tree().Contains(m.hash)) return sync ? store_->Sync() : Status::Ok();
  const uint64_t bytes = ns.spec().block_bytes;
  // With the write-behind on, its next call deletes what making room drops: the RocksDB
  // deletes leave the lock (the Put below cannot).
  KVPOOL_RETURN_IF_ERROR(
      MakeDiskRoomLocked(ns, bytes, /*defer_deletes=*/options_.write_behind_bytes > 0));
  std::vector<uint8_t> scratch;  // a GPU block's bytes, copied to the host
  KVPOOL_ASSIGN_OR_RETURN(std::span<const uint8_t> data, BlockBytesLocked(ns, slot, &scratch));
  KVPOOL_RETURN_IF_ERROR(store_->Put(ns.spec().name, m.hash, ParentOf(m), data, sync));
  ns.AddToDiskTree(m.hash, ParentOf(m));
  return Status::Ok();
}

void MemPool::AwaitNoTierIoLocked() {
  // A CondVar loop rather than an absl::Condition, whose evaluation inside abseil TSan cannot
  // see as under the lock.
  while (write_behind_in_flight_ > 0 || promotions_in_flight_ > 0) tier_io_done_.Wait(&mu_);
}

size_t MemPool::PromoteRunLocked(NamespaceState& ns, std::span<const BlockHash> wanted,
                                 std::vector<index::BlockRef>& refs, std::vector<Tier>& tiers) {
  size_t end = wanted.size();
  // Phase 1, under the lock: a host slot for each DISK block, in run order, each DISK entry
  // pinned so that the SSD tier's LRU keeps it while it is read. Making room may evict (never
  // the run's HOST blocks: the caller pinned them).
  struct Promotion {
    size_t index = 0;
    memory::Slot slot = 0;
    uint8_t* data = nullptr;
    Result<std::optional<BlockHash>> parent = std::optional<BlockHash>();
  };
  std::vector<Promotion> promotions;
  for (size_t i = 0; i < wanted.size(); ++i) {
    if (tiers[i] != Tier::kDisk) continue;
    ns.disk_tree().Pin(wanted[i]);
    std::vector<memory::Slot> slots;
    const Status allocated = AllocateWithEvictionLocked(ns, 1, /*lease_id=*/0, &slots);
    if (!allocated.ok()) {
      ns.disk_tree().Unpin(wanted[i]);
      KVPOOL_LOG(DEBUG) << "match of " << Quote(ns.spec().name) << " stops at DISK block "
                        << wanted[i].ToHex() << ": " << allocated;
      end = i;
      break;
    }
    promotions.push_back(
        Promotion{i, slots[0], arena_->base() + ns.ArenaOffset(slots[0]), std::nullopt});
  }
  if (!promotions.empty()) {
    // Phase 2, without the lock: the reads (read ahead in parallel when there are several).
    // Until the lock is back, the slots are allocated to no lease (nothing frees or evicts
    // them) and the DISK entries pinned.
    std::vector<BlockHash> hashes;
    for (const Promotion& p : promotions) hashes.push_back(wanted[p.index]);
    storage::BlockStore* store = store_.get();
    const std::string name = ns.spec().name;
    const uint64_t block_bytes = ns.spec().block_bytes;
    ++promotions_in_flight_;
    mu_.Unlock();
    {
      std::optional<storage::ReadRun> run;
      if (hashes.size() > 1) run.emplace(store, name, hashes);
      for (Promotion& p : promotions) {
        p.parent = store->Get(name, wanted[p.index], std::span(p.data, block_bytes));
        if (!p.parent.ok()) break;  // the run ends here: read no further
      }
    }
    mu_.Lock();
    if (--promotions_in_flight_ == 0) tier_io_done_.SignalAll();

    // Phase 3, under the lock: each block read joins the HOST tree, unless the run ended.
    for (const Promotion& p : promotions) {
      const BlockHash& hash = wanted[p.index];
      ns.disk_tree().Unpin(hash);
      const bool ended = p.index >= end;
      if (ended || !p.parent.ok() || !ns.disk_tree().Contains(hash)) {
        ns.FreeBlock(p.slot);
        if (ended) continue;
        end = p.index;
        if (p.parent.ok()) continue;  // deleted while being read
        if (p.parent.status().code() != StatusCode::kDataLoss) {
          KVPOOL_LOG(DEBUG) << "match of " << Quote(name) << " stops at DISK block "
                            << hash.ToHex() << ": " << p.parent.status();
          continue;
        }
        KVPOOL_LOG(ERROR) << "dropping block " << hash.ToHex() << " of namespace " << Quote(name)
                          << " and its DISK descendants: " << p.parent.status();
        std::vector<index::RemovedBlock> removed;
        ns.disk_tree().Delete(hash, &removed);
        DropFromDiskLocked(ns, removed, StoreCopy::kDelete);
        continue;
      }
      if (const std::optional<index::BlockRef> ref = ns.tree().Find(hash)) {
        // Promoted or inserted by another call meanwhile: that copy serves.
        ns.FreeBlock(p.slot);
        const memory::Slot theirs = DecodeHandle(*ref).slot;
        refs[p.index] = *ref;
        tiers[p.index] = NamespaceState::TierOfSlot(theirs);
        ns.Pin(theirs);
        continue;
      }
      ns.MarkCached(p.slot, hash, *p.parent);
      const index::BlockRef ref = ns.HandleOf(p.slot);
      std::vector<index::InsertOutcome> outcome;
      ns.tree().Insert(*p.parent, std::span(&hash, 1), std::span(&ref, 1), &outcome);
      ++ns.counters().promoted_blocks;
      EmitLocked(PoolEvent::Kind::kTierChanged, ns, std::nullopt, {hash}, Tier::kHost);
      refs[p.index] = ref;
      tiers[p.index] = Tier::kHost;
      ns.Pin(p.slot);
    }
  }
  // Blocks past the end are not part of the answer: unpin those the caller pinned.
  for (size_t j = end; j < wanted.size(); ++j) {
    if (tiers[j] != Tier::kDisk) ns.Unpin(DecodeHandle(refs[j]).slot);
  }
  return end;
}

Result<RecoveryStats> MemPool::AttachStore(std::unique_ptr<storage::BlockStore> store) {
  if (store == nullptr) return InvalidArgumentError("AttachStore: store must not be null");
  {
    absl::MutexLock lock(&mu_);
    if (store_ != nullptr) return FailedPreconditionError("an SSD tier is attached already");
  }
  RecoveryStats stats;
  KVPOOL_ASSIGN_OR_RETURN(std::vector<NamespaceSpec> specs, store->ListNamespaces());
  for (const NamespaceSpec& spec : specs) {
    Result<std::pair<NamespaceInfo, bool>> created = CreateNamespace(spec);
    if (!created.ok()) {
      return FailedPreconditionError("the SSD tier at " + Quote(store->path()) +
                                     " holds namespace " + Quote(spec.name) +
                                     " that this node cannot take: " +
                                     created.status().message());
    }
    ++stats.namespaces;
  }
  absl::MutexLock lock(&mu_);
  store_ = std::move(store);
  std::vector<std::pair<std::string, BlockHash>> orphans;
  const index::BlockRef none = 0;
  std::vector<index::InsertOutcome> outcome;
  // One scan rebuilds the index and counts the stored bytes (a store opened with
  // count_on_open false has not counted them yet).
  KVPOOL_RETURN_IF_ERROR(store_->RecoveryScan([&](const storage::StoredBlockInfo& b) {
    mu_.AssertHeld();  // Scan calls back on this thread, under the lock taken above.
    auto it = namespaces_.find(b.ns);
    if (it == namespaces_.end() || it->second->spec().block_bytes != b.size_bytes) {
      orphans.emplace_back(b.ns, b.hash);
      return;
    }
    it->second->disk_tree().Insert(b.parent, std::span(&b.hash, 1), std::span(&none, 1),
                                   &outcome);
    ++stats.blocks;
  }));
  for (const auto& [ns, hash] : orphans) store_->Delete(ns, hash).IgnoreError();
  stats.dropped_blocks = orphans.size();
  stats.bytes = store_->used_bytes();
  return stats;
}

bool MemPool::has_store() {
  absl::MutexLock lock(&mu_);
  return store_ != nullptr;
}

Result<SwapOutResult> MemPool::SwapOut(std::string_view ns_name, uint64_t n_blocks) {
  if (n_blocks == 0) return InvalidArgumentError("n_blocks must be > 0");
  // The writes first, without the pool's lock; the eviction below then mostly drops host
  // copies. Blocks that became colder meanwhile, or whose write failed, are written by it.
  WriteAheadOfEviction(ns_name, n_blocks);
  absl::MutexLock lock(&mu_);
  ExpireLeasesLocked();
  KVPOOL_ASSIGN_OR_RETURN(NamespaceState * ns, FindNamespaceLocked(ns_name));
  if (store_ == nullptr) return NoStore();
  // Counted by the demotions, not by evicted_blocks: that also counts DISK blocks the tier
  // dropped to make room, which are not blocks this call failed to demote.
  const uint64_t demoted_before = ns->counters().demoted_blocks;
  const uint64_t moved = EvictFromLocked(*ns, n_blocks);
  ns->allocator().ReleaseEmptySlabs();
  SwapOutResult out;
  out.demoted_blocks = std::min(moved, ns->counters().demoted_blocks - demoted_before);
  out.dropped_blocks = moved - out.demoted_blocks;
  return out;
}

Result<uint64_t> MemPool::DemoteAll() {
  absl::MutexLock lock(&mu_);
  if (store_ == nullptr) return NoStore();
  AwaitNoTierIoLocked();
  uint64_t written = 0;
  Status first_error;
  for (auto& [name, ns] : namespaces_) {
    std::vector<memory::Slot> slots;
    slots.reserve(ns->tree().size());
    // Parents before children, so the SSD tier's LRU drops children first if it must.
    ns->tree().ForEach([&](const BlockHash&, const std::optional<BlockHash>&,
                           index::BlockRef ref) { slots.push_back(DecodeHandle(ref).slot); });
    for (memory::Slot slot : slots) {
      if (ns->disk_tree().Contains(ns->meta(slot).hash)) continue;
      const Status st = WriteToDiskLocked(*ns, slot, /*sync=*/false);
      if (!st.ok()) {
        if (first_error.ok()) first_error = st;
        continue;
      }
      ++written;
    }
  }
  KVPOOL_RETURN_IF_ERROR(store_->Sync());
  if (!first_error.ok() && written == 0) return first_error;
  if (!first_error.ok()) {
    KVPOOL_LOG(WARNING) << "shutdown demotion wrote " << written
                        << " blocks; some could not be written: " << first_error;
  }
  return written;
}

}  // namespace kvpool::node
