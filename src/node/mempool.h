// MemPool: the memory, index and lease API of one kvpoold node (DESIGN.md "MemPool API").
#pragma once

#include <atomic>
#include <cstdint>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "kvpool/status.h"
#include "kvpool/types.h"
#include "memory/device.h"
#include "memory/host_arena.h"
#include "node/lease_table.h"
#include "node/namespace_state.h"
#include "node/options.h"

namespace kvpool::storage {
class BlockStore;
class ReadRun;
}  // namespace kvpool::storage

namespace kvpool::node {

/// A change to the cached blocks of one namespace (the node side of the scheduler's KV events;
/// the daemon converts). Plain value type.
struct PoolEvent {
  enum class Kind : uint8_t {
    kStored = 0,   ///< `hashes` became matchable (newly inserted blocks only, no duplicates)
    kRemoved = 1,  ///< `hashes` are no longer matchable (evicted, deleted, namespace deleted)
    kTierChanged = 2,  ///< `hashes` moved to `tier` (demoted to DISK, promoted to HOST)
  };
  Kind kind = Kind::kStored;
  /// 1, 2, 3, ... in the order the pool changed; PoolSnapshot::last_event refers to it.
  uint64_t number = 0;
  std::string ns;
  /// kStored: the hash before hashes[0] in the prompt, nullopt for the prompt's first block.
  std::optional<BlockHash> parent;
  std::vector<BlockHash> hashes;
  /// kStored and kTierChanged: where the blocks live now.
  Tier tier = Tier::kHost;
};

/// Receives the pool's events. OnEvent is called with the pool's lock held, in event order: it
/// must be quick (queue the event) and must not call back into the MemPool.
class EventSink {
 public:
  virtual ~EventSink() = default;
  virtual void OnEvent(PoolEvent event) = 0;
};

/// Every cached block of the pool, consistent with the event stream: it reflects exactly the
/// events numbered <= last_event.
struct PoolSnapshot {
  struct Namespace {
    std::string ns;
    /// Cached blocks, parents before children; `tiers` is parallel to `hashes`.
    std::vector<BlockHash> hashes;
    std::vector<Tier> tiers;
  };
  uint64_t last_event = 0;
  std::vector<Namespace> namespaces;
};

/// What a caller wants to do with leased blocks (MemPool::ResolveLeased).
enum class BlockAccess : uint8_t {
  kRead = 0,   ///< read the bytes: the block is allocated under the lease or pinned by it
  kWrite = 1,  ///< write the bytes: the block is allocated under the lease and not yet inserted
};

/// Blocks a lease holds, resolved to their locations (MemPool::ResolveLeased).
struct LeasedBlocks {
  /// The lease's namespace.
  NamespaceSpec spec;
  /// One per handle, in request order.
  std::vector<BlockLocation> blocks;
  /// BlockChecksum of each block's current bytes when asked for; empty otherwise.
  std::vector<uint64_t> checksums;
  /// Time the lease had left when resolved (ms): a transfer into its blocks must end by then,
  /// or it could write blocks the lease no longer holds.
  uint32_t ttl_left_ms = 0;
};

/// What AttachStore found in the SSD tier.
struct RecoveryStats {
  uint64_t namespaces = 0;
  /// DISK blocks now in the index.
  uint64_t blocks = 0;
  /// Bytes the SSD tier holds after the recovery (orphans deleted).
  uint64_t bytes = 0;
  /// Stored blocks dropped: of no stored namespace, or of another size than their namespace's.
  uint64_t dropped_blocks = 0;
};

/// What SwapOut did.
struct SwapOutResult {
  uint64_t demoted_blocks = 0;
  /// Blocks that left HOST but could not be written to the SSD tier (now absent).
  uint64_t dropped_blocks = 0;
};

/// A run of cached memory-tier (GPU or HOST) blocks, for copying them to another node (a
/// drain's hand-off): `hashes` are consecutive blocks of one prompt, each the parent of the
/// next; `parent` is the block before hashes[0], nullopt when hashes[0] is a prompt's first.
struct CachedChain {
  std::optional<BlockHash> parent;
  std::vector<BlockHash> hashes;
};

/// The pool of one node: host memory as fixed-size KV blocks per namespace, a prompt tree per
/// namespace, and leases; with an SSD tier attached (AttachStore), a DISK tier below HOST
/// (docs/storage.md).
///
/// Tiers: a block is HOST when it is in pool memory and DISK when only the SSD tier has it.
/// The SSD tier keeps its copy of a promoted block until its own LRU drops it, so moving a
/// block down again writes nothing. Host memory under pressure demotes its coldest unleased
/// HOST leaves (no HOST child: deepest first) instead of dropping them; it drops them only when
/// there is no SSD tier or it cannot take them. The SSD tier drops its own least recently used
/// leaves when full. GPU memory under pressure moves its coldest unleased GPU blocks down to
/// HOST (GPU -> HOST -> DISK; AttachGpu). Match with a lease promotes the DISK blocks of the matched run to HOST
/// before answering (a DISK block is never handed out as readable); without a lease it reports
/// them as DISK with handle 0. Prefix property: each tier alone has no holes below a prompt's
/// first block it holds; demotion goes deepest first, so along a prompt HOST blocks come before
/// DISK ones, except after a promotion that starts mid-prompt (Match with start_block > 0,
/// SwapIn) or an Insert under a DISK parent; Exists and the KV events always name each block's
/// exact tier.
///
/// Every method validates its arguments completely before changing anything, so a bad request
/// loses nothing; errors are canonical codes whose message names the bad value:
///   INVALID_ARGUMENT     malformed input (names, counts, token lists, handles of another
///                        namespace, duplicate handles, start past the prompt, more blocks in
///                        one request than max_request_blocks)
///   NOT_FOUND            unknown namespace, unknown lease, stale block handle
///   ALREADY_EXISTS       CreateNamespace with parameters that differ from the existing ones
///   FAILED_PRECONDITION  a handle in the wrong state (not allocated / not held by the lease),
///                        a lease of another namespace or one that expired (the last 4096
///                        expiries are remembered; older ones read as NOT_FOUND), a namespace
///                        still in use
///   RESOURCE_EXHAUSTED   no memory even after evicting cold unleased blocks; too many namespaces
///                        a namespace at its quota (MemPoolOptions::namespace_quota_bytes)
///
/// Prompts (PromptView) are token ids or chained hashes from the prompt's first block. Tokens
/// are hashed before the lock is taken.
///
/// Thread-safe: one mutex guards all state; hashing happens outside it.
class MemPool {
 public:
  /// Maps the arena. INVALID_ARGUMENT for bad options; RESOURCE_EXHAUSTED if memory can't be
  /// mapped. `clock` must outlive the pool (SteadyClock::Default() in production).
  static Result<std::unique_ptr<MemPool>> Create(const MemPoolOptions& options, Clock* clock);
  /// Like Create, but the pool uses `arena` (e.g. HostArena::Adopt of memory that a data-plane
  /// engine allocated and registered) instead of mapping its own: options.capacity_bytes and
  /// options.huge_pages are ignored, the arena's capacity is the pool's. The pool owns the arena;
  /// memory adopted by it must outlive the pool. INVALID_ARGUMENT for bad options or a null or
  /// partly used arena.
  static Result<std::unique_ptr<MemPool>> Create(const MemPoolOptions& options, Clock* clock,
                                                 std::unique_ptr<memory::HostArena> arena);
  ~MemPool();
  MemPool(const MemPool&) = delete;
  MemPool& operator=(const MemPool&) = delete;

