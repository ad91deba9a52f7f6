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

// One block of a write-behind batch.
struct Job {
  uint32_t namespace_id = 0;
  memory::Slot slot = 0;
  BlockHash hash;
  std::optional<BlockHash> parent;
  const uint8_t* data = nullptr;
  uint64_t bytes = 0;
  std::string ns;  // the namespace's name, for the store
  Status written;
};

}  // namespace


Result<uint64_t> MemPool::WriteBehind(uint64_t max_blocks) {
  std::vector<Job> jobs;
  storage::BlockStore* store = nullptr;
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
    const uint64_t window_bytes = std::min(
        {options_.write_behind_bytes, capacity / 8, store_->capacity_bytes() / 4});
    if (free >= window_bytes) return 0;  // eviction is not near

    uint64_t batch_bytes = 0;
    for (auto& [name, ns_ptr] : namespaces_) {
      NamespaceState& ns = *ns_ptr;
      const uint64_t block_bytes = ns.spec().block_bytes;
      if (batch_bytes + block_bytes > kMaxBatchBytes && !jobs.empty()) break;
      if (jobs.size() >= max_blocks) break;
      const size_t first = jobs.size();
      const size_t quarter = std::max<size_t>(1, ns.tree().size() / 4);
      const size_t window = std::max<uint64_t>(1, window_bytes / block_bytes);
      ns.tree().ForEachEvictionCandidate(window, [&](const BlockHash& hash, index::BlockRef ref) {
        mu_.AssertHeld();  // called back right here, under the lock taken above
        const memory::Slot slot = DecodeHandle(ref).slot;
        // GPU blocks go down to HOST first; blocks on the tier need nothing.
        if (NamespaceState::IsGpuSlot(slot) || ns.disk_tree().Contains(hash)) return true;
        const BlockMeta& m = ns.meta(slot);
        Job job;
        job.namespace_id = ns.id();
        job.slot = slot;
        job.hash = hash;
        if (m.has_parent) job.parent = m.parent;
        job.data = arena_->base() + ns.ArenaOffset(slot);
        job.bytes = block_bytes;
        job.ns = ns.spec().name;
        jobs.push_back(std::move(job));
        batch_bytes += block_bytes;
        return jobs.size() - first < quarter && jobs.size() < max_blocks &&
               batch_bytes + block_bytes <= kMaxBatchBytes;
      });
      if (jobs.size() == first) continue;
      // Room on the tier now (its own LRU drops what it must), so that the writes fit.
      const uint64_t ns_bytes = (jobs.size() - first) * block_bytes;
      if (Status room = MakeDiskRoomLocked(ns, ns_bytes); !room.ok()) {
        batch_bytes -= ns_bytes;
        jobs.resize(first);
        if (jobs.empty()) return room;
        break;
      }
      write_behind_reserved_bytes_ += ns_bytes;
      for (size_t i = first; i < jobs.size(); ++i) ns.BeginWriteBehind(jobs[i].slot);
    }
    if (jobs.empty()) return 0;
    write_behind_in_flight_ = jobs.size();
    store = store_.get();
  }

  // The writes, without the pool's lock. Each block's slot stays allocated meanwhile (no tree
  // pin: that would move it out of its place in the eviction order), and a cached block's
  // bytes never change.
  for (Job& job : jobs) {
    job.written = store->Put(job.ns, job.hash, job.parent, std::span(job.data, job.bytes),
                             /*sync=*/false);
    write_behind_reserved_bytes_ -= job.bytes;
  }

  absl::MutexLock lock(&mu_);
  uint64_t written = 0;
  Status first_error;
  for (Job& job : jobs) {
    // DeleteNamespace waits for this batch, so the namespace is still here.
    NamespaceState& ns = *namespaces_by_id_.at(job.namespace_id);
    const std::optional<index::BlockRef> ref = ns.tree().Find(job.hash);
    const bool still_cached = ref.has_value() && DecodeHandle(*ref).slot == job.slot;
    // Host eviction took it meanwhile and announced it as DISK, counting on this write.
    const bool demoted = ns.meta(job.slot).write_behind == WriteBehindState::kWritingDemoted;
    if (!job.written.ok()) {
      if (first_error.ok()) first_error = job.written;
      if (demoted && !ns.disk_tree().Contains(job.hash)) {
        ++ns.counters().evicted_blocks;
        EmitLocked(PoolEvent::Kind::kRemoved, ns, std::nullopt, {job.hash});
      }
    } else if (ns.disk_tree().Contains(job.hash)) {
      // A durable Insert wrote it meanwhile: the same bytes.
    } else if (still_cached || demoted) {
      ns.AddToDiskTree(job.hash, job.parent);
      ++ns.counters().written_behind_blocks;
      ++written;
    } else {
      // Deleted while being written: it must not come back from the tier after a restart.
      store_->Delete(job.ns, job.hash).IgnoreError();
    }
    ns.EndWriteBehind(job.slot);  // frees it if it left the tree meanwhile
  }
  write_behind_in_flight_ = 0;
  tier_io_done_.SignalAll();
  if (!first_error.ok()) {
    KVPOOL_LOG(WARNING) << "write-behind wrote " << written << " of " << jobs.size()
                        << " blocks: " << first_error;
    if (written == 0) return first_error;
  }
  return written;
}

}  // namespace kvpool::node
