#include "index/prompt_tree.h"

#include <algorithm>
#include <limits>
#include <memory>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"

namespace kvpool::index {
namespace {

constexpr uint32_t kNil = std::numeric_limits<uint32_t>::max();

// Entry::state packs the pin count (low bits) with three flags, so an entry stays 48 bytes.
constexpr uint32_t kLive = 1u << 31;         // The slot holds a cached block (else it is free).
constexpr uint32_t kInLru = 1u << 30;        // On the LRU list (an unpinned leaf).
constexpr uint32_t kSegmentRoot = 1u << 29;  // Waiting for a known parent hash to be inserted.
constexpr uint32_t kPinMask = kSegmentRoot - 1;

/// One cached block. Index-linked (32-bit indices into the entry storage) to stay compact.
///
/// A leaf has no children, so while an entry is on the LRU list its first-child slot holds its
/// LRU predecessor instead (`child_or_lru_prev`). A segment root has no parent, so its sibling
/// links chain it into the list of roots waiting for the same parent hash. A free slot chains
/// the free list through `lru_next`.
struct Entry {
  BlockHash hash;
  BlockRef ref = 0;
  uint32_t parent = kNil;
  uint32_t next_sibling = kNil;
  uint32_t prev_sibling = kNil;
  uint32_t child_or_lru_prev = kNil;  // First child; LRU predecessor (colder) when kInLru.
  uint32_t lru_next = kNil;           // LRU successor (warmer) when kInLru; next free slot.
  uint32_t state = 0;                 // Pin count | flags.
};
static_assert(sizeof(Entry) == 48, "Entry layout grew; re-check the 64 bytes/block budget");

// Entries live in fixed-size chunks rather than one vector: growth never copies the index
// (no latency spike, no transient 2x memory) and unused capacity is at most one chunk, which
// keeps MemoryBytes() per block close to sizeof(Entry).
constexpr uint32_t kChunkShift = 10;
constexpr uint32_t kChunkEntries = 1u << kChunkShift;
constexpr uint32_t kChunkMask = kChunkEntries - 1;
// Indices must stay below kNil.
constexpr size_t kMaxEntries = size_t{kNil} - kChunkEntries;

using Chunks = std::vector<std::unique_ptr<Entry[]>>;

inline const Entry& EntryAt(const Chunks& chunks, uint32_t i) {
  return chunks[i >> kChunkShift][i & kChunkMask];
}

// The hash table stores 32-bit entry indices and reads keys out of the entry storage, so one
// slot costs 4 bytes. Both functors accept an index or a BlockHash (heterogeneous lookup).
struct SlotHash {
  using is_transparent = void;
  const Chunks* chunks;
  size_t operator()(const BlockHash& h) const { return BlockHashHasher{}(h); }
  size_t operator()(uint32_t i) const { return BlockHashHasher{}(EntryAt(*chunks, i).hash); }
};

struct SlotEq {
  using is_transparent = void;
  const Chunks* chunks;
  bool operator()(uint32_t a, uint32_t b) const {
    return EntryAt(*chunks, a).hash == EntryAt(*chunks, b).hash;
  }
  bool operator()(uint32_t a, const BlockHash& b) const { return EntryAt(*chunks, a).hash == b; }
  bool operator()(const BlockHash& a, uint32_t b) const { return a == EntryAt(*chunks, b).hash; }
};

// Heap bytes of an absl flat table: one control byte per slot plus the cloned group, then the
// slots (raw_hash_set's AllocSize, rounded up for slot alignment).
template <typename Table>
size_t FlatTableBytes(const Table& table, size_t slot_bytes) {
  if (table.capacity() == 0) return 0;
  constexpr size_t kClonedControlBytes = 16;
  return table.capacity() * (slot_bytes + 1) + kClonedControlBytes + alignof(uint64_t);
}

}  // namespace

struct PromptTree::Impl {
  Impl() : table(0, SlotHash{&chunks}, SlotEq{&chunks}) {}
  // The table's functors point at `chunks`, so an Impl never moves (PromptTree moves the
  // unique_ptr instead).
  Impl(const Impl&) = delete;
  Impl& operator=(const Impl&) = delete;

