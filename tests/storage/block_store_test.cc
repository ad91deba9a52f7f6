#include "storage/block_store.h"

#include <catch2/catch.hpp>

#include <cmath>
#include <filesystem>
#include <fstream>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "temp_dir.h"

namespace kvpool::storage {
namespace {

using testing::ScratchDir;

std::vector<uint8_t> Bytes(size_t n, uint32_t seed) {
  std::mt19937 rng(seed);
  std::vector<uint8_t> out(n);
  for (auto& b : out) b = static_cast<uint8_t>(rng());
  return out;
}

BlockHash H(uint64_t i) { return BlockHash{0x1234, i}; }

std::unique_ptr<BlockStore> OpenStore(const std::string& path, uint64_t capacity = 1 << 20,
                                      bool count_on_open = true) {
  BlockStoreOptions o;
  o.path = path;
  o.capacity_bytes = capacity;
  o.count_on_open = count_on_open;
  auto store = BlockStore::Open(o);
  REQUIRE(store.ok());
  return std::move(*store);
}

TEST_CASE("BlockStore: blocks round-trip byte-exact with their parent", "[storage]") {
  ScratchDir dir;
  auto store = OpenStore(dir.File("db"));
  const auto a = Bytes(4096, 1);
  const auto b = Bytes(4096, 2);
  REQUIRE(store->Put("ns", H(1), std::nullopt, a, false).ok());
  REQUIRE(store->Put("ns", H(2), H(1), b, true).ok());
  CHECK(store->used_bytes() == 8192);
  CHECK(store->block_count() == 2);

  std::vector<uint8_t> out(4096);
  auto parent = store->Get("ns", H(2), out);
  REQUIRE(parent.ok());
  CHECK(*parent == std::optional<BlockHash>(H(1)));
  CHECK(out == b);
  parent = store->Get("ns", H(1), out);
  REQUIRE(parent.ok());
  CHECK(!parent->has_value());
  CHECK(out == a);

  CHECK(store->Get("other", H(1), out).status().code() == StatusCode::kNotFound);
  std::vector<uint8_t> small(100);
  CHECK(store->Get("ns", H(1), small).status().code() == StatusCode::kInvalidArgument);
  REQUIRE(store->Delete("ns", H(1)).ok());
  CHECK(store->Get("ns", H(1), out).status().code() == StatusCode::kNotFound);
  CHECK(store->used_bytes() == 4096);
  CHECK(store->Delete("ns", H(1)).ok());  // absent: fine
}

TEST_CASE("BlockStore: blocks marked for deletion leave the counts at once and go on a sweep",
          "[storage]") {
  ScratchDir dir;
  const std::string path = dir.File("db");
  const auto a = Bytes(4096, 1), b = Bytes(4096, 2), c = Bytes(4096, 3);
  {
    auto store = OpenStore(path);
    for (uint64_t i = 1; i <= 4; ++i) REQUIRE(store->Put("ns", H(i), std::nullopt, a, false).ok());
    REQUIRE(store->Put("gone", H(9), std::nullopt, a, false).ok());
    CHECK(store->used_bytes() == 5 * 4096);

    store->MarkForDeletion("ns", H(1), 4096);
    store->MarkForDeletion("ns", H(1), 4096);  // twice: counted once
    store->MarkForDeletion("ns", H(2), 4096);
    store->MarkForDeletion("ns", H(3), 4096);
    store->MarkForDeletion("ns", H(7), 4096);  // never stored: the sweep corrects the counts
    store->MarkForDeletion("gone", H(9), 4096);
    CHECK(store->used_bytes() == 0);
    CHECK(store->block_count() == 0);
    CHECK_FALSE(store->Contains("ns", H(1)));
    CHECK(store->Contains("ns", H(4)));

    // A Put before the sweep stores the block anew; a Delete deletes it at once.
    REQUIRE(store->Put("ns", H(2), H(1), b, false).ok());
    REQUIRE(store->Delete("ns", H(3)).ok());
    CHECK(store->used_bytes() == 4096);
    CHECK(store->block_count() == 1);
    // The namespace goes with its marked block, counted once.
    auto deleted = store->DeleteNamespace("gone");
    REQUIRE(deleted.ok());
    CHECK(*deleted == 0);
    CHECK(store->used_bytes() == 4096);

    auto swept = store->DeleteMarked();
    REQUIRE(swept.ok());
    CHECK(*swept == 2);  // H(1), and H(7), which was never there
    CHECK(store->used_bytes() == 2 * 4096);  // H(2) put anew, H(4) never marked
    CHECK(store->block_count() == 2);
    std::vector<uint8_t> out(4096);
    auto parent = store->Get("ns", H(2), out);
    REQUIRE(parent.ok());
    CHECK(out == b);
    CHECK(store->Get("ns", H(1), out).status().code() == StatusCode::kNotFound);
    CHECK(*store->DeleteMarked() == 0);

    // A full store takes a Put once marking made room, before any sweep.
    auto small = OpenStore(dir.File("small"), 2 * 4096);
    REQUIRE(small->Put("ns", H(1), std::nullopt, a, false).ok());
    REQUIRE(small->Put("ns", H(2), std::nullopt, a, false).ok());
    CHECK(small->Put("ns", H(3), std::nullopt, c, false).code() ==
          StatusCode::kResourceExhausted);
    small->MarkForDeletion("ns", H(1), 4096);
    REQUIRE(small->Put("ns", H(3), std::nullopt, c, false).ok());
    CHECK(small->used_bytes() == 2 * 4096);

    store->MarkForDeletion("ns", H(4), 4096);
  }
  // The destructor swept H(4): a reopened store counts only H(2).
  auto store = OpenStore(path);
  CHECK(store->block_count() == 1);
  CHECK(store->used_bytes() == 4096);
  CHECK(store->Contains("ns", H(2)));
  CHECK_FALSE(store->Contains("ns", H(4)));
}

TEST_CASE("BlockStore: a corrupt or truncated value is DATA_LOSS and deleted", "[storage]") {
  ScratchDir dir;
  auto store = OpenStore(dir.File("db"));
  const auto a = Bytes(4096, 3);
  REQUIRE(store->Put("ns", H(1), std::nullopt, a, false).ok());
  REQUIRE(store->Put("ns", H(2), H(1), a, false).ok());

  auto garbage = a;
  garbage[100] ^= 0x5a;
  REQUIRE(store->OverwriteBytesForTesting("ns", H(1), garbage).ok());
  std::vector<uint8_t> out(4096);
  Result<std::optional<BlockHash>> got = store->Get("ns", H(1), out);
  CHECK(got.status().code() == StatusCode::kDataLoss);
  CHECK(got.status().message().find("checksum") != std::string::npos);
  CHECK(!store->Contains("ns", H(1)));
  CHECK(store->Get("ns", H(1), out).status().code() == StatusCode::kNotFound);

  REQUIRE(store->OverwriteBytesForTesting("ns", H(2), std::span(a).first(1000)).ok());
  got = store->Get("ns", H(2), out);
  CHECK(got.status().code() == StatusCode::kDataLoss);
  CHECK(got.status().message().find("truncated") != std::string::npos);
  CHECK(!store->Contains("ns", H(2)));
  CHECK(store->used_bytes() == 0);
  CHECK(store->block_count() == 0);
}

TEST_CASE("BlockStore: capacity is enforced and a full store writes nothing", "[storage]") {
  ScratchDir dir;
  auto store = OpenStore(dir.File("db"), 3 * 4096);
  const auto a = Bytes(4096, 4);
  for (uint64_t i = 0; i < 3; ++i) REQUIRE(store->Put("ns", H(i), std::nullopt, a, false).ok());
  const Status full = store->Put("ns", H(9), std::nullopt, a, false);
  CHECK(full.code() == StatusCode::kResourceExhausted);
  CHECK(full.message().find("full") != std::string::npos);
  CHECK(!store->Contains("ns", H(9)));
  CHECK(store->used_bytes() == 3 * 4096);
  // Overwriting a stored block does not count twice.
  CHECK(store->Put("ns", H(2), std::nullopt, a, false).ok());
  REQUIRE(store->Delete("ns", H(0)).ok());
  CHECK(store->Put("ns", H(9), std::nullopt, a, false).ok());
}

TEST_CASE("BlockStore: concurrent writers keep the byte count exact and within capacity",
          "[storage]") {
  ScratchDir dir;
  // 4 threads put and delete 16 keys (each key shared by two threads) in a store of 8 blocks.
  auto store = OpenStore(dir.File("db"), 8 * 4096);
  const auto a = Bytes(4096, 5);
  std::vector<std::thread> threads;
  for (uint32_t t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      for (int i = 0; i < 300; ++i) {
        const BlockHash key = H((t % 2) * 8 + rng() % 8);
        if (rng() % 2 == 0) {
          const Status st = store->Put("ns", key, std::nullopt, a, false);
          CHECK((st.ok() || st.code() == StatusCode::kResourceExhausted));
        } else {
          CHECK(store->Delete("ns", key).ok());
        }
        CHECK(store->used_bytes() <= 8 * 4096);
      }
    });
  }
  for (auto& t : threads) t.join();
  uint64_t listed = 0;
  REQUIRE(store->Scan([&](const StoredBlockInfo& b) { listed += b.size_bytes; }).ok());
  CHECK(store->used_bytes() == listed);
  CHECK(store->block_count() * 4096 == listed);
}

