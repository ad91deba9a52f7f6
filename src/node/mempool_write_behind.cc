// MemPool's write-behind (docs/storage.md "Write-behind"): the blocks host eviction would take
// next are written to the SSD tier ahead of time, outside the pool's lock, so that the eviction
// itself only drops them. Three phases: pick the blocks and hold their slots under the lock,
// write without it, record under it again. Eviction may take a block mid-write: it counts it
// as DISK and leaves the rest to the third phase.
#include <algorithm>
#include <string>
#include <vector>

#include "common/logging.h"
#include "common/quote.h"
#include "node/block_handle.h"
#include "node/mempool.h"
#include "storage/block_store.h"

namespace kvpool::node {
namespace {

// Most bytes one call writes: bounds how long its blocks stay pinned (eviction passes over
// them meanwhile) and how long DeleteNamespace or DemoteAll may wait for it.
constexpr uint64_t kMaxBatchBytes = 32ull << 20;

// Deletes what was dropped from the tier to make room but only marked (MakeDiskRoomLocked with
// defer_deletes), without the pool's lock; a failure is logged and the marks stay for the next.
void SweepMarked(storage::BlockStore& store) {
  if (Result<uint64_t> swept = store.DeleteMarked(); !swept.ok()) {
    KVPOOL_LOG(WARNING) << "SSD tier: dropped blocks not deleted yet: " << swept.status();
  }
}

}  // namespace

// One block of a write-behind batch.
struct MemPool::WriteJob {
  uint32_t namespace_id = 0;
  memory::Slot slot = 0;
  BlockHash hash;
  std::optional<BlockHash> parent;
  const uint8_t* data = nullptr;
  uint64_t bytes = 0;
  std::string ns;  // the namespace's name, for the store
  Status written;
};

Status MemPool::PickWriteJobsLocked(NamespaceState& ns, size_t window_blocks, size_t max_jobs,
                                    uint64_t* batch_bytes, std::vector<WriteJob>& jobs) {
  const uint64_t block_bytes = ns.spec().block_bytes;
  const size_t first = jobs.size();
  if (max_jobs == 0 || (*batch_bytes + block_bytes > kMaxBatchBytes && !jobs.empty())) {
    return Status();
  }
  ns.tree().ForEachEvictionCandidate(
      window_blocks, [&](const BlockHash& hash, index::BlockRef ref) {
        mu_.AssertHeld();  // called back right here, under the caller's lock
        const memory::Slot slot = DecodeHandle(ref).slot;
        // GPU blocks go down to HOST first; blocks on the tier, or being written, need nothing.
        if (NamespaceState::IsGpuSlot(slot) || ns.disk_tree().Contains(hash)) return true;
        const BlockMeta& m = ns.meta(slot);
        if (m.write_behind != WriteBehindState::kNone) return true;
        WriteJob job;
        job.namespace_id = ns.id();
        job.slot = slot;
        job.hash = hash;
        if (m.has_parent) job.parent = m.parent;
        job.data = arena_->base() + ns.ArenaOffset(slot);
        job.bytes = block_bytes;
        job.ns = ns.spec().name;
        jobs.push_back(std::move(job));
        *batch_bytes += block_bytes;
        return jobs.size() - first < max_jobs && *batch_bytes + block_bytes <= kMaxBatchBytes;
      });
  if (jobs.size() == first) return Status();
  // Room on the tier now (its own LRU drops what it must), so that the writes fit.
  const uint64_t ns_bytes = (jobs.size() - first) * block_bytes;
  // Its deletes wait for WriteJobs, without the lock.
  if (Status room = MakeDiskRoomLocked(ns, ns_bytes, /*defer_deletes=*/true); !room.ok()) {
    *batch_bytes -= ns_bytes;
    jobs.resize(first);
    return room;
  }
  write_behind_reserved_bytes_ += ns_bytes;
  for (size_t i = first; i < jobs.size(); ++i) ns.BeginWriteBehind(jobs[i].slot);
  return Status();
}

storage::BlockStore* MemPool::BeginWriteBatchLocked(const std::vector<WriteJob>& jobs) {
  write_behind_in_flight_ = jobs.size();
  return store_.get();
}

void MemPool::WriteJobs(storage::BlockStore& store, std::vector<WriteJob>& jobs) {
  // First the deletes of what PickWriteJobsLocked dropped to make room (already out of the
  // store's counts, so the Puts below fit either way).
  SweepMarked(store);
  // Each block's slot stays allocated meanwhile (no tree pin: that would move it out of its
  // place in the eviction order), and a cached block's bytes never change.
  for (WriteJob& job : jobs) {
    job.written = store.Put(job.ns, job.hash, job.parent, std::span(job.data, job.bytes),
                            /*sync=*/false);
    write_behind_reserved_bytes_ -= job.bytes;
  }
}

uint64_t MemPool::FinishWriteJobsLocked(std::vector<WriteJob>& jobs, bool count_as_written_behind,
                                        Status* first_error) {
  uint64_t written = 0;
  for (WriteJob& job : jobs) {
    // DeleteNamespace waits for this batch, so the namespace is still here.
    NamespaceState& ns = *namespaces_by_id_.at(job.namespace_id);
    const std::optional<index::BlockRef> ref = ns.tree().Find(job.hash);
    const bool still_cached = ref.has_value() && DecodeHandle(*ref).slot == job.slot;
    // Host eviction took it meanwhile and announced it as DISK, counting on this write.
    const bool demoted = ns.meta(job.slot).write_behind == WriteBehindState::kWritingDemoted;
    if (!job.written.ok()) {
      if (first_error->ok()) *first_error = job.written;
      if (demoted && !ns.disk_tree().Contains(job.hash)) {
        ++ns.counters().evicted_blocks;
        EmitLocked(PoolEvent::Kind::kRemoved, ns, std::nullopt, {job.hash});
      }
    } else if (ns.disk_tree().Contains(job.hash)) {
      // A durable Insert wrote it meanwhile: the same bytes.
    } else if (still_cached || demoted) {
      ns.AddToDiskTree(job.hash, job.parent);
      if (count_as_written_behind) ++ns.counters().written_behind_blocks;
      ++written;
    } else {
      // Deleted while being written: it must not come back from the tier after a restart.
      store_->Delete(job.ns, job.hash).IgnoreError();
    }
    ns.EndWriteBehind(job.slot);  // frees it if it left the tree meanwhile
  }
  write_behind_in_flight_ = 0;
  tier_io_done_.SignalAll();
  return written;
}

Result<uint64_t> MemPool::WriteBehind(uint64_t max_blocks) {
  // First what demotions under the lock (WriteToDiskLocked) dropped to make room, also when
  // there is nothing to write. The store, once attached, lives as long as the pool.
  storage::BlockStore* store = nullptr;
  {
    absl::MutexLock lock(&mu_);
    store = store_.get();
  }
  if (store != nullptr) SweepMarked(*store);
  std::vector<WriteJob> jobs;
  {
    absl::MutexLock lock(&mu_);
    if (store_ == nullptr || options_.write_behind_bytes == 0 || max_blocks == 0) return 0;
    if (write_behind_in_flight_ > 0) return 0;  // another call is writing
    uint64_t used = 0;
    for (const auto& [name, ns] : namespaces_) {
      used += ns->allocator().used_blocks() * ns->spec().block_bytes;
    }
    const uint64_t capacity = arena_->capacity_bytes();
    const uint64_t free = capacity - std::min(capacity, used);
    // The window: at most an eighth of host memory (more is not "next" any more) and a quarter
    // of the SSD tier (so that making room for a batch never drops what an earlier batch wrote
    // ahead, which would then be written again).
    const uint64_t window_bytes =
        std::min({options_.write_behind_bytes, capacity / 8, store_->capacity_bytes() / 4});
    if (free >= window_bytes) return 0;  // eviction is not near

    uint64_t batch_bytes = 0;
    for (auto& [name, ns_ptr] : namespaces_) {
      NamespaceState& ns = *ns_ptr;
      if (jobs.size() >= max_blocks) break;
      const size_t quarter = std::max<size_t>(1, ns.tree().size() / 4);
      const size_t window = std::max<uint64_t>(1, window_bytes / ns.spec().block_bytes);
      Status room = PickWriteJobsLocked(
          ns, window, std::min<uint64_t>(quarter, max_blocks - jobs.size()), &batch_bytes, jobs);
      if (!room.ok()) {
        if (jobs.empty()) return room;
        break;
      }
    }
    if (jobs.empty()) return 0;
    store = BeginWriteBatchLocked(jobs);
  }

  WriteJobs(*store, jobs);

  absl::MutexLock lock(&mu_);
  Status first_error;
  const uint64_t written =
      FinishWriteJobsLocked(jobs, /*count_as_written_behind=*/true, &first_error);
  if (!first_error.ok()) {
    KVPOOL_LOG(WARNING) << "write-behind wrote " << written << " of " << jobs.size()
                        << " blocks: " << first_error;
    if (written == 0) return first_error;
  }
  return written;
}

void MemPool::WriteAheadOfEviction(std::string_view ns_name, uint64_t n_blocks) {
  // Batches until the window holds no block the tier lacks. Each batch picks from the same
  // window: the blocks written by the batch before are still first in it, and skipped. At most
  // n_blocks writes in all, also when making room on a small tier drops earlier batches.
  const size_t window = static_cast<size_t>(std::min<uint64_t>(n_blocks, SIZE_MAX));
  size_t remaining = window;
  while (remaining > 0) {
    std::vector<WriteJob> jobs;
    storage::BlockStore* store = nullptr;
    {
      absl::MutexLock lock(&mu_);
      // One batch at a time: wait for the write-behind thread's (or another SwapOut's).
      while (write_behind_in_flight_ > 0) tier_io_done_.Wait(&mu_);
      Result<NamespaceState*> ns = FindNamespaceLocked(ns_name);
      if (!ns.ok() || store_ == nullptr) return;  // SwapOut reports it
      uint64_t batch_bytes = 0;
      if (!PickWriteJobsLocked(**ns, window, remaining, &batch_bytes, jobs).ok() || jobs.empty()) {
        return;
      }
      store = BeginWriteBatchLocked(jobs);
    }
    remaining -= jobs.size();
    WriteJobs(*store, jobs);
    absl::MutexLock lock(&mu_);
    Status first_error;
    FinishWriteJobsLocked(jobs, /*count_as_written_behind=*/false, &first_error);
    if (!first_error.ok()) return;  // the eviction writes the rest, or reports why it cannot
  }
}

}  // namespace kvpool::node
