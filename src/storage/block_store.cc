#include "storage/block_store.h"

#include <rocksdb/db.h>
#include <rocksdb/iterator.h>
#include <rocksdb/options.h>
#include <rocksdb/write_batch.h>

#include <chrono>
#include <algorithm>
#include <cstring>
#include <string>
#include <thread>
#include <unordered_map>
#include <utility>

#include "common/logging.h"
#include "common/quote.h"
#include "storage/rocks_status.h"

namespace kvpool::storage {

// Owns the database handle; closing it flushes nothing more than RocksDB's own shutdown does.
struct BlockStore::Db {
  explicit Db(rocksdb::DB* raw) : db(raw) {}
  ~Db() {
    if (db != nullptr) db->Close().PermitUncheckedError();
  }
  Db(const Db&) = delete;
  Db& operator=(const Db&) = delete;
  std::unique_ptr<rocksdb::DB> db;
};

// The current ReadRun: its blocks in order and the values read ahead, not yet asked for.
struct BlockStore::ReadAhead {
  uint64_t id = 0;  // of the ReadRun that began it
  std::string ns;
  std::vector<BlockHash> hashes;
  std::unordered_map<BlockHash, size_t, BlockHashHasher> position;
  // Blocks [0, issued) of the run were read ahead (or found missing) already.
  size_t issued = 0;
  std::unordered_map<BlockHash, std::string, BlockHashHasher> ready;
};

ReadRun::ReadRun(BlockStore* store, std::string_view ns, std::vector<BlockHash> hashes)
    : store_(store) {
  if (store_ != nullptr) id_ = store_->BeginRun(ns, std::move(hashes));
}

ReadRun::~ReadRun() {
  if (store_ != nullptr) store_->EndRun(id_);
}

namespace {

// Keys (docs/storage.md "Layout"):
//   "L"                      -> kLayout
//   "N" ns                   -> namespace spec
//   "M" ns 0x00 hash[16]     -> block metadata (small: in the SST files)
//   "B" ns 0x00 hash[16]     -> block bytes (in blob files)
// Namespace names never contain 0x00, so a namespace's keys are exactly the prefix "M" ns 0x00.
constexpr std::string_view kLayoutKey = "L";
constexpr uint8_t kMetaVersion = 1;
constexpr uint8_t kSpecVersion = 1;
constexpr size_t kMetaBytes = 1 + 1 + 16 + 8 + 8;

std::string BlockKey(char kind, std::string_view ns, const BlockHash& hash) {
  std::string key;
  key.reserve(2 + ns.size() + kBlockHashBytes);
  key.push_back(kind);
  key.append(ns);
  key.push_back('\0');
  const auto bytes = hash.Bytes();
  key.append(reinterpret_cast<const char*>(bytes.data()), bytes.size());
  return key;
}

std::string NamespacePrefix(char kind, std::string_view ns) {
  std::string key(1, kind);
  key.append(ns);
  key.push_back('\0');
  return key;
}

void PutU64(std::string* out, uint64_t v) {
  for (int i = 0; i < 8; ++i) out->push_back(static_cast<char>((v >> (8 * i)) & 0xff));
}
uint64_t GetU64(const char* p) {
  uint64_t v = 0;
  for (int i = 0; i < 8; ++i) v |= static_cast<uint64_t>(static_cast<uint8_t>(p[i])) << (8 * i);
  return v;
}

struct Meta {
  std::optional<BlockHash> parent;
  uint64_t size_bytes = 0;
  uint64_t checksum = 0;
};

std::string EncodeMeta(const Meta& m) {
  std::string out;
  out.reserve(kMetaBytes);
  out.push_back(static_cast<char>(kMetaVersion));
  out.push_back(m.parent ? 1 : 0);
  const auto parent = m.parent.value_or(BlockHash{}).Bytes();
  out.append(reinterpret_cast<const char*>(parent.data()), parent.size());
  PutU64(&out, m.size_bytes);
  PutU64(&out, m.checksum);
  return out;
}

Result<Meta> DecodeMeta(std::string_view value, std::string_view what) {
  if (value.size() != kMetaBytes || static_cast<uint8_t>(value[0]) != kMetaVersion) {
    return DataLossError("undecodable block metadata of " + std::string(what) + " (" +
                         std::to_string(value.size()) + " bytes)");
  }
  Meta m;
  if (value[1] != 0) m.parent = BlockHash::FromBytes(reinterpret_cast<const uint8_t*>(&value[2]));
  m.size_bytes = GetU64(&value[18]);
  m.checksum = GetU64(&value[26]);
  return m;
}

std::string EncodeSpec(const NamespaceSpec& spec) {
  std::string out(1, static_cast<char>(kSpecVersion));
  PutU64(&out, spec.block_tokens);
  PutU64(&out, spec.block_bytes);
  out.append(spec.salt);
  return out;
}

Result<NamespaceSpec> DecodeSpec(std::string_view name, std::string_view value) {
  if (value.size() < 17 || static_cast<uint8_t>(value[0]) != kSpecVersion) {
    return DataLossError("undecodable spec of namespace " + Quote(name));
  }
  NamespaceSpec spec;
  spec.name = std::string(name);
  spec.block_tokens = static_cast<uint32_t>(GetU64(&value[1]));
  spec.block_bytes = GetU64(&value[9]);
  spec.salt = std::string(value.substr(17));
  return spec;
}

std::string Describe(std::string_view ns, const BlockHash& hash) {
  return "block " + hash.ToHex() + " of namespace " + Quote(ns);
}

rocksdb::WriteOptions WriteOpts(bool sync) {
  rocksdb::WriteOptions w;
  w.sync = sync;
  return w;
}

}  // namespace

Result<std::unique_ptr<BlockStore>> BlockStore::Open(const BlockStoreOptions& options) {
  if (options.path.empty()) return InvalidArgumentError("BlockStore: path is required");
  if (options.capacity_bytes == 0) {
    return InvalidArgumentError("BlockStore: capacity_bytes must be > 0 (got 0)");
  }
  rocksdb::Options o;
  o.create_if_missing = true;
  o.compression = rocksdb::kNoCompression;
  o.enable_blob_files = true;
  o.min_blob_size = options.min_blob_bytes;
  o.blob_compression_type = rocksdb::kNoCompression;
  // Block bytes are written once: no blob garbage collection rewrites them; a blob file goes
  // when no key refers to it any more.
  o.enable_blob_garbage_collection = false;
  o.write_buffer_size = options.write_buffer_bytes;
  o.max_background_jobs = 2;
  o.info_log_level = rocksdb::InfoLogLevel::WARN_LEVEL;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status st = rocksdb::DB::Open(o, options.path, &raw);
  if (!st.ok()) return FromRocks(st, "opening the SSD tier at " + Quote(options.path));
  auto db = std::make_unique<Db>(raw);

  std::string layout;
  const rocksdb::Status got = db->db->Get(rocksdb::ReadOptions(), kLayoutKey, &layout);
  if (got.IsNotFound()) {
    std::unique_ptr<rocksdb::Iterator> it(db->db->NewIterator(rocksdb::ReadOptions()));
    it->SeekToFirst();
    if (it->Valid()) {
      return FailedPreconditionError("the SSD tier at " + Quote(options.path) +
                                     " holds data without a layout key: not a kvpool data dir "
                                     "of layout " + options.layout + "; use another --data-dir");
    }
    const rocksdb::Status put = db->db->Put(WriteOpts(true), kLayoutKey, options.layout);
    if (!put.ok()) return FromRocks(put, "writing the layout key at " + Quote(options.path));
  } else if (!got.ok()) {
    return FromRocks(got, "reading the layout key at " + Quote(options.path));
  } else if (layout != options.layout) {
    return FailedPreconditionError("the SSD tier at " + Quote(options.path) + " has layout " +
                                   Quote(layout) + "; this kvpoold reads " + options.layout +
                                   " only; use another --data-dir or the matching kvpoold");
  }
  std::unique_ptr<BlockStore> store(new BlockStore(options, std::move(db)));
  if (options.count_on_open) KVPOOL_RETURN_IF_ERROR(store->CountStored());
  if (options.probe_bytes > 0) {
    // A failed probe leaves the estimate to the first promotions; the store itself is fine.
    store->ProbeReadBandwidth(options.probe_bytes, options.probe_max_blocks)
        .status()
        .IgnoreError();
  }
  return store;
}

BlockStore::BlockStore(BlockStoreOptions options, std::unique_ptr<Db> db)
    : options_(std::move(options)), db_(std::move(db)) {}

BlockStore::~BlockStore() {
  // Blocks marked for deletion go now rather than come back at the next start.
  if (Result<uint64_t> swept = DeleteMarked(); !swept.ok()) {
    KVPOOL_LOG(WARNING) << "SSD tier: blocks marked for deletion stay stored: "
                        << swept.status();
  }
}

Status BlockStore::CountStored() {
  return RecoveryScan([](const StoredBlockInfo&) {});
}

Status BlockStore::RecoveryScan(const std::function<void(const StoredBlockInfo&)>& fn) {
  uint64_t bytes = 0;
  uint64_t count = 0;
  KVPOOL_RETURN_IF_ERROR(Scan([&](const StoredBlockInfo& b) {
    bytes += b.size_bytes;
    ++count;
    fn(b);
  }));
  absl::MutexLock lock(&mu_);
  used_bytes_ = bytes;
  block_count_ = count;
  return Status::Ok();
}

uint64_t BlockStore::used_bytes() const {
  absl::MutexLock lock(&mu_);
  return used_bytes_;
}

uint64_t BlockStore::block_count() const {
  absl::MutexLock lock(&mu_);
  return block_count_;
}

uint64_t BlockStore::marked_blocks() const {
  absl::MutexLock lock(&mu_);
  return marked_.size();
}

Status BlockStore::PutNamespace(const NamespaceSpec& spec, bool sync) {
  const rocksdb::Status st = db_->db->Put(WriteOpts(sync), "N" + spec.name, EncodeSpec(spec));
  if (!st.ok()) return FromRocks(st, "storing namespace " + Quote(spec.name));
  return Status::Ok();
}

Result<uint64_t> BlockStore::DeleteNamespace(std::string_view ns) {
  absl::MutexLock sweep(&sweep_mu_);
  absl::MutexLock lock(&mu_);
  uint64_t bytes = 0;
  uint64_t count = 0;
  const std::string meta_prefix = NamespacePrefix('M', ns);
  {
    std::unique_ptr<rocksdb::Iterator> it(db_->db->NewIterator(rocksdb::ReadOptions()));
    for (it->Seek(meta_prefix); it->Valid() && it->key().starts_with(meta_prefix); it->Next()) {
      // A marked block left the counts with its mark.
      if (marked_.erase(it->key().ToString()) > 0) continue;
      if (Result<Meta> m = DecodeMeta(it->value().ToStringView(), "namespace " + Quote(ns));
          m.ok()) {
        bytes += m->size_bytes;
      }
      ++count;
    }
    if (!it->status().ok()) return FromRocks(it->status(), "listing namespace " + Quote(ns));
  }
  rocksdb::WriteBatch batch;
  for (char kind : {'M', 'B'}) {
    std::string begin = NamespacePrefix(kind, ns);
    std::string end = begin;
    end.back() = '\x01';
    batch.DeleteRange(begin, end).PermitUncheckedError();
  }
  batch.Delete("N" + std::string(ns)).PermitUncheckedError();
  const rocksdb::Status st = db_->db->Write(WriteOpts(false), &batch);
  if (!st.ok()) return FromRocks(st, "deleting namespace " + Quote(ns));
  used_bytes_ -= std::min(used_bytes_, bytes);
  block_count_ -= std::min(block_count_, count);
  return count;
}

Result<std::vector<NamespaceSpec>> BlockStore::ListNamespaces() {
  std::vector<NamespaceSpec> out;
  std::unique_ptr<rocksdb::Iterator> it(db_->db->NewIterator(rocksdb::ReadOptions()));
  for (it->Seek("N"); it->Valid() && it->key().starts_with("N"); it->Next()) {
    const std::string_view name = it->key().ToStringView().substr(1);
    KVPOOL_ASSIGN_OR_RETURN(NamespaceSpec spec, DecodeSpec(name, it->value().ToStringView()));
    out.push_back(std::move(spec));
  }
  if (!it->status().ok()) return FromRocks(it->status(), "listing namespaces");
  return out;
}

BlockStore::KeyWriter::KeyWriter(BlockStore* store, std::string key)
    : store_(store), key_(std::move(key)) {
  // One writer per key: another Put or Delete of it waits, so the byte accounting below is
  // exact, while writes of other keys run at the same time. (A CondVar loop rather than an
  // absl::Condition, whose evaluation inside abseil TSan cannot see as under the lock.)
  absl::MutexLock lock(&store_->mu_);
  while (store_->writing_.contains(key_)) store_->key_written_.Wait(&store_->mu_);
  store_->writing_.insert(key_);
}

BlockStore::KeyWriter::~KeyWriter() {
  absl::MutexLock lock(&store_->mu_);
  store_->writing_.erase(key_);
  store_->key_written_.SignalAll();
}

Status BlockStore::Put(std::string_view ns, const BlockHash& hash,
                       std::optional<BlockHash> parent, std::span<const uint8_t> bytes,
                       bool sync) {
  if (bytes.empty()) return InvalidArgumentError("cannot store an empty " + Describe(ns, hash));
  KeyWriter writer(this, BlockKey('M', ns, hash));
  const std::string& meta_key = writer.key();
  uint64_t replaced = 0;
  bool existed = false;
  // A block marked for deletion is out of the counts already: this Put stores it anew.
  std::optional<Marked> unmarked;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = marked_.find(meta_key); it != marked_.end()) {
      unmarked = std::move(it->second);
      marked_.erase(it);
    }
  }
  if (!unmarked.has_value()) {
    std::string old;
    const rocksdb::Status st = db_->db->Get(rocksdb::ReadOptions(), meta_key, &old);
    if (st.ok()) {
      existed = true;
      if (Result<Meta> m = DecodeMeta(old, Describe(ns, hash)); m.ok()) replaced = m->size_bytes;
    } else if (!st.IsNotFound()) {
      return FromRocks(st, "reading " + Describe(ns, hash));
    }
  }
  {
    // The bytes are counted before the write, so that concurrent Puts cannot together pass
    // the capacity; the lock is not held during the write.
    absl::MutexLock lock(&mu_);
    const uint64_t after = used_bytes_ - replaced + bytes.size();
    if (after > options_.capacity_bytes) {
      if (unmarked.has_value()) marked_.emplace(meta_key, std::move(*unmarked));
      return ResourceExhaustedError("the SSD tier is full: storing " + Describe(ns, hash) +
                                    " (" + std::to_string(bytes.size()) + " bytes) needs " +
                                    std::to_string(after) + " of " +
                                    std::to_string(options_.capacity_bytes) + " bytes");
    }
    used_bytes_ = after;
    if (!existed) ++block_count_;
  }
  Meta meta{parent, bytes.size(), BlockChecksum(bytes.data(), bytes.size())};
  rocksdb::WriteBatch batch;
  // Bytes first, metadata second, in one atomic batch: a block is listed only with its bytes.
  batch.Put(BlockKey('B', ns, hash),
            rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size()))
      .PermitUncheckedError();
  batch.Put(meta_key, EncodeMeta(meta)).PermitUncheckedError();
  const rocksdb::Status st = db_->db->Write(WriteOpts(sync), &batch);
  if (!st.ok()) {
    // Nothing was written: the old value, if any, is still the stored one.
    absl::MutexLock lock(&mu_);
    used_bytes_ = used_bytes_ + replaced - bytes.size();
    if (!existed) --block_count_;
    if (unmarked.has_value()) marked_.emplace(meta_key, std::move(*unmarked));
    return FromRocks(st, "storing " + Describe(ns, hash));
  }
  return Status::Ok();
}

