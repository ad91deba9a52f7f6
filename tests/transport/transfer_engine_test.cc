// TransferEngine with two engines in one process, over loopback TCP and shared memory.
#include "transport/transfer_engine.h"

#include <catch2/catch.hpp>
#include <chrono>
#include <cstring>
#include <limits>
#include <numeric>
#include <random>
#include <thread>
#include <vector>

#include "memory/address_reservation.h"
#include "transport_test_util.h"

namespace kvpool::transport {
namespace {

using testing::Address;
using testing::Bytes;
using testing::EnginePair;
using testing::FillPattern;
using testing::HasPattern;
using testing::kKiB;
using testing::kMiB;
using testing::LoopbackOptions;
using testing::MakeEnginePair;

constexpr int64_t kWaitMs = 10'000;

Status PutAndWait(TransferEngine& engine, PeerId peer, const RemoteRegion& remote,
                  std::vector<TransferOp> ops) {
  auto handle = engine.Put(peer, remote, ops);
  if (!handle.ok()) return handle.status();
  return handle->Wait(kWaitMs);
}

Status GetAndWait(TransferEngine& engine, PeerId peer, const RemoteRegion& remote,
                  std::vector<TransferOp> ops) {
  auto handle = engine.Get(peer, remote, ops);
  if (!handle.ok()) return handle.status();
  return handle->Wait(kWaitMs);
}

LocalRegion Register(TransferEngine& engine, std::vector<uint8_t>& buffer) {
  auto region = engine.RegisterMemory(buffer.data(), buffer.size());
  REQUIRE(region.ok());
  return *region;
}

LocalRegion Allocate(TransferEngine& engine, uint64_t size_bytes) {
  auto region = engine.AllocateMemory(size_bytes);
  REQUIRE(region.ok());
  return *region;
}

TEST_CASE("TransferEngine: Put and Get round trips are byte-exact from 1 KiB to 4 MiB",
          "[ucx]") {
  constexpr uint64_t kRegionBytes = 4 * kMiB + 4 * kKiB;
  for (const std::string& tls : testing::TestTransports()) {
    CAPTURE(tls);
    EnginePair pair = MakeEnginePair(tls);
    std::vector<uint8_t> a_heap(kRegionBytes);
    std::vector<uint8_t> b_heap(kRegionBytes);
    // Both kinds of memory on both sides: registered heap memory and memory UCX allocated.
    const LocalRegion a_registered = Register(*pair.a, a_heap);
    const LocalRegion a_allocated = Allocate(*pair.a, kRegionBytes);
    const LocalRegion b_registered = Register(*pair.b, b_heap);
    const LocalRegion b_allocated = Allocate(*pair.b, kRegionBytes);
    CHECK(a_allocated.allocated_by_engine);
    CHECK_FALSE(a_registered.allocated_by_engine);
    CHECK_FALSE(a_allocated.rkey.empty());

    const std::pair<const LocalRegion*, const LocalRegion*> combos[] = {
        {&a_registered, &b_allocated}, {&a_allocated, &b_registered}};
    uint64_t seed = 1;
    for (const auto& [local, remote] : combos) {
      CAPTURE(local->allocated_by_engine, remote->allocated_by_engine);
      for (uint64_t size : {1 * kKiB, 64 * kKiB, 1 * kMiB, 4 * kMiB}) {
        CAPTURE(size);
        ++seed;
        // Local bytes at the front, remote bytes at an odd offset near the back, so offsets
        // are honoured and nothing outside the range is written.
        const uint64_t remote_offset = kRegionBytes - size - 3;
        std::memset(remote->data, 0, remote->size_bytes);
        FillPattern({local->data, size}, seed);
        const TransferOp op{Address(local->data), Address(remote->data + remote_offset), size};
        REQUIRE(PutAndWait(*pair.a, pair.a_to_b, remote->Describe(), {op}).ok());
        uint64_t where = 0;
        CHECK(HasPattern({remote->data + remote_offset, size}, seed, &where));
        CAPTURE(where);
        CHECK(remote->data[remote_offset - 1] == 0);
        CHECK(remote->data[remote_offset + size] == 0);

        // Back the other way into a cleared local buffer.
        std::memset(local->data, 0, local->size_bytes);
        REQUIRE(GetAndWait(*pair.a, pair.a_to_b, remote->Describe(), {op}).ok());
        CHECK(HasPattern({local->data, size}, seed, &where));
        CHECK(local->data[size] == 0);
      }
    }
  }
}

TEST_CASE("TransferEngine: a batch of 64 scattered blocks lands byte-exact both ways", "[ucx]") {
  constexpr uint64_t kBlockBytes = 256 * kKiB;
  constexpr size_t kBlocks = 64;
  for (const std::string& tls : testing::TestTransports()) {
    CAPTURE(tls);
    EnginePair pair = MakeEnginePair(tls);
    const LocalRegion local = Allocate(*pair.a, kBlocks * kBlockBytes);
    const LocalRegion remote = Allocate(*pair.b, kBlocks * kBlockBytes);
    std::memset(remote.data, 0, remote.size_bytes);

    // Local block i goes to remote block perm[i].
    std::vector<size_t> perm(kBlocks);
    std::iota(perm.begin(), perm.end(), 0);
    std::shuffle(perm.begin(), perm.end(), std::mt19937(7));
    std::vector<TransferOp> ops;
    for (size_t i = 0; i < kBlocks; ++i) {
      FillPattern({local.data + i * kBlockBytes, kBlockBytes}, 100 + i);
      ops.push_back({Address(local.data + i * kBlockBytes),
                     Address(remote.data + perm[i] * kBlockBytes), kBlockBytes});
    }
    auto put = pair.a->Put(pair.a_to_b, remote.Describe(), ops);
    REQUIRE(put.ok());
    CHECK(put->size_bytes() == kBlocks * kBlockBytes);
    REQUIRE(put->Wait(kWaitMs).ok());
    CHECK(put->Poll());
    for (size_t i = 0; i < kBlocks; ++i) {
      CAPTURE(i);
      CHECK(HasPattern({remote.data + perm[i] * kBlockBytes, kBlockBytes}, 100 + i));
    }

    std::memset(local.data, 0, local.size_bytes);
    REQUIRE(GetAndWait(*pair.a, pair.a_to_b, remote.Describe(), ops).ok());
    for (size_t i = 0; i < kBlocks; ++i) {
      CAPTURE(i);
      CHECK(HasPattern({local.data + i * kBlockBytes, kBlockBytes}, 100 + i));
    }
  }
}

TEST_CASE("TransferEngine: the configured transport is the one the endpoint uses", "[ucx]") {
  for (const std::string& tls : testing::TestTransports()) {
    CAPTURE(tls);
    EnginePair pair = MakeEnginePair(tls);
    const LocalRegion local = Allocate(*pair.a, 64 * kKiB);
    const LocalRegion remote = Allocate(*pair.b, 64 * kKiB);
    REQUIRE(PutAndWait(*pair.a, pair.a_to_b, remote.Describe(),
                       {{Address(local.data), Address(remote.data), 64 * kKiB}})
                .ok());
    auto described = pair.a->DescribePeer(pair.a_to_b);
    REQUIRE(described.ok());
    CAPTURE(*described);
    const bool has_tcp = described->find("tcp/") != std::string::npos;
    const bool has_shm = described->find("posix/") != std::string::npos ||
                         described->find("sysv/") != std::string::npos ||
                         described->find("cma/") != std::string::npos;
    const Result<std::string> transports = pair.a->Transports(pair.a_to_b);
    REQUIRE(transports.ok());
    CAPTURE(*transports);
    CHECK(*pair.a->UsesOnlyTcp(pair.a_to_b) == (tls == "tcp"));
    if (tls == "tcp") {
      CHECK(*transports == "tcp");
      CHECK(has_tcp);
      CHECK_FALSE(has_shm);
      CHECK(described->find("error handling PEER") != std::string::npos);
    } else {
      CHECK(*transports != "");
      CHECK(transports->find("tcp") == std::string::npos);
      CHECK(has_shm);
      CHECK_FALSE(has_tcp);
      // UCX 1.13's posix and sysv work only without UCX error handling (see PeerErrorMode).
      CHECK(described->find("error handling NONE") != std::string::npos);
    }
  }
}

TEST_CASE("TransferEngine: small batches to memory UCX mapped into this process are copied "
          "inline, large ones stay asynchronous",
          "[ucx]") {
  for (const std::string& tls : testing::TestTransports()) {
    CAPTURE(tls);
    EnginePair pair = MakeEnginePair(tls);
    const LocalRegion local = Allocate(*pair.a, 1 * kMiB);
    const LocalRegion remote = Allocate(*pair.b, 1 * kMiB);
    auto mapped_regions = [&] {
      auto described = pair.a->DescribePeer(pair.a_to_b);
      REQUIRE(described.ok());
      return described->find("1 region(s) mapped") != std::string::npos;
    };
    CHECK_FALSE(mapped_regions());
    // The first batch goes through UCX, which maps the region where it can.
    FillPattern({local.data, 16 * kKiB}, 7);
    REQUIRE(PutAndWait(*pair.a, pair.a_to_b, remote.Describe(),
                       {{Address(local.data), Address(remote.data + 64), 16 * kKiB}})
                .ok());
    CHECK(HasPattern({remote.data + 64, 16 * kKiB}, 7));
    // tcp never maps; posix shared memory (what UCX allocated) does.
    const bool inline_path = tls == "shm";
    CHECK(mapped_regions() == inline_path);

    // A 16 KiB Get is then done by the time Get returns, bytes and bounds exact.
    std::memset(local.data, 0, local.size_bytes);
    FillPattern({remote.data + 4096, 16 * kKiB}, 8);
    auto get = pair.a->Get(pair.a_to_b, remote.Describe(),
                           std::vector<TransferOp>{{Address(local.data + 1), Address(remote.data + 4096), 16 * kKiB}});
    REQUIRE(get.ok());
    if (inline_path) CHECK(get->Poll());
    REQUIRE(get->Wait(kWaitMs).ok());
    CHECK(HasPattern({local.data + 1, 16 * kKiB}, 8));
    CHECK(local.data[0] == 0);
    CHECK(local.data[1 + 16 * kKiB] == 0);

    // A batch above inline_copy_max_bytes still goes through the progress thread, correctly.
    FillPattern({local.data, 1 * kMiB}, 9);
    REQUIRE(PutAndWait(*pair.a, pair.a_to_b, remote.Describe(),
                       {{Address(local.data), Address(remote.data), 1 * kMiB}})
                .ok());
    CHECK(HasPattern({remote.data, 1 * kMiB}, 9));

    // After Disconnect nothing is copied inline any more: the dead id is refused.
    REQUIRE(pair.a->Disconnect(pair.a_to_b).ok());
    auto after = pair.a->Get(pair.a_to_b, remote.Describe(),
                             std::vector<TransferOp>{{Address(local.data), Address(remote.data), 4 * kKiB}});
    if (after.ok()) CHECK(after->Wait(kWaitMs).code() == StatusCode::kNotFound);
  }
}

TEST_CASE("TransferEngine: inline_copy_max_bytes 0 keeps every batch on the progress thread",
          "[ucx]") {
  TransferEngineOptions b_options = LoopbackOptions("shm", "test-b");
  auto b = TransferEngine::Create(b_options);
  REQUIRE(b.ok());
  TransferEngineOptions a_options = LoopbackOptions("shm", "test-a");
  a_options.inline_copy_max_bytes = 0;
  auto a = TransferEngine::Create(a_options);
  REQUIRE(a.ok());
  auto peer = (*a)->Connect((*b)->worker_address());
  REQUIRE(peer.ok());
  const LocalRegion local = Allocate(**a, 64 * kKiB);
  const LocalRegion remote = Allocate(**b, 64 * kKiB);
  for (int i = 0; i < 2; ++i) {
    FillPattern({local.data, 16 * kKiB}, 10 + i);
    REQUIRE(PutAndWait(**a, *peer, remote.Describe(),
                       {{Address(local.data), Address(remote.data), 16 * kKiB}})
                .ok());
    CHECK(HasPattern({remote.data, 16 * kKiB}, 10 + i));
  }
  auto described = (*a)->DescribePeer(*peer);
  REQUIRE(described.ok());
  CHECK(described->find("0 region(s) mapped") != std::string::npos);
}

TEST_CASE("TransferEngine: PeerErrorMode::kUcxPeer uses UCX error handling for a same-host peer",
          "[ucx]") {
  TransferEngineOptions options = testing::LoopbackOptions("", "test-peer-mode");
  options.peer_error_mode = PeerErrorMode::kUcxPeer;
  auto a = TransferEngine::Create(options);
  auto b = TransferEngine::Create(options);
  REQUIRE(a.ok());
  REQUIRE(b.ok());
  auto peer = (*a)->Connect((*b)->worker_address());
  REQUIRE(peer.ok());
  const LocalRegion local = Allocate(**a, 256 * kKiB);
  const LocalRegion remote = Allocate(**b, 256 * kKiB);
  FillPattern(Bytes(local), 31);
  REQUIRE(PutAndWait(**a, *peer, remote.Describe(),
                     {{Address(local.data), Address(remote.data), 256 * kKiB}})
              .ok());
  CHECK(HasPattern(Bytes(remote), 31));
  auto described = (*a)->DescribePeer(*peer);
  REQUIRE(described.ok());
  CAPTURE(*described);
  CHECK(described->find("error handling PEER") != std::string::npos);
}

TEST_CASE("TransferEngine: concurrent submitters each get their own bytes", "[ucx]") {
  constexpr int kThreads = 4;
  constexpr int kRounds = 16;
  constexpr uint64_t kSliceBytes = 128 * kKiB;
  for (const std::string& tls : testing::TestTransports()) {
    CAPTURE(tls);
    EnginePair pair = MakeEnginePair(tls);
    const LocalRegion local = Allocate(*pair.a, kThreads * 2 * kSliceBytes);
    const LocalRegion remote = Allocate(*pair.b, kThreads * kSliceBytes);
    std::vector<Status> failures(kThreads);
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        uint8_t* out = local.data + 2 * t * kSliceBytes;
        uint8_t* back = out + kSliceBytes;
        uint8_t* target = remote.data + t * kSliceBytes;
        for (int round = 0; round < kRounds; ++round) {
          const uint64_t seed = 1000 * (t + 1) + round;
          FillPattern({out, kSliceBytes}, seed);
          Status s = PutAndWait(*pair.a, pair.a_to_b, remote.Describe(),
                                {{Address(out), Address(target), kSliceBytes}});
          if (s.ok()) {
            s = GetAndWait(*pair.a, pair.a_to_b, remote.Describe(),
                           {{Address(back), Address(target), kSliceBytes}});
          }
          if (s.ok() && !HasPattern({back, kSliceBytes}, seed)) {
            s = DataLossError("round " + std::to_string(round) + " read back other bytes");
          }
          if (!s.ok()) {
            failures[t] = s;
            return;
          }
        }
      });
    }
    for (auto& thread : threads) thread.join();
    for (int t = 0; t < kThreads; ++t) {
      CAPTURE(t);
      CHECK(failures[t].ok());
      CAPTURE(failures[t]);
    }
  }
}

