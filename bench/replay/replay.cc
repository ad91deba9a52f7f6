#include "bench/replay/replay.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <limits>
#include <numeric>
#include <queue>
#include <unordered_set>

#include <unistd.h>

#include "bench/cluster_command.h"
#include "bench/bench_stats.h"
#include "bench/replay/sim_instance.h"
#include "common/table.h"
#include "common/units.h"
#include "kvpool/block_hash.h"
#include "kvpool/client.h"
#include "kvpool/data_plane.h"
#include "kvpool/planner.h"
#include "kvpool/scheduler_client.h"
#include "launch/local_cluster.h"
#include "workload/cache_bounds.h"
#include "workload/decoded_blocks.h"
#include "workload/model_profile.h"
#include "workload/trace.h"

namespace kvpool::bench {
namespace {

using Clock = BenchClock;

bool Known(const std::vector<std::string>& allowed, const std::string& v) {
  return std::find(allowed.begin(), allowed.end(), v) != allowed.end();
}

// The nodes' own counters for one configuration's namespace, summed.
struct PoolCounts {
  uint64_t hit_blocks = 0, evicted_blocks = 0, demoted_blocks = 0, written_behind_blocks = 0;
};

// Everything one configuration measures.
struct ConfigRun {
  std::string mode;
  std::string policy;
  uint64_t prompt_tokens = 0;
  uint64_t hit_tokens = 0;
  uint64_t local_hit_tokens = 0;
  uint64_t remote_hit_tokens = 0;
  uint64_t replay_matched_blocks = 0;  // blocks Match returned (compared with the pools' stats)
  uint64_t bytes_local = 0;            // real (scaled) bytes read from the instance's node
  uint64_t bytes_remote = 0;           // ... and from other nodes
  uint64_t bytes_stored = 0;           // real bytes written by PutAndInsert
  uint64_t bytes_handed_off = 0;       // real bytes moved prefill -> decode node (PD runs)
  uint64_t bytes_handed_back = 0;      // ... and decoded history decode -> prefill node
  uint64_t decoded_blocks_stored = 0;  // pool blocks of decoded history published
  double nocache_compute_s = 0;
  double compute_s = 0;
  std::vector<double> ttft_s, ttft_load_only_s, ttft_compute_only_s, jct_s;
  uint64_t planner_worse = 0;          // requests where the planner lost to load- or compute-only
  LatencySet ops;
  uint64_t failures = 0;
  std::string first_failure;
  std::vector<double> busy_s;
  uint32_t prefill_instances = 0;  // colocated instances outside PD runs
  uint32_t decode_instances = 0;

  void Fail(const Status& st, const std::string& what) {
    ++failures;
    if (first_failure.empty()) first_failure = what + ": " + st.ToString();
  }
};

class Replayer {
 public:
  Replayer(const ReplayOptions& options, std::vector<workload::TraceRequest> trace,
           std::vector<std::vector<uint64_t>> decoded, workload::ModelProfile model,
           uint64_t block_bytes, double time_scale)
      : options_(options),
        trace_(std::move(trace)),
        decoded_(std::move(decoded)),
        model_(std::move(model)),
        block_bytes_(block_bytes),
        time_scale_(time_scale) {}

  Status Connect(const launch::ClusterState& cluster) {
    KVPOOL_ASSIGN_OR_RETURN(sched_, SchedulerClient::Connect(cluster.scheduler.address));
    uint32_t max_blocks = 1;
    // Room for the longest prompt, or decoded history, in blocks.
    for (const auto& r : trace_) {
      max_blocks = std::max<uint32_t>(
          max_blocks, static_cast<uint32_t>((uint64_t{r.input_length} + r.output_length) /
                                            options_.block_tokens));
    }
    scratch_.assign(static_cast<size_t>(max_blocks) * block_bytes_, 0x6b);
    for (const launch::ClusterMember& n : cluster.nodes) {
      node_index_[n.id] = nodes_.size();
      Node node;
      node.id = n.id;
      KVPOOL_ASSIGN_OR_RETURN(node.client, Client::Connect(n.address));
      DataPlaneOptions dopts;
      dopts.tls = options_.ucx_tls;
      KVPOOL_ASSIGN_OR_RETURN(node.dp, DataPlane::Connect(*node.client, dopts));
      KVPOOL_ASSIGN_OR_RETURN(node.region, node.dp->RegisterMemory(scratch_.data(), scratch_.size()));
      nodes_.push_back(std::move(node));
    }
    offsets_.resize(max_blocks);
    for (uint32_t i = 0; i < max_blocks; ++i) offsets_[i] = uint64_t{i} * block_bytes_;
    return Status::Ok();
  }

