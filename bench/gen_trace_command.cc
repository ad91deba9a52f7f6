#include "bench/gen_trace_command.h"

#include <CLI/CLI.hpp>
#include <iostream>
#include <nlohmann/json.hpp>

#include "common/table.h"
#include "workload/cache_bounds.h"
#include "workload/trace.h"

namespace kvpool::bench {

void AddGenTraceOptions(CLI::App* sub, workload::TraceGenOptions* opts, std::string* out) {
  sub->add_option("--out,-o", *out, "Trace file to write (JSON lines, Mooncake format)")
      ->required();
  sub->add_option("--seed", opts->seed, "Generator seed (same options, same trace)")
      ->capture_default_str();
  sub->add_option("--requests", opts->requests, "Requests in the trace")->capture_default_str();

  sub->add_option_function<std::string>(
         "--arrival",
         [opts](const std::string& name) {
           // IsMember below admits only known names, so parsing cannot fail here.
           opts->arrival = workload::ParseArrivalProcess(name).value_or(opts->arrival);
         },
         "Arrival process: poisson, or bursty (on/off periods)")
      ->check(CLI::IsMember({"poisson", "bursty"}))
      ->default_str(std::string(workload::ArrivalProcessName(opts->arrival)));
  sub->add_option("--rate", opts->requests_per_s, "Mean arrival rate, requests/s")
      ->capture_default_str();
  sub->add_option("--burst-on-s", opts->burst_on_s, "Bursty: mean on-period length, s")
      ->capture_default_str();
  sub->add_option("--burst-off-s", opts->burst_off_s, "Bursty: mean off-period length, s")
      ->capture_default_str();

  sub->add_option("--document-fraction", opts->document_fraction,
                  "Fraction of requests that are document questions (rest: conversation turns)")
      ->capture_default_str();
  sub->add_option("--tenants", opts->tenants, "Tenants, each with its own system prompt")
      ->capture_default_str();
  sub->add_option("--system-prompt-min-tokens", opts->system_prompt_min_tokens,
                  "Shortest system prompt, tokens")->capture_default_str();
  sub->add_option("--system-prompt-max-tokens", opts->system_prompt_max_tokens,
                  "Longest system prompt, tokens")->capture_default_str();

  sub->add_option("--turns-min", opts->turns_min, "Fewest turns per conversation")
      ->capture_default_str();
  sub->add_option("--turns-max", opts->turns_max, "Most turns per conversation")
      ->capture_default_str();
  sub->add_option("--first-message-min-tokens", opts->first_message_min_tokens,
                  "Shortest first user message, tokens")->capture_default_str();
  sub->add_option("--first-message-max-tokens", opts->first_message_max_tokens,
                  "Longest first user message, tokens")->capture_default_str();
  sub->add_option("--followup-message-min-tokens", opts->followup_message_min_tokens,
                  "Shortest later user message, tokens")->capture_default_str();
  sub->add_option("--followup-message-max-tokens", opts->followup_message_max_tokens,
                  "Longest later user message, tokens")->capture_default_str();
  sub->add_option("--think-time-min-s", opts->think_time_min_s,
                  "Shortest gap between a conversation's turns, s")->capture_default_str();
  sub->add_option("--think-time-mean-s", opts->think_time_mean_s,
                  "Mean gap between a conversation's turns, s")->capture_default_str();

  sub->add_option("--concurrent-documents", opts->concurrent_documents,
                  "Documents open for questions at a time")->capture_default_str();
  sub->add_option("--document-min-tokens", opts->document_min_tokens,
                  "Shortest document, tokens")->capture_default_str();
  sub->add_option("--document-max-tokens", opts->document_max_tokens,
                  "Longest document, tokens")->capture_default_str();
  sub->add_option("--questions-min", opts->questions_min, "Fewest questions per document")
      ->capture_default_str();
  sub->add_option("--questions-max", opts->questions_max, "Most questions per document")
      ->capture_default_str();
  sub->add_option("--question-min-tokens", opts->question_min_tokens,
                  "Shortest question, tokens")->capture_default_str();
  sub->add_option("--question-max-tokens", opts->question_max_tokens,
                  "Longest question, tokens")->capture_default_str();

  sub->add_option("--output-min-tokens", opts->output_min_tokens,
                  "Fewest generated tokens per request")->capture_default_str();
  sub->add_option("--output-max-tokens", opts->output_max_tokens,
                  "Most generated tokens per request")->capture_default_str();
  sub->add_option("--max-input-tokens", opts->max_input_tokens,
                  "Longest prompt; conversations end before exceeding it")->capture_default_str();
}

int RunGenTrace(const workload::TraceGenOptions& opts, const std::string& out_path, bool json) {
  if (const Status valid = opts.Validate(); !valid.ok()) {
    std::cerr << "kvpool-bench gen-trace: " << valid << std::endl;
    return 2;
  }
  workload::TraceGenStats stats;
  const std::vector<workload::TraceRequest> trace = workload::GenerateTrace(opts, &stats);
  if (const Status written = workload::WriteTrace(trace, out_path); !written.ok()) {
    std::cerr << "kvpool-bench gen-trace: " << written << std::endl;
    return 1;
  }

  uint64_t output_tokens = 0;
  for (const auto& r : trace) output_tokens += r.output_length;
  const uint64_t distinct = workload::ComputeCacheBounds(trace, 0).distinct_blocks;
  // The 10% capacity matches the replay's target setting (issue 5), so the two read together.
  const uint64_t capacity = distinct / 10;
  const workload::CacheBounds bounds = workload::ComputeCacheBounds(trace, capacity);
  const double n = static_cast<double>(trace.size());
  const double duration_s = static_cast<double>(trace.back().timestamp_ms) / 1000.0;
  const double mean_input = static_cast<double>(bounds.prompt_tokens) / n;
  const double mean_output = static_cast<double>(output_tokens) / n;

  if (json) {
    nlohmann::json j = {
        {"out", out_path},
        {"seed", opts.seed},
        {"arrival", std::string(workload::ArrivalProcessName(opts.arrival))},
        {"requests", trace.size()},
        {"duration_s", duration_s},
        {"mean_input_tokens", mean_input},
        {"mean_output_tokens", mean_output},
        {"prompt_tokens", bounds.prompt_tokens},
        {"distinct_blocks", bounds.distinct_blocks},
        {"reusable_fraction", bounds.infinite_hit_rate},
        {"capacity_blocks_10pct", capacity},
        {"lru_hit_rate_10pct", bounds.lru_hit_rate},
        {"belady_hit_rate_10pct", bounds.belady_hit_rate},
        {"conversations", stats.conversations},
        {"conversation_turns", stats.conversation_turns},
        {"documents", stats.documents},
        {"document_questions", stats.document_questions},
    };
    std::cout << j.dump(2) << std::endl;
    return 0;
  }
  TextTable table({"TRACE", "VALUE"});
  table.AddRow({"file", out_path});
  table.AddRow({"requests", std::to_string(trace.size())});
  table.AddRow({"duration s", FormatFixed(duration_s, 1)});
  table.AddRow({"mean input tokens", FormatFixed(mean_input, 0)});
  table.AddRow({"mean output tokens", FormatFixed(mean_output, 0)});
  table.AddRow({"conversations (turns)", std::to_string(stats.conversations) + " (" +
                                             std::to_string(stats.conversation_turns) + ")"});
  table.AddRow({"documents (questions)", std::to_string(stats.documents) + " (" +
                                             std::to_string(stats.document_questions) + ")"});
  table.AddRow({"distinct 512-token blocks", std::to_string(bounds.distinct_blocks)});
  table.AddRow({"reusable fraction (infinite cache)",
                FormatFixed(100.0 * bounds.infinite_hit_rate, 1) + " %"});
  table.AddRow({"LRU hit rate at 10% capacity (" + std::to_string(capacity) + " blocks)",
                FormatFixed(100.0 * bounds.lru_hit_rate, 1) + " %"});
  table.AddRow({"Belady hit rate at 10% capacity",
                FormatFixed(100.0 * bounds.belady_hit_rate, 1) + " %"});
  table.Print(std::cout);
  return 0;
}

}  // namespace kvpool::bench
