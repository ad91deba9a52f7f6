// The modelled GPU compute of trace replays: how long prefill and decode take for a model on a
// GPU, derived from the model's shape and the GPU's datasheet (a roofline estimate, not a
// measurement), so a replay can run a virtual clock instead of a GPU.
//
//   prefill(n new tokens after c cached ones)
//       = n * prefill_s_per_token                        (weight matmuls, compute-bound)
//       + (n * c + n * (n + 1) / 2) * prefill_attn_s_per_token2   (causal attention)
//   decode step with b sequences
//       = decode_s_per_step + (b - 1) * decode_s_per_step_per_seq  (memory-bound)
//
// How the constants are derived (DeriveModelProfile; the arithmetic for the two built-in
// profiles is written out in model_profile.cc):
//  - kv_bytes_per_token = 2 (K and V) * layers * kv_heads * head_dim * 2 bytes (fp16/bf16).
//  - prefill_s_per_token = 2 * P_tok FLOPs / (peak dense BF16 FLOP/s * MFU), P_tok = the
//    parameters every prompt token is multiplied by: the transformer layers' weights (the
//    embedding is a lookup; the LM head runs once per request, for the last token only).
//  - prefill_attn_s_per_token2 = 4 * layers * hidden FLOPs per (new token, context token) pair
//    (QK^T and AV, 2 * hidden each per layer) / (peak * MFU). Counting causal pairs
//    n * c + n (n + 1) / 2 is the "/ 2 for causal".
//  - decode_s_per_step = bytes of weights read per step (all but the embedding table) /
//    (HBM bandwidth * efficiency) + one sequence's share (next item).
//  - decode_s_per_step_per_seq = reading the sequence's KV cache at a reference context of
//    kDecodeReferenceContextTokens tokens / (bandwidth * efficiency) + its matmul FLOPs
//    2 * (P_tok + LM head) / (peak * MFU). DecodeStepSeconds() takes the real context instead.
//    Memory and compute times are added, a conservative simplification of the roofline's max.
//
// Thread-safe: the built-in profiles are immutable statics; the functions are pure.
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "kvpool/status.h"

namespace kvpool::workload {

/// Context length, tokens, at which decode_s_per_step_per_seq counts a sequence's KV reads.
inline constexpr uint64_t kDecodeReferenceContextTokens = 4096;

/// The modelled compute of one model on one GPU. A value type.
struct ModelProfile {
  /// Short name, as ProfileByName() takes it ("llama3-8b").
  std::string name;
  /// KV cache bytes per token: all layers, K and V, fp16.
  uint64_t kv_bytes_per_token = 0;
  /// Linear part of prefill time, seconds per new token.
  double prefill_s_per_token = 0;
  /// Quadratic attention part of prefill, seconds per (new token x context token) pair.
  double prefill_attn_s_per_token2 = 0;
  /// One decode step at batch 1, seconds.
  double decode_s_per_step = 0;
  /// Added to a decode step per extra sequence in the batch, seconds.
  double decode_s_per_step_per_seq = 0;
  /// KV cache read per context token per decode step, seconds (kv_bytes_per_token / effective
  /// bandwidth); used by DecodeStepSeconds().
  double decode_s_per_context_token = 0;
  /// Where the numbers come from.
  std::string source;
};

/// The architecture of a decoder-only transformer (Llama-style: grouped-query attention,
/// gated MLP with three matrices, untied embedding and LM head unless `tied_embeddings`).
/// A value type; field names follow Hugging Face's config.json.
struct TransformerShape {
  /// Transformer blocks (num_hidden_layers).
  uint32_t layers = 0;
  /// Model width (hidden_size).
  uint32_t hidden = 0;
  /// Query heads (num_attention_heads).
  uint32_t attention_heads = 0;
  /// Key/value heads (num_key_value_heads); equal to attention_heads without GQA.
  uint32_t kv_heads = 0;
  /// Dimension of one head (head_dim, usually hidden / attention_heads).
  uint32_t head_dim = 0;
  /// MLP width (intermediate_size).
  uint32_t ffn_hidden = 0;
  /// Vocabulary size (vocab_size).
  uint32_t vocab = 0;
  /// True when the LM head shares the embedding's weights (tie_word_embeddings).
  bool tied_embeddings = false;
};

/// A GPU's datasheet figures and the fractions of them a serving engine reaches.
/// A value type.
struct GpuSpec {
  /// Short name ("H100-SXM5").
  std::string name;
  /// Dense (no sparsity) BF16 tensor-core peak, FLOP/s.
  double peak_bf16_flops = 0;
  /// HBM bandwidth, bytes/s.
  double hbm_bytes_per_s = 0;
  /// Model FLOPs utilisation reached in prefill, in (0, 1].
  double prefill_mfu = 0;
  /// Fraction of HBM bandwidth reached by decode kernels, in (0, 1].
  double decode_bandwidth_efficiency = 0;
};

/// Parameters every prompt token is multiplied by: the layers' attention projections (Q, K,
/// V, O) and gated MLP (3 matrices); norms are ignored (< 0.01%).
uint64_t LayerParameters(const TransformerShape& shape);

/// All parameters: layers + embedding + LM head (once if tied).
uint64_t TotalParameters(const TransformerShape& shape);

/// Derives a profile from a shape and a GPU as the file comment describes; `source` is
/// copied into the result.
ModelProfile DeriveModelProfile(std::string name, const TransformerShape& shape,
                                const GpuSpec& gpu, std::string source);

/// Prefill time, seconds, of `new_tokens` tokens after `cached_tokens` already in the KV
/// cache: the new tokens attend to the cached ones and (causally) to earlier new ones.
double PrefillSeconds(const ModelProfile& m, uint64_t new_tokens, uint64_t cached_tokens);

/// Time, seconds, to generate `output_tokens` tokens (one decode step each) while the batch
/// holds `batch` sequences (0 is taken as 1), at the reference context.
double DecodeSeconds(const ModelProfile& m, uint32_t output_tokens, uint32_t batch);

/// One decode step, seconds, of a batch of `batch` sequences (0 is taken as 1) whose contexts
/// add up to `context_tokens`: weights once, each context token's KV once, each sequence's
/// matmul FLOPs.
double DecodeStepSeconds(const ModelProfile& m, uint32_t batch, uint64_t context_tokens);

/// The H100 SXM5 (989.4 TFLOP/s dense BF16, 3.35 TB/s HBM3) at 50% prefill MFU and 75%
/// decode bandwidth efficiency.
const GpuSpec& H100Sxm();

/// Llama-3-8B on one H100 SXM (bf16 weights, 131072 KV bytes per token).
const ModelProfile& Llama3_8B_H100();

/// Llama-2-13B on one H100 SXM (bf16 weights, 819200 KV bytes per token).
const ModelProfile& Llama2_13B_H100();

/// The built-in profile names: "llama3-8b", "llama2-13b".
std::vector<std::string_view> KnownProfileNames();

/// The built-in profile called `name`. NOT_FOUND names `name` and lists the known ones.
Result<ModelProfile> ProfileByName(std::string_view name);

}  // namespace kvpool::workload