  const MemPoolOptions& options() const { return options_; }

  // ---- Namespaces ----------------------------------------------------------------------------

  /// Creates a namespace, or returns the existing one if its parameters are equal (second =
  /// false then). ALREADY_EXISTS if they differ.
  Result<std::pair<NamespaceInfo, bool>> CreateNamespace(const NamespaceSpec& spec);
  Result<NamespaceInfo> GetNamespace(std::string_view name);
  std::vector<NamespaceInfo> ListNamespaces();
  /// Deletes a namespace and frees all its blocks; returns how many blocks were live.
  /// FAILED_PRECONDITION while leases of it are active.
  Result<uint64_t> DeleteNamespace(std::string_view name);

  // ---- Memory --------------------------------------------------------------------------------

  /// Allocates `n_blocks` blocks (all or nothing) under a new lease of `lease_ttl_ms` (0: the
  /// default). Evicts cold unleased leaves to make room: this namespace's first, then others'.
  /// Past the namespace's quota (MemPoolOptions::namespace_quota_bytes) it evicts only that
  /// namespace's own cold HOST blocks, and fails RESOURCE_EXHAUSTED naming the namespace and
  /// the quota when they do not make room.
  Result<Allocation> AllocMem(std::string_view ns, uint32_t n_blocks, Tier tier,
                              uint32_t lease_ttl_ms);
  /// Frees blocks allocated under `lease_id` and never inserted. All-or-nothing.
  Result<uint32_t> FreeMem(std::string_view ns, uint64_t lease_id,
                           std::span<const BlockHandle> handles);