  Result<ConfigRun> Run(const std::string& mode, const std::string& policy, size_t index) {
    ConfigRun run;
    run.mode = mode;
    run.policy = policy;
    const std::string ns = "replay-" + std::to_string(index);
    const NamespaceSpec spec{ns, options_.block_tokens, block_bytes_, ""};
    for (Node& n : nodes_) KVPOOL_RETURN_IF_ERROR(n.client->CreateNamespace(spec).status());

    // Fresh instances: the registry forgets the previous configuration's load.
    std::vector<SimInstance> instances;
    std::map<std::string, size_t> by_id;
    const bool pd = mode == "pd";
    const uint32_t prefill_instances = pd ? options_.PdPrefillInstances() : options_.instances;
    const uint32_t total_instances =
        pd ? prefill_instances + options_.PdDecodeInstances() : options_.instances;
    run.prefill_instances = prefill_instances;
    run.decode_instances = total_instances - prefill_instances;
    // The previous configuration's instances go, however many it had.
    for (const std::string& id : registered_) sched_->DeregisterInstance(id).IgnoreError();
    registered_.clear();
    for (uint32_t i = 0; i < total_instances; ++i) {
      const size_t node = i % nodes_.size();
      const std::string id = "inst-" + std::to_string(i);
      const char* role = !pd ? "colocated" : (i < prefill_instances ? "prefill" : "decode");
      sched_->DeregisterInstance(id).IgnoreError();
      KVPOOL_RETURN_IF_ERROR(sched_->RegisterInstance(id, role, nodes_[node].id));
      registered_.push_back(id);
      by_id[id] = instances.size();
      instances.emplace_back(id, nodes_[node].id, node);
    }

    const BlockHasher hasher(ns, "", options_.block_tokens);
    const bool cache = mode != "no-cache";
    const bool pooled = mode == "pooled" || pd;
    const std::string label = mode + "/" + policy;
    for (size_t r = 0; r < trace_.size(); ++r) {
      if (options_.progress) Progress(label, r, trace_.size());
      const workload::TraceRequest& req = trace_[r];
      const double now = static_cast<double>(req.timestamp_ms) / 1000.0 * time_scale_;
      const std::vector<BlockHash> hashes = hasher.HashPrompt(workload::ExpandTokens(req));
      const uint32_t blocks = static_cast<uint32_t>(hashes.size());
      run.prompt_tokens += req.input_length;
      PublishDecoded(run, instances, ns, hasher, now);

      // 1. Loads as of now, reported when they changed.
      for (SimInstance& inst : instances) {
        const uint64_t queued = inst.QueuedTokens(now);
        const uint32_t running = inst.Running(now);
        const double prefill_s = inst.QueuedPrefillSeconds(now);
        if (queued == inst.reported_tokens && running == inst.reported_running &&
            prefill_s == inst.reported_prefill_s) {
          continue;
        }
        const auto t0 = Clock::now();
        if (Status st = sched_->ReportLoad(inst.id(), queued, running, prefill_s); !st.ok()) {
          run.Fail(st, "ReportLoad");
        }
        run.ops.Add("report_load", MicrosSince(t0));
        inst.reported_tokens = queued;
        inst.reported_running = running;
        inst.reported_prefill_s = prefill_s;
      }

      // 2. Route.
      RouteQuery query;
      query.ns = ns;
      query.hashes = hashes;
      query.prompt_tokens = req.input_length;
      query.role = pd ? "prefill" : "colocated";
      query.policy = policy;
      query.max_results = 1;
      query.commit = true;
      auto t0 = Clock::now();
      Result<RouteAnswer> routed = sched_->Route(query);
      run.ops.Add("route", MicrosSince(t0));
      if (!routed.ok() || routed->ranked.empty()) {
        run.Fail(routed.status(), "Route");
        continue;
      }
      SimInstance& inst = instances[by_id.at(routed->ranked[0].instance_id)];
      Node& home = nodes_[inst.node_index()];

      // 3. Real pool work: read the cached prefix, store the rest.
      uint32_t head = 0;                  // leading blocks on the instance's own node
      uint32_t covered = 0;               // leading blocks read from anywhere
      std::vector<bool> tail_remote;      // per block in [head, covered): read from another node
      if (cache && blocks > 0) {
        head = ReadRun(run, home, ns, hashes, 0, blocks, /*remote=*/false);
        covered = head;
        if (pooled && covered < blocks) {
          t0 = Clock::now();
          Result<PoolLookupResult> looked = sched_->Lookup(ns, hashes);
          run.ops.Add("lookup", MicrosSince(t0));
          if (!looked.ok()) run.Fail(looked.status(), "Lookup");
          if (looked.ok()) {
            for (const PoolSegment& seg : looked->segments) {
              const uint32_t end = seg.start + seg.length;
              if (end <= covered) continue;
              if (seg.start > covered) break;
              auto it = node_index_.find(seg.node_id);
              if (it == node_index_.end()) break;
              const bool remote = it->second != inst.node_index();
              const uint32_t got =
                  ReadRun(run, nodes_[it->second], ns, hashes, covered, end, remote);
              tail_remote.insert(tail_remote.end(), got, remote);
              covered += got;
              if (covered < end) break;  // evicted meanwhile: the prefix ends here
            }
          }
        }
        if (covered < blocks) {
          t0 = Clock::now();
          const uint32_t n = blocks - covered;
          Result<InsertResult> stored = home.dp->PutAndInsert(
              *home.client, ns, PromptView::Hashes(hashes), covered, home.region,
              std::span<const uint64_t>(offsets_).first(n));
          run.ops.Add("put_and_insert", MicrosSince(t0));
          if (stored.ok()) {
            run.bytes_stored += uint64_t{n} * block_bytes_;
          } else {
            run.Fail(stored.status(), "PutAndInsert");
          }
        }
      }

      // 4. Modelled GPU time on the virtual clock.
      const uint64_t bt = options_.block_tokens;
      const uint64_t cached_tokens = std::min<uint64_t>(uint64_t{covered} * bt, req.input_length);
      const uint64_t new_tokens = req.input_length - cached_tokens;
      uint64_t remote_tokens = 0;
      for (bool remote : tail_remote) remote_tokens += remote ? bt : 0;
      const uint64_t local_tokens = cached_tokens - remote_tokens;
      run.hit_tokens += cached_tokens;
      run.local_hit_tokens += local_tokens;
      run.remote_hit_tokens += remote_tokens;

      const double kv = static_cast<double>(model_.kv_bytes_per_token);
      const uint64_t head_tokens = uint64_t{head} * bt;
      const double head_load_s =
          head_tokens == 0 ? 0 : options_.load_latency_s + kv * head_tokens / options_.local_bandwidth;
      // The tail [head, covered) may be computed instead of loaded (Cake): plan it.
      ChunkCosts tail;
      for (size_t i = 0; i < tail_remote.size(); ++i) {
        const uint64_t before = head_tokens + i * bt;
        tail.compute_s.push_back(workload::PrefillSeconds(model_, bt, before));
        const double bw = tail_remote[i] ? options_.link_bandwidth : options_.local_bandwidth;
        tail.load_s.push_back(options_.load_latency_s + kv * bt / bw);
      }
      double tail_ready_s = 0, tail_load_only_s = 0, tail_compute_only_s = 0, tail_computed_s = 0;
      if (!tail.load_s.empty()) {
        Result<LoadPlan> plan = PlanComputeOrLoad(tail);
        if (plan.ok()) {
          tail_ready_s = plan->ready_s;
          tail_load_only_s = plan->load_only_s;
          tail_compute_only_s = plan->compute_only_s;
          tail_computed_s = plan->compute_s;
        } else {
          run.Fail(plan.status(), "PlanComputeOrLoad");
        }
      }
      const double prefill_s = workload::PrefillSeconds(model_, new_tokens, cached_tokens);
      const double service_s = head_load_s + tail_ready_s + prefill_s;
      const double start = inst.StartPrefill(now, service_s, new_tokens);
      const double wait_s = start - now;
      const double ttft = wait_s + service_s;
      run.ttft_s.push_back(ttft);
      run.ttft_load_only_s.push_back(wait_s + head_load_s + tail_load_only_s + prefill_s);
      run.ttft_compute_only_s.push_back(wait_s + head_load_s + tail_compute_only_s + prefill_s);
      if (tail_ready_s > std::min(tail_load_only_s, tail_compute_only_s) + 1e-12) ++run.planner_worse;
      const double first_token_at = start + service_s;
      double decode_start = first_token_at;
      SimInstance* decoder = &inst;
      if (pd) {
        // PD-caching (MemServe): a decode instance takes over; the prompt's KV moves to its node
        // with TransferWithInsert, which also caches it there for the conversation's next turn.
        query.role = "decode";
        t0 = Clock::now();
        Result<RouteAnswer> to_decode = sched_->Route(query);
        run.ops.Add("route", MicrosSince(t0));
        if (!to_decode.ok() || to_decode->ranked.empty()) {
          run.Fail(to_decode.status(), "Route decode");
        } else {
          decoder = &instances[by_id.at(to_decode->ranked[0].instance_id)];
          const bool remote = decoder->node_index() != inst.node_index();
          if (remote && blocks > 0) {
            HandOff(run, home, nodes_[decoder->node_index()], ns, hashes, 0,
                    &run.bytes_handed_off);
          }
          const double bw = remote ? options_.link_bandwidth : options_.local_bandwidth;
          decode_start += options_.load_latency_s + kv * static_cast<double>(req.input_length) / bw;
        }
      }
      const double decode_s = workload::DecodeSeconds(model_, req.output_length,
                                                      decoder->Running(decode_start) + 1);
      decoder->AddDecode(decode_start + decode_s);
      run.jct_s.push_back(decode_start - now + decode_s);
      if (cache && !decoded_[r].empty()) {
        pending_.push(PendingDecoded{decode_start + decode_s, r,
                                     static_cast<size_t>(decoder - instances.data()),
                                     static_cast<size_t>(&inst - instances.data())});
      }
      run.compute_s += prefill_s + tail_computed_s;
      run.nocache_compute_s += workload::PrefillSeconds(model_, req.input_length, 0);
    }
    PublishDecoded(run, instances, ns, hasher, std::numeric_limits<double>::infinity());
    if (options_.progress) Progress(label, trace_.size(), trace_.size());
    // Load balance over the instances that prefill (in PD runs the decode half has none).
    for (uint32_t i = 0; i < prefill_instances; ++i) run.busy_s.push_back(instances[i].busy_s());
    return run;
  }