TEST_CASE("BlockStore: specs and blocks survive a reopen, and the scan lists every block",
          "[storage]") {
  ScratchDir dir;
  std::map<std::pair<std::string, uint64_t>, std::optional<BlockHash>> want;
  {
    auto store = OpenStore(dir.File("db"));
    REQUIRE(store->PutNamespace({"m1", 16, 4096, ""}, true).ok());
    REQUIRE(store->PutNamespace({"m2", 64, 8192, "tenant"}, true).ok());
    for (uint64_t i = 0; i < 20; ++i) {
      const std::optional<BlockHash> parent =
          i % 5 == 0 ? std::nullopt : std::optional<BlockHash>(H(i - 1));
      const std::string ns = i < 10 ? "m1" : "m2";
      REQUIRE(store->Put(ns, H(i), parent, Bytes(i < 10 ? 4096 : 8192, 7), false).ok());
      want[{ns, i}] = parent;
    }
  }
  auto store = OpenStore(dir.File("db"));
  auto specs = store->ListNamespaces();
  REQUIRE(specs.ok());
  REQUIRE(specs->size() == 2);
  CHECK((*specs)[0] == NamespaceSpec{"m1", 16, 4096, ""});
  CHECK((*specs)[1] == NamespaceSpec{"m2", 64, 8192, "tenant"});
  CHECK(store->used_bytes() == 10 * 4096 + 10 * 8192);
  std::map<std::pair<std::string, uint64_t>, std::optional<BlockHash>> got;
  REQUIRE(store->Scan([&](const StoredBlockInfo& b) {
    CHECK(b.size_bytes == (b.ns == "m1" ? 4096u : 8192u));
    got[{b.ns, b.hash.lo}] = b.parent;
  }).ok());
  CHECK(got == want);

  auto deleted = store->DeleteNamespace("m1");
  REQUIRE(deleted.ok());
  CHECK(*deleted == 10);
  CHECK(store->used_bytes() == 10 * 8192);
  CHECK(store->ListNamespaces()->size() == 1);
}

