#include "client/lib/slab_key_book.h"

#include <utility>

namespace kvpool::client_internal {

void SlabKeyBook::Learn(const v1::BlockList& blocks) {
  if (blocks.slab_keys().empty()) return;
  absl::MutexLock lock(&mu_);
  for (const v1::SlabKey& key : blocks.slab_keys()) {
    for (std::string& old : slabs_.Learn(key.offset(), key.bytes(), key.rkey())) {
      replaced_.push_back(std::move(old));
    }
  }
}

void SlabKeyBook::SetPoolBase(uint64_t pool_base) {
  absl::MutexLock lock(&mu_);
  slabs_.Rebase(pool_base);
}

Result<BatchSlabs> SlabKeyBook::Find(std::span<const BlockLocation> blocks,
                                     std::vector<std::string>* replaced) {
  BatchSlabs out;
  out.slab_of.reserve(blocks.size());
  absl::MutexLock lock(&mu_);
  if (!replaced_.empty()) replaced->swap(replaced_);
  for (size_t i = 0; i < blocks.size(); ++i) {
    const BlockLocation& b = blocks[i];
    if (b.tier != Tier::kHost) {
      out.slab_of.push_back(BatchSlabs::kNoSlab);
      continue;
    }
    const transport::RemoteSlabs::Slab* slab = slabs_.Find(b.offset, b.length);
    if (slab == nullptr) {
      return FailedPreconditionError(
          "block " + std::to_string(i) + " (handle " + std::to_string(b.handle) +
          ") lies in a slab whose remote key this client was never handed: use blocks from "
          "this Client's AllocMem or Match");
    }
    uint32_t index = 0;
    while (index < out.slabs.size() && out.slabs[index] != *slab) ++index;
    if (index == out.slabs.size()) out.slabs.push_back(*slab);
    out.slab_of.push_back(index);
  }
  return out;
}

void SlabKeyBook::Clear() {
  absl::MutexLock lock(&mu_);
  slabs_.Clear();
  replaced_.clear();
}

size_t SlabKeyBook::size() const {
  absl::MutexLock lock(&mu_);
  return slabs_.size();
}

}  // namespace kvpool::client_internal