  Chunks chunks;
  uint32_t used = 0;  // Slots ever handed out; [used, chunks * kChunkEntries) are untouched.
  uint32_t free_head = kNil;
  size_t live = 0;

  absl::flat_hash_set<uint32_t, SlotHash, SlotEq> table;

  // LRU list of unpinned leaves: `lru_cold` is evicted first, `lru_mru` was used last.
  uint32_t lru_cold = kNil;
  uint32_t lru_mru = kNil;
  size_t lru_size = 0;

  // Segment roots whose parent hash is known but not cached here: parent hash -> first waiting
  // root (the rest chain through sibling links), and each waiting root -> its parent hash.
  absl::flat_hash_map<BlockHash, uint32_t, BlockHashHasher> waiting_head;
  absl::flat_hash_map<uint32_t, BlockHash> segment_parent;

  // Reused by Delete so deep subtrees cost no allocation after warm-up.
  std::vector<uint32_t> scratch;

  Entry& At(uint32_t i) { return chunks[i >> kChunkShift][i & kChunkMask]; }
  const Entry& At(uint32_t i) const { return EntryAt(chunks, i); }

  uint32_t Lookup(const BlockHash& h) const {
    auto it = table.find(h);
    return it == table.end() ? kNil : *it;
  }

  static uint32_t Pins(const Entry& e) { return e.state & kPinMask; }
  static bool InLru(const Entry& e) { return (e.state & kInLru) != 0; }
  static bool IsSegmentRoot(const Entry& e) { return (e.state & kSegmentRoot) != 0; }
  static uint32_t FirstChild(const Entry& e) { return InLru(e) ? kNil : e.child_or_lru_prev; }
  static bool IsLeaf(const Entry& e) { return FirstChild(e) == kNil; }

  // ---- storage ----

  uint32_t Allocate() {
    uint32_t i;
    if (free_head != kNil) {
      i = free_head;
      free_head = At(i).lru_next;
    } else {
      if (used == chunks.size() * kChunkEntries) {
        chunks.push_back(std::make_unique<Entry[]>(kChunkEntries));
      }
      i = used++;
    }
    At(i) = Entry{};
    At(i).state = kLive;
    ++live;
    return i;
  }

  // Returns `i`'s slot to the free list. The caller has already unlinked it from every list,
  // and erases it from the table with EraseFromTable before the next Allocate: the slot keeps
  // its hash until then, which is what the table's lookup compares.
  void Release(uint32_t i) {
    Entry& e = At(i);
    e.state = 0;
    e.parent = e.next_sibling = e.prev_sibling = e.child_or_lru_prev = kNil;
    e.lru_next = free_head;
    free_head = i;
    --live;
  }

  // Erases released blocks from the table. Each erase is a cache miss in a large tree, so the
  // ones a few steps ahead are prefetched to overlap the misses.
  void EraseFromTable(std::span<const RemovedBlock> blocks) {
    constexpr size_t kPrefetchDistance = 8;
    for (size_t j = 0; j < blocks.size(); ++j) {
      if (j + kPrefetchDistance < blocks.size()) {
        table.prefetch(blocks[j + kPrefetchDistance].hash);
      }
      table.erase(blocks[j].hash);
    }
  }

  // ---- LRU ----

  void LruPushMru(uint32_t i) {
    Entry& e = At(i);
    e.state |= kInLru;
    e.child_or_lru_prev = lru_mru;
    e.lru_next = kNil;
    if (lru_mru != kNil) {
      At(lru_mru).lru_next = i;
    } else {
      lru_cold = i;
    }
    lru_mru = i;
    ++lru_size;
  }