Result<std::optional<BlockHash>> BlockStore::Get(std::string_view ns, const BlockHash& hash,
                                                 std::span<uint8_t> out) {
  auto start = std::chrono::steady_clock::now();
  const std::string meta_key = BlockKey('M', ns, hash);
  std::string meta_value;
  rocksdb::Status st = db_->db->Get(rocksdb::ReadOptions(), meta_key, &meta_value);
  if (st.IsNotFound()) return NotFoundError(Describe(ns, hash) + " is not on the SSD tier");
  if (!st.ok()) return FromRocks(st, "reading " + Describe(ns, hash));
  Result<Meta> meta = DecodeMeta(meta_value, Describe(ns, hash));
  Status problem;
  if (meta.ok() && meta->size_bytes != out.size()) {
    return InvalidArgumentError(Describe(ns, hash) + " has " + std::to_string(meta->size_bytes) +
                                " bytes; the buffer has " + std::to_string(out.size()));
  }
  if (!meta.ok()) {
    problem = meta.status();
  } else {
    // A read-ahead copy counts only if it is the block the metadata describes now; otherwise
    // (deleted and rewritten since, or corrupt) the direct read below decides.
    if (std::optional<std::string> ahead = TakeReadAhead(ns, hash, meta->size_bytes);
        ahead.has_value() && ahead->size() == meta->size_bytes &&
        BlockChecksum(ahead->data(), ahead->size()) == meta->checksum) {
      std::memcpy(out.data(), ahead->data(), ahead->size());
      return meta->parent;  // its read was timed with its window
    }
    start = std::chrono::steady_clock::now();
    rocksdb::PinnableSlice value;
    st = db_->db->Get(rocksdb::ReadOptions(), db_->db->DefaultColumnFamily(),
                      BlockKey('B', ns, hash), &value);
    if (!st.ok() && !st.IsCorruption() && !st.IsNotFound()) {
      return FromRocks(st, "reading " + Describe(ns, hash));
    }
    if (!st.ok()) {
      problem = DataLossError(Describe(ns, hash) + ": " + st.ToString());
    } else if (value.size() != meta->size_bytes) {
      problem = DataLossError(Describe(ns, hash) + " is truncated: " +
                              std::to_string(value.size()) + " bytes stored, " +
                              std::to_string(meta->size_bytes) + " recorded");
    } else if (BlockChecksum(value.data(), value.size()) != meta->checksum) {
      problem = DataLossError(Describe(ns, hash) + " is corrupt: checksum mismatch");
    } else {
      std::memcpy(out.data(), value.data(), value.size());
      const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
      absl::MutexLock lock(&read_mu_);
      read_bandwidth_.Record(out.size(), took.count());
      return meta->parent;
    }
  }
  // Never served again: the block goes, and the caller drops it from its index.
  Delete(ns, hash).IgnoreError();
  return problem;
}

