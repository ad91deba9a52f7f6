#include "client/kvpoolctl/commands.h"

#include <iostream>
#include <nlohmann/json.hpp>

#include "client/kvpoolctl/token_file.h"
#include "common/table.h"
#include "common/units.h"

namespace kvpool::ctl {
namespace {

using nlohmann::json;

std::string Percent(uint64_t part, uint64_t whole) {
  if (whole == 0) return "-";
  return FormatFixed(100.0 * static_cast<double>(part) / static_cast<double>(whole), 1) + " %";
}

json SpecJson(const NamespaceSpec& s) {
  return json{{"name", s.name}, {"block_tokens", s.block_tokens},
              {"block_bytes", s.block_bytes}, {"salt", s.salt}};
}

json StatsJson(const NamespaceStats& s) {
  return json{{"allocated_blocks", s.allocated_blocks}, {"cached_blocks", s.cached_blocks},
              {"pinned_blocks", s.pinned_blocks},       {"reserved_bytes", s.reserved_bytes},
              {"used_bytes", s.used_bytes},             {"hit_blocks", s.hit_blocks},
              {"miss_blocks", s.miss_blocks},           {"match_requests", s.match_requests},
              {"inserted_blocks", s.inserted_blocks},   {"deduplicated_blocks", s.deduplicated_blocks},
              {"evicted_blocks", s.evicted_blocks},     {"deleted_blocks", s.deleted_blocks},
              {"index_bytes", s.index_bytes}};
}

json InfoJson(const NamespaceInfo& info) {
  return json{{"spec", SpecJson(info.spec)}, {"id", info.id},
              {"root_hash", info.root_hash.ToHex()}, {"stats", StatsJson(info.stats)}};
}

void Print(const json& j) { std::cout << j.dump(2) << std::endl; }

}  // namespace

int ReportError(const GlobalFlags& flags, const Status& status) {
  if (flags.json) {
    Print(json{{"error", {{"code", std::string(StatusCodeName(status.code()))},
                          {"message", status.message()}}}});
  } else {
    std::cerr << "kvpoolctl: " << status.ToString() << std::endl;
  }
  return 1;
}

int RunStatus(Client& client, const GlobalFlags& flags) {
  Result<bool> healthy = client.Health();
  if (!healthy.ok()) return ReportError(flags, healthy.status());
  Result<PoolStats> stats = client.GetStats();
  if (!stats.ok()) return ReportError(flags, stats.status());
  uint64_t cached = 0;
  for (const auto& ns : stats->namespaces) cached += ns.stats.cached_blocks;
  if (flags.json) {
    Print(json{{"address", client.address()}, {"serving", *healthy},
               {"node_id", stats->node_id}, {"uptime_ms", stats->uptime_ms},
               {"capacity_bytes", stats->capacity_bytes}, {"used_bytes", stats->used_bytes},
               {"reserved_bytes", stats->reserved_bytes}, {"free_bytes", stats->free_bytes},
               {"page_mode", stats->page_mode}, {"namespaces", stats->namespaces.size()},
               {"cached_blocks", cached}, {"active_leases", stats->active_leases},
               {"expired_leases", stats->expired_leases},
               {"gpu_capacity_bytes", stats->gpu_capacity_bytes},
               {"gpu_free_bytes", stats->gpu_free_bytes}, {"gpu_device", stats->gpu_device}});
    return 0;
  }
  TextTable t({"FIELD", "VALUE"});
  t.AddRow({"address", client.address()});
  t.AddRow({"health", *healthy ? "SERVING" : "NOT_SERVING"});
  t.AddRow({"node", stats->node_id});
  t.AddRow({"uptime", FormatFixed(static_cast<double>(stats->uptime_ms) / 1000.0, 1) + " s"});
  t.AddRow({"capacity", FormatBytes(stats->capacity_bytes)});
  t.AddRow({"used", FormatBytes(stats->used_bytes) + " (" + Percent(stats->used_bytes, stats->capacity_bytes) + ")"});
  t.AddRow({"reserved by slabs", FormatBytes(stats->reserved_bytes)});
  t.AddRow({"pages", stats->page_mode});
  if (stats->gpu_capacity_bytes > 0) {
    t.AddRow({"gpu tier", FormatBytes(stats->gpu_capacity_bytes) + " on " + stats->gpu_device});
    t.AddRow({"gpu free (no slab)", FormatBytes(stats->gpu_free_bytes)});
  }
  t.AddRow({"namespaces", std::to_string(stats->namespaces.size())});
  t.AddRow({"cached blocks", std::to_string(cached)});
  t.AddRow({"active leases", std::to_string(stats->active_leases)});
  t.AddRow({"expired leases", std::to_string(stats->expired_leases)});
  t.Print(std::cout);
  return 0;
}

int RunNamespaces(Client& client, const GlobalFlags& flags) {
  Result<std::vector<NamespaceInfo>> list = client.ListNamespaces();
  if (!list.ok()) return ReportError(flags, list.status());
  if (flags.json) {
    json arr = json::array();
    for (const auto& ns : *list) arr.push_back(InfoJson(ns));
    Print(json{{"namespaces", arr}});
    return 0;
  }
  TextTable t({"NAME", "ID", "BLOCK TOKENS", "BLOCK BYTES", "SALTED", "CACHED", "ALLOCATED",
               "USED", "HIT RATE"});
  for (const auto& ns : *list) {
    const NamespaceStats& s = ns.stats;
    t.AddRow({ns.spec.name, std::to_string(ns.id), std::to_string(ns.spec.block_tokens),
              FormatBytes(ns.spec.block_bytes), ns.spec.salt.empty() ? "no" : "yes",
              std::to_string(s.cached_blocks), std::to_string(s.allocated_blocks),
              FormatBytes(s.used_bytes), Percent(s.hit_blocks, s.hit_blocks + s.miss_blocks)});
  }
  if (t.empty()) {
    std::cout << "no namespaces\n";
  } else {
    t.Print(std::cout);
  }
  return 0;
}

int RunCreateNamespace(Client& client, const GlobalFlags& flags, const NamespaceSpec& spec) {
  auto created = client.CreateNamespace(spec);
  if (!created.ok()) return ReportError(flags, created.status());
  const NamespaceInfo& info = created->first;
  if (flags.json) {
    Print(json{{"created", created->second}, {"namespace", InfoJson(info)}});
    return 0;
  }
  std::cout << (created->second ? "created" : "exists (same parameters)") << " namespace '"
            << info.spec.name << "' id=" << info.id << " block_tokens=" << info.spec.block_tokens
            << " block_bytes=" << info.spec.block_bytes << " root_hash=" << info.root_hash.ToHex()
            << std::endl;
  return 0;
}

int RunDeleteNamespace(Client& client, const GlobalFlags& flags, const std::string& name) {
  Result<uint64_t> freed = client.DeleteNamespace(name);
  if (!freed.ok()) return ReportError(flags, freed.status());
  if (flags.json) {
    Print(json{{"deleted", name}, {"freed_blocks", *freed}});
  } else {
    std::cout << "deleted namespace '" << name << "', freed " << *freed << " blocks" << std::endl;
  }
  return 0;
}

int RunStats(Client& client, const GlobalFlags& flags) {
  Result<PoolStats> stats = client.GetStats();
  if (!stats.ok()) return ReportError(flags, stats.status());
  if (flags.json) {
    json arr = json::array();
    for (const auto& ns : stats->namespaces) arr.push_back(InfoJson(ns));
    Print(json{{"node_id", stats->node_id}, {"capacity_bytes", stats->capacity_bytes},
               {"used_bytes", stats->used_bytes}, {"reserved_bytes", stats->reserved_bytes},
               {"free_bytes", stats->free_bytes}, {"page_mode", stats->page_mode},
               {"active_leases", stats->active_leases}, {"expired_leases", stats->expired_leases},
               {"uptime_ms", stats->uptime_ms}, {"namespaces", arr}});
    return 0;
  }
  std::cout << "node " << stats->node_id << ": " << FormatBytes(stats->used_bytes) << " used of "
            << FormatBytes(stats->capacity_bytes) << ", " << stats->active_leases
            << " active leases, " << stats->expired_leases << " expired\n\n";
  TextTable t({"NAMESPACE", "CACHED", "ALLOCATED", "PINNED", "HITS", "MISSES", "HIT RATE",
               "INSERTED", "DEDUPED", "EVICTED", "DELETED", "INDEX"});
  for (const auto& ns : stats->namespaces) {
    const NamespaceStats& s = ns.stats;
    t.AddRow({ns.spec.name, std::to_string(s.cached_blocks), std::to_string(s.allocated_blocks),
              std::to_string(s.pinned_blocks), std::to_string(s.hit_blocks),
              std::to_string(s.miss_blocks), Percent(s.hit_blocks, s.hit_blocks + s.miss_blocks),
              std::to_string(s.inserted_blocks), std::to_string(s.deduplicated_blocks),
              std::to_string(s.evicted_blocks), std::to_string(s.deleted_blocks),
              FormatBytes(s.index_bytes)});
  }
  if (t.empty()) {
    std::cout << "no namespaces\n";
  } else {
    t.Print(std::cout);
  }
  return 0;
}

int RunMatch(Client& client, const GlobalFlags& flags, const MatchFlags& match) {
  std::vector<uint32_t> tokens;
  std::vector<BlockHash> hashes;
  if (!match.tokens_file.empty() == !match.hashes.empty()) {
    return ReportError(flags, InvalidArgumentError("give exactly one of --tokens-file and --hashes"));
  }
  if (!match.tokens_file.empty()) {
    Result<std::vector<uint32_t>> read = ReadTokenFile(match.tokens_file);
    if (!read.ok()) return ReportError(flags, read.status());
    tokens = std::move(read).value();
  } else {
    Result<std::vector<BlockHash>> parsed = ParseHashList(match.hashes);
    if (!parsed.ok()) return ReportError(flags, parsed.status());
    hashes = std::move(parsed).value();
  }
  const PromptView prompt = tokens.empty() ? PromptView::Hashes(hashes) : PromptView::Tokens(tokens);
  Result<MatchResult> result = client.Match(match.ns, prompt, match.start_block);
  if (!result.ok()) return ReportError(flags, result.status());
  if (flags.json) {
    json blocks = json::array();
    for (const auto& b : result->blocks) {
      blocks.push_back(json{{"handle", b.handle}, {"tier", std::string(TierName(b.tier))},
                            {"offset", b.offset}, {"length", b.length}});
    }
    Print(json{{"namespace", match.ns}, {"start_block", match.start_block},
               {"matched_blocks", result->matched_blocks},
               {"prompt_blocks", result->prompt_blocks}, {"blocks", blocks}});
    return 0;
  }
  std::cout << "namespace '" << match.ns << "': " << result->matched_blocks << " of "
            << result->prompt_blocks - match.start_block << " blocks cached from block "
            << match.start_block << " ("
            << Percent(result->matched_blocks, result->prompt_blocks - match.start_block) << ")\n";
  if (match.show_blocks && !result->blocks.empty()) {
    TextTable t({"BLOCK", "HANDLE", "TIER", "OFFSET", "LENGTH"});
    for (size_t i = 0; i < result->blocks.size(); ++i) {
      const auto& b = result->blocks[i];
      t.AddRow({std::to_string(match.start_block + i), std::to_string(b.handle),
                std::string(TierName(b.tier)), std::to_string(b.offset), std::to_string(b.length)});
    }
    t.Print(std::cout);
  }
  return 0;
}

int RunEvict(Client& client, const GlobalFlags& flags, const std::string& ns, uint64_t n_blocks) {
  Result<uint64_t> evicted = client.Evict(ns, n_blocks);
  if (!evicted.ok()) return ReportError(flags, evicted.status());
  if (flags.json) {
    Print(json{{"namespace", ns}, {"evicted_blocks", *evicted}});
  } else {
    std::cout << "evicted " << *evicted << " blocks" << std::endl;
  }
  return 0;
}

}  // namespace kvpool::ctl
