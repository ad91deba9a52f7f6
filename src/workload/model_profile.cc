#include "workload/model_profile.h"

#include <algorithm>
#include <utility>

namespace kvpool::workload {
namespace {

// ---- Sources -----------------------------------------------------------------------------------
// H100 SXM5: NVIDIA H100 Tensor Core GPU datasheet and Hopper architecture whitepaper: BF16
//   tensor core 1,979 TFLOP/s with 2:4 sparsity = 989.4 TFLOP/s dense; HBM3 3.35 TB/s.
// Llama-3-8B: huggingface.co/meta-llama/Meta-Llama-3-8B config.json: 32 layers, hidden 4096,
//   32 heads, 8 KV heads (head_dim 128), intermediate 14336, vocab 128256, untied embeddings.
// Llama-2-13B: huggingface.co/meta-llama/Llama-2-13b-hf config.json: 40 layers, hidden 5120,
//   40 heads = 40 KV heads (head_dim 128), intermediate 13824, vocab 32000, untied.
// Efficiencies (assumptions, not measurements): 50% MFU for prefill matmuls and attention
//   (long-prompt prefill in vLLM/SGLang on Hopper runs at roughly 40-60%), 75% of HBM
//   bandwidth for decode (weight- and KV-streaming kernels reach roughly 70-80%).
//
// ---- Llama-3-8B on H100, worked out ----------------------------------------------------------
// KV bytes/token = 2 (K,V) * 32 layers * 8 heads * 128 dim * 2 B          = 131,072 B
// per layer: Q 4096*4096 + K 4096*1024 + V 4096*1024 + O 4096*4096         =  41,943,040
//            MLP 3 * 4096 * 14336                                         = 176,160,768
//            = 218,103,808; * 32 layers                 P_tok             = 6,979,321,856
// embedding = LM head = 128256 * 4096 = 525,336,576; total 8,029,995,008 (the "8B")
// prefill: 2 * 6,979,321,856 = 13.96 GFLOP/token / (989.4e12 * 0.5 = 494.7e12 FLOP/s)
//                                                 prefill_s_per_token       = 28.22 us
// attention: 4 * 32 * 4096 = 524,288 FLOP/pair / 494.7e12   prefill_attn    = 1.0598 ns
// decode weights: (6,979,321,856 + 525,336,576) * 2 B = 15.01 GB / (3.35e12 * 0.75 =
//   2.5125e12 B/s)                                                          = 5.974 ms
// per sequence: KV at 4096 tokens 4096 * 131,072 B = 536.9 MB / 2.5125e12   = 213.7 us
//               + 2 * 7,504,658,432 FLOP / 494.7e12                        =  30.3 us
//                                                 decode_s_per_step_per_seq = 244.0 us
//                                                 decode_s_per_step         = 6.218 ms
//
// ---- Llama-2-13B on H100, worked out ---------------------------------------------------------
// KV bytes/token = 2 * 40 layers * 40 heads * 128 dim * 2 B               = 819,200 B
// per layer: attention 4 * 5120 * 5120 = 104,857,600 + MLP 3 * 5120 * 13824 = 212,336,640
//            = 317,194,240; * 40 layers                 P_tok             = 12,687,769,600
// embedding = LM head = 32000 * 5120 = 163,840,000; total 13,015,449,600 (the "13B")
// prefill: 2 * 12,687,769,600 = 25.38 GFLOP/token / 494.7e12  prefill_s_per_token = 51.30 us
// attention: 4 * 40 * 5120 = 819,200 FLOP/pair / 494.7e12     prefill_attn    = 1.6559 ns
// decode weights: (12,687,769,600 + 163,840,000) * 2 B = 25.70 GB / 2.5125e12 = 10.230 ms
// per sequence: KV 4096 * 819,200 B = 3.355 GB / 2.5125e12                   = 1.3355 ms
//               + 2 * 12,851,609,600 FLOP / 494.7e12                        = 52.0 us
//                                                 decode_s_per_step_per_seq = 1.3875 ms
//                                                 decode_s_per_step         = 11.618 ms

constexpr TransformerShape kLlama3_8B = {
    .layers = 32, .hidden = 4096, .attention_heads = 32, .kv_heads = 8, .head_dim = 128,
    .ffn_hidden = 14336, .vocab = 128256, .tied_embeddings = false};
constexpr TransformerShape kLlama2_13B = {
    .layers = 40, .hidden = 5120, .attention_heads = 40, .kv_heads = 40, .head_dim = 128,
    .ffn_hidden = 13824, .vocab = 32000, .tied_embeddings = false};

constexpr uint64_t kBytesPerParameter = 2;  // bf16 weights
constexpr uint64_t kBytesPerKvValue = 2;    // fp16 KV cache

uint64_t EmbeddingParameters(const TransformerShape& s) { return uint64_t{s.vocab} * s.hidden; }

const char kH100Source[] =
    "roofline estimate: NVIDIA H100 SXM5 datasheet (989.4 TFLOP/s dense BF16, 3.35 TB/s "
    "HBM3) at an assumed 50% prefill MFU and 75% decode bandwidth efficiency; ";

}  // namespace

uint64_t LayerParameters(const TransformerShape& s) {
  const uint64_t q = uint64_t{s.hidden} * s.attention_heads * s.head_dim;
  const uint64_t kv = 2 * uint64_t{s.hidden} * s.kv_heads * s.head_dim;
  const uint64_t o = uint64_t{s.attention_heads} * s.head_dim * s.hidden;
  const uint64_t mlp = 3 * uint64_t{s.hidden} * s.ffn_hidden;
  return uint64_t{s.layers} * (q + kv + o + mlp);
}

uint64_t TotalParameters(const TransformerShape& s) {
  return LayerParameters(s) + (s.tied_embeddings ? 1 : 2) * EmbeddingParameters(s);
}

ModelProfile DeriveModelProfile(std::string name, const TransformerShape& shape,
                                const GpuSpec& gpu, std::string source) {
  ModelProfile m;
  m.name = std::move(name);
  m.source = std::move(source);
  m.kv_bytes_per_token =
      2 * uint64_t{shape.layers} * shape.kv_heads * shape.head_dim * kBytesPerKvValue;

  const double flops_per_s = gpu.peak_bf16_flops * gpu.prefill_mfu;
  const double bytes_per_s = gpu.hbm_bytes_per_s * gpu.decode_bandwidth_efficiency;
  const double layer_params = static_cast<double>(LayerParameters(shape));
  // The LM head is one more matmul per generated token; in prefill it runs for the last token
  // only, so it is left out of the per-token prefill cost.
  const double decode_params = layer_params + static_cast<double>(EmbeddingParameters(shape));

  m.prefill_s_per_token = 2.0 * layer_params / flops_per_s;
  m.prefill_attn_s_per_token2 = 4.0 * shape.layers * shape.hidden / flops_per_s;

  // Every weight but the embedding table (a lookup of one row) is read once per step.
  const double weight_read_s =
      decode_params * static_cast<double>(kBytesPerParameter) / bytes_per_s;
  m.decode_s_per_context_token = static_cast<double>(m.kv_bytes_per_token) / bytes_per_s;
  m.decode_s_per_step_per_seq =
      static_cast<double>(kDecodeReferenceContextTokens) * m.decode_s_per_context_token +
      2.0 * decode_params / flops_per_s;
  m.decode_s_per_step = weight_read_s + m.decode_s_per_step_per_seq;
  return m;
}

double PrefillSeconds(const ModelProfile& m, uint64_t new_tokens, uint64_t cached_tokens) {
  const double n = static_cast<double>(new_tokens);
  const double c = static_cast<double>(cached_tokens);
  // Causal: new token j (1-based) attends to the c cached tokens and to j new ones.
  const double pairs = n * c + n * (n + 1.0) / 2.0;
  return n * m.prefill_s_per_token + pairs * m.prefill_attn_s_per_token2;
}

double DecodeSeconds(const ModelProfile& m, uint32_t output_tokens, uint32_t batch) {
  const double extra = static_cast<double>(std::max<uint32_t>(batch, 1) - 1);
  return static_cast<double>(output_tokens) *
         (m.decode_s_per_step + extra * m.decode_s_per_step_per_seq);
}

double DecodeStepSeconds(const ModelProfile& m, uint32_t batch, uint64_t context_tokens) {
  const double b = static_cast<double>(std::max<uint32_t>(batch, 1));
  // decode_s_per_step holds one sequence's share at the reference context; take out its KV
  // part to get weights + per-sequence compute, then add the real KV reads.
  const double reference_kv_s =
      static_cast<double>(kDecodeReferenceContextTokens) * m.decode_s_per_context_token;
  const double per_seq_compute_s = m.decode_s_per_step_per_seq - reference_kv_s;
  const double weights_s = m.decode_s_per_step - m.decode_s_per_step_per_seq;
  return weights_s + b * per_seq_compute_s +
         static_cast<double>(context_tokens) * m.decode_s_per_context_token;
}

const GpuSpec& H100Sxm() {
  static const GpuSpec gpu = {.name = "H100-SXM5",
                              .peak_bf16_flops = 989.4e12,
                              .hbm_bytes_per_s = 3.35e12,
                              .prefill_mfu = 0.5,
                              .decode_bandwidth_efficiency = 0.75};
  return gpu;
}

const ModelProfile& Llama3_8B_H100() {
  static const ModelProfile profile = DeriveModelProfile(
      "llama3-8b", kLlama3_8B, H100Sxm(),
      std::string(kH100Source) +
          "shape from meta-llama/Meta-Llama-3-8B config.json (32 layers, hidden 4096, 8 KV "
          "heads x 128, MLP 14336, vocab 128256)");
  return profile;
}

const ModelProfile& Llama2_13B_H100() {
  static const ModelProfile profile = DeriveModelProfile(
      "llama2-13b", kLlama2_13B, H100Sxm(),
      std::string(kH100Source) +
          "shape from meta-llama/Llama-2-13b-hf config.json (40 layers, hidden 5120, 40 KV "
          "heads x 128, MLP 13824, vocab 32000)");
  return profile;
}

std::vector<std::string_view> KnownProfileNames() { return {"llama3-8b", "llama2-13b"}; }

Result<ModelProfile> ProfileByName(std::string_view name) {
  if (name == "llama3-8b") return Llama3_8B_H100();
  if (name == "llama2-13b") return Llama2_13B_H100();
  std::string known;
  for (std::string_view n : KnownProfileNames()) {
    if (!known.empty()) known += ", ";
    known += n;
  }
  return NotFoundError("unknown model profile '" + std::string(name) + "' (known: " + known +
                       ")");
}

}  // namespace kvpool::workload
