// The per-namespace prompt tree of one node: a radix tree at block granularity, stored as a
// forest keyed by chained block hash (DESIGN.md "Prompt tree" and "Pooled placement").
#pragma once

#include <cstddef>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <vector>

#include "kvpool/block_hash.h"

namespace kvpool::index {

/// An opaque 64-bit value the owner stores with each cached block (the node stores its block
/// handle). The tree never interprets it.
using BlockRef = uint64_t;

/// What Insert did with one block.
struct InsertOutcome {
  /// True when the block was new and `ref` is the caller's; false when the hash was already
  /// cached and `ref` is the existing block's value (the caller's copy is a duplicate).
  bool inserted = false;
  BlockRef ref = 0;
};

/// A cached block removed from the tree by Delete or Evict.
struct RemovedBlock {
  BlockHash hash;
  BlockRef ref = 0;
};

/// The prompt tree of one namespace on one node.
///
/// Structure: every cached block is an entry keyed by its chained hash. An entry's parent is the
/// entry of the hash before it in the prompt, when that block is cached here; otherwise the
/// entry is a segment root (the node holds a segment of a prompt without its beginning). A
/// segment root whose parent hash is known is adopted as soon as that parent is inserted.
///
/// Eviction: only unpinned leaves (entries without cached children) are evictable, in least
/// recently used order, so a block always goes after its cached descendants and what a node
/// holds of a prompt has no holes below its first block. Match touches the entries it returns.
/// An interior entry that becomes a leaf joins the cold end of the LRU order (its subtree was the
/// coldest thing here).
///
/// Pins: Pin/Unpin keep a per-entry count; a pinned entry is never evicted (Delete still removes
/// it from the tree: the owner keeps the block's memory alive while its own pins last).
///
/// Memory: one compact entry per block plus an open-addressing table of 32-bit entry indices;
/// MemoryBytes() reports the total (target: <= 64 bytes per cached block).
///
/// Not thread-safe; owned by the node's block manager, which serialises access.
class PromptTree {
 public:
  PromptTree();
  ~PromptTree();
  PromptTree(const PromptTree&) = delete;
  PromptTree& operator=(const PromptTree&) = delete;
  PromptTree(PromptTree&&) noexcept;
  PromptTree& operator=(PromptTree&&) noexcept;

  /// Inserts `hashes[i]` with value `refs[i]` for every i (the spans have equal length).
  /// `parent` is the hash before hashes[0] in the prompt (nullopt when hashes[0] is the
  /// prompt's first block). Hashes already cached are not changed (deduplication): their
  /// outcome has inserted=false and the existing ref. Each hashes[i] (i > 0) is parented under
  /// hashes[i-1]. Writes one outcome per hash to `*out` (cleared first). New entries are most
  /// recently used.
  void Insert(std::optional<BlockHash> parent, std::span<const BlockHash> hashes,
              std::span<const BlockRef> refs, std::vector<InsertOutcome>* out);

  /// Longest run of cached blocks starting at hashes[0]: returns its length k and writes the
  /// refs of hashes[0..k) to `*refs` (cleared first). Marks them most recently used.
  size_t Match(std::span<const BlockHash> hashes, std::vector<BlockRef>* refs);

  /// The ref of a cached hash, without touching LRU order.
  std::optional<BlockRef> Find(const BlockHash& hash) const;
  bool Contains(const BlockHash& hash) const { return Find(hash).has_value(); }
  /// Replaces the ref of a cached hash in place: its links, pins and LRU place stay (the owner
  /// moved the block, e.g. to another memory tier). Returns false if `hash` is not cached.
  bool SetRef(const BlockHash& hash, BlockRef ref);

  /// Adds one pin to a cached entry. Returns false (and does nothing) if `hash` is not cached.
  bool Pin(const BlockHash& hash);
  /// Removes one pin. Returns false if `hash` is not cached or has no pin. An entry whose last
  /// pin goes and that is a leaf becomes evictable as most recently used.
  bool Unpin(const BlockHash& hash);
  /// The pin count of a cached hash (0 if not cached).
  uint32_t PinCount(const BlockHash& hash) const;

  /// Removes `hash` and every cached descendant of it (pinned or not). Appends the removed
  /// blocks to `*removed` (not cleared) and returns how many were removed (0 if not cached).
  size_t Delete(const BlockHash& hash, std::vector<RemovedBlock>* removed);

  /// Evicts up to `max_blocks` unpinned leaves in LRU order (a parent that becomes an unpinned
  /// leaf is itself a candidate in the same call). Appends them to `*evicted` (not cleared) and
  /// returns how many were evicted.
  size_t Evict(size_t max_blocks, std::vector<RemovedBlock>* evicted);
  /// Evict restricted to leaves whose ref satisfies `eligible` (e.g. blocks of one memory tier);
  /// the others keep their place in the LRU order. Costs O(leaves skipped) on top of Evict.
  size_t EvictIf(size_t max_blocks, const std::function<bool(BlockRef)>& eligible,
                 std::vector<RemovedBlock>* evicted);

  /// Looks ahead at what Evict would take, without changing anything: walks the unpinned leaves
  /// from the cold end and, after each leaf, its ancestors for as long as each would become an
  /// unpinned leaf once the block below it went (an only child's unpinned parent). Calls
  /// `fn(hash, ref)` for each, coldest first, until `fn` returns false or `max_blocks` were
  /// visited. The order matches Evict's except where an ancestor with other children would
  /// be taken later (it is not listed). For write-behind (the node's SSD tier).
  void ForEachEvictionCandidate(size_t max_blocks,
                                const std::function<bool(const BlockHash& hash, BlockRef ref)>&
                                    fn) const;

  /// Number of unpinned leaves that Evict could remove right now.
  size_t evictable_leaves() const;

  /// Number of cached blocks.
  size_t size() const;
  /// Bytes of memory the index uses (entries, hash table, segment-root bookkeeping).
  size_t MemoryBytes() const;

  /// Calls `fn(hash, parent_hash_or_nullopt, ref)` for every cached block, parents before
  /// children (for snapshots). `parent` is the parent's hash when the parent is cached here or
  /// known for a segment root, else nullopt.
  void ForEach(const std::function<void(const BlockHash& hash,
                                        const std::optional<BlockHash>& parent,
                                        BlockRef ref)>& fn) const;

  /// Checks internal invariants (parent/child links, LRU membership, table consistency).
  /// For tests; O(size).
  bool CheckInvariants() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace kvpool::index
