// The SSD tier of a node: block bytes and namespace specs in RocksDB (BlobDB). The only code that
// includes <rocksdb/...> is in src/storage (docs/storage.md "Layout").
#pragma once

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <string_view>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/synchronization/mutex.h"
#include "kvpool/block_hash.h"
#include "kvpool/status.h"
#include "kvpool/types.h"
#include "storage/read_bandwidth.h"

namespace kvpool::storage {

struct BlockStoreOptions {
  /// Directory of the RocksDB database (created if missing). Required.
  std::string path;
  /// Most bytes of block data the store holds; Put beyond it is RESOURCE_EXHAUSTED. Must be > 0.
  /// Default: 0 (unset).
  uint64_t capacity_bytes = 0;
  /// Values of at least this many bytes go to blob files (written once, never rewritten by
  /// compaction); smaller ones, such as each block's metadata record, stay in SST files, so
  /// metadata lookups and the recovery scan never open a blob file. Default: 512 (every block
  /// of a real KV cache goes to a blob file).
  uint64_t min_blob_bytes = 512;
  /// Size of RocksDB's memtable (metadata and small values), in bytes. Default: 16 MiB.
  uint64_t write_buffer_bytes = 16ull << 20;
  /// The layout this store writes into a new database and accepts in an existing one (tests
  /// set another to check the refusal). Default: BlockStore::kLayout.
  std::string layout = "kvpool.blockstore.v1";
  /// Bytes of stored blocks Open reads (and verifies) to seed the read-bandwidth estimate; 0:
  /// no probe (the estimate then starts with the first reads). Default: 16 MiB.
  uint64_t probe_bytes = 16ull << 20;
  /// Most blocks that probe reads: each is a separate read, so a store of small blocks would
  /// otherwise spend seconds of its start-up on the probe. Default: 64.
  uint64_t probe_max_blocks = 64;
  /// Count the stored bytes and blocks at Open (a scan of every block's metadata). false: they
  /// start at 0 until RecoveryScan counts them, so a node's start-up reads the metadata once
  /// instead of twice; the caller must then run RecoveryScan before any write. Default: true.
  bool count_on_open = true;
  /// Read-ahead of a ReadRun: a Get of one of its blocks also reads the run's next blocks, up to
  /// this many bytes in all, in parallel; 0: no read-ahead. Default: 32 MiB.
  uint64_t readahead_bytes = 32ull << 20;
  /// Parallel reads of one read-ahead window (the disk serves several reads at once far faster
  /// than one after the other); 0 is taken as 1. Default: 4.
  uint32_t readahead_threads = 4;
};

class BlockStore;

/// Blocks of one namespace that are about to be read in this order (a Match or SwapIn promoting
/// a prompt's DISK blocks): while it lives, BlockStore::Get of one of them also reads the next
/// ones ahead (BlockStoreOptions::readahead_bytes). Blocks read ahead and never asked for are
/// dropped with it. At most one run per store at a time: a new one replaces the old, whose Gets
/// then read directly (correct, without read-ahead).
/// Move-only; not thread-safe: owned by the caller of Get.
class ReadRun {
 public:
  ReadRun() = default;
  ReadRun(BlockStore* store, std::string_view ns, std::vector<BlockHash> hashes);
  ~ReadRun();
  ReadRun(ReadRun&& other) noexcept : store_(other.store_), id_(other.id_) {
    other.store_ = nullptr;
  }
  ReadRun& operator=(ReadRun&&) = delete;
  ReadRun(const ReadRun&) = delete;
  ReadRun& operator=(const ReadRun&) = delete;

 private:
  BlockStore* store_ = nullptr;
  uint64_t id_ = 0;
};

/// One stored block as the recovery scan lists it (no block bytes are read).
struct StoredBlockInfo {
  std::string ns;
  BlockHash hash;
  /// The hash before this block in its prompt; nullopt for a prompt's first block.
  std::optional<BlockHash> parent;
  uint64_t size_bytes = 0;
};

/// Blocks written once under (namespace, chained hash) with an XXH3-64 checksum verified on every
/// read, plus the namespace specs, in one RocksDB database with BlobDB for the block bytes.
///
/// Capacity is accounted in block bytes (not file sizes) and enforced on Put; which blocks to
/// drop to make room is the caller's choice (the node's DISK LRU), since the index must learn of
/// every drop. A database written by another layout version is refused at Open.
///
/// Errors: RocksDB's statuses map to canonical codes: no space left on the device ->
/// RESOURCE_EXHAUSTED, corruption -> DATA_LOSS, a missing key -> NOT_FOUND, busy / try again ->
/// UNAVAILABLE, other I/O errors -> INTERNAL; the message names the key and RocksDB's text.
///
/// Thread-safe: RocksDB is; the byte accounting is under a mutex that no RocksDB write holds,
/// so used_bytes() never waits for the disk. Writes (Put, Delete) of one key are serialised;
/// writes of different keys run concurrently.
class BlockStore {
 public:
  /// Opens (or creates) the database at options.path and counts the stored bytes (a metadata
  /// scan, no block bytes read). INVALID_ARGUMENT for bad options; FAILED_PRECONDITION for a
  /// directory written by another layout (the message names both layouts) or a non-empty
  /// database without a layout key; other RocksDB errors as mapped above.
  static Result<std::unique_ptr<BlockStore>> Open(const BlockStoreOptions& options);
  ~BlockStore();
  BlockStore(const BlockStore&) = delete;
  BlockStore& operator=(const BlockStore&) = delete;

