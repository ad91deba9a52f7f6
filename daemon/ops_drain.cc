#include "daemon/ops_drain.h"

#include <algorithm>
#include <chrono>
#include <filesystem>
#include <fstream>
#include <string>
#include <utility>
#include <vector>

#include "common/logging.h"
#include "common/quote.h"
#include "daemon/node_transfer.h"
#include "rpc/convert.h"

namespace kvpool::daemon {
namespace {

// Blocks demoted per SwapOut: each holds the pool's lock while it writes them to the SSD tier.
constexpr uint64_t kDemoteChunkBlocks = 256;
constexpr uint32_t kDefaultSchedulerTimeoutMs = 2000;

uint32_t SchedulerTimeout(uint32_t requested) {
  return requested == 0 ? kDefaultSchedulerTimeoutMs : requested;
}

}  // namespace

void NodeDrain::SetReporter(DrainReporter reporter) {
  absl::MutexLock lock(&mu_);
  reporter_ = std::move(reporter);
  if (reporter_ && draining()) reporter_(true, 0);
}

void NodeDrain::PersistIn(std::string state_file) {
  absl::MutexLock lock(&mu_);
  state_file_ = std::move(state_file);
  std::error_code ec;
  if (std::filesystem::exists(state_file_, ec)) {
    draining_.store(true);
    KVPOOL_LOG(WARNING) << "draining since before the restart (" << state_file_
                        << " exists): no new work is placed or routed here until "
                           "`kvpoolctl undrain`";
  } else if (ec) {
    KVPOOL_LOG(WARNING) << "cannot read the drain state " << state_file_ << ": " << ec.message();
  }
}

void NodeDrain::Save(bool draining) {
  if (state_file_.empty()) return;
  std::error_code ec;
  if (!draining) {
    std::filesystem::remove(state_file_, ec);
  } else {
    std::ofstream out(state_file_, std::ios::trunc);
    out << "kvpoold drain state: this node is draining (kvpoolctl undrain ends it)\n";
    out.flush();
    if (!out) ec = std::make_error_code(std::errc::io_error);
  }
  if (ec) {
    KVPOOL_LOG(WARNING) << "cannot " << (draining ? "write" : "remove") << " the drain state "
                        << state_file_ << " (" << ec.message()
                        << "): the node's drain state would not survive a restart";
  }
}

bool NodeDrain::Report(bool draining, uint32_t timeout_ms) {
  return reporter_ ? reporter_(draining, timeout_ms) : false;
}

Status NodeDrain::Drain(const v1::DrainRequest& request, v1::DrainResponse* response) {
  // Everything about the hand-off is checked before the node is marked draining.
  const std::string& handoff = request.handoff_node();
  if (!handoff.empty()) {
    if (request.mark_only()) {
      return InvalidArgumentError("handoff_node " + Quote(handoff) +
                                  " with mark_only: a mark-only drain moves no blocks");
    }
    if (transfer_ == nullptr) {
      return FailedPreconditionError("this node runs without a data plane (--no-data-plane): it "
                                     "cannot hand blocks to node " + Quote(handoff));
    }
    KVPOOL_RETURN_IF_ERROR(transfer_->CheckDestination(handoff, request.handoff_timeout_ms())
                               .WithContext("handoff_node " + Quote(handoff)));
  } else if (request.handoff_timeout_ms() != 0) {
    return InvalidArgumentError("handoff_timeout_ms " +
                                std::to_string(request.handoff_timeout_ms()) +
                                " without a handoff_node");
  }
  absl::MutexLock lock(&mu_);
  const bool was = draining_.exchange(true);
  if (!was) Save(true);
  response->set_was_draining(was);
  response->set_has_scheduler(static_cast<bool>(reporter_));
  response->set_scheduler_acknowledged(
      Report(true, SchedulerTimeout(request.scheduler_timeout_ms())));
  if (!was) {
    KVPOOL_LOG(INFO) << "draining: the scheduler "
                     << (!response->has_scheduler() ? "(none) is not told"
                         : response->scheduler_acknowledged()
                             ? "stops placing and routing new work here"
                             : "did not acknowledge yet (it is told with every heartbeat)");
  }

  if (!handoff.empty()) {
    KVPOOL_RETURN_IF_ERROR(HandOff(handoff, request.handoff_timeout_ms(), response));
  }

  const bool has_store = pool_->has_store();
  response->set_has_disk_tier(has_store);
  uint64_t budget = request.max_blocks() == 0 ? UINT64_MAX : request.max_blocks();
  uint64_t demoted = 0, dropped = 0;
  if (has_store && !request.mark_only()) {
    for (const NamespaceInfo& ns : pool_->ListNamespaces()) {
      // Demote in chunks until the namespace has nothing movable left or the budget is spent.
      while (budget > 0) {
        const uint64_t n = std::min(budget, kDemoteChunkBlocks);
        Result<node::SwapOutResult> moved = pool_->SwapOut(ns.spec.name, n);
        if (!moved.ok()) {
          if (moved.status().code() == StatusCode::kNotFound) break;  // deleted meanwhile
          return moved.status();
        }
        const uint64_t left_host = moved->demoted_blocks + moved->dropped_blocks;
        demoted += moved->demoted_blocks;
        dropped += moved->dropped_blocks;
        budget -= std::min(budget, left_host);
        if (left_host < n) break;  // the rest is leased, or there is no more
      }
      if (budget == 0) break;
    }
  }
  response->set_demoted_blocks(demoted);
  response->set_dropped_blocks(dropped);

  const PoolStats stats = pool_->GetStats();
  uint64_t host = 0, pinned = 0, allocated = 0, disk = 0;
  for (const NamespaceInfo& ns : stats.namespaces) {
    host += ns.stats.cached_blocks;
    pinned += ns.stats.pinned_blocks;
    allocated += ns.stats.allocated_blocks;
    disk += ns.stats.disk_blocks;
  }
  response->set_host_blocks(host);
  response->set_pinned_blocks(pinned);
  response->set_allocated_blocks(allocated);
  response->set_disk_blocks(disk);
  response->set_namespaces(static_cast<uint32_t>(stats.namespaces.size()));
  if (demoted > 0 || dropped > 0 || !was) {
    KVPOOL_LOG(INFO) << "drain: demoted=" << demoted << " dropped=" << dropped
                     << " host_blocks_left=" << host << " pinned=" << pinned
                     << (has_store ? "" : " (no SSD tier: host blocks stay in memory)");
  }
  return Status::Ok();
}

Status NodeDrain::HandOff(const std::string& node_id, uint32_t timeout_ms,
                          v1::DrainResponse* response) {
  const auto start = std::chrono::steady_clock::now();
  uint64_t blocks = 0, duplicates = 0, bytes = 0;
  uint32_t chains_sent = 0;
  auto so_far = [&] {
    return " (handed off before: " + std::to_string(blocks) + " blocks in " +
           std::to_string(chains_sent) + " chains)";
  };
  for (const NamespaceInfo& ns : pool_->ListNamespaces()) {
    const std::string& name = ns.spec.name;
    Result<std::vector<node::CachedChain>> chains = pool_->CachedChains(name);
    if (!chains.ok()) {
      if (chains.status().code() == StatusCode::kNotFound) continue;  // deleted meanwhile
      return chains.status();
    }
    for (const node::CachedChain& chain : *chains) {
      // The parent, when the chain has one, goes first: the destination inserts after it.
      std::vector<BlockHash> prompt;
      prompt.reserve(chain.hashes.size() + 1);
      if (chain.parent) prompt.push_back(*chain.parent);
      prompt.insert(prompt.end(), chain.hashes.begin(), chain.hashes.end());
      const uint32_t first = chain.parent ? 1 : 0;
      // Pinned while it moves; a chain evicted meanwhile moves as far as it is still cached.
      Result<MatchResult> pinned = pool_->Match(name, PromptView::Hashes(prompt), first,
                                                /*lease=*/true, /*lease_ttl_ms=*/0);
      if (!pinned.ok()) {
        if (pinned.status().code() == StatusCode::kNotFound) break;  // namespace deleted
        return pinned.status();
      }
      if (pinned->matched_blocks == 0) continue;
      v1::TransferWithInsertRequest req;
      req.set_dst_node(node_id);
      req.set_namespace_(name);
      rpc::HashesToBytes(std::span(prompt).first(first + pinned->matched_blocks),
                         req.mutable_prompt()->mutable_block_hashes());
      req.set_start_block(first);
      req.set_src_lease_id(pinned->lease.id);
      for (const BlockLocation& b : pinned->blocks) req.add_src_handles(b.handle);
      req.set_timeout_ms(timeout_ms);
      v1::TransferWithInsertResponse sent;
      const Status st = transfer_->TransferWithInsert(req, &sent);
      pool_->Release(pinned->lease.id).status().IgnoreError();
      if (!st.ok()) {
        return st.WithContext("handing namespace " + Quote(name) + " to node " +
                              Quote(node_id) + so_far());
      }
      blocks += sent.inserted_blocks();
      duplicates += sent.duplicate_blocks();
      bytes += sent.bytes();
      ++chains_sent;
    }
  }
  response->set_handed_off_blocks(blocks);
  response->set_handoff_duplicate_blocks(duplicates);
  response->set_handoff_bytes(bytes);
  response->set_handoff_chains(chains_sent);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  KVPOOL_LOG(INFO) << "drain: handed " << blocks << " blocks (" << bytes << " bytes, "
                   << duplicates << " already there) to node " << node_id << " in "
                   << chains_sent << " chains, " << seconds << " s";
  return Status::Ok();
}

Status NodeDrain::Undrain(const v1::UndrainRequest& request, v1::UndrainResponse* response) {
  absl::MutexLock lock(&mu_);
  const bool was = draining_.exchange(false);
  if (was) Save(false);
  response->set_was_draining(was);
  response->set_has_scheduler(static_cast<bool>(reporter_));
  response->set_scheduler_acknowledged(
      Report(false, SchedulerTimeout(request.scheduler_timeout_ms())));
  if (was) KVPOOL_LOG(INFO) << "drain ended: the node takes new work again";
  return Status::Ok();
}

}  // namespace kvpool::daemon