  /// The pools' own counts for the configuration's namespace, summed over the nodes; then the
  /// namespace is deleted everywhere.
  Result<PoolCounts> CollectAndDrop(size_t index) {
    const std::string ns = "replay-" + std::to_string(index);
    PoolCounts c;
    for (Node& n : nodes_) {
      KVPOOL_ASSIGN_OR_RETURN(NamespaceInfo info, n.client->GetNamespace(ns));
      c.hit_blocks += info.stats.hit_blocks;
      c.evicted_blocks += info.stats.evicted_blocks;
      c.demoted_blocks += info.stats.demoted_blocks;
      c.written_behind_blocks += info.stats.written_behind_blocks;
      KVPOOL_RETURN_IF_ERROR(n.client->DeleteNamespace(ns).status());
    }
    return c;
  }

 private:
  struct Node {
    std::string id;
    std::unique_ptr<Client> client;
    std::unique_ptr<DataPlane> dp;
    RegionId region{};
  };

  // A decoded history waiting for its decode to end on the virtual clock.
  struct PendingDecoded {
    double at_s;
    size_t request;
    size_t decoder;   // instance index
    size_t prefiller;
    friend bool operator>(const PendingDecoded& a, const PendingDecoded& b) {
      return a.at_s != b.at_s ? a.at_s > b.at_s : a.request > b.request;
    }
  };