Status BlockStore::Delete(std::string_view ns, const BlockHash& hash) {
  KeyWriter writer(this, BlockKey('M', ns, hash));
  std::optional<uint64_t> marked_size;
  {
    absl::MutexLock lock(&mu_);
    if (auto it = marked_.find(writer.key()); it != marked_.end()) {
      marked_size = it->second.size_bytes;
      marked_.erase(it);
    }
  }
  return DeleteKey(writer.key(), ns, hash, marked_size);
}

Status BlockStore::DeleteKey(const std::string& meta_key, std::string_view ns,
                             const BlockHash& hash, std::optional<uint64_t> marked_size) {
  std::string old;
  rocksdb::Status st = db_->db->Get(rocksdb::ReadOptions(), meta_key, &old);
  if (st.IsNotFound()) {
    if (marked_size.has_value()) {
      // Marked but not stored: the mark took out bytes that were never counted.
      absl::MutexLock lock(&mu_);
      used_bytes_ += *marked_size;
      ++block_count_;
    }
    return Status::Ok();
  }
  if (!st.ok()) {
    if (marked_size.has_value()) {
      absl::MutexLock lock(&mu_);
      marked_.emplace(meta_key, Marked{std::string(ns), hash, *marked_size});
    }
    return FromRocks(st, "reading " + Describe(ns, hash));
  }
  uint64_t size = 0;
  if (Result<Meta> m = DecodeMeta(old, Describe(ns, hash)); m.ok()) size = m->size_bytes;
  rocksdb::WriteBatch batch;
  batch.Delete(meta_key).PermitUncheckedError();
  batch.Delete(BlockKey('B', ns, hash)).PermitUncheckedError();
  st = db_->db->Write(WriteOpts(false), &batch);
  absl::MutexLock lock(&mu_);
  if (!st.ok()) {
    // Still stored: counted again (a marked block stays marked, for the next sweep).
    if (marked_size.has_value()) {
      marked_.emplace(meta_key, Marked{std::string(ns), hash, *marked_size});
    }
    return FromRocks(st, "deleting " + Describe(ns, hash));
  }
  // The counts lose `size`; a mark took out `marked_size` already.
  const uint64_t counted = used_bytes_ + marked_size.value_or(0);
  used_bytes_ = counted - std::min(counted, size);
  if (!marked_size.has_value() && block_count_ > 0) --block_count_;
  return Status::Ok();
}

