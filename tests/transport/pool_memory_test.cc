// kvpoold's pool memory over real UCX on loopback: each slab a namespace claims is its own UCX
// allocation with its own remote key, and a slab given back is unmapped, so its old key never
// reaches the memory of the slab's next owner (docs/security.md "Remote keys").
#include "transport/pool_memory.h"

#include <sys/mman.h>

#include <catch2/catch.hpp>
#include <cstring>
#include <vector>

#include "memory/block_allocator.h"
#include "transport_test_util.h"

namespace kvpool::transport {
namespace {

using testing::Address;
using testing::EnginePair;
using testing::FillPattern;
using testing::HasPattern;
using testing::kKiB;
using testing::kMiB;
using testing::MakeEnginePair;

constexpr uint64_t kBlock = 64 * kKiB;
constexpr int64_t kWaitMs = 10'000;

std::unique_ptr<memory::BlockAllocator> NamespaceAllocator(memory::HostArena* arena,
                                                           uint64_t owner) {
  memory::BlockAllocatorOptions options;
  options.block_bytes = kBlock;
  options.slab_bytes = 4 * kMiB;
  options.spare_slabs = 0;
  options.owner = owner;
  auto allocator = memory::BlockAllocator::Create(arena, options);
  REQUIRE(allocator.ok());
  return *std::move(allocator);
}

// The key that KeysFor hands out with one block, as the RemoteRegion a client builds from it.
RemoteRegion KeyOf(const PoolMemory& memory, uint64_t offset) {
  const uint64_t offsets[] = {offset};
  std::vector<SlabKey> keys = memory.KeysFor(offsets, kBlock);
  REQUIRE(keys.size() == 1);
  return RemoteRegion{memory.base_address() + keys[0].offset, keys[0].bytes, keys[0].rkey};
}

Status Move(TransferEngine& engine, PeerId peer, bool put, const RemoteRegion& remote,
            uint64_t local, uint64_t remote_address) {
  const std::vector<TransferOp> ops = {{local, remote_address, kBlock}};
  Result<TransferHandle> h = put ? engine.Put(peer, remote, ops) : engine.Get(peer, remote, ops);
  if (!h.ok()) return h.status();
  return h->Wait(kWaitMs);
}

TEST_CASE("PoolMemory: each namespace's slabs get keys of their own; a slab given back is "
          "unmapped and its old key never reaches its next owner's bytes",
          "[ucx]") {
  EnginePair pair = MakeEnginePair("shm");  // b: the node, a: a client
  auto memory = PoolMemory::Create(pair.b.get(), 15 * kMiB);
  REQUIRE(memory.ok());
  PoolMemory& pool = **memory;
  CHECK(pool.capacity_bytes() >= 15 * kMiB);
  CHECK(pool.capacity_bytes() % pool.alignment() == 0);
  CHECK(pool.base_address() % pool.alignment() == 0);
  REQUIRE_FALSE(pool.probe().rkey.empty());
  REQUIRE(pair.a->CompleteWireup(pair.a_to_b, pool.probe(), kWaitMs).ok());
  auto arena = pool.Arena();
  REQUIRE(arena.ok());
  CHECK(pool.mapped_slabs() == 0);  // nothing is mapped before a namespace claims it

  auto ns_a = NamespaceAllocator(arena->get(), 1);
  auto ns_b = NamespaceAllocator(arena->get(), 2);
  std::vector<memory::Slot> a_slots, b_slots;
  REQUIRE(ns_a->Allocate(2, &a_slots).ok());
  REQUIRE(ns_b->Allocate(2, &b_slots).ok());
  CHECK(pool.mapped_slabs() == 2);
  const uint64_t a_off = ns_a->ArenaOffset(a_slots[1]);
  const uint64_t b_off = ns_b->ArenaOffset(b_slots[0]);
  const RemoteRegion a_key = KeyOf(pool, a_off);
  const RemoteRegion b_key = KeyOf(pool, b_off);
  CHECK(a_key.rkey != b_key.rkey);
  // Both blocks of a namespace's slab come with one key.
  const uint64_t both[] = {ns_a->ArenaOffset(a_slots[0]), a_off};
  CHECK(pool.KeysFor(both, kBlock).size() == 1);
  // An offset in no mapped slab gets no key.
  const uint64_t unmapped[] = {14 * kMiB};
  CHECK(pool.KeysFor(unmapped, kBlock).empty());

  // A client Puts into namespace A's block with A's key: the bytes land in the node's memory.
  const LocalRegion local = *pair.a->AllocateMemory(kBlock);
  FillPattern({local.data, kBlock}, 1);
  const uint64_t a_address = pool.base_address() + a_off;
  REQUIRE(Move(*pair.a, pair.a_to_b, true, a_key, Address(local.data), a_address).ok());
  CHECK(HasPattern({(*arena)->base() + a_off, kBlock}, 1));
  // A's key does not cover B's block.
  CHECK(Move(*pair.a, pair.a_to_b, false, a_key, Address(local.data),
             pool.base_address() + b_off)
            .code() == StatusCode::kInvalidArgument);

  // Namespace B gives its slab back and claims one again: the same memory, with the same key.
  const uint64_t b_slot0_offset = ns_b->ArenaOffset(b_slots[0]);
  ns_b->Free(b_slots);
  CHECK(pool.mapped_slabs() == 1);
  b_slots.clear();
  REQUIRE(ns_b->Allocate(2, &b_slots).ok());
  CHECK(ns_b->ArenaOffset(b_slots[0]) == b_slot0_offset);
  CHECK(KeyOf(pool, ns_b->ArenaOffset(b_slots[0])).rkey == b_key.rkey);
  CHECK(pool.counts().reuses == 1);
  CHECK(pool.counts().maps == 2);

  // Namespace A goes away: its slab idles, still mapped. Namespace D's claim takes a range
  // never mapped before rather than unmap it...
  ns_a.reset();
  CHECK(pool.mapped_slabs() == 1);
  auto ns_d = NamespaceAllocator(arena->get(), 4);
  std::vector<memory::Slot> d_slots;
  REQUIRE(ns_d->Allocate(1, &d_slots).ok());
  CHECK(ns_d->ArenaOffset(d_slots[0]) == 8 * kMiB);
  CHECK(pool.counts().unmaps == 0);
  // ... and once only A's range is left, namespace C's claim unmaps it and maps it anew.
  auto ns_c = NamespaceAllocator(arena->get(), 3);
  std::vector<memory::Slot> c_slots;
  REQUIRE(ns_c->Allocate(2, &c_slots).ok());
  const uint64_t c_off = ns_c->ArenaOffset(c_slots[1]);
  REQUIRE(c_off == a_off);  // the very range A had
  CHECK(pool.counts().unmaps == 1);
  CHECK(pool.counts().maps == 4);
  const RemoteRegion c_key = KeyOf(pool, c_off);
  CHECK(c_key.rkey != a_key.rkey);
  FillPattern({(*arena)->base() + c_off, kBlock}, 2);

  // A's old key, still mapped in the client, reads A's old memory, never C's bytes...
  std::memset(local.data, 0, kBlock);
  Status stale = Move(*pair.a, pair.a_to_b, false, a_key, Address(local.data), a_address);
  CAPTURE(stale);
  CHECK_FALSE(HasPattern({local.data, kBlock}, 2));
  // ... and writes through it do not reach them either.
  FillPattern({local.data, kBlock}, 3);
  Move(*pair.a, pair.a_to_b, true, a_key, Address(local.data), a_address).IgnoreError();
  CHECK(HasPattern({(*arena)->base() + c_off, kBlock}, 2));
  // C's key reaches them.
  pair.a->ForgetRemoteKeys(pair.a_to_b, {a_key.rkey});
  REQUIRE(Move(*pair.a, pair.a_to_b, false, c_key, Address(local.data), a_address).ok());
  CHECK(HasPattern({local.data, kBlock}, 2));

  ns_b.reset();
  ns_c.reset();
  ns_d.reset();
  CHECK(pool.mapped_slabs() == 0);
  CHECK(pool.counts().lost_bytes == 0);
  REQUIRE(pair.a->Deregister(local.id).ok());
}

TEST_CASE("PoolMemory: a range another mapping takes while a slab is unmapped is skipped, and "
          "the pool's again once that mapping is gone",
          "[ucx]") {
  EnginePair pair = MakeEnginePair("shm");
  auto memory = PoolMemory::Create(pair.b.get(), 12 * kMiB);  // three slabs
  REQUIRE(memory.ok());
  PoolMemory& pool = **memory;
  auto arena = pool.Arena();
  REQUIRE(arena.ok());
  std::vector<std::unique_ptr<memory::BlockAllocator>> ns;
  std::vector<std::vector<memory::Slot>> slots(6);
  for (uint64_t owner = 1; owner <= 5; ++owner) ns.push_back(NamespaceAllocator(arena->get(), owner));
  for (int i = 0; i < 3; ++i) REQUIRE(ns[i]->Allocate(1, &slots[i]).ok());
  CHECK(ns[0]->ArenaOffset(slots[0][0]) == 0);
  CHECK(ns[1]->ArenaOffset(slots[1][0]) == 4 * kMiB);

  // Namespace 1's slab idles; when namespace 4 claims its range, another thread's mmap takes
  // the hole the unmap leaves (played by the hook).
  ns[0]->Free(slots[0]);
  void* stolen = MAP_FAILED;
  pool.SetUnmapHookForTesting([&](uint8_t* hole, uint64_t) {
    stolen = mmap(hole, 4096, PROT_READ | PROT_WRITE,
                  MAP_PRIVATE | MAP_ANONYMOUS | MAP_FIXED_NOREPLACE, -1, 0);
  });
  Status refused = ns[3]->Allocate(1, &slots[3]);
  REQUIRE(stolen != MAP_FAILED);
  pool.SetUnmapHookForTesting(nullptr);
  CHECK(refused.code() == StatusCode::kResourceExhausted);
  CHECK_THAT(std::string(refused.message()), Catch::Contains("taken by another mapping"));
  CHECK(pool.counts().lost_bytes == 4 * kMiB);
  static_cast<volatile uint8_t*>(stolen)[0] = 7;  // the other mapping is intact

  // Namespace 2's slab idles too: the free run [0, 8 MiB) starts with the taken range, and
  // namespace 4 gets the next slab of the run.
  ns[1]->Free(slots[1]);
  REQUIRE(ns[3]->Allocate(1, &slots[3]).ok());
  CHECK(ns[3]->ArenaOffset(slots[3][0]) == 4 * kMiB);
  CHECK(static_cast<volatile uint8_t*>(stolen)[0] == 7);

  // The other mapping goes: namespace 5's claim reserves the range again and maps it.
  REQUIRE(munmap(stolen, 4096) == 0);
  REQUIRE(ns[4]->Allocate(1, &slots[4]).ok());
  CHECK(ns[4]->ArenaOffset(slots[4][0]) == 0);
  CHECK(pool.counts().lost_bytes == 0);
  FillPattern({(*arena)->base(), kBlock}, 5);  // mapped and writable
  CHECK(HasPattern({(*arena)->base(), kBlock}, 5));
  const uint64_t first[] = {0};
  CHECK(pool.KeysFor(first, kBlock).size() == 1);
  ns.clear();
  CHECK(pool.mapped_slabs() == 0);
}

}  // namespace
}  // namespace kvpool::transport
