// What the scheduler knows about each namespace to estimate costs: block layout and a compute
// time model (MemServe's fitted prefill model).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>

#include "absl/container/flat_hash_map.h"
#include "kvpool/status.h"

namespace kvpool::scheduler {

/// The cost model of one namespace.
///
/// Prefill time of `new_tokens` tokens after a cached prefix of `prefix_tokens`:
///   compute_s = token_s * new_tokens + attention_s * new_tokens * (prefix_tokens + new_tokens)
/// (a per-token cost plus a quadratic attention term, as MemServe fits it).
struct NamespaceModel {
  /// Tokens per block. Must be > 0. Default: 16.
  uint32_t block_tokens = 16;
  /// Bytes of KV per block (all layers, K and V); what a transfer of one block moves.
  /// Default: 2 MiB (16 tokens of a Llama-3-8B-like model, 128 KiB per token).
  uint64_t block_bytes = uint64_t{2} << 20;
  /// Seconds per prefilled token (the linear term). Must be >= 0. Default: 5e-5 (20k tokens/s).
  double token_s = 5e-5;
  /// Seconds per new token per token of context (the quadratic attention term). Must be >= 0.
  /// Default: 1e-9.
  double attention_s = 1e-9;

  /// Prefill time of `new_tokens` after `prefix_tokens` cached ones, in seconds.
  double ComputeSeconds(uint64_t prefix_tokens, uint64_t new_tokens) const {
    const double n = static_cast<double>(new_tokens);
    return token_s * n + attention_s * n * (static_cast<double>(prefix_tokens) + n);
  }

  /// INVALID_ARGUMENT naming the field when the model is unusable.
  Status Validate() const;
};

/// Namespace name -> model, with a default for namespaces not configured.
///
/// Not thread-safe; owned by the scheduler service (shared read-only with Router and Placer).
class NamespaceModels {
 public:
  /// `fallback` serves namespaces that were never Set; an invalid one (see Validate) is replaced
  /// by NamespaceModel{}'s defaults.
  explicit NamespaceModels(NamespaceModel fallback = NamespaceModel{});

  /// Sets the model of `ns`. INVALID_ARGUMENT for an empty name or an invalid model.
  Status Set(std::string_view ns, const NamespaceModel& model);
  /// The model of `ns`, or the fallback.
  const NamespaceModel& Get(std::string_view ns) const;
  /// True when `ns` was Set.
  bool Contains(std::string_view ns) const;

 private:
  NamespaceModel fallback_;
  absl::flat_hash_map<std::string, NamespaceModel> models_;
};

}  // namespace kvpool::scheduler