void BlockStore::MarkForDeletion(std::string_view ns, const BlockHash& hash,
                                 uint64_t size_bytes) {
  std::string key = BlockKey('M', ns, hash);
  absl::MutexLock lock(&mu_);
  if (marked_.contains(key)) return;
  used_bytes_ -= std::min(used_bytes_, size_bytes);
  if (block_count_ > 0) --block_count_;
  marked_.emplace(std::move(key), Marked{std::string(ns), hash, size_bytes});
}

Result<uint64_t> BlockStore::DeleteMarked() {
  absl::MutexLock sweep(&sweep_mu_);
  std::vector<std::string> keys;
  {
    absl::MutexLock lock(&mu_);
    if (marked_.empty()) return 0;
    keys.reserve(marked_.size());
    for (const auto& [key, marked] : marked_) keys.push_back(key);
  }
  uint64_t deleted = 0;
  Status first_error;
  for (std::string& key : keys) {
    KeyWriter writer(this, std::move(key));
    std::optional<Marked> marked;
    {
      absl::MutexLock lock(&mu_);
      auto it = marked_.find(writer.key());
      if (it == marked_.end()) continue;  // put again or deleted meanwhile
      marked = std::move(it->second);
      marked_.erase(it);
    }
    const Status st = DeleteKey(writer.key(), marked->ns, marked->hash, marked->size_bytes);
    if (st.ok()) {
      ++deleted;
    } else if (first_error.ok()) {
      first_error = st;
    }
  }
  if (!first_error.ok()) return first_error;
  return deleted;
}