TEST_CASE("BlockStore: opened without counting, the recovery scan counts as it lists",
          "[storage]") {
  ScratchDir dir;
  {
    auto store = OpenStore(dir.File("db"));
    for (uint64_t i = 0; i < 6; ++i) {
      REQUIRE(store->Put("m", H(i), std::nullopt, Bytes(4096, 3), false).ok());
    }
  }
  auto store = OpenStore(dir.File("db"), 8 * 4096, /*count_on_open=*/false);
  CHECK(store->used_bytes() == 0);  // not counted yet
  CHECK(store->block_count() == 0);
  uint64_t listed = 0;
  REQUIRE(store->RecoveryScan([&](const StoredBlockInfo&) { ++listed; }).ok());
  CHECK(listed == 6);
  CHECK(store->used_bytes() == 6 * 4096);
  CHECK(store->block_count() == 6);
  // The capacity counts what was there: two more fit, a third does not.
  REQUIRE(store->Put("m", H(6), std::nullopt, Bytes(4096, 3), false).ok());
  REQUIRE(store->Put("m", H(7), std::nullopt, Bytes(4096, 3), false).ok());
  CHECK(store->Put("m", H(8), std::nullopt, Bytes(4096, 3), false).code() ==
        StatusCode::kResourceExhausted);
}

TEST_CASE("BlockStore: a data dir of another layout is refused with a clear message",
          "[storage]") {
  ScratchDir dir;
  BlockStoreOptions o;
  o.path = dir.File("db");
  o.capacity_bytes = 0;
  CHECK(BlockStore::Open(o).status().code() == StatusCode::kInvalidArgument);

  // Not a database at all: RocksDB refuses files it does not recognise.
  std::filesystem::create_directories(dir.File("junk"));
  { std::ofstream(dir.File("junk/CURRENT")) << "garbage\n"; }
  o.path = dir.File("junk");
  o.capacity_bytes = 1 << 20;
  CHECK(!BlockStore::Open(o).ok());

  o.path = dir.File("db");
  { auto store = BlockStore::Open(o); REQUIRE(store.ok()); }
  o.layout = "kvpool.blockstore.v0";
  const Status other = BlockStore::Open(o).status();
  CHECK(other.code() == StatusCode::kFailedPrecondition);
  CHECK(other.message().find("kvpool.blockstore.v1") != std::string::npos);
  CHECK(other.message().find("kvpool.blockstore.v0") != std::string::npos);
}

}  // namespace
}  // namespace kvpool::storage

