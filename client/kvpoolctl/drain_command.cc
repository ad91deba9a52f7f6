#include "client/kvpoolctl/drain_command.h"

#include <CLI/CLI.hpp>
#include <algorithm>
#include <chrono>
#include <iostream>
#include <nlohmann/json.hpp>
#include <string>
#include <thread>

#include "common/table.h"
#include "common/units.h"

namespace kvpool::ctl {
namespace {

using nlohmann::json;
using Clock = std::chrono::steady_clock;

// Between calls while only leased blocks are left: leases end within their TTL.
constexpr auto kPinnedRetry = std::chrono::milliseconds(250);

std::string SchedulerState(bool has_scheduler, bool acknowledged, bool draining) {
  if (!has_scheduler) return "none (kvpoold runs without --scheduler)";
  if (!acknowledged) return "not reached yet: it is told with every heartbeat";
  return draining ? "acknowledged: no new placements, no new routes to this node's instances"
                  : "acknowledged: the node takes new work again";
}

}  // namespace

void AddDrainCommands(CLI::App& app, DrainFlags* flags, CLI::App** drain, CLI::App** undrain) {
  *drain = app.add_subcommand(
      "drain",
      "Before maintenance: stop new work reaching the node and demote its host blocks to its "
      "SSD tier (admin token)");
  (*drain)
      ->add_option("--batch-blocks", flags->batch_blocks, "Blocks demoted per call")
      ->capture_default_str()
      ->check(CLI::PositiveNumber);
  (*drain)
      ->add_option("--wait-ms", flags->wait_ms,
                   "How long to wait for blocks pinned by leases to be released (0: no wait)")
      ->capture_default_str();
  (*drain)->add_flag("--no-demote", flags->no_demote,
                     "Only mark the node draining; leave its blocks where they are");
  (*drain)->add_option("--handoff-to", flags->handoff_to,
                       "First copy the node's cached blocks to this peer node id, which then "
                       "serves them (a node without an SSD tier keeps its cache this way)");
  (*drain)
      ->add_option("--handoff-timeout-ms", flags->handoff_timeout_ms,
                   "Time each chain of blocks may take to reach the peer (0: the node's default)")
      ->capture_default_str();
  *undrain = app.add_subcommand(
      "undrain", "End a drain: the scheduler places on and routes to the node again (admin token)");
}

int RunDrain(Client& client, const GlobalFlags& flags, const DrainFlags& drain) {
  const Clock::time_point start = Clock::now();
  const Clock::time_point wait_until = start + std::chrono::milliseconds(drain.wait_ms);
  // The first call marks the node draining; with --no-demote it is the only one.
  // A hand-off, if asked for, happens in this first call, before anything is demoted.
  DrainOptions first_call;
  first_call.max_blocks = drain.batch_blocks;
  first_call.demote = !drain.no_demote;
  first_call.handoff_node = drain.handoff_to;
  first_call.handoff_timeout_ms = drain.handoff_timeout_ms;
  Result<DrainProgress> first = client.Drain(first_call);
  if (!first.ok()) return ReportError(flags, first.status());
  DrainProgress last = *first;
  uint64_t demoted = last.demoted_blocks, dropped = last.dropped_blocks, calls = 1;
  if (!flags.json) {
    std::cerr << "drain: node " << client.address() << " is draining"
              << (last.was_draining ? " (it was already)" : "") << "; scheduler: "
              << SchedulerState(last.has_scheduler, last.scheduler_acknowledged, true) << "\n";
    if (!drain.handoff_to.empty()) {
      std::cerr << "drain: handed " << last.handed_off_blocks << " blocks ("
                << FormatBytes(last.handoff_bytes) << ") to node " << drain.handoff_to << " in "
                << last.handoff_chains << " chains; " << last.handoff_duplicate_blocks
                << " it had already\n";
    }
  }
  auto progress = [&] {
    if (flags.json) return;
    std::cerr << "drain: demoted " << demoted << " blocks to the SSD tier, " << last.host_blocks
              << " left in memory (" << last.pinned_blocks << " pinned by leases, "
              << last.allocated_blocks << " allocated)\n";
  };
  if (last.has_disk_tier && !drain.no_demote) {
    progress();
    for (;;) {
      const bool moved = last.demoted_blocks + last.dropped_blocks > 0;
      const bool leased_left = last.pinned_blocks > 0 || last.allocated_blocks > 0;
      if (!moved) {
        // Nothing movable in this call: done, unless leased blocks may still be released.
        if (!leased_left || Clock::now() >= wait_until) break;
        std::this_thread::sleep_for(kPinnedRetry);
      }
      Result<DrainProgress> next = client.Drain(drain.batch_blocks);
      if (!next.ok()) return ReportError(flags, next.status());
      last = *next;
      ++calls;
      demoted += last.demoted_blocks;
      dropped += last.dropped_blocks;
      if (last.demoted_blocks + last.dropped_blocks > 0) progress();
    }
  }
  const double seconds =
      std::chrono::duration<double>(Clock::now() - start).count();
  // Blocks that stay in memory: with an SSD tier only leased ones (or cold ones when
  // --no-demote); without one, all of them.
  const bool complete = drain.no_demote || !last.has_disk_tier ||
                        (last.pinned_blocks == 0 && last.allocated_blocks == 0);
  if (flags.json) {
    std::cout << json{{"address", client.address()},
                      {"draining", true},
                      {"was_draining", first->was_draining},
                      {"has_scheduler", first->has_scheduler},
                      {"scheduler_acknowledged", first->scheduler_acknowledged},
                      {"has_disk_tier", last.has_disk_tier},
                      {"handoff_node", drain.handoff_to},
                      {"handed_off_blocks", first->handed_off_blocks},
                      {"handoff_duplicate_blocks", first->handoff_duplicate_blocks},
                      {"handoff_bytes", first->handoff_bytes},
                      {"handoff_chains", first->handoff_chains},
                      {"demoted_blocks", demoted},
                      {"dropped_blocks", dropped},
                      {"host_blocks", last.host_blocks},
                      {"pinned_blocks", last.pinned_blocks},
                      {"allocated_blocks", last.allocated_blocks},
                      {"disk_blocks", last.disk_blocks},
                      {"calls", calls},
                      {"seconds", seconds},
                      {"complete", complete}}
                     .dump(2)
              << std::endl;
    return complete ? 0 : 3;
  }
  TextTable t({"DRAIN", "RESULT"});
  t.AddRow({"node", client.address() + " is draining"});
  t.AddRow({"scheduler", SchedulerState(first->has_scheduler, first->scheduler_acknowledged,
                                        true)});
  if (!drain.handoff_to.empty()) {
    t.AddRow({"handed off", std::to_string(first->handed_off_blocks) + " blocks (" +
                                FormatBytes(first->handoff_bytes) + ") to node " +
                                drain.handoff_to + ", " +
                                std::to_string(first->handoff_duplicate_blocks) +
                                " it had already"});
  }
  if (!last.has_disk_tier) {
    t.AddRow({"ssd tier", "none: " + std::to_string(last.host_blocks) +
                              " blocks stay in host memory and are lost when kvpoold stops" +
                              (drain.handoff_to.empty() ? "" : " (node " + drain.handoff_to +
                                                                   " has its copies)")});
  } else if (drain.no_demote) {
    t.AddRow({"demoted", "nothing (--no-demote)"});
  } else {
    t.AddRow({"demoted", std::to_string(demoted) + " blocks to the SSD tier in " +
                             FormatFixed(seconds, 1) + " s (" + std::to_string(calls) +
                             (calls == 1 ? " call)" : " calls)")});
    if (dropped > 0) {
      t.AddRow({"dropped", std::to_string(dropped) + " blocks (the SSD tier had no room)"});
    }
  }
  t.AddRow({"in memory", std::to_string(last.host_blocks) + " cached blocks (" +
                             std::to_string(last.pinned_blocks) + " pinned by leases), " +
                             std::to_string(last.allocated_blocks) +
                             " allocated and not inserted"});
  t.AddRow({"on ssd tier", std::to_string(last.disk_blocks) + " blocks"});
  t.AddRow({"next", complete ? "stop kvpoold for maintenance; 'kvpoolctl undrain' to resume"
                             : "leased blocks are still in memory: run drain again, or stop "
                               "kvpoold (its shutdown writes them to the SSD tier)"});
  t.Print(std::cout);
  return complete ? 0 : 3;
}

int RunUndrain(Client& client, const GlobalFlags& flags) {
  Result<UndrainResult> r = client.Undrain();
  if (!r.ok()) return ReportError(flags, r.status());
  if (flags.json) {
    std::cout << json{{"address", client.address()},
                      {"draining", false},
                      {"was_draining", r->was_draining},
                      {"has_scheduler", r->has_scheduler},
                      {"scheduler_acknowledged", r->scheduler_acknowledged}}
                     .dump(2)
              << std::endl;
    return 0;
  }
  TextTable t({"UNDRAIN", "RESULT"});
  t.AddRow({"node", client.address() + (r->was_draining ? " is back in service"
                                                        : " was not draining")});
  t.AddRow({"scheduler", SchedulerState(r->has_scheduler, r->scheduler_acknowledged, false)});
  t.Print(std::cout);
  return 0;
}

}  // namespace kvpool::ctl