TEST_CASE("TransferEngine: bad transfers are refused before any byte moves", "[ucx]") {
  EnginePair pair = MakeEnginePair("tcp");
  constexpr uint64_t kBytes = 64 * kKiB;
  constexpr uint64_t kSeedLocal = 11;
  constexpr uint64_t kSeedRemote = 22;
  std::vector<uint8_t> local_heap(kBytes);
  const LocalRegion local = Register(*pair.a, local_heap);
  const LocalRegion remote = Allocate(*pair.b, kBytes);
  std::vector<uint8_t> unregistered(kBytes);
  const RemoteRegion good_remote = remote.Describe();
  const uint64_t l = Address(local.data);
  const uint64_t r = Address(remote.data);
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  // Every bad batch starts with a valid op, so a partial submission would show.
  const TransferOp valid{l, r, 4 * kKiB};

  struct Case {
    const char* name;
    std::vector<TransferOp> ops;
    RemoteRegion remote;
  };
  RemoteRegion no_rkey = good_remote;
  no_rkey.rkey.clear();
  RemoteRegion empty_region = good_remote;
  empty_region.size_bytes = 0;
  RemoteRegion wrapping_region = good_remote;
  wrapping_region.size_bytes = kMax;
  const std::vector<Case> cases = {
      {"empty batch", {}, good_remote},
      {"zero-size op", {valid, {l, r, 0}}, good_remote},
      {"null local address", {valid, {0, r, 16}}, good_remote},
      {"null remote address", {valid, {l, 0, 16}}, good_remote},
      {"remote range past the region's end", {valid, {l, r + kBytes - 8, 16}}, good_remote},
      {"remote range before the region", {valid, {l, r - 8, 16}}, good_remote},
      {"local range past the region's end", {valid, {l + kBytes - 8, r, 16}}, good_remote},
      {"local memory not registered", {valid, {Address(unregistered.data()), r, 16}},
       good_remote},
      {"local range wraps", {valid, {kMax - 4, r, 16}}, good_remote},
      {"remote range wraps", {valid, {l, kMax - 4, 16}}, good_remote},
      {"remote region without rkey", {valid}, no_rkey},
      {"remote region of size 0", {valid}, empty_region},
      {"remote region that wraps", {valid}, wrapping_region},
  };

  for (const Case& c : cases) {
    CAPTURE(c.name);
    FillPattern(Bytes(local), kSeedLocal);
    FillPattern(Bytes(remote), kSeedRemote);
    auto put = pair.a->Put(pair.a_to_b, c.remote, c.ops);
    CHECK(put.status().code() == StatusCode::kInvalidArgument);
    auto get = pair.a->Get(pair.a_to_b, c.remote, c.ops);
    CHECK(get.status().code() == StatusCode::kInvalidArgument);
    // Give a wrongly submitted transfer time to land before looking.
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
    CHECK(HasPattern(Bytes(remote), kSeedRemote));
    CHECK(HasPattern(Bytes(local), kSeedLocal));
  }

  // The same valid op alone does move bytes, so the checks above could fail.
  REQUIRE(PutAndWait(*pair.a, pair.a_to_b, good_remote, {valid}).ok());
  CHECK(HasPattern({remote.data, valid.size_bytes}, kSeedLocal));
  CHECK_FALSE(HasPattern(Bytes(remote), kSeedRemote));
}