  // ---- Index ---------------------------------------------------------------------------------

  /// Publishes `handles[i]` as block `start_block + i` of `prompt`. The blocks must be allocated
  /// under `lease_id`. Blocks whose hash is already cached are deduplicated: the caller's copy is
  /// freed and the cached block's handle returned. With keep_pinned the resulting blocks stay
  /// pinned by the lease. Token prompts must be a whole number of blocks.
  ///
  /// With `durable`, the blocks are first written to the SSD tier and synced (a crash afterwards
  /// loses none; they come back as DISK blocks on restart); if that fails nothing is inserted
  /// and the blocks stay allocated. FAILED_PRECONDITION with `durable` and no SSD tier;
  /// RESOURCE_EXHAUSTED when the SSD tier cannot make room.
  Result<InsertResult> Insert(std::string_view ns, PromptView prompt, uint32_t start_block,
                              std::span<const BlockHandle> handles, uint64_t lease_id,
                              bool keep_pinned, bool durable = false);
  /// The longest cached run (HOST or DISK) of the prompt's blocks from `start_block`. With
  /// `lease`, DISK blocks of the run are promoted to HOST first and the result is pinned under a
  /// new read lease (only when something matched); a block that cannot be promoted (host memory
  /// full of leased blocks, or its stored bytes are corrupt: it is then dropped) ends the run
  /// there. Without a lease, DISK blocks are reported with tier DISK and handle 0. Partial
  /// trailing blocks are ignored.
  Result<MatchResult> Match(std::string_view ns, PromptView prompt, uint32_t start_block,
                            bool lease, uint32_t lease_ttl_ms);
  /// Per block of the prompt: its tier here, or kNone. No lease, no LRU update.
  Result<ExistsResult> Exists(std::string_view ns, PromptView prompt);
  /// Removes the prompt's last full block and all cached blocks below it. Blocks still pinned
  /// by a lease stay readable until released but are no longer matchable.
  Result<uint32_t> Delete(std::string_view ns, PromptView prompt);

  // ---- Leases --------------------------------------------------------------------------------

  /// Extends a lease to now + `lease_ttl_ms` (0: the default).
  Result<Lease> Renew(uint64_t lease_id, uint32_t lease_ttl_ms);
  /// Ends a lease: frees its never-inserted blocks and unpins its cached ones. Returns how many
  /// blocks it still held.
  Result<uint32_t> Release(uint64_t lease_id);
  /// The name of the namespace lease `lease_id` belongs to (namespace-scoped tokens check it).
  /// Errors as Renew's for an unknown, expired or 0 lease id. (mempool_limits.cc)
  Result<std::string> LeaseNamespace(uint64_t lease_id);
  /// The locations of `handles`, each of which lease `lease_id` must hold for `access` (see
  /// BlockAccess): the check a data-plane transfer makes before any byte moves. With
  /// `checksums`, also BlockChecksum of each block's bytes (reads every byte under the lock: for
  /// debugging). INVALID_ARGUMENT for no handles, too many or a duplicate; NOT_FOUND for an
  /// unknown lease or a stale handle; FAILED_PRECONDITION for an expired lease or a block it
  /// does not hold for `access` (the message names the block and its state).
  Result<LeasedBlocks> ResolveLeased(uint64_t lease_id, std::span<const BlockHandle> handles,
                                     BlockAccess access, bool checksums);
  /// Ends every lease whose deadline has passed; returns how many. Operations also do this
  /// lazily, so a lease is never honoured after its deadline; the daemon calls this
  /// periodically so that idle pools release memory too.
  size_t ExpireLeases();

