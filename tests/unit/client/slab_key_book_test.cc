// The client's slab keys: a block is reached with the key of the slab that holds it, and a key
// the node replaced is handed back for the engine to drop (docs/security.md "Remote keys").
#include "client/lib/slab_key_book.h"

#include <catch2/catch.hpp>

#include <algorithm>

namespace kvpool::client_internal {
namespace {

void AddKey(v1::BlockList* list, uint64_t offset, uint64_t bytes, const std::string& rkey) {
  v1::SlabKey* key = list->add_slab_keys();
  key->set_offset(offset);
  key->set_bytes(bytes);
  key->set_rkey(rkey);
}

BlockLocation Host(uint64_t offset, uint64_t length = 100) {
  return BlockLocation{offset + 1, Tier::kHost, offset, length};
}

TEST_CASE("SlabKeyBook: finds each block's slab, once per slab", "[client]") {
  SlabKeyBook book;
  v1::BlockList list;
  AddKey(&list, 0, 1000, "key-a");
  AddKey(&list, 1000, 1000, "key-b");
  book.Learn(list);
  CHECK(book.size() == 2);

  book.SetPoolBase(1 << 20);  // learnt after the keys: their addresses move with it
  const std::vector<BlockLocation> blocks = {Host(0), Host(1500), Host(100),
                                             BlockLocation{9, Tier::kGpu, 0, 100}};
  std::vector<std::string> replaced;
  auto found = book.Find(blocks, &replaced);
  REQUIRE(found.ok());
  CHECK(replaced.empty());
  REQUIRE(found->slabs.size() == 2);
  CHECK(found->slabs[0]->rkey == "key-a");
  CHECK(found->slabs[0]->address == (1 << 20));  // pool base + the slab's offset
  CHECK(found->slabs[1]->rkey == "key-b");
  CHECK(found->slabs[1]->address == (1 << 20) + 1000);
  CHECK(found->slabs[1]->size_bytes == 1000);
  CHECK(std::vector<uint32_t>(found->slab_of.begin(), found->slab_of.end()) ==
        std::vector<uint32_t>{0, 1, 0, BatchSlabs::kNoSlab});
}

TEST_CASE("SlabKeyBook: a block without a known slab key is refused by name", "[client]") {
  SlabKeyBook book;
  v1::BlockList list;
  AddKey(&list, 0, 1000, "key-a");
  book.Learn(list);
  // Past the slab, and straddling its end.
  std::vector<std::string> replaced;
  for (const BlockLocation& b : {Host(5000), Host(950)}) {
    auto found = book.Find(std::vector<BlockLocation>{Host(0), b}, &replaced);
    CHECK(found.status().code() == StatusCode::kFailedPrecondition);
    CHECK_THAT(std::string(found.status().message()),
               Catch::Contains("block 1 (handle " + std::to_string(b.handle) + ")"));
  }
}

TEST_CASE("SlabKeyBook: a slab mapped anew replaces the keys it overlaps", "[client]") {
  SlabKeyBook book;
  v1::BlockList first;
  AddKey(&first, 0, 1000, "old-a");
  AddKey(&first, 1000, 1000, "old-b");
  book.Learn(first);
  book.Learn(first);  // the same keys again: nothing replaced
  std::vector<std::string> replaced;
  REQUIRE(book.Find(std::vector<BlockLocation>{Host(0)}, &replaced).ok());
  CHECK(replaced.empty());

  v1::BlockList second;
  AddKey(&second, 500, 1000, "new");  // overlaps both old slabs
  book.Learn(second);
  auto found = book.Find(std::vector<BlockLocation>{Host(600)}, &replaced);
  REQUIRE(found.ok());
  CHECK(found->slabs[0]->rkey == "new");
  std::sort(replaced.begin(), replaced.end());
  CHECK(replaced == std::vector<std::string>{"old-a", "old-b"});
  replaced.clear();
  CHECK(book.size() == 1);
  CHECK_FALSE(book.Find(std::vector<BlockLocation>{Host(0)}, &replaced).ok());
  CHECK(replaced.empty());  // handed out once

  book.Clear();
  CHECK(book.size() == 0);
}

}  // namespace
}  // namespace kvpool::client_internal