  /// The layout key's value this code writes and accepts.
  static constexpr std::string_view kLayout = "kvpool.blockstore.v1";

  // ---- Namespaces ----------------------------------------------------------------------------

  /// Stores (or overwrites) a namespace's spec. `sync`: wait for the WAL to reach the disk.
  Status PutNamespace(const NamespaceSpec& spec, bool sync);
  /// Removes a namespace's spec and every block of it; returns how many blocks went.
  Result<uint64_t> DeleteNamespace(std::string_view ns);
  /// Every stored namespace spec, by name. DATA_LOSS for an undecodable spec (named).
  Result<std::vector<NamespaceSpec>> ListNamespaces();

  // ---- Blocks --------------------------------------------------------------------------------

  /// Writes a block (bytes, checksum and parent in one atomic batch). Overwriting a stored
  /// block replaces it. `sync`: wait for the WAL to reach the disk (a crash afterwards loses
  /// nothing). RESOURCE_EXHAUSTED past capacity_bytes or when the device is full (then nothing
  /// was written); INVALID_ARGUMENT for empty bytes.
  Status Put(std::string_view ns, const BlockHash& hash, std::optional<BlockHash> parent,
             std::span<const uint8_t> bytes, bool sync);
  /// Reads a block into `out`, whose size must equal the stored size, and verifies its checksum.
  /// Returns the block's parent. NOT_FOUND if absent; DATA_LOSS if the value is corrupt,
  /// truncated or of another size than recorded (the block is then deleted, so it is never
  /// served); INVALID_ARGUMENT if `out` has the wrong size.
  Result<std::optional<BlockHash>> Get(std::string_view ns, const BlockHash& hash,
                                       std::span<uint8_t> out);
  /// Deletes a block; OK if it was absent. It is never served afterwards, also not from a
  /// ReadRun's read-ahead (a read-ahead value is used only when it matches the current
  /// metadata's size and checksum).
  Status Delete(std::string_view ns, const BlockHash& hash);
  /// Deletes a block later, for callers that drop blocks to make room while holding a lock
  /// no disk write may run under (RocksDB writes can wait tens of milliseconds for a memtable
  /// switch or the file system). The block leaves used_bytes() (by `size_bytes`, its size as
  /// the caller knows it; corrected when it is deleted), block_count() and Contains() at once,
  /// without a disk write; its RocksDB delete happens in the next DeleteMarked. A Put of the
  /// same block before then keeps the new value; Delete and DeleteNamespace delete it at once.
  /// Until then it still takes disk space (beyond capacity_bytes), and after a crash it is
  /// back (a valid block the caller's index no longer lists).
  void MarkForDeletion(std::string_view ns, const BlockHash& hash, uint64_t size_bytes);
  /// Deletes the blocks MarkForDeletion marked, all of them attempted; returns how many marks
  /// were swept (a marked block found absent counts too).
  /// The first error otherwise (a block whose delete failed stays stored and is counted
  /// again). The destructor calls it too.
  Result<uint64_t> DeleteMarked();
  /// True when the block's metadata is stored and it is not marked for deletion (no bytes
  /// read, no checksum check).
  bool Contains(std::string_view ns, const BlockHash& hash);
  /// The recovery scan: calls `fn` for every stored block, namespace by namespace (metadata
  /// only). DATA_LOSS for an undecodable metadata record (named).
  Status Scan(const std::function<void(const StoredBlockInfo&)>& fn);
  /// Scan that also (re)counts the stored bytes and blocks, for used_bytes() and block_count():
  /// the start-up scan of a store opened with count_on_open false. No writes may run meanwhile.
  Status RecoveryScan(const std::function<void(const StoredBlockInfo&)>& fn);
  /// Waits until every write so far is on the disk (WAL sync).
  Status Sync();