  // Publishes the decoded histories whose decode ended by `now_s`: the decode instance stores
  // the blocks its output completed (PutAndInsert on its node), and in PD runs hands them back
  // to the prefill instance's node (TransferWithInsert), MemServe's return leg, so the
  // conversation's next turn finds its whole history where it prefills.
  void PublishDecoded(ConfigRun& run, const std::vector<SimInstance>& instances,
                      const std::string& ns, const BlockHasher& hasher, double now_s) {
    while (!pending_.empty() && pending_.top().at_s <= now_s) {
      const PendingDecoded p = pending_.top();
      pending_.pop();
      const workload::TraceRequest& req = trace_[p.request];
      const uint64_t prompt_full = req.input_length / workload::kTraceBlockTokens;
      workload::TraceRequest history;
      history.hash_ids.assign(req.hash_ids.begin(),
                              req.hash_ids.begin() + static_cast<std::ptrdiff_t>(prompt_full));
      const std::vector<uint64_t>& answer = decoded_[p.request];
      history.hash_ids.insert(history.hash_ids.end(), answer.begin(), answer.end());
      history.input_length =
          static_cast<uint32_t>(history.hash_ids.size() * workload::kTraceBlockTokens);
      const std::vector<BlockHash> hashes = hasher.HashPrompt(workload::ExpandTokens(history));
      const uint64_t per_trace_block = workload::kTraceBlockTokens / options_.block_tokens;
      const auto start = static_cast<uint32_t>(prompt_full * per_trace_block);
      const auto n = static_cast<uint32_t>(hashes.size() - start);
      Node& decode_node = nodes_[instances[p.decoder].node_index()];
      auto t0 = Clock::now();
      Result<InsertResult> stored = decode_node.dp->PutAndInsert(
          *decode_node.client, ns, PromptView::Hashes(hashes), start, decode_node.region,
          std::span<const uint64_t>(offsets_).first(n));
      run.ops.Add("put_and_insert", MicrosSince(t0));
      if (!stored.ok()) {
        run.Fail(stored.status(), "PutAndInsert of decoded blocks");
        continue;
      }
      run.bytes_stored += uint64_t{n} * block_bytes_;
      run.decoded_blocks_stored += n;
      const size_t prefill_node = instances[p.prefiller].node_index();
      if (prefill_node != instances[p.decoder].node_index()) {
        HandOff(run, decode_node, nodes_[prefill_node], ns, hashes, start,
                &run.bytes_handed_back);
      }
    }
  }

  // Moves the run of the prompt's blocks from `start` that `from` holds to `to` with the
  // node-driven TransferWithInsert; adds the bytes moved to `*bytes`.
  void HandOff(ConfigRun& run, Node& from, Node& to, const std::string& ns,
               const std::vector<BlockHash>& hashes, uint32_t start, uint64_t* bytes) {
    auto t0 = Clock::now();
    Result<MatchResult> m = from.client->Match(ns, PromptView::Hashes(hashes), start, true);
    run.ops.Add("match", MicrosSince(t0));
    if (!m.ok()) {
      run.Fail(m.status(), "Match for hand-off");
      return;
    }
    run.replay_matched_blocks += m->matched_blocks;
    if (m->matched_blocks > 0) {
      std::vector<BlockHandle> handles;
      for (const BlockLocation& b : m->blocks) handles.push_back(b.handle);
      t0 = Clock::now();
      Result<TransferWithInsertResult> moved = from.client->TransferWithInsert(
          to.id, ns, PromptView::Hashes(hashes), start, m->lease.id, handles);
      run.ops.Add("transfer_with_insert", MicrosSince(t0));
      if (moved.ok()) {
        *bytes += moved->bytes;
      } else {
        run.Fail(moved.status(), "TransferWithInsert");
      }
    }
    if (m->lease.id != 0) from.client->Release(m->lease.id).status().IgnoreError();
  }