bool BlockStore::Contains(std::string_view ns, const BlockHash& hash) {
  const std::string key = BlockKey('M', ns, hash);
  {
    absl::MutexLock lock(&mu_);
    if (marked_.contains(key)) return false;
  }
  std::string value;
  return db_->db->Get(rocksdb::ReadOptions(), key, &value).ok();
}

Status BlockStore::Scan(const std::function<void(const StoredBlockInfo&)>& fn) {
  return ScanWhile([&](const StoredBlockInfo& b) {
    fn(b);
    return true;
  });
}

Status BlockStore::ScanWhile(const std::function<bool(const StoredBlockInfo&)>& fn) {
  rocksdb::ReadOptions ro;
  ro.fill_cache = false;
  std::unique_ptr<rocksdb::Iterator> it(db_->db->NewIterator(ro));
  StoredBlockInfo info;
  for (it->Seek("M"); it->Valid() && it->key().starts_with("M"); it->Next()) {
    const std::string_view key = it->key().ToStringView();
    const size_t zero = key.find('\0', 1);
    if (zero == std::string_view::npos || key.size() != zero + 1 + kBlockHashBytes) {
      return DataLossError("undecodable block key of " + std::to_string(key.size()) +
                           " bytes in the SSD tier at " + Quote(options_.path));
    }
    info.ns.assign(key.substr(1, zero - 1));
    info.hash = BlockHash::FromBytes(reinterpret_cast<const uint8_t*>(key.data() + zero + 1));
    KVPOOL_ASSIGN_OR_RETURN(Meta meta, DecodeMeta(it->value().ToStringView(),
                                                  Describe(info.ns, info.hash)));
    info.parent = meta.parent;
    info.size_bytes = meta.size_bytes;
    if (!fn(info)) return Status::Ok();
  }
  if (!it->status().ok()) return FromRocks(it->status(), "scanning " + Quote(options_.path));
  return Status::Ok();
}

