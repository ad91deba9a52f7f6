// A simulated inference instance on the replay's virtual clock: prefills run one at a time in
// arrival order (FIFO), decodes overlap in a batch. GPU time comes from a ModelProfile; only
// the pool operations around it are real.
#pragma once

#include <cstdint>
#include <deque>
#include <set>
#include <string>

namespace kvpool::bench {

/// Not thread-safe; owned by the replay loop.
class SimInstance {
 public:
  SimInstance(std::string id, std::string node_id, size_t node_index)
      : id_(std::move(id)), node_id_(std::move(node_id)), node_index_(node_index) {}

  const std::string& id() const { return id_; }
  const std::string& node_id() const { return node_id_; }
  size_t node_index() const { return node_index_; }

  /// Queues a prefill that arrives at `arrival_s` and takes `service_s`; returns its start.
  double StartPrefill(double arrival_s, double service_s, uint64_t new_tokens) {
    const double start = arrival_s > free_at_s_ ? arrival_s : free_at_s_;
    free_at_s_ = start + service_s;
    busy_s_ += service_s;
    prefills_.push_back({start, free_at_s_, new_tokens});
    return start;
  }
  /// Records a decode that runs until `end_s`.
  void AddDecode(double end_s) { decodes_.insert(end_s); }

  /// Prompt tokens assigned whose prefill has not finished at `now_s`: those of the prefills
  /// waiting, and the share of the running one not yet done (as a chunked-prefill engine counts
  /// them).
  uint64_t QueuedTokens(double now_s) {
    while (!prefills_.empty() && prefills_.front().end_s <= now_s) prefills_.pop_front();
    uint64_t total = 0;
    for (const Prefill& p : prefills_) {
      if (p.start_s < now_s && p.end_s > p.start_s) {
        total += static_cast<uint64_t>(static_cast<double>(p.new_tokens) * (p.end_s - now_s) /
                                       (p.end_s - p.start_s));
      } else {
        total += p.new_tokens;
      }
    }
    return total;
  }
  /// Seconds from `now_s` until the queued prefills are done: what a prompt arriving now would
  /// wait (the estimate an engine reports as queued_prefill_s; exact on the virtual clock).
  double QueuedPrefillSeconds(double now_s) const {
    return free_at_s_ > now_s ? free_at_s_ - now_s : 0;
  }
  /// Requests decoding at `now_s`.
  uint32_t Running(double now_s) {
    while (!decodes_.empty() && *decodes_.begin() <= now_s) decodes_.erase(decodes_.begin());
    return static_cast<uint32_t>(decodes_.size());
  }
  /// Total prefill time served so far (the load-balance measure).
  double busy_s() const { return busy_s_; }

  /// What was last reported to the scheduler (so only changes are reported).
  uint64_t reported_tokens = ~0ull;
  uint32_t reported_running = ~0u;
  double reported_prefill_s = -1;

 private:
  struct Prefill {
    double start_s;
    double end_s;
    uint64_t new_tokens;
  };
  std::string id_;
  std::string node_id_;
  size_t node_index_;
  double free_at_s_ = 0;
  double busy_s_ = 0;
  std::deque<Prefill> prefills_;
  std::multiset<double> decodes_;
};

}  // namespace kvpool::bench