  // ---- Admin ---------------------------------------------------------------------------------

  /// Evicts up to `n_blocks` cold unleased leaves from `ns` (empty: every namespace) and returns
  /// empty slabs to the arena. Returns how many blocks left host memory (with an SSD tier they
  /// are demoted, not dropped, and the tier writes happen first, without the pool's lock, as
  /// for SwapOut).
  Result<uint64_t> Evict(std::string_view ns, uint64_t n_blocks);
  PoolStats GetStats();

  // ---- Tiers (docs/storage.md) ---------------------------------------------------------------

  /// Attaches the SSD tier and rebuilds from it: its namespaces are created (FAILED_PRECONDITION
  /// if one conflicts with an existing namespace) and its blocks become DISK blocks. Call once,
  /// before serving; FAILED_PRECONDITION if a store is attached already. Its one metadata scan
  /// also counts the stored bytes, so the store may be opened with count_on_open false.
  Result<RecoveryStats> AttachStore(std::unique_ptr<storage::BlockStore> store);
  /// True when an SSD tier is attached.
  bool has_store();
  /// Demotes up to `n_blocks` of the namespace's coldest unleased HOST blocks to DISK (deepest
  /// first). The writes happen first, in batches of at most 32 MiB without the pool's lock
  /// (other calls proceed meanwhile); the eviction then drops the host copies. INVALID_ARGUMENT
  /// for n_blocks 0; NOT_FOUND for an unknown namespace; FAILED_PRECONDITION without an SSD
  /// tier.
  Result<SwapOutResult> SwapOut(std::string_view ns, uint64_t n_blocks);
  /// Promotes the prompt's DISK blocks from `start_block` on to HOST (unleased); blocks on HOST
  /// or absent are skipped, and a block that cannot be promoted stops the walk. Returns how many
  /// were promoted. FAILED_PRECONDITION without an SSD tier.
  Result<uint32_t> SwapIn(std::string_view ns, PromptView prompt, uint32_t start_block);
  /// Attaches the GPU tier: `capacity_bytes` (rounded down to 4 KiB) of device memory from
  /// `device`, carved into blocks like the host arena. AllocMem(tier kGpu) then allocates there;
  /// cold GPU blocks are evicted by GPU allocations only, never to make room on HOST. An evicted
  /// GPU block goes down to HOST (copied into a HOST block of its namespace that takes its place
  /// in the tree; host room is made as for a host allocation, never from the block's parent),
  /// else to the SSD tier when there is one, else away (docs/gpu.md). Call once, before serving.
  /// FAILED_PRECONDITION if a GPU tier is attached already; INVALID_ARGUMENT for a capacity
  /// under 4 KiB; the device's RESOURCE_EXHAUSTED when it cannot allocate the memory.
  Status AttachGpu(std::unique_ptr<memory::DeviceRuntime> device, uint64_t capacity_bytes);
  /// The GPU tier's device, or null without one. Set once by AttachGpu, before serving.
  memory::DeviceRuntime* device() const { return device_.get(); }
  /// Device address of GPU-tier offset 0 (BlockLocation::offset of a kGpu block is relative to
  /// it); null without a GPU tier.
  uint8_t* gpu_base() const { return gpu_base_; }