uint64_t BlockStore::BeginRun(std::string_view ns, std::vector<BlockHash> hashes) {
  absl::MutexLock lock(&run_mu_);
  const uint64_t id = ++last_run_id_;
  run_.reset();
  if (options_.readahead_bytes == 0 || hashes.size() < 2) return id;
  run_ = std::make_unique<ReadAhead>();
  run_->id = id;
  run_->ns = std::string(ns);
  run_->hashes = std::move(hashes);
  for (size_t i = 0; i < run_->hashes.size(); ++i) run_->position.emplace(run_->hashes[i], i);
  return id;
}

void BlockStore::EndRun(uint64_t id) {
  absl::MutexLock lock(&run_mu_);
  // Only its own: a later run (another promotion, begun meanwhile) replaced it already.
  if (run_ != nullptr && run_->id == id) run_.reset();
}

std::optional<std::string> BlockStore::TakeReadAhead(std::string_view ns, const BlockHash& hash,
                                                     uint64_t size_bytes) {
  absl::MutexLock lock(&run_mu_);
  if (run_ == nullptr || run_->ns != ns) return std::nullopt;
  const auto pos = run_->position.find(hash);
  if (pos == run_->position.end()) return std::nullopt;
  if (auto it = run_->ready.find(hash); it != run_->ready.end()) {
    std::string value = std::move(it->second);
    run_->ready.erase(it);
    return value;
  }
  if (pos->second < run_->issued) return std::nullopt;  // read ahead and missing: read it directly
  // Read the window from this block on, several reads at once.
  const size_t first = pos->second;
  const size_t n = std::min<size_t>(
      run_->hashes.size() - first,
      std::max<uint64_t>(1, options_.readahead_bytes / std::max<uint64_t>(1, size_bytes)));
  run_->issued = first + n;
  std::vector<std::string> keys;
  keys.reserve(n);
  for (size_t i = 0; i < n; ++i) keys.push_back(BlockKey('B', ns, run_->hashes[first + i]));
  std::vector<std::string> values(n);
  std::vector<char> found(n, 0);
  const size_t threads = std::clamp<size_t>(options_.readahead_threads, 1, n);
  rocksdb::DB* db = db_->db.get();
  auto read_every = [&keys, &values, &found, db, threads](size_t offset) {
    for (size_t i = offset; i < keys.size(); i += threads) {
      found[i] = db->Get(rocksdb::ReadOptions(), keys[i], &values[i]).ok() ? 1 : 0;
    }
  };
  const auto start = std::chrono::steady_clock::now();
  {
    std::vector<std::thread> readers;
    readers.reserve(threads - 1);
    for (size_t t = 1; t < threads; ++t) readers.emplace_back(read_every, t);
    read_every(0);
    for (std::thread& reader : readers) reader.join();
  }
  const std::chrono::duration<double> took = std::chrono::steady_clock::now() - start;
  uint64_t bytes = 0;
  for (size_t i = 0; i < n; ++i) {
    if (!found[i]) continue;
    bytes += values[i].size();
    run_->ready[run_->hashes[first + i]] = std::move(values[i]);
  }
  {
    absl::MutexLock read_lock(&read_mu_);
    read_bandwidth_.Record(bytes, took.count());
  }
  auto it = run_->ready.find(hash);
  if (it == run_->ready.end()) return std::nullopt;
  std::string value = std::move(it->second);
  run_->ready.erase(it);
  return value;
}