  // Matches blocks [from, limit) on `node` with a lease, reads them into the scratch region,
  // releases; returns how many were read.
  uint32_t ReadRun(ConfigRun& run, Node& node, const std::string& ns,
                   const std::vector<BlockHash>& hashes, uint32_t from, uint32_t limit,
                   bool remote) {
    auto t0 = Clock::now();
    Result<MatchResult> m = node.client->Match(ns, PromptView::Hashes(hashes), from, true);
    run.ops.Add("match", MicrosSince(t0));
    if (!m.ok()) {
      run.Fail(m.status(), "Match");
      return 0;
    }
    run.replay_matched_blocks += m->matched_blocks;
    const uint32_t n = std::min(m->matched_blocks, limit - from);
    if (n > 0) {
      t0 = Clock::now();
      Result<TransferHandle> h =
          node.dp->Get(std::span<const BlockLocation>(m->blocks).first(n), node.region,
                       std::span<const uint64_t>(offsets_).first(n));
      Status st = h.ok() ? h->Wait(30'000) : h.status();
      run.ops.Add(remote ? "get_remote" : "get_local", MicrosSince(t0));
      if (!st.ok()) {
        run.Fail(st, "Get");
      } else {
        (remote ? run.bytes_remote : run.bytes_local) += uint64_t{n} * block_bytes_;
      }
    }
    if (m->lease.id != 0) node.client->Release(m->lease.id).status().IgnoreError();
    return n;
  }

  void Progress(const std::string& label, size_t done, size_t total) {
    if (total == 0) return;
    if (!stderr_tty_) {
      // Logs and CI get one line per configuration, not a redrawn bar.
      if (done == total) std::fprintf(stderr, "  %-22s %zu requests\n", label.c_str(), total);
      return;
    }
    const size_t step = std::max<size_t>(1, total / 50);
    if (done != total && done % step != 0) return;
    const int width = 30;
    const int filled = static_cast<int>(width * done / total);
    std::fprintf(stderr, "\r  %-22s [%s%s] %zu/%zu", label.c_str(),
                 std::string(static_cast<size_t>(filled), '#').c_str(),
                 std::string(static_cast<size_t>(width - filled), '.').c_str(), done, total);
    if (done == total) std::fprintf(stderr, "\n");
    std::fflush(stderr);
  }

  const ReplayOptions& options_;
  const std::vector<workload::TraceRequest> trace_;
  const std::vector<std::vector<uint64_t>> decoded_;  // per request, workload::DecodedBlockIds
  std::priority_queue<PendingDecoded, std::vector<PendingDecoded>, std::greater<>> pending_;
  const workload::ModelProfile model_;
  const uint64_t block_bytes_;
  const double time_scale_;
  std::unique_ptr<SchedulerClient> sched_;
  std::vector<Node> nodes_;
  std::vector<std::string> registered_;  // instance ids of the current configuration
  std::map<std::string, size_t> node_index_;
  std::vector<uint8_t> scratch_;
  std::vector<uint64_t> offsets_;
  const bool stderr_tty_ = ::isatty(STDERR_FILENO) != 0;
};

// The time scale that makes instances busy `utilization` of the time when each prompt hits
// the cache as often as one global LRU of the pool's capacity would (`hit_rate`).
double AutoTimeScale(const std::vector<workload::TraceRequest>& trace,
                     const workload::ModelProfile& model, const ReplayOptions& options,
                     double hit_rate) {
  double work_s = 0;
  for (const auto& r : trace) {
    const auto hit = static_cast<uint64_t>(hit_rate * r.input_length);
    work_s += workload::PrefillSeconds(model, r.input_length - hit, hit);
  }
  const double span_s =
      trace.empty() ? 0 : static_cast<double>(trace.back().timestamp_ms) / 1000.0;
  if (span_s <= 0 || work_s <= 0) return 1.0;
  return work_s / (options.instances * options.utilization * span_s);
}

nlohmann::json ConfigJson(const ConfigRun& run, double infinite_hit_rate,
                          const PoolCounts& pool) {
  const double hit_rate =
      run.prompt_tokens == 0 ? 0 : static_cast<double>(run.hit_tokens) / run.prompt_tokens;
  nlohmann::json j;
  j["mode"] = run.mode;
  j["policy"] = run.policy;
  j["prefill_instances"] = run.prefill_instances;  // colocated ones outside pd
  j["decode_instances"] = run.decode_instances;
  j["hit_rate"] = hit_rate;
  j["hit_rate_vs_infinite"] = infinite_hit_rate > 0 ? hit_rate / infinite_hit_rate : 0;
  j["local_hit_tokens"] = run.local_hit_tokens;
  j["remote_hit_tokens"] = run.remote_hit_tokens;
  j["ttft_ms"] = PercentilesMs(run.ttft_s);
  j["ttft_load_only_ms"] = PercentilesMs(run.ttft_load_only_s);
  j["ttft_compute_only_ms"] = PercentilesMs(run.ttft_compute_only_s);
  j["jct_ms"] = PercentilesMs(run.jct_s);
  j["planner_worse_requests"] = run.planner_worse;
  j["prefill_compute_saved"] =
      run.nocache_compute_s > 0 ? 1.0 - run.compute_s / run.nocache_compute_s : 0;
  j["bytes_read_local"] = run.bytes_local;
  j["bytes_read_remote"] = run.bytes_remote;
  j["bytes_stored"] = run.bytes_stored;
  j["bytes_handed_off"] = run.bytes_handed_off;
  j["bytes_handed_back"] = run.bytes_handed_back;
  j["decoded_blocks_stored"] = run.decoded_blocks_stored;
  j["load_cv"] = CoefficientOfVariation(run.busy_s);
  j["ops_us"] = run.ops.Json();
  j["replay_matched_blocks"] = run.replay_matched_blocks;
  j["pool_hit_blocks"] = pool.hit_blocks;
  j["evicted_blocks"] = pool.evicted_blocks;
  // With SSD tiers: blocks demoted to DISK, and how many of them the write-behind had written
  // ahead (the rest were written by the allocation that evicted them, under the pool's lock).
  j["demoted_blocks"] = pool.demoted_blocks;
  j["written_behind_blocks"] = pool.written_behind_blocks;
  j["failures"] = run.failures;
  if (!run.first_failure.empty()) j["first_failure"] = run.first_failure;
  return j;
}

void PrintTable(const nlohmann::json& out) {
  TextTable table({"CONFIG", "HIT %", "/INF", "TTFT p50", "p90", "p99 ms", "JCT p50", "p99 s",
                   "SAVED %", "REMOTE MB", "LOAD CV", "ROUTE us", "MATCH us", "GET us",
                   "PUT us", "FAIL"});
  for (const nlohmann::json& c : out["configs"]) {
    const auto op = [&](const char* name) {
      return c["ops_us"].contains(name) ? FormatFixed(c["ops_us"][name]["p50"].get<double>(), 0)
                                        : std::string("-");
    };
    table.AddRow({c["mode"].get<std::string>() + "/" + c["policy"].get<std::string>(),
                  FormatFixed(100 * c["hit_rate"].get<double>(), 1),
                  FormatFixed(c["hit_rate_vs_infinite"].get<double>(), 2),
                  FormatFixed(c["ttft_ms"]["p50"].get<double>(), 0),
                  FormatFixed(c["ttft_ms"]["p90"].get<double>(), 0),
                  FormatFixed(c["ttft_ms"]["p99"].get<double>(), 0),
                  FormatFixed(c["jct_ms"]["p50"].get<double>() / 1000, 2),
                  FormatFixed(c["jct_ms"]["p99"].get<double>() / 1000, 2),
                  FormatFixed(100 * c["prefill_compute_saved"].get<double>(), 1),
                  FormatFixed(c["bytes_read_remote"].get<double>() / 1e6, 1),
                  FormatFixed(c["load_cv"].get<double>(), 3), op("route"), op("match"),
                  op("get_local"), op("put_and_insert"),
                  std::to_string(c["failures"].get<uint64_t>())});
  }
  table.Print(std::cout);
}

Status WritePlot(const nlohmann::json& out, const std::string& path) {
  const std::string data = path + ".dat";
  {
    std::ofstream d(data);
    d << "# config hit_rate_pct ttft_p90_ms\n";
    for (const nlohmann::json& c : out["configs"]) {
      d << '"' << c["mode"].get<std::string>() << "/" << c["policy"].get<std::string>() << "\" "
        << 100 * c["hit_rate"].get<double>() << " " << c["ttft_ms"]["p90"].get<double>() << "\n";
    }
    if (!d) return InternalError("cannot write '" + data + "'");
  }
  const std::string script = path + ".gp";
  {
    std::ofstream g(script);
    // noenhanced: the policy names' underscores are text, not subscripts.
    g << "set terminal pngcairo size 1200,500 noenhanced\nset output '" << path << "'\n"
      << "set multiplot layout 1,2\nset style data histograms\nset style fill solid 0.8\n"
      << "set yrange [0:*]\n"
      << "set xtics rotate by -45\nset title 'token hit rate (%)'\n"
      << "plot '" << data << "' using 2:xtic(1) notitle\n"
      << "set title 'TTFT p90 (ms)'\nplot '" << data << "' using 3:xtic(1) notitle\n"
      << "unset multiplot\n";
  }
  const int rc = std::system(("gnuplot '" + script + "' 2>/dev/null").c_str());
  if (rc != 0) {
    return UnavailableError("gnuplot failed or is not installed (apt install gnuplot-nox); data in '" +
                            data + "', script in '" + script + "'");
  }
  return Status::Ok();
}

}  // namespace

uint32_t ReplayOptions::PdPrefillInstances() const {
  return prefill_instances > 0 ? prefill_instances : instances / 2;
}

uint32_t ReplayOptions::PdDecodeInstances() const {
  return decode_instances > 0 ? decode_instances : instances - instances / 2;
}

Status ReplayOptions::Validate() const {
  if (kvpoold_binary.empty() || scheduler_binary.empty() || work_dir.empty()) {
    return InvalidArgumentError("replay needs the kvpoold and kvpool-scheduler binaries and a work dir");
  }
  if (nodes == 0 || instances == 0) return InvalidArgumentError("nodes and instances must be > 0");
  if (kv_scale == 0) return InvalidArgumentError("kv-scale must be > 0");
  if (block_tokens == 0 || workload::kTraceBlockTokens % block_tokens != 0) {
    return InvalidArgumentError("block-tokens must divide 512 (the trace's block), got " +
                                std::to_string(block_tokens));
  }
  if (capacity_tokens > 0 && capacity_tokens < block_tokens) {
    return InvalidArgumentError("capacity-tokens (" + std::to_string(capacity_tokens) +
                                ") is below one block of " + std::to_string(block_tokens) +
                                " tokens");
  }
  if (capacity_tokens == 0 && capacity_blocks == 0 &&
      !(capacity_fraction > 0 && capacity_fraction <= 10)) {
    return InvalidArgumentError("capacity-fraction must be in (0, 10], got " +
                                std::to_string(capacity_fraction));
  }
  if (time_scale < 0 || (time_scale == 0 && !(utilization > 0 && utilization < 10))) {
    return InvalidArgumentError("utilization must be in (0, 10) (or give time-scale > 0)");
  }
  if (!(local_bandwidth > 0) || !(link_bandwidth > 0) || load_latency_s < 0) {
    return InvalidArgumentError("bandwidths must be > 0 and the load latency >= 0");
  }
  for (const std::string& m : modes) {
    if (!Known({"no-cache", "local", "pooled", "pd"}, m)) {
      return InvalidArgumentError("unknown mode '" + m + "' (no-cache, local, pooled, pd)");
    }
    if (m == "pd" && (PdPrefillInstances() == 0 || PdDecodeInstances() == 0)) {
      return InvalidArgumentError("mode pd needs at least 1 prefill and 1 decode instance (got " +
                                  std::to_string(PdPrefillInstances()) + " prefill, " +
                                  std::to_string(PdDecodeInstances()) + " decode)");
    }
  }
  for (const std::string& p : policies) {
    if (!Known({"round_robin", "least_loaded", "prefix", "cost", "cache_aware"}, p)) {
      return InvalidArgumentError("unknown policy '" + p +
                                  "' (round_robin, least_loaded, prefix, cost, cache_aware)");
    }
  }
  if (modes.empty() || policies.empty()) return InvalidArgumentError("no configuration to run");
  if (trace_path.empty()) KVPOOL_RETURN_IF_ERROR(gen.Validate());
  return Status::Ok();
}

Result<nlohmann::json> RunReplay(const ReplayOptions& options, bool quiet) {
  KVPOOL_RETURN_IF_ERROR(options.Validate());
  KVPOOL_ASSIGN_OR_RETURN(workload::ModelProfile model, workload::ProfileByName(options.model));
  std::vector<workload::TraceRequest> trace;
  if (options.trace_path.empty()) {
    trace = workload::GenerateTrace(options.gen);
  } else {
    KVPOOL_ASSIGN_OR_RETURN(trace, workload::ReadTrace(options.trace_path));
  }
  if (options.max_requests > 0 && trace.size() > options.max_requests) {
    trace.resize(options.max_requests);
  }
  if (trace.empty()) return InvalidArgumentError("the trace has no requests");

  // References at the trace's 512-token granularity, with the pool's capacity in those blocks;
  // like the replay's instances, they cache what each request's decode completed.
  std::vector<std::vector<uint64_t>> decoded = workload::DecodedBlockIds(trace);
  const workload::CacheBounds unlimited = workload::ComputeCacheBounds(trace, 0, decoded);
  uint64_t decoded_requests = 0;
  for (const auto& d : decoded) decoded_requests += d.empty() ? 0 : 1;
  const uint64_t per_trace_block = workload::kTraceBlockTokens / options.block_tokens;
  uint64_t capacity_blocks = options.capacity_blocks;
  if (options.capacity_tokens > 0) {
    capacity_blocks = (options.capacity_tokens + options.block_tokens - 1) / options.block_tokens;
  } else if (capacity_blocks == 0) {
    capacity_blocks = static_cast<uint64_t>(std::ceil(
        options.capacity_fraction * static_cast<double>(unlimited.distinct_blocks) *
        static_cast<double>(per_trace_block)));
  }
  const workload::CacheBounds bounds =
      workload::ComputeCacheBounds(trace, std::max<uint64_t>(1, capacity_blocks / per_trace_block),
                                   decoded);
  const uint64_t block_bytes = std::max<uint64_t>(
      64, (model.kv_bytes_per_token * options.block_tokens / options.kv_scale + 63) / 64 * 64);
  const uint64_t blocks_per_node = (capacity_blocks + options.nodes - 1) / options.nodes;
  // Slabs of 8 blocks, and a capacity of whole slabs, so no block of capacity is lost to slack.
  const uint64_t slab_bytes = 8 * block_bytes;
  const uint64_t node_bytes = std::max<uint64_t>(8 * slab_bytes,
                                                 (blocks_per_node + 7) / 8 * slab_bytes);
  const double time_scale =
      options.time_scale > 0 ? options.time_scale
                             : AutoTimeScale(trace, model, options, bounds.lru_hit_rate);

  if (!quiet) {
    std::cout << "replay: " << trace.size() << " requests over "
              << FormatFixed(static_cast<double>(trace.back().timestamp_ms) / 1000.0, 0)
              << " s (time scale " << FormatFixed(time_scale, 3) << "), model " << model.name
              << ", " << options.instances << " colocated instances on " << options.nodes
              << " nodes";
    if (std::find(options.modes.begin(), options.modes.end(), "pd") != options.modes.end()) {
      std::cout << " (pd: " << options.PdPrefillInstances() << " prefill + "
                << options.PdDecodeInstances() << " decode)";
    }
    std::cout << "\npool: " << capacity_blocks << " blocks of " << options.block_tokens
              << " tokens = " << capacity_blocks * options.block_tokens << " tokens ("
              << FormatBytes(block_bytes) << " each, KV scaled 1/"
              << options.kv_scale << "), " << FormatBytes(node_bytes) << " per node\n"
              << "references at this capacity: infinite "
              << FormatFixed(100 * bounds.infinite_hit_rate, 1) << " %, global LRU "
              << FormatFixed(100 * bounds.lru_hit_rate, 1) << " %, Belady "
              << FormatFixed(100 * bounds.belady_hit_rate, 1) << " % (engines cache what they "
              << "decode: " << decoded_requests << " requests complete "
              << unlimited.decoded_blocks << " blocks a later turn continues)\n"
              << std::endl;
  }

  launch::LocalClusterOptions copts;
  copts.kvpoold_binary = options.kvpoold_binary;
  copts.scheduler_binary = options.scheduler_binary;
  copts.work_dir = options.work_dir;
  copts.nodes = options.nodes;
  copts.node_capacity = std::to_string(node_bytes);
  copts.ucx_tls = options.ucx_tls;
  copts.kvpoold_args = {"--slab=" + std::to_string(slab_bytes), "--no-huge-pages",
                        "--log-level=warning"};
  if (options.disk_capacity_factor > 0) {
    const auto disk_bytes = static_cast<uint64_t>(
        options.disk_capacity_factor * static_cast<double>(node_bytes));
    copts.kvpoold_args.push_back("--disk-capacity=" + std::to_string(std::max<uint64_t>(
                                                          disk_bytes, block_bytes)));
    if (!options.write_behind.empty()) {
      copts.kvpoold_args.push_back("--write-behind=" + options.write_behind);
    }
  }
  const uint64_t model_block_bytes = model.kv_bytes_per_token * options.block_tokens;
  copts.scheduler_args = {"--instance-timeout-ms=86400000",
                          "--block-tokens=" + std::to_string(options.block_tokens),
                          "--block-bytes=" + std::to_string(model_block_bytes),
                          "--token-s=" + std::to_string(model.prefill_s_per_token),
                          "--attention-s=" + std::to_string(model.prefill_attn_s_per_token2),
                          "--link-bandwidth=" + std::to_string(options.link_bandwidth),
                          "--local-bandwidth=" + std::to_string(options.local_bandwidth),
                          "--log-level=warning"};
  KVPOOL_ASSIGN_OR_RETURN(auto cluster, launch::LocalCluster::Start(copts));
  KVPOOL_RETURN_IF_ERROR(WaitClusterReady(cluster->scheduler_address(), options.nodes, 20'000));

  Replayer replayer(options, trace, std::move(decoded), model, block_bytes, time_scale);
  KVPOOL_RETURN_IF_ERROR(replayer.Connect(cluster->state()));

  nlohmann::json out;
  out["requests"] = trace.size();
  out["model"] = model.name;
  out["nodes"] = options.nodes;
  out["instances"] = options.instances;
  out["time_scale"] = time_scale;
  out["block_tokens"] = options.block_tokens;
  out["block_bytes"] = block_bytes;
  out["kv_scale"] = options.kv_scale;
  out["capacity_blocks"] = capacity_blocks;
  out["capacity_tokens"] = capacity_blocks * options.block_tokens;
  out["distinct_blocks"] = unlimited.distinct_blocks;
  // Requests whose decode completes blocks a later prompt continues, and those blocks.
  out["decoded_requests"] = decoded_requests;
  out["decoded_trace_blocks"] = unlimited.decoded_blocks;
  out["references"] = {{"infinite_hit_rate", bounds.infinite_hit_rate},
                       {"global_lru_hit_rate", bounds.lru_hit_rate},
                       {"belady_hit_rate", bounds.belady_hit_rate}};
  out["configs"] = nlohmann::json::array();
  size_t index = 0;
  for (const std::string& mode : options.modes) {
    for (const std::string& policy : options.policies) {
      KVPOOL_ASSIGN_OR_RETURN(ConfigRun run, replayer.Run(mode, policy, index));
      KVPOOL_ASSIGN_OR_RETURN(auto pool, replayer.CollectAndDrop(index));
      out["configs"].push_back(ConfigJson(run, bounds.infinite_hit_rate, pool));
      ++index;
    }
  }
  if (!quiet) {
    std::cout << "\n";
    PrintTable(out);
    std::cout << "\nHIT: prompt tokens served from the pool; /INF: that over the infinite cache's "
                 "hit rate. TTFT and JCT on the virtual clock (modelled GPU time, queueing); "
                 "ROUTE/MATCH/GET/PUT: measured p50 latency of the real pool operations.\n";
  }
  if (!options.plot_path.empty()) {
    if (Status st = WritePlot(out, options.plot_path); !st.ok()) {
      std::cerr << "replay: no chart: " << st << std::endl;
    } else if (!quiet) {
      std::cout << "chart: " << options.plot_path << "\n";
    }
  }
  return out;
}

}  // namespace kvpool::bench