  /// Write-behind (docs/storage.md): writes to the SSD tier (unsynced) up to `max_blocks` of the
  /// HOST blocks that host eviction would take next and that the tier lacks, so that eviction
  /// later drops them without a disk write under the pool's lock. Looks at the window at the
  /// head of each namespace's eviction order (PromptTree::ForEachEvictionCandidate): the
  /// smallest of options().write_behind_bytes, an eighth of host memory and a quarter of the
  /// SSD tier; and only while host memory has fewer free bytes than that. The pool's lock is not held during the writes, so other calls proceed
  /// meanwhile: the blocks' slots stay allocated, and eviction may still take them (it then
  /// counts them as DISK without writing them; should the write fail they are announced
  /// removed). A block deleted meanwhile is deleted from the tier again. At most 32 MiB and a quarter of a namespace's cached blocks per call; one
  /// call at a time (another returns 0 at once). Returns how many blocks were written: 0 when
  /// there is nothing to do, write-behind is off, or there is no SSD tier. A failed write is
  /// logged; the call fails with it (RESOURCE_EXHAUSTED for a full tier, ...) only when no block
  /// was written. Each call first deletes the blocks that demotions dropped from the SSD tier
  /// to make room but left marked (see MemPoolOptions::write_behind_bytes), also when there is
  /// nothing to write. kvpoold calls it from one
  /// background thread; the caller must stop calling before the pool is destroyed.
  Result<uint64_t> WriteBehind(uint64_t max_blocks = UINT64_MAX);

  /// Clean shutdown: writes every HOST block the SSD tier lacks to it (dropping the tier's own
  /// coldest blocks when full), then syncs. Returns how many blocks were written. The pool keeps
  /// serving. FAILED_PRECONDITION without an SSD tier.
  Result<uint64_t> DemoteAll();

  // ---- Events --------------------------------------------------------------------------------

  /// Sets (or with nullptr clears) the sink of the pool's events. `sink` is borrowed and must
  /// outlive the pool or be cleared first. Events are produced only while a sink is set.
  void SetEventSink(EventSink* sink);
  /// Every cached block with the number of the last event it reflects. O(cached blocks).
  PoolSnapshot Snapshot();
  /// The namespace's cached GPU and HOST blocks as chains that cover each block exactly once,
  /// every chain after the one holding its parent (so copying them in order keeps the prefix
  /// property on the destination). A branch point continues in one child's chain; each other
  /// child starts a chain with that parent. O(cached blocks). NOT_FOUND for an unknown namespace.
  Result<std::vector<CachedChain>> CachedChains(std::string_view ns);