double BlockStore::read_bytes_per_s() const {
  absl::MutexLock lock(&read_mu_);
  return read_bandwidth_.bytes_per_s();
}

Result<uint64_t> BlockStore::ProbeReadBandwidth(uint64_t max_bytes, uint64_t max_blocks) {
  // The blocks to read are listed first: Get may delete a corrupt one under the iterator.
  std::vector<std::pair<std::string, BlockHash>> blocks;
  std::vector<uint64_t> sizes;
  uint64_t listed = 0;
  KVPOOL_RETURN_IF_ERROR(ScanWhile([&](const StoredBlockInfo& b) {
    blocks.emplace_back(b.ns, b.hash);
    sizes.push_back(b.size_bytes);
    listed += b.size_bytes;
    return listed < max_bytes && blocks.size() < max_blocks;
  }));
  uint64_t read = 0;
  std::vector<uint8_t> buffer;
  for (size_t i = 0; i < blocks.size(); ++i) {
    buffer.resize(sizes[i]);
    Result<std::optional<BlockHash>> got = Get(blocks[i].first, blocks[i].second, buffer);
    if (got.ok()) {
      read += sizes[i];
    } else if (got.status().code() != StatusCode::kDataLoss &&
               got.status().code() != StatusCode::kNotFound) {
      return got.status();
    }
  }
  return read;
}

Status BlockStore::Sync() {
  const rocksdb::Status st = db_->db->SyncWAL();
  if (!st.ok()) return FromRocks(st, "syncing the SSD tier's log");
  return Status::Ok();
}

Status BlockStore::OverwriteBytesForTesting(std::string_view ns, const BlockHash& hash,
                                            std::span<const uint8_t> bytes) {
  const rocksdb::Status st = db_->db->Put(
      WriteOpts(false), BlockKey('B', ns, hash),
      rocksdb::Slice(reinterpret_cast<const char*>(bytes.data()), bytes.size()));
  if (!st.ok()) return FromRocks(st, "overwriting " + Describe(ns, hash));
  return Status::Ok();
}

}  // namespace kvpool::storage
