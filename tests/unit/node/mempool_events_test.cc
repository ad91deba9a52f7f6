#include <catch2/catch.hpp>
#include <numeric>
#include <set>

#include "common/clock.h"
#include "node/mempool.h"

namespace kvpool::node {
namespace {

// Records every event, as the daemon's publisher would queue them.
class RecordingSink final : public EventSink {
 public:
  void OnEvent(PoolEvent event) override { events.push_back(std::move(event)); }
  std::vector<PoolEvent> events;
};

struct EventFixture {
  EventFixture() {
    MemPoolOptions o;
    o.capacity_bytes = 16 * 4096;
    o.huge_pages = false;
    o.slab_bytes = 4 * 4096;
    pool = std::move(MemPool::Create(o, &clock).value());
    REQUIRE(pool->CreateNamespace({"ns", 4, 4096, ""}).ok());
    pool->SetEventSink(&sink);
  }

  void Publish(uint32_t first_token, uint32_t blocks) {
    std::vector<uint32_t> tokens(blocks * 4);
    std::iota(tokens.begin(), tokens.end(), first_token);
    auto alloc = pool->AllocMem("ns", blocks, Tier::kHost, 0);
    REQUIRE(alloc.ok());
    std::vector<BlockHandle> handles;
    for (const auto& b : alloc->blocks) handles.push_back(b.handle);
    REQUIRE(pool->Insert("ns", PromptView::Tokens(tokens), 0, handles, alloc->lease.id, false).ok());
    REQUIRE(pool->Release(alloc->lease.id).ok());
  }

  // The cached hashes an observer would hold after applying every event in order.
  std::set<BlockHash> Replay() const {
    std::set<BlockHash> held;
    for (const PoolEvent& e : sink.events) {
      for (const BlockHash& h : e.hashes) {
        if (e.kind == PoolEvent::Kind::kStored) held.insert(h);
        else held.erase(h);
      }
    }
    return held;
  }

  ManualClock clock;
  RecordingSink sink;
  std::unique_ptr<MemPool> pool;
};

}  // namespace

TEST_CASE("MemPool events: Insert reports only newly stored blocks, numbered in order", "[node]") {
  EventFixture f;
  f.Publish(0, 3);
  f.Publish(0, 3);  // all duplicates: nothing new to report
  REQUIRE(f.sink.events.size() == 1);
  CHECK(f.sink.events[0].kind == PoolEvent::Kind::kStored);
  CHECK(f.sink.events[0].number == 1);
  CHECK(f.sink.events[0].ns == "ns");
  CHECK(f.sink.events[0].hashes.size() == 3);
  CHECK_FALSE(f.sink.events[0].parent.has_value());
  f.Publish(0, 5);  // extends the prompt by 2 blocks
  REQUIRE(f.sink.events.size() == 2);
  CHECK(f.sink.events[1].number == 2);
  CHECK(f.sink.events[1].hashes.size() == 2);
  CHECK(f.sink.events[1].parent == f.sink.events[0].hashes.back());
}

TEST_CASE("MemPool events: eviction, Delete and DeleteNamespace report removals", "[node]") {
  EventFixture f;
  for (uint32_t p = 0; p < 4; ++p) f.Publish(p * 1000, 4);  // fills the 16-block pool
  auto alloc = f.pool->AllocMem("ns", 4, Tier::kHost, 0);  // evicts 4 cold blocks
  REQUIRE(alloc.ok());
  REQUIRE(f.pool->Release(alloc->lease.id).ok());
  REQUIRE(f.pool->Evict("ns", 2).ok());
  std::vector<uint32_t> prompt(8);
  std::iota(prompt.begin(), prompt.end(), 3000u);
  REQUIRE(f.pool->Delete("ns", PromptView::Tokens(prompt)).ok());
  // The replayed event stream equals what the pool holds, at every step checked here.
  const PoolSnapshot snap = f.pool->Snapshot();
  CHECK(snap.last_event == f.sink.events.back().number);
  REQUIRE(snap.namespaces.size() == 1);
  const std::set<BlockHash> held(snap.namespaces[0].hashes.begin(), snap.namespaces[0].hashes.end());
  CHECK(held == f.Replay());
  CHECK(held.size() == f.pool->GetNamespace("ns")->stats.cached_blocks);

  REQUIRE(f.pool->DeleteNamespace("ns").ok());
  CHECK(f.Replay().empty());
  CHECK(f.pool->Snapshot().namespaces.empty());
}

TEST_CASE("MemPool events: nothing is produced without a sink", "[node]") {
  EventFixture f;
  f.pool->SetEventSink(nullptr);
  f.Publish(0, 2);
  CHECK(f.sink.events.empty());
  CHECK(f.pool->Snapshot().namespaces.at(0).hashes.size() == 2);
}

}  // namespace kvpool::node