 private:
  // Numbers and hands an event to the sink, if one is set.
  void EmitLocked(PoolEvent::Kind kind, const NamespaceState& ns,
                  std::optional<BlockHash> parent, std::vector<BlockHash> hashes,
                  Tier tier = Tier::kHost) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  // ---- Tiers (mempool_tiers.cc) ----
  // Writes a HOST block to the SSD tier (unless it has it) and adds it to the DISK tree,
  // dropping the tier's coldest leaves to make room.
  Status WriteToDiskLocked(NamespaceState& ns, memory::Slot slot, bool sync)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Waits (releasing the lock meanwhile) until no WriteBehind call is writing and no Match is
  // promoting without the lock.
  void AwaitNoTierIoLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The promotion of Match (a run of the prompt) and SwapIn (its DISK blocks): the DISK blocks
  // among `wanted` (tiers[i] kDisk; the others are pinned by the caller) get host slots, are
  // read from the SSD
  // tier without the lock (released meanwhile, held again on return), checked and inserted
  // into the HOST tree, pinned once. The run ends at the first block that cannot be promoted
  // (host memory full of leased blocks, a stored value corrupt: it is dropped with its DISK
  // subtree, or deleted meanwhile); pinned blocks past that end are unpinned. Returns the new
  // run length; refs/tiers of promoted blocks are updated.
  size_t PromoteRunLocked(NamespaceState& ns, std::span<const BlockHash> wanted,
                          std::vector<index::BlockRef>& refs, std::vector<Tier>& tiers)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Drops the SSD tier's coldest leaves (`prefer` first) until `bytes` more fit, counting the
  // bytes a WriteBehind call is about to write. With `defer_deletes` the dropped blocks are
  // only marked for deletion in the store (BlockStore::MarkForDeletion), for a caller that
  // sweeps them (DeleteMarked) after releasing the lock: RocksDB writes may wait for the disk.
  Status MakeDiskRoomLocked(NamespaceState& prefer, uint64_t bytes, bool defer_deletes = false)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Write-behind's phases (mempool_write_behind.cc), shared with SwapOut. One batch at a time
  // (write_behind_in_flight_).
  struct WriteJob;
  // Phase 1: among the first `window_blocks` of `ns`'s eviction order, marks the HOST blocks
  // the SSD tier lacks as being written and appends them to `jobs`, until `max_jobs` were
  // appended or `*batch_bytes` would pass the batch's limit; makes room on the tier for them.
  // The room's error when it cannot (nothing appended then).
  Status PickWriteJobsLocked(NamespaceState& ns, size_t window_blocks, size_t max_jobs,
                             uint64_t* batch_bytes, std::vector<WriteJob>& jobs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Ends phase 1: `jobs` (not empty) become the batch in flight. Returns the store to write to.
  storage::BlockStore* BeginWriteBatchLocked(const std::vector<WriteJob>& jobs)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Phase 2, without the lock: writes the jobs (unsynced).
  void WriteJobs(storage::BlockStore& store, std::vector<WriteJob>& jobs)
      ABSL_LOCKS_EXCLUDED(mu_);
  // Phase 3: records what was written in the DISK trees, ends the batch and wakes waiters.
  // Returns how many blocks were written; the first write error in `*first_error`.
  uint64_t FinishWriteJobsLocked(std::vector<WriteJob>& jobs, bool count_as_written_behind,
                                 Status* first_error) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The first part of SwapOut and of Evict of one namespace: writes the blocks they will demote
  // (the first `n_blocks` of the namespace's eviction order) to the tier in batches without the
  // lock, so that their eviction then mostly drops host copies. Does nothing without a tier or
  // namespace; write errors are left to that eviction, which retries and reports them.
  void WriteAheadOfEviction(std::string_view ns, uint64_t n_blocks) ABSL_LOCKS_EXCLUDED(mu_);
  // For Evict of every namespace: which namespaces the eviction of `n_blocks` takes blocks from,
  // in its order, and how many each can give (their eviction candidates). Empty without a tier.
  std::vector<std::pair<std::string, uint64_t>> PlanEviction(uint64_t n_blocks)
      ABSL_LOCKS_EXCLUDED(mu_);
  // What DropFromDiskLocked does with the store's copies.
  enum class StoreCopy { kDelete, kMarkForDeletion };
  // Removes DISK-tree blocks (their store copies deleted, or marked for deletion) and emits
  // kRemoved for those not on HOST.
  void DropFromDiskLocked(NamespaceState& ns, std::vector<index::RemovedBlock>& removed,
                          StoreCopy copies) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);

  struct HashedPrompt;
  MemPool(const MemPoolOptions& options, Clock* clock, std::unique_ptr<memory::HostArena> arena);

