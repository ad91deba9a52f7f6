#include "client/kvpoolctl/scheduler_commands.h"

#include <iostream>
#include <nlohmann/json.hpp>
#include <sstream>
#include <vector>

#include "client/kvpoolctl/token_file.h"
#include "common/table.h"
#include "common/units.h"

namespace kvpool::ctl {
namespace {

using nlohmann::json;

void Print(const json& j) { std::cout << j.dump(2) << std::endl; }

Result<std::vector<BlockHash>> PromptHashes(const PromptFlags& p) {
  if (p.ns.empty()) return InvalidArgumentError("the namespace must not be empty");
  if (!p.tokens_file.empty() == !p.hashes.empty()) {
    return InvalidArgumentError("give exactly one of --tokens-file and --hashes");
  }
  if (!p.hashes.empty()) return ParseHashList(p.hashes);
  if (p.block_tokens == 0) return InvalidArgumentError("--block-tokens must be > 0");
  KVPOOL_ASSIGN_OR_RETURN(std::vector<uint32_t> tokens, ReadTokenFile(p.tokens_file));
  return BlockHasher(p.ns, p.salt, p.block_tokens).HashPrompt(tokens);
}

std::vector<std::string> SplitCommas(const std::string& text) {
  std::vector<std::string> out;
  std::stringstream in(text);
  std::string item;
  while (std::getline(in, item, ',')) {
    if (!item.empty()) out.push_back(item);
  }
  return out;
}

std::string Seconds(double s) { return FormatFixed(s * 1000.0, 3) + " ms"; }

}  // namespace

int RunNodes(SchedulerClient& client, const GlobalFlags& flags) {
  Result<std::vector<PoolNode>> nodes = client.ListNodes();
  if (!nodes.ok()) return ReportError(flags, nodes.status());
  if (flags.json) {
    json arr = json::array();
    for (const PoolNode& n : *nodes) {
      arr.push_back(json{{"node_id", n.node_id},
                         {"address", n.address},
                         {"alive", n.alive},
                         {"synced", n.synced},
                         {"draining", n.draining},
                         {"capacity_host_bytes", n.capacity_host_bytes},
                         {"used_host_bytes", n.used_host_bytes},
                         {"last_heartbeat_age_ms", n.last_heartbeat_age_ms},
                         {"disk_read_bytes_per_s", n.disk_read_bytes_per_s},
                         {"indexed_blocks", {{"gpu", n.indexed_blocks.gpu},
                                             {"host", n.indexed_blocks.host},
                                             {"disk", n.indexed_blocks.disk}}}});
    }
    Print(json{{"nodes", arr}});
    return 0;
  }
  TextTable t(
      {"NODE", "ADDRESS", "STATE", "CAPACITY", "USED", "BLOCKS", "DISK READ", "HEARTBEAT"});
  for (const PoolNode& n : *nodes) {
    // The SSD tier's measured read bandwidth, as the router prices DISK hits with it.
    const std::string disk_read = n.disk_read_bytes_per_s > 0
                                      ? FormatFixed(n.disk_read_bytes_per_s / 1e9, 2) + " GB/s"
                                      : "-";
    t.AddRow({n.node_id, n.address,
              std::string(n.alive ? "alive" : "dead") + (n.synced ? "" : ", unsynced") +
                  (n.draining ? ", draining" : ""),
              FormatBytes(n.capacity_host_bytes), FormatBytes(n.used_host_bytes),
              std::to_string(n.indexed_blocks.total()), disk_read,
              std::to_string(n.last_heartbeat_age_ms) + " ms ago"});
  }
  t.Print(std::cout);
  return 0;
}

int RunInstances(SchedulerClient& client, const GlobalFlags& flags) {
  Result<std::vector<PoolInstance>> instances = client.ListInstances();
  if (!instances.ok()) return ReportError(flags, instances.status());
  if (flags.json) {
    json arr = json::array();
    for (const PoolInstance& i : *instances) {
      arr.push_back(json{{"instance_id", i.instance_id},
                         {"role", i.role},
                         {"node_id", i.node_id},
                         {"alive", i.alive},
                         {"max_running_requests", i.max_running_requests},
                         {"queued_prompt_tokens", i.queued_prompt_tokens},
                         {"running_requests", i.running_requests},
                         {"estimated_queued_prompt_tokens", i.estimated_queued_prompt_tokens},
                         {"estimated_running_requests", i.estimated_running_requests},
                         {"queued_prefill_s", i.queued_prefill_s},
                         {"estimated_queued_prefill_s", i.estimated_queued_prefill_s},
                         {"last_report_age_ms", i.last_report_age_ms}});
    }
    Print(json{{"instances", arr}});
    return 0;
  }
  if (instances->empty()) {
    std::cout << "no instances\n";
    return 0;
  }
  TextTable t({"INSTANCE", "ROLE", "NODE", "STATE", "QUEUED TOKENS", "RUNNING", "EST. QUEUED",
               "EST. RUNNING", "EST. QUEUE", "REPORT"});
  for (const PoolInstance& i : *instances) {
    t.AddRow({i.instance_id, i.role, i.node_id, i.alive ? "alive" : "dead",
              std::to_string(i.queued_prompt_tokens), std::to_string(i.running_requests),
              std::to_string(i.estimated_queued_prompt_tokens),
              std::to_string(i.estimated_running_requests),
              i.estimated_queued_prefill_s > 0
                  ? FormatFixed(i.estimated_queued_prefill_s * 1e3, 1) + " ms"
                  : std::string("-"),
              std::to_string(i.last_report_age_ms) + " ms ago"});
  }
  t.Print(std::cout);
  return 0;
}

int RunTree(SchedulerClient& client, const GlobalFlags& flags, uint32_t top) {
  Result<PoolIndexStats> stats = client.GetIndexStats(top);
  if (!stats.ok()) return ReportError(flags, stats.status());
  if (flags.json) {
    json namespaces = json::array(), nodes = json::array(), replicated = json::array();
    for (const auto& [ns, blocks] : stats->namespace_blocks) {
      namespaces.push_back(json{{"namespace", ns}, {"blocks", blocks}});
    }
    for (const auto& [node, counts] : stats->node_blocks) {
      nodes.push_back(json{{"node_id", node}, {"blocks", counts.total()}, {"host", counts.host},
                           {"gpu", counts.gpu}, {"disk", counts.disk}});
    }
    for (const auto& r : stats->most_replicated) {
      replicated.push_back(json{{"namespace", r.ns}, {"hash", r.hash.ToHex()}, {"node_ids", r.node_ids}});
    }
    Print(json{{"blocks", stats->blocks}, {"copies", stats->copies},
               {"memory_bytes", stats->memory_bytes}, {"namespaces", namespaces},
               {"nodes", nodes}, {"most_replicated", replicated}});
    return 0;
  }
  const double per_block = stats->blocks == 0 ? 0.0 : static_cast<double>(stats->memory_bytes) / stats->blocks;
  std::cout << "global index: " << stats->blocks << " blocks, " << stats->copies << " copies, "
            << FormatBytes(stats->memory_bytes) << " (" << FormatFixed(per_block, 1)
            << " B/block)\n\n";
  TextTable ns_table({"NAMESPACE", "BLOCKS"});
  for (const auto& [ns, blocks] : stats->namespace_blocks) ns_table.AddRow({ns, std::to_string(blocks)});
  if (!ns_table.empty()) {
    ns_table.Print(std::cout);
    std::cout << "\n";
  }
  TextTable node_table({"NODE", "BLOCKS", "HOST", "GPU", "DISK"});
  for (const auto& [node, c] : stats->node_blocks) {
    node_table.AddRow({node, std::to_string(c.total()), std::to_string(c.host),
                       std::to_string(c.gpu), std::to_string(c.disk)});
  }
  if (!node_table.empty()) {
    node_table.Print(std::cout);
    std::cout << "\n";
  }
  TextTable rep({"NAMESPACE", "MOST REPLICATED BLOCK", "COPIES", "NODES"});
  for (const auto& r : stats->most_replicated) {
    std::string nodes;
    for (const auto& n : r.node_ids) nodes += (nodes.empty() ? "" : ",") + n;
    rep.AddRow({r.ns, r.hash.ToHex(), std::to_string(r.node_ids.size()), nodes});
  }
  if (!rep.empty()) rep.Print(std::cout);
  return 0;
}

int RunLookup(SchedulerClient& client, const GlobalFlags& flags, const PromptFlags& prompt) {
  Result<std::vector<BlockHash>> hashes = PromptHashes(prompt);
  if (!hashes.ok()) return ReportError(flags, hashes.status());
  Result<PoolLookupResult> r = client.Lookup(prompt.ns, *hashes);
  if (!r.ok()) return ReportError(flags, r.status());
  if (flags.json) {
    json nodes = json::array();
    for (const NodeHolding& n : r->nodes) {
      json runs = json::array();
      for (const SchedulerBlockRun& run : n.runs) {
        runs.push_back(json{{"start", run.start}, {"length", run.length}});
      }
      nodes.push_back(json{{"node_id", n.node_id}, {"leading_blocks", n.leading_blocks},
                           {"held_blocks", n.held.total()}, {"runs", runs}});
    }
    json segments = json::array();
    for (const PoolSegment& s : r->segments) {
      segments.push_back(json{{"start", s.start}, {"length", s.length}, {"node_id", s.node_id},
                              {"tier", std::string(TierName(s.tier))}});
    }
    Print(json{{"namespace", prompt.ns}, {"prompt_blocks", r->prompt_blocks},
               {"pooled_prefix_blocks", r->pooled_prefix_blocks},
               {"held_blocks", r->held_blocks}, {"nodes", nodes}, {"segments", segments}});
    return 0;
  }
  std::cout << "namespace '" << prompt.ns << "': the pool holds blocks [0, "
            << r->pooled_prefix_blocks << ") of " << r->prompt_blocks << " ("
            << r->held_blocks << " held anywhere)\n";
  TextTable t({"NODE", "LEADING", "HELD", "RUNS FURTHER IN"});
  for (const NodeHolding& n : r->nodes) {
    std::string runs;
    for (const SchedulerBlockRun& run : n.runs) {
      if (!runs.empty()) runs += " ";
      runs += "[" + std::to_string(run.start) + "," + std::to_string(run.start + run.length) + ")";
    }
    t.AddRow({n.node_id, std::to_string(n.leading_blocks), std::to_string(n.held.total()),
              runs.empty() ? "-" : runs});
  }
  t.Print(std::cout);
  return 0;
}

int RunRoute(SchedulerClient& client, const GlobalFlags& flags, const RouteFlags& route) {
  Result<std::vector<BlockHash>> hashes = PromptHashes(route.prompt);
  if (!hashes.ok()) return ReportError(flags, hashes.status());
  RouteQuery q;
  q.ns = route.prompt.ns;
  q.hashes = std::move(hashes).value();
  q.role = route.role;
  q.policy = route.policy;
  q.candidates = SplitCommas(route.candidates);
  q.explain = route.explain;
  Result<RouteAnswer> r = client.Route(q);
  if (!r.ok()) return ReportError(flags, r.status());
  if (flags.json) {
    json ranked = json::array();
    for (const RoutedInstance& c : r->ranked) {
      ranked.push_back(json{{"instance_id", c.instance_id},
                            {"node_id", c.node_id},
                            {"local_prefix_blocks", c.local_prefix_blocks},
                            {"cached_blocks", c.cached_blocks},
                            {"remote_blocks", c.remote_blocks},
                            {"new_tokens", c.new_tokens},
                            {"queued_prompt_tokens", c.queued_prompt_tokens},
                            {"running_requests", c.running_requests},
                            {"queue_wait_s", c.queue_wait_s},
                            {"compute_s", c.compute_s},
                            {"transfer_s", c.transfer_s},
                            {"total_s", c.total_s()},
                            {"reason", c.reason}});
    }
    Print(json{{"policy", r->policy}, {"prompt_blocks", r->prompt_blocks},
               {"pooled_prefix_blocks", r->pooled_prefix_blocks}, {"ranked", ranked}});
    return 0;
  }
  std::cout << "policy " << r->policy << ": " << r->prompt_blocks << " blocks, pooled prefix "
            << r->pooled_prefix_blocks << "\n";
  TextTable t({"#", "INSTANCE", "NODE", "LOCAL", "CACHED", "REMOTE", "QUEUE", "COMPUTE",
               "TRANSFER", "TOTAL"});
  for (size_t i = 0; i < r->ranked.size(); ++i) {
    const RoutedInstance& c = r->ranked[i];
    t.AddRow({std::to_string(i + 1), c.instance_id, c.node_id.empty() ? "-" : c.node_id,
              std::to_string(c.local_prefix_blocks), std::to_string(c.cached_blocks),
              std::to_string(c.remote_blocks), Seconds(c.queue_wait_s), Seconds(c.compute_s),
              Seconds(c.transfer_s), Seconds(c.total_s())});
  }
  t.Print(std::cout);
  if (route.explain) {
    for (size_t i = 0; i < r->ranked.size(); ++i) {
      std::cout << (i + 1) << ". " << r->ranked[i].instance_id << ": " << r->ranked[i].reason
                << "\n";
    }
  }
  return 0;
}

}  // namespace kvpool::ctl