  void LruPushCold(uint32_t i) {
    Entry& e = At(i);
    e.state |= kInLru;
    e.child_or_lru_prev = kNil;
    e.lru_next = lru_cold;
    if (lru_cold != kNil) {
      At(lru_cold).child_or_lru_prev = i;
    } else {
      lru_mru = i;
    }
    lru_cold = i;
    ++lru_size;
  }

  void LruRemove(uint32_t i) {
    Entry& e = At(i);
    const uint32_t prev = e.child_or_lru_prev;
    const uint32_t next = e.lru_next;
    if (prev != kNil) {
      At(prev).lru_next = next;
    } else {
      lru_cold = next;
    }
    if (next != kNil) {
      At(next).child_or_lru_prev = prev;
    } else {
      lru_mru = prev;
    }
    e.state &= ~kInLru;
    e.child_or_lru_prev = kNil;  // Back to meaning "first child": a leaf has none.
    e.lru_next = kNil;
    --lru_size;
  }

  void LruTouch(uint32_t i) {
    if (!InLru(At(i)) || i == lru_mru) return;
    LruRemove(i);
    LruPushMru(i);
  }

  // ---- tree links ----

  void LinkChild(uint32_t parent, uint32_t child) {
    if (InLru(At(parent))) LruRemove(parent);
    Entry& p = At(parent);
    Entry& c = At(child);
    c.parent = parent;
    c.prev_sibling = kNil;
    c.next_sibling = p.child_or_lru_prev;
    if (c.next_sibling != kNil) At(c.next_sibling).prev_sibling = child;
    p.child_or_lru_prev = child;
  }

  // Unlinks `child` from its parent's child list. A parent left without children becomes an
  // evictable leaf at the cold end: its subtree was the coldest thing here.
  void UnlinkFromParent(uint32_t child) {
    Entry& c = At(child);
    const uint32_t parent = c.parent;
    if (c.prev_sibling != kNil) {
      At(c.prev_sibling).next_sibling = c.next_sibling;
    } else {
      At(parent).child_or_lru_prev = c.next_sibling;
    }
    if (c.next_sibling != kNil) At(c.next_sibling).prev_sibling = c.prev_sibling;
    c.parent = c.next_sibling = c.prev_sibling = kNil;
    const Entry& p = At(parent);
    if (IsLeaf(p) && Pins(p) == 0) LruPushCold(parent);
  }

  void AddWaiting(uint32_t i, const BlockHash& parent_hash) {
    auto [it, inserted] = waiting_head.try_emplace(parent_hash, i);
    Entry& e = At(i);
    e.state |= kSegmentRoot;
    e.prev_sibling = kNil;
    e.next_sibling = inserted ? kNil : it->second;
    if (!inserted) {
      At(it->second).prev_sibling = i;
      it->second = i;
    }
    segment_parent.emplace(i, parent_hash);
  }

  void RemoveWaiting(uint32_t i) {
    auto sp = segment_parent.find(i);
    Entry& e = At(i);
    if (e.prev_sibling != kNil) {
      At(e.prev_sibling).next_sibling = e.next_sibling;
    } else if (e.next_sibling != kNil) {
      waiting_head[sp->second] = e.next_sibling;
    } else {
      waiting_head.erase(sp->second);
    }
    if (e.next_sibling != kNil) At(e.next_sibling).prev_sibling = e.prev_sibling;
    e.next_sibling = e.prev_sibling = kNil;
    e.state &= ~kSegmentRoot;
    segment_parent.erase(sp);
  }

  // Detaches `i` from whatever holds it above (parent or waiting list), leaving it a plain root.
  void Detach(uint32_t i) {
    const Entry& e = At(i);
    if (IsSegmentRoot(e)) {
      RemoveWaiting(i);
    } else if (e.parent != kNil) {
      UnlinkFromParent(i);
    }
  }

  uint32_t RootOf(uint32_t i) const {
    while (At(i).parent != kNil) i = At(i).parent;
    return i;
  }