  /// The tier's read bandwidth in bytes/s: a running estimate (ReadBandwidthEstimate) over the
  /// block reads so far (Get, and GetRun per run), each timed from its metadata lookup to the
  /// verified copy in the caller's buffer, seeded by Open's probe. 0 while nothing was read.
  double read_bytes_per_s() const;
  /// Reads up to `max_bytes` of stored blocks, and at most `max_blocks` blocks (whole blocks,
  /// at least one when any is stored), verifying their checksums, and records the time in the
  /// read-bandwidth estimate. Returns the bytes read (0 for an empty store). A corrupt block
  /// found is deleted, as Get does, and not counted. Errors as Get's, other than DATA_LOSS.
  Result<uint64_t> ProbeReadBandwidth(uint64_t max_bytes, uint64_t max_blocks = UINT64_MAX);

  /// Testing only (corruption injection): replaces the stored bytes of a block without
  /// updating its size or checksum.
  Status OverwriteBytesForTesting(std::string_view ns, const BlockHash& hash,
                                  std::span<const uint8_t> bytes);

  uint64_t capacity_bytes() const { return options_.capacity_bytes; }
  /// Bytes of block data stored now.
  uint64_t used_bytes() const;
  /// Blocks stored now.
  uint64_t block_count() const;
  /// Blocks marked for deletion (MarkForDeletion) that the next DeleteMarked will delete.
  uint64_t marked_blocks() const;
  const std::string& path() const { return options_.path; }

 private:
  friend class ReadRun;
  struct Db;  // RAII holder of rocksdb::DB (block_store.cc)
  struct ReadAhead;  // the current ReadRun's state (block_store.cc)
  // Returns the run's id, for EndRun.
  uint64_t BeginRun(std::string_view ns, std::vector<BlockHash> hashes);
  // Ends run `id` unless another run replaced it.
  void EndRun(uint64_t id);
  // The read-ahead copy of a block of the current run, reading its window first if needed;
  // nullopt when the block is not in the run (or read-ahead is off).
  std::optional<std::string> TakeReadAhead(std::string_view ns, const BlockHash& hash,
                                           uint64_t size_bytes);
  BlockStore(BlockStoreOptions options, std::unique_ptr<Db> db);
  Status CountStored();
  // Scan that stops when `fn` returns false.
  Status ScanWhile(const std::function<bool(const StoredBlockInfo&)>& fn);

  // Marks one key as being written (Put, Delete) for its lifetime, waiting first until no
  // other writer has it.
  class KeyWriter {
   public:
    KeyWriter(BlockStore* store, std::string key);
    ~KeyWriter();
    KeyWriter(const KeyWriter&) = delete;
    KeyWriter& operator=(const KeyWriter&) = delete;
    const std::string& key() const { return key_; }

   private:
    BlockStore* store_;
    std::string key_;
  };

  const BlockStoreOptions options_;
  std::unique_ptr<Db> db_;
  mutable absl::Mutex mu_;
  // Deletes the block of a key whose KeyWriter the caller holds. `marked_size`: the block was
  // marked for deletion with that size, which its mark already took out of the counts.
  Status DeleteKey(const std::string& meta_key, std::string_view ns, const BlockHash& hash,
                   std::optional<uint64_t> marked_size);

  // A block MarkForDeletion marked, by metadata key.
  struct Marked {
    std::string ns;
    BlockHash hash;
    uint64_t size_bytes = 0;
  };

  // Held by DeleteMarked and DeleteNamespace, so that a namespace's deletion never counts a
  // block that a sweep is deleting at the same time. Taken before mu_.
  absl::Mutex sweep_mu_ ABSL_ACQUIRED_BEFORE(mu_);
  // Keys a Put or Delete is writing now (KeyWriter), and the signal that one finished.
  absl::flat_hash_set<std::string> writing_ ABSL_GUARDED_BY(mu_);
  absl::CondVar key_written_;
  uint64_t used_bytes_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t block_count_ ABSL_GUARDED_BY(mu_) = 0;
  absl::flat_hash_map<std::string, Marked> marked_ ABSL_GUARDED_BY(mu_);
  // Its own lock: reads must not wait for a Put's write under mu_.
  mutable absl::Mutex read_mu_;
  ReadBandwidthEstimate read_bandwidth_ ABSL_GUARDED_BY(read_mu_);
  absl::Mutex run_mu_;
  std::unique_ptr<ReadAhead> run_ ABSL_GUARDED_BY(run_mu_);
  uint64_t last_run_id_ ABSL_GUARDED_BY(run_mu_) = 0;
};

}  // namespace kvpool::storage