TEST_CASE("TransferEngine: bad registrations, peers and handles are refused", "[ucx]") {
  EnginePair pair = MakeEnginePair("tcp");
  // The region is the middle third of `backing`, so ranges next to it are ours too.
  std::vector<uint8_t> backing(3 * 64 * kKiB);
  uint8_t* const buffer_start = backing.data() + 64 * kKiB;
  auto registered = pair.a->RegisterMemory(buffer_start, 64 * kKiB);
  REQUIRE(registered.ok());
  const LocalRegion region = *registered;
  std::span<uint8_t> buffer(buffer_start, 64 * kKiB);

  CHECK(pair.a->RegisterMemory(nullptr, 16).status().code() == StatusCode::kInvalidArgument);
  CHECK(pair.a->RegisterMemory(buffer.data(), 0).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(pair.a->RegisterMemory(buffer.data(), std::numeric_limits<uint64_t>::max())
            .status()
            .code() == StatusCode::kInvalidArgument);
  // Overlapping an existing registration: inside it, across its start, across its end.
  CHECK(pair.a->RegisterMemory(buffer.data() + 4096, 4096).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(pair.a->RegisterMemory(buffer.data() - 4096, 8192).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(pair.a->RegisterMemory(buffer.data() + buffer.size() - 4096, 8192).status().code() ==
        StatusCode::kInvalidArgument);
  // Right next to it is fine.
  auto neighbour = pair.a->RegisterMemory(buffer.data() + buffer.size(), 4096);
  CHECK(neighbour.ok());
  CHECK(pair.a->AllocateMemory(0).status().code() == StatusCode::kInvalidArgument);
  CHECK(pair.a->Connect("").status().code() == StatusCode::kInvalidArgument);
  // Bytes that are not an engine address never reach UCX.
  CHECK(pair.a->Connect("not a worker address").status().code() ==
        StatusCode::kInvalidArgument);
  const std::string& address = pair.b->worker_address();
  CHECK(pair.a->Connect(address.substr(0, address.size() - 1)).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(pair.a->Connect(address + "x").status().code() == StatusCode::kInvalidArgument);
  std::string wrong_magic = address;
  wrong_magic[0] = 'X';
  CHECK(pair.a->Connect(wrong_magic).status().code() == StatusCode::kInvalidArgument);
  CHECK(pair.a->Deregister(RegionId{999'999}).code() == StatusCode::kNotFound);
  CHECK(pair.a->Disconnect(PeerId{999'999}).code() == StatusCode::kNotFound);
  CHECK(pair.a->PeerStatus(PeerId{999'999}).code() == StatusCode::kNotFound);
  CHECK(pair.a->DescribePeer(PeerId{999'999}).status().code() == StatusCode::kNotFound);

  // An unknown peer id fails the handle, not the submission (peers live on the progress thread).
  const LocalRegion remote = Allocate(*pair.b, 64 * kKiB);
  const std::vector<TransferOp> small = {{Address(buffer.data()), Address(remote.data), 16}};
  auto handle = pair.a->Put(PeerId{999'999}, remote.Describe(), small);
  REQUIRE(handle.ok());
  CHECK(handle->Wait(kWaitMs).code() == StatusCode::kNotFound);

  CHECK(TransferHandle().Wait(0).code() == StatusCode::kFailedPrecondition);
  CHECK(TransferHandle().Poll());

  // A deregistered region can no longer be used, and is gone for good.
  REQUIRE(pair.a->Deregister(region.id).ok());
  CHECK(pair.a->Deregister(region.id).code() == StatusCode::kNotFound);
  auto after = pair.a->Put(pair.a_to_b, remote.Describe(), small);
  CHECK(after.status().code() == StatusCode::kInvalidArgument);
  // Its range can be registered again.
  auto again = pair.a->RegisterMemory(buffer.data(), buffer.size());
  CHECK(again.ok());
}

TEST_CASE("TransferEngine: engine options are validated", "[ucx]") {
  TransferEngineOptions options;
  options.idle_wakeup_ms = 0;
  CHECK(TransferEngine::Create(options).status().code() == StatusCode::kInvalidArgument);
  options = TransferEngineOptions();
  options.wait_spin_us = -1;
  CHECK(TransferEngine::Create(options).status().code() == StatusCode::kInvalidArgument);
  options = TransferEngineOptions();
  options.idle_spin_us = -1;
  CHECK(TransferEngine::Create(options).status().code() == StatusCode::kInvalidArgument);
  options = TransferEngineOptions();
  options.ucx_config = {{"KEEPALIVE_INTERVAL", "not-a-duration"}};
  CHECK(TransferEngine::Create(options).status().code() == StatusCode::kInvalidArgument);
  options = TransferEngineOptions();
  options.ucx_config = {{"", "1"}};
  CHECK(TransferEngine::Create(options).status().code() == StatusCode::kInvalidArgument);
  options = TransferEngineOptions();
  options.tls = "rc_mlx5";  // no RDMA device on a loopback test machine
  auto created = TransferEngine::Create(options);
  CHECK_FALSE(created.ok());
}

TEST_CASE("TransferEngine: AllocateMemoryAt maps a slab at its address with a key of its own; "
          "over shm a slab mapped anew is out of the old key's reach",
          "[ucx]") {
  constexpr uint64_t kSlab = 2 * kMiB;
  EnginePair pair = MakeEnginePair("shm");
  auto reservation = memory::AddressReservation::Create(2 * kSlab, kSlab);
  REQUIRE(reservation.ok());
  uint8_t* base = reservation->base();

  auto first = pair.b->AllocateMemoryAt(base, kSlab);
  REQUIRE(first.ok());
  CHECK(first->data == base);
  CHECK(first->allocated_by_engine);
  auto second = pair.b->AllocateMemoryAt(base + kSlab, kSlab);
  REQUIRE(second.ok());
  CHECK(second->rkey != first->rkey);
  FillPattern(Bytes(*first), 1);

  // Refusals: null or unaligned addresses, no bytes, a range over a mapped slab.
  CHECK(pair.b->AllocateMemoryAt(nullptr, kSlab).status().code() == StatusCode::kInvalidArgument);
  CHECK(pair.b->AllocateMemoryAt(base + 100, kSlab).status().code() ==
        StatusCode::kInvalidArgument);
  CHECK(pair.b->AllocateMemoryAt(base, 0).status().code() == StatusCode::kInvalidArgument);
  CHECK(pair.b->AllocateMemoryAt(base + kSlab / 2, kSlab).status().code() ==
        StatusCode::kInvalidArgument);

  const LocalRegion local = Allocate(*pair.a, kSlab);
  const TransferOp op{Address(local.data), Address(base), kSlab};
  // A key reaches only its slab: the first slab's key does not cover the second slab.
  CHECK(pair.a->Get(pair.a_to_b, first->Describe(),
                    std::vector<TransferOp>{{Address(local.data), Address(base + kSlab), 4096}})
            .status()
            .code() == StatusCode::kInvalidArgument);
  REQUIRE(GetAndWait(*pair.a, pair.a_to_b, first->Describe(), {op}).ok());
  CHECK(HasPattern(Bytes(local), 1));

  // The slab goes back and is mapped anew (its next owner's memory, with a new key).
  const RemoteRegion stale = first->Describe();
  REQUIRE(pair.b->Deregister(first->id).ok());
  REQUIRE(reservation->Restore(0, kSlab));
  auto again = pair.b->AllocateMemoryAt(base, kSlab);
  REQUIRE(again.ok());
  CHECK(again->rkey != stale.rkey);
  FillPattern(Bytes(*again), 2);

  // The old key, still unpacked here, maps the old memory, never the new owner's bytes.
  std::memset(local.data, 0, kSlab);
  Status through_stale = GetAndWait(*pair.a, pair.a_to_b, stale, {op});
  CAPTURE(through_stale);
  CHECK_FALSE(HasPattern(Bytes(local), 2));
  // The new key reaches them; dropping the old one leaves it working.
  pair.a->ForgetRemoteKeys(pair.a_to_b, {stale.rkey});
  REQUIRE(GetAndWait(*pair.a, pair.a_to_b, again->Describe(), {op}).ok());
  CHECK(HasPattern(Bytes(local), 2));
  REQUIRE(pair.b->Deregister(again->id).ok());
  REQUIRE(pair.b->Deregister(second->id).ok());
  CHECK(reservation->Restore(0, 2 * kSlab));
}

TEST_CASE("TransferEngine: a region busy with a transfer cannot be deregistered", "[ucx]") {
  EnginePair pair = MakeEnginePair("tcp");
  constexpr uint64_t kBytes = 32 * kMiB;
  const LocalRegion local = Allocate(*pair.a, kBytes);
  const LocalRegion remote = Allocate(*pair.b, kBytes);
  const std::vector<TransferOp> whole = {{Address(local.data), Address(remote.data), kBytes}};
  auto handle = pair.a->Put(pair.a_to_b, remote.Describe(), whole);
  REQUIRE(handle.ok());
  const Status deregistered = pair.a->Deregister(local.id);
  if (deregistered.ok()) {
    // Only possible when the transfer had already finished.
    CHECK(handle->Poll());
  } else {
    CHECK(deregistered.code() == StatusCode::kFailedPrecondition);
    REQUIRE(handle->Wait(kWaitMs).ok());
    CHECK(pair.a->Deregister(local.id).ok());
  }
}

TEST_CASE("TransferEngine: endpoints are cached per peer and re-created after Disconnect",
          "[ucx]") {
  EnginePair pair = MakeEnginePair("tcp");
  const LocalRegion local = Allocate(*pair.a, 64 * kKiB);
  const LocalRegion remote = Allocate(*pair.b, 64 * kKiB);
  const std::vector<TransferOp> ops = {{Address(local.data), Address(remote.data), 64 * kKiB}};

  auto same = pair.a->Connect(pair.b->worker_address());
  REQUIRE(same.ok());
  CHECK(*same == pair.a_to_b);
  CHECK(pair.a->PeerStatus(pair.a_to_b).ok());
  REQUIRE(PutAndWait(*pair.a, pair.a_to_b, remote.Describe(), ops).ok());

  REQUIRE(pair.a->Disconnect(pair.a_to_b).ok());
  CHECK(pair.a->PeerStatus(pair.a_to_b).code() == StatusCode::kNotFound);
  CHECK(PutAndWait(*pair.a, pair.a_to_b, remote.Describe(), ops).code() ==
        StatusCode::kNotFound);

  auto fresh = pair.a->Connect(pair.b->worker_address());
  REQUIRE(fresh.ok());
  CHECK(*fresh != pair.a_to_b);
  FillPattern(Bytes(local), 77);
  REQUIRE(PutAndWait(*pair.a, *fresh, remote.Describe(), ops).ok());
  CHECK(HasPattern(Bytes(remote), 77));
}

TEST_CASE("TransferEngine: CompleteWireup reads once per endpoint, and again after Disconnect",
          "[ucx]") {
  EnginePair pair = MakeEnginePair("tcp");
  const LocalRegion remote = Allocate(*pair.b, 64 * kKiB);
  RemoteRegion no_key = remote.Describe();
  no_key.rkey.clear();  // a read of it is refused before anything moves
  CHECK(pair.a->CompleteWireup(pair.a_to_b, no_key, 5000).code() ==
        StatusCode::kInvalidArgument);
  REQUIRE(pair.a->CompleteWireup(pair.a_to_b, remote.Describe(), 5000).ok());
  // Wired: nothing is read any more, so the region does not matter.
  CHECK(pair.a->CompleteWireup(pair.a_to_b, no_key, 5000).ok());
  REQUIRE(pair.a->Disconnect(pair.a_to_b).ok());
  CHECK(pair.a->CompleteWireup(pair.a_to_b, remote.Describe(), 5000).code() ==
        StatusCode::kNotFound);
  auto fresh = pair.a->Connect(pair.b->worker_address());
  REQUIRE(fresh.ok());
  CHECK(pair.a->CompleteWireup(*fresh, no_key, 5000).code() == StatusCode::kInvalidArgument);
  CHECK(pair.a->CompleteWireup(*fresh, remote.Describe(), 5000).ok());
}

TEST_CASE("TransferEngine: a destroyed peer engine fails the next transfer promptly, and a new "
          "one is reachable",
          "[ucx]") {
  // In one process only TCP can notice: shared-memory transports check the peer's pid, which is
  // ours. peer_process_test.cc covers shared memory with a real second process.
  EnginePair pair = MakeEnginePair("tcp");
  const LocalRegion local = Allocate(*pair.a, 1 * kMiB);
  RemoteRegion remote = Allocate(*pair.b, 1 * kMiB).Describe();
  const std::vector<TransferOp> ops = {{Address(local.data), remote.address, 1 * kMiB}};
  REQUIRE(PutAndWait(*pair.a, pair.a_to_b, remote, ops).ok());

  pair.b.reset();
  const auto start = std::chrono::steady_clock::now();
  const Status put = PutAndWait(*pair.a, pair.a_to_b, remote, ops);
  const auto elapsed = std::chrono::steady_clock::now() - start;
  CAPTURE(put);
  CHECK(put.code() == StatusCode::kUnavailable);
  CHECK(elapsed < std::chrono::seconds(5));
  CHECK(testing::WaitForPeerFailure(*pair.a, pair.a_to_b, 5000).code() ==
        StatusCode::kUnavailable);
  CHECK(GetAndWait(*pair.a, pair.a_to_b, remote, ops).code() == StatusCode::kUnavailable);

  // A "restarted" peer: new engine, new address, new region.
  auto restarted = TransferEngine::Create(testing::LoopbackOptions("tcp", "test-b2"));
  REQUIRE(restarted.ok());
  const LocalRegion remote2 = Allocate(**restarted, 1 * kMiB);
  auto peer2 = pair.a->Connect((*restarted)->worker_address());
  REQUIRE(peer2.ok());
  CHECK(*peer2 != pair.a_to_b);
  FillPattern(Bytes(local), 88);
  REQUIRE(PutAndWait(*pair.a, *peer2, remote2.Describe(),
                     {{Address(local.data), Address(remote2.data), 1 * kMiB}})
              .ok());
  CHECK(HasPattern(Bytes(remote2), 88));
  // The failed peer is a tombstone until disconnected.
  CHECK(pair.a->Disconnect(pair.a_to_b).ok());
  CHECK(pair.a->PeerStatus(pair.a_to_b).code() == StatusCode::kNotFound);
}

}  // namespace
}  // namespace kvpool::transport