namespace kvpool::storage {
namespace {

TEST_CASE("BlockStore: reads through a ReadRun are byte-exact and never serve a stale block",
          "[storage]") {
  ScratchDir dir;
  BlockStoreOptions o;
  o.path = dir.File("db");
  o.capacity_bytes = 1 << 20;
  o.readahead_bytes = 3 * 4096;  // windows of three blocks
  o.readahead_threads = 2;
  auto opened = BlockStore::Open(o);
  REQUIRE(opened.ok());
  auto store = std::move(*opened);
  std::vector<std::vector<uint8_t>> blocks;
  std::vector<BlockHash> run;
  for (uint64_t i = 0; i < 8; ++i) {
    blocks.push_back(Bytes(4096, 100 + static_cast<uint32_t>(i)));
    REQUIRE(store->Put("ns", H(i), i == 0 ? std::nullopt : std::optional(H(i - 1)), blocks[i],
                       false)
                .ok());
    run.push_back(H(i));
  }
  std::vector<uint8_t> out(4096);
  {
    ReadRun ahead(store.get(), "ns", run);
    // Block 1 is read ahead with block 0's window, then deleted and written anew with other
    // bytes: the read must return the new bytes.
    REQUIRE(store->Get("ns", H(0), out).ok());
    CHECK(out == blocks[0]);
    const auto other = Bytes(4096, 999);
    REQUIRE(store->Delete("ns", H(1)).ok());
    REQUIRE(store->Put("ns", H(1), H(0), other, false).ok());
    REQUIRE(store->Get("ns", H(1), out).ok());
    CHECK(out == other);
    // Block 2 (read ahead) is deleted: NOT_FOUND, not the read-ahead copy.
    REQUIRE(store->Delete("ns", H(2)).ok());
    CHECK(store->Get("ns", H(2), out).status().code() == StatusCode::kNotFound);
    // Block 4 is corrupted before its window is read: DATA_LOSS and gone.
    auto garbage = blocks[4];
    garbage[7] ^= 0x11;
    REQUIRE(store->OverwriteBytesForTesting("ns", H(4), garbage).ok());
    REQUIRE(store->Get("ns", H(3), out).ok());
    CHECK(out == blocks[3]);
    CHECK(store->Get("ns", H(4), out).status().code() == StatusCode::kDataLoss);
    CHECK(!store->Contains("ns", H(4)));
    for (uint64_t i = 5; i < 8; ++i) {
      Result<std::optional<BlockHash>> parent = store->Get("ns", H(i), out);
      REQUIRE(parent.ok());
      CHECK(*parent == std::optional(H(i - 1)));
      CHECK(out == blocks[i]);
    }
  }
  // After the run, reads go straight to the store.
  REQUIRE(store->Get("ns", H(6), out).ok());
  CHECK(out == blocks[6]);
  CHECK(store->read_bytes_per_s() > 0);
}

TEST_CASE("BlockStore: the read bandwidth starts at 0 and Open's probe seeds it", "[storage]") {
  ScratchDir dir;
  {
    auto store = OpenStore(dir.File("db"));
    CHECK(store->read_bytes_per_s() == 0);
    for (uint64_t i = 0; i < 4; ++i) {
      REQUIRE(store->Put("ns", H(i), std::nullopt, Bytes(4096, 7), false).ok());
    }
    CHECK(store->read_bytes_per_s() == 0);  // writes are not reads
  }
  auto store = OpenStore(dir.File("db"));
  CHECK(store->read_bytes_per_s() > 0);
  // The probe stops at its block limit as at its byte limit (at least one block).
  CHECK(store->ProbeReadBandwidth(1 << 20, 3).value() == 3 * 4096);
  CHECK(store->ProbeReadBandwidth(1 << 20, 0).value() == 4096);
  CHECK(store->ProbeReadBandwidth(1 << 20).value() == 4 * 4096);
  BlockStoreOptions no_probe;
  no_probe.path = dir.File("db2");
  no_probe.capacity_bytes = 1 << 20;
  no_probe.probe_bytes = 0;
  auto fresh = BlockStore::Open(no_probe);
  REQUIRE(fresh.ok());
  CHECK((*fresh)->read_bytes_per_s() == 0);
}

TEST_CASE("ReadBandwidthEstimate: bytes over seconds, recent reads weigh more", "[storage]") {
  ReadBandwidthEstimate e(/*half_life_bytes=*/1000);
  CHECK(e.bytes_per_s() == 0);
  e.Record(0, 1.0);                     // ignored
  e.Record(100, -1.0);                  // ignored
  e.Record(100, std::nan(""));          // ignored
  CHECK(e.bytes_per_s() == 0);
  e.Record(1000, 1.0);
  CHECK(e.bytes_per_s() == Approx(1000));
  e.Record(1000, 1.0);
  CHECK(e.bytes_per_s() == Approx(1000));
  // A much faster disk: after many half-lives the figure follows it.
  for (int i = 0; i < 20; ++i) e.Record(1000, 0.01);
  CHECK(e.bytes_per_s() == Approx(100000).epsilon(0.01));
  CHECK(e.recorded_bytes() == 22000);
}

}  // namespace
}  // namespace kvpool::storage