  /// Validates the prompt and returns its hashes (hashing tokens outside the lock).
  Result<HashedPrompt> HashPromptFor(std::string_view ns, PromptView prompt, bool whole_blocks);
  Result<NamespaceState*> FindNamespaceLocked(std::string_view ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Result<uint32_t> ResolveTtl(uint32_t lease_ttl_ms) const;
  Result<LeaseRecord*> FindLeaseLocked(uint64_t lease_id, const NamespaceState* ns)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  void ExpireLeasesLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Frees or unpins what a lease still holds; returns the number of blocks it held.
  uint32_t EndLeaseLocked(const LeaseRecord& lease) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Status AllocateWithEvictionLocked(NamespaceState& ns, size_t n, uint64_t lease_id,
                                    std::vector<memory::Slot>* slots, Tier tier = Tier::kHost)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Evicts up to n_blocks cold leaves of the memory tiers: of `tier` only (kHost or kGpu), or
  /// of both with kNone.
  uint64_t EvictFromLocked(NamespaceState& ns, uint64_t n_blocks, Tier tier = Tier::kNone)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// GPU-tier eviction's second pass, when too few GPU leaves could be evicted: GPU blocks that
  /// are unpinned and have no GPU child (their children went to HOST) move to HOST in place
  /// (each counted and announced as it moves); when HOST has no room, each leaves the tree with
  /// its subtree (appended to `*removed`, to go to DISK or away). Returns how many GPU blocks
  /// left the GPU tier. O(blocks in the tree).
  uint64_t EvictGpuInteriorLocked(NamespaceState& ns, uint64_t n_blocks,
                                  std::vector<index::RemovedBlock>* removed)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// Copies a cached GPU block into a fresh HOST slot of its namespace, cached with the same
  /// hash and parent, when the namespace's host quota allows one more block and HOST has one
  /// free or can make one by the usual host eviction (which may demote HOST blocks to DISK; it
  /// never evicts the block's parent, nor leased or pinned blocks); nullopt otherwise (then
  /// nothing was copied, though host eviction may have run). The caller points the tree at the
  /// new slot and frees the GPU slot.
  std::optional<memory::Slot> CopyGpuToHostLocked(NamespaceState& ns, memory::Slot gpu_slot)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  /// The bytes of a block in pool memory: in the host arena, or for a GPU block copied into
  /// `scratch` first.
  Result<std::span<const uint8_t>> BlockBytesLocked(const NamespaceState& ns, memory::Slot slot,
                                                    std::vector<uint8_t>* scratch)
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // The namespace quota check of a HOST allocation of `n` blocks: evicts the namespace's own
  // cold HOST blocks past its quota; RESOURCE_EXHAUSTED when that is not enough.
  // (mempool_limits.cc)
  Status EnforceQuotaLocked(NamespaceState& ns, size_t n) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  Lease LeaseFor(const LeaseRecord& lease) const;
  NamespaceInfo InfoOf(const NamespaceState& ns) const;

  const MemPoolOptions options_;
  Clock* const clock_;
  const int64_t start_ms_;

  absl::Mutex mu_;
  std::unique_ptr<memory::HostArena> arena_ ABSL_GUARDED_BY(mu_);
  // The GPU tier (AttachGpu): set once before serving, so read without the lock. Declared
  // before namespaces_, whose allocators use gpu_arena_, so that they are destroyed first.
  std::unique_ptr<memory::DeviceRuntime> device_;
  std::unique_ptr<memory::DeviceBuffer> gpu_memory_;
  uint8_t* gpu_base_ = nullptr;
  std::unique_ptr<memory::HostArena> gpu_arena_ ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<std::string, std::unique_ptr<NamespaceState>> namespaces_
      ABSL_GUARDED_BY(mu_);
  absl::flat_hash_map<uint32_t, NamespaceState*> namespaces_by_id_ ABSL_GUARDED_BY(mu_);
  uint32_t next_namespace_id_ ABSL_GUARDED_BY(mu_) = 1;
  LeaseTable leases_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<storage::BlockStore> store_ ABSL_GUARDED_BY(mu_);
  uint64_t expired_leases_ ABSL_GUARDED_BY(mu_) = 0;
  EventSink* event_sink_ ABSL_GUARDED_BY(mu_) = nullptr;
  uint64_t last_event_ ABSL_GUARDED_BY(mu_) = 0;
  // Blocks a WriteBehind or SwapOut call is writing without the lock (0 or one batch).
  uint64_t write_behind_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Match calls reading the SSD tier without the lock (PromoteRunLocked).
  uint64_t promotions_in_flight_ ABSL_GUARDED_BY(mu_) = 0;
  // Signalled when both counts above reach 0 (AwaitNoTierIoLocked).
  absl::CondVar tier_io_done_;
  // Bytes of that batch not yet counted by the store (each block's are until its Put returns).
  std::atomic<uint64_t> write_behind_reserved_bytes_{0};
};

}  // namespace kvpool::node