  // `i` was just inserted: the segment roots waiting for its hash become its children.
  // `*root` is the root of i's tree, or kNil if not yet known (then it is computed and kept).
  void AdoptWaiting(uint32_t i, uint32_t* root) {
    if (waiting_head.empty()) return;
    auto it = waiting_head.find(At(i).hash);
    if (it == waiting_head.end()) return;
    uint32_t child = it->second;
    waiting_head.erase(it);
    // Honest chained hashes never form cycles, but a client can send arbitrary hashes: a
    // waiting root that is an ancestor of `i` (only the root of i's tree can be) stays a root.
    if (*root == kNil) *root = RootOf(i);
    while (child != kNil) {
      Entry& c = At(child);
      const uint32_t next = c.next_sibling;
      c.state &= ~kSegmentRoot;
      c.next_sibling = c.prev_sibling = kNil;
      segment_parent.erase(child);
      if (child != *root) LinkChild(i, child);
      child = next;
    }
  }

  void MakeEvictableIfLeaf(uint32_t i) {
    const Entry& e = At(i);
    if (!InLru(e) && IsLeaf(e) && Pins(e) == 0) LruPushMru(i);
  }
};

PromptTree::PromptTree() : impl_(std::make_unique<Impl>()) {}
PromptTree::~PromptTree() = default;
PromptTree::PromptTree(PromptTree&&) noexcept = default;
PromptTree& PromptTree::operator=(PromptTree&&) noexcept = default;

void PromptTree::Insert(std::optional<BlockHash> parent, std::span<const BlockHash> hashes,
                        std::span<const BlockRef> refs, std::vector<InsertOutcome>* out) {
  Impl& m = *impl_;
  out->clear();
  const size_t n = std::min(hashes.size(), refs.size());
  out->reserve(n);
  // Index of the entry for the hash before hashes[i], or kNil when that block is not cached.
  uint32_t prev = parent.has_value() ? m.Lookup(*parent) : kNil;
  // Root of prev's tree when known, else kNil. Kept along the chain so that adopting segment
  // roots all along a long insert does not walk up to the root each time.
  uint32_t chain_root = kNil;
  for (size_t i = 0; i < n; ++i) {
    const uint32_t existing = m.Lookup(hashes[i]);
    if (existing != kNil) {
      out->push_back(InsertOutcome{false, m.At(existing).ref});
      if (prev == kNil || m.At(existing).parent != prev) chain_root = kNil;
      prev = existing;
      continue;
    }
    if (m.live >= kMaxEntries) {
      // Index space exhausted (4 billion blocks): report the caller's copy as not inserted
      // rather than corrupt the tree. Unreachable with any real memory size.
      out->push_back(InsertOutcome{false, refs[i]});
      prev = chain_root = kNil;
      continue;
    }
    const uint32_t idx = m.Allocate();
    m.At(idx).hash = hashes[i];
    m.At(idx).ref = refs[i];
    m.table.insert(idx);
    if (prev != kNil) {
      m.LinkChild(prev, idx);
    } else {
      chain_root = idx;
      if (i == 0 && parent.has_value() && *parent != hashes[0]) m.AddWaiting(idx, *parent);
    }
    m.AdoptWaiting(idx, &chain_root);
    m.MakeEvictableIfLeaf(idx);
    out->push_back(InsertOutcome{true, refs[i]});
    prev = idx;
  }
}

size_t PromptTree::Match(std::span<const BlockHash> hashes, std::vector<BlockRef>* refs) {
  Impl& m = *impl_;
  refs->clear();
  uint32_t prev = kNil;
  for (const BlockHash& h : hashes) {
    // Fast paths for chains avoid a table probe: the wanted block is usually a child of the
    // previous one.
    uint32_t idx = kNil;
    if (prev != kNil) {
      // A chain inserted in one call sits in consecutive slots, so prev + 1 is the likely
      // child; its address does not depend on loading prev, which lets the CPU run ahead.
      const uint32_t next = prev + 1;
      if (next < m.used && m.At(next).parent == prev && m.At(next).hash == h) {
        idx = next;
      } else {
        const uint32_t child = Impl::FirstChild(m.At(prev));
        if (child != kNil && m.At(child).hash == h) idx = child;
      }
    }
    if (idx == kNil) idx = m.Lookup(h);
    if (idx == kNil) break;
    m.LruTouch(idx);
    refs->push_back(m.At(idx).ref);
    prev = idx;
  }
  return refs->size();
}

std::optional<BlockRef> PromptTree::Find(const BlockHash& hash) const {
  const uint32_t idx = impl_->Lookup(hash);
  if (idx == kNil) return std::nullopt;
  return impl_->At(idx).ref;
}

bool PromptTree::SetRef(const BlockHash& hash, BlockRef ref) {
  const uint32_t idx = impl_->Lookup(hash);
  if (idx == kNil) return false;
  impl_->At(idx).ref = ref;
  return true;
}

bool PromptTree::Pin(const BlockHash& hash) {
  Impl& m = *impl_;
  const uint32_t idx = m.Lookup(hash);
  if (idx == kNil) return false;
  Entry& e = m.At(idx);
  if (Impl::Pins(e) == kPinMask) return false;  // Saturated; refusing beats wrapping to zero.
  if (Impl::InLru(e)) m.LruRemove(idx);
  ++e.state;
  return true;
}

bool PromptTree::Unpin(const BlockHash& hash) {
  Impl& m = *impl_;
  const uint32_t idx = m.Lookup(hash);
  if (idx == kNil) return false;
  Entry& e = m.At(idx);
  if (Impl::Pins(e) == 0) return false;
  --e.state;
  m.MakeEvictableIfLeaf(idx);
  return true;
}

uint32_t PromptTree::PinCount(const BlockHash& hash) const {
  const uint32_t idx = impl_->Lookup(hash);
  return idx == kNil ? 0 : Impl::Pins(impl_->At(idx));
}

size_t PromptTree::Delete(const BlockHash& hash, std::vector<RemovedBlock>* removed) {
  Impl& m = *impl_;
  const uint32_t top = m.Lookup(hash);
  if (top == kNil) return 0;
  m.Detach(top);
  // Explicit stack: prompts are deep chains (8192 blocks for 128K tokens), recursion would not
  // be safe.
  std::vector<uint32_t>& stack = m.scratch;
  stack.clear();
  stack.push_back(top);
  const size_t first = removed->size();
  while (!stack.empty()) {
    const uint32_t i = stack.back();
    stack.pop_back();
    Entry& e = m.At(i);
    for (uint32_t c = Impl::FirstChild(e); c != kNil; c = m.At(c).next_sibling) {
      stack.push_back(c);
    }
    if (Impl::InLru(e)) m.LruRemove(i);
    removed->push_back(RemovedBlock{e.hash, e.ref});
    m.Release(i);
  }
  const size_t count = removed->size() - first;
  m.EraseFromTable(std::span<const RemovedBlock>(*removed).subspan(first));
  return count;
}

size_t PromptTree::Evict(size_t max_blocks, std::vector<RemovedBlock>* evicted) {
  Impl& m = *impl_;
  const size_t first = evicted->size();
  size_t count = 0;
  while (count < max_blocks && m.lru_cold != kNil) {
    const uint32_t i = m.lru_cold;
    m.LruRemove(i);
    m.Detach(i);  // May push the parent onto the cold end, to be taken next.
    const Entry& e = m.At(i);
    evicted->push_back(RemovedBlock{e.hash, e.ref});
    m.Release(i);
    ++count;
  }
  m.EraseFromTable(std::span<const RemovedBlock>(*evicted).subspan(first));
  return count;
}

size_t PromptTree::EvictIf(size_t max_blocks, const std::function<bool(BlockRef)>& eligible,
                           std::vector<RemovedBlock>* evicted) {
  Impl& m = *impl_;
  const size_t first = evicted->size();
  size_t count = 0;
  uint32_t i = m.lru_cold;
  while (count < max_blocks && i != kNil) {
    const Entry& e = m.At(i);
    const uint32_t next = e.lru_next;
    if (!eligible(e.ref)) {
      i = next;
      continue;
    }
    m.LruRemove(i);
    const uint32_t cold_before = m.lru_cold;
    m.Detach(i);  // May push the parent onto the cold end: it is looked at next.
    evicted->push_back(RemovedBlock{e.hash, e.ref});
    m.Release(i);
    ++count;
    i = m.lru_cold != cold_before ? m.lru_cold : next;
  }
  m.EraseFromTable(std::span<const RemovedBlock>(*evicted).subspan(first));
  return count;
}

void PromptTree::ForEachEvictionCandidate(
    size_t max_blocks, const std::function<bool(const BlockHash&, BlockRef)>& fn) const {
  const Impl& m = *impl_;
  size_t visited = 0;
  for (uint32_t leaf = m.lru_cold; leaf != kNil && visited < max_blocks;
       leaf = m.At(leaf).lru_next) {
    uint32_t i = leaf;
    for (;;) {
      const Entry& e = m.At(i);
      ++visited;
      if (!fn(e.hash, e.ref)) return;
      if (visited == max_blocks) return;
      const uint32_t p = e.parent;
      // A segment root has no parent entry; a parent with another child or a pin stays.
      if ((e.state & kSegmentRoot) != 0 || p == kNil) break;
      const Entry& pe = m.At(p);
      if (Impl::Pins(pe) != 0 || e.prev_sibling != kNil || e.next_sibling != kNil) break;
      i = p;
    }
  }
}

size_t PromptTree::evictable_leaves() const { return impl_->lru_size; }

size_t PromptTree::size() const { return impl_->live; }

size_t PromptTree::MemoryBytes() const {
  const Impl& m = *impl_;
  size_t bytes = sizeof(Impl);
  bytes += m.chunks.capacity() * sizeof(Chunks::value_type);
  bytes += m.chunks.size() * kChunkEntries * sizeof(Entry);
  bytes += FlatTableBytes(m.table, sizeof(uint32_t));
  bytes += FlatTableBytes(m.waiting_head, sizeof(std::pair<const BlockHash, uint32_t>));
  bytes += FlatTableBytes(m.segment_parent, sizeof(std::pair<const uint32_t, BlockHash>));
  bytes += m.scratch.capacity() * sizeof(uint32_t);
  return bytes;
}

void PromptTree::ForEach(const std::function<void(const BlockHash& hash,
                                                  const std::optional<BlockHash>& parent,
                                                  BlockRef ref)>& fn) const {
  const Impl& m = *impl_;
  std::vector<uint32_t> stack;
  for (uint32_t root = 0; root < m.used; ++root) {
    const Entry& r = m.At(root);
    if ((r.state & kLive) == 0 || r.parent != kNil) continue;
    std::optional<BlockHash> root_parent;
    if (Impl::IsSegmentRoot(r)) root_parent = m.segment_parent.find(root)->second;
    fn(r.hash, root_parent, r.ref);
    stack.push_back(root);
    while (!stack.empty()) {
      const uint32_t i = stack.back();
      stack.pop_back();
      const Entry& e = m.At(i);
      for (uint32_t c = Impl::FirstChild(e); c != kNil; c = m.At(c).next_sibling) {
        const Entry& child = m.At(c);
        fn(child.hash, e.hash, child.ref);
        stack.push_back(c);
      }
    }
  }
}

bool PromptTree::CheckInvariants() const {
  const Impl& m = *impl_;
  if (m.used > m.chunks.size() * kChunkEntries) return false;
  if (m.table.size() != m.live) return false;

  size_t live = 0;
  size_t unpinned_leaves = 0;
  size_t with_parent = 0;
  size_t children_seen = 0;
  size_t segment_roots = 0;
  for (uint32_t i = 0; i < m.used; ++i) {
    const Entry& e = m.At(i);
    if ((e.state & kLive) == 0) continue;
    ++live;
    if (m.Lookup(e.hash) != i) return false;
    if (Impl::IsLeaf(e) && Impl::Pins(e) == 0) {
      if (!Impl::InLru(e)) return false;
      ++unpinned_leaves;
    } else if (Impl::InLru(e)) {
      return false;
    }
    if (Impl::IsSegmentRoot(e)) {
      ++segment_roots;
      if (e.parent != kNil) return false;
      auto sp = m.segment_parent.find(i);
      if (sp == m.segment_parent.end()) return false;
      // Waiting implies the parent is not cached: it would have adopted us on arrival.
      if (m.Lookup(sp->second) != kNil) return false;
    }
    if (e.parent != kNil) {
      ++with_parent;
      if (e.parent >= m.used || (m.At(e.parent).state & kLive) == 0) return false;
    }
    uint32_t prev = kNil;
    for (uint32_t c = Impl::FirstChild(e); c != kNil; c = m.At(c).next_sibling) {
      if (c >= m.used) return false;
      const Entry& child = m.At(c);
      if ((child.state & kLive) == 0 || child.parent != i || child.prev_sibling != prev) {
        return false;
      }
      if (++children_seen > m.live) return false;  // A cycle in a sibling list.
      prev = c;
    }
  }
  if (live != m.live || with_parent != children_seen) return false;
  if (unpinned_leaves != m.lru_size || segment_roots != m.segment_parent.size()) return false;

  // The LRU list holds exactly the unpinned leaves, linked both ways.
  size_t lru_count = 0;
  uint32_t prev = kNil;
  for (uint32_t i = m.lru_cold; i != kNil; i = m.At(i).lru_next) {
    const Entry& e = m.At(i);
    if (!Impl::InLru(e) || Impl::Pins(e) != 0 || e.child_or_lru_prev != prev) return false;
    if (++lru_count > m.lru_size) return false;
    prev = i;
  }
  if (lru_count != m.lru_size || prev != m.lru_mru) return false;

  // Waiting lists: every segment root exactly once, under its recorded parent hash.
  size_t waiting_count = 0;
  for (const auto& [parent_hash, head] : m.waiting_head) {
    uint32_t wprev = kNil;
    for (uint32_t i = head; i != kNil; i = m.At(i).next_sibling) {
      const Entry& e = m.At(i);
      if ((e.state & kLive) == 0 || !Impl::IsSegmentRoot(e) || e.prev_sibling != wprev) {
        return false;
      }
      auto sp = m.segment_parent.find(i);
      if (sp == m.segment_parent.end() || sp->second != parent_hash) return false;
      if (++waiting_count > m.segment_parent.size()) return false;
      wprev = i;
    }
  }
  if (waiting_count != m.segment_parent.size()) return false;

  // Free list covers exactly the slots not in use.
  size_t free_count = 0;
  for (uint32_t i = m.free_head; i != kNil; i = m.At(i).lru_next) {
    if ((m.At(i).state & kLive) != 0) return false;
    if (++free_count > m.used) return false;
  }
  if (free_count + m.live != m.used) return false;

  // Acyclic: walking down from the roots reaches every entry.
  size_t reached = 0;
  std::vector<uint32_t> stack;
  for (uint32_t i = 0; i < m.used; ++i) {
    const Entry& e = m.At(i);
    if ((e.state & kLive) != 0 && e.parent == kNil) stack.push_back(i);
  }
  while (!stack.empty()) {
    const uint32_t i = stack.back();
    stack.pop_back();
    if (++reached > m.live) return false;
    for (uint32_t c = Impl::FirstChild(m.At(i)); c != kNil; c = m.At(c).next_sibling) {
      stack.push_back(c);
    }
  }
  return reached == m.live;
}

}  // namespace kvpool::index
