#include "workload/model_profile.h"

#include <catch2/catch.hpp>

namespace kvpool::workload {
namespace {

TEST_CASE("ModelProfile: KV bytes per token follow the architectures", "[workload]") {
  // 2 (K, V) * layers * KV heads * head dim * 2 bytes.
  CHECK(Llama3_8B_H100().kv_bytes_per_token == 2u * 32 * 8 * 128 * 2);  // 131,072
  CHECK(Llama3_8B_H100().kv_bytes_per_token == 131072);
  CHECK(Llama2_13B_H100().kv_bytes_per_token == 819200);  // 2 * 40 * 40 * 128 * 2
}

TEST_CASE("ModelProfile: built-in profiles match the arithmetic in model_profile.cc",
          "[workload]") {
  const GpuSpec& h100 = H100Sxm();
  CHECK(h100.peak_bf16_flops == 989.4e12);
  CHECK(h100.hbm_bytes_per_s == 3.35e12);
  const double flops = 989.4e12 * 0.5;
  const double bytes = 3.35e12 * 0.75;

  SECTION("Llama-3-8B") {
    const ModelProfile& m = Llama3_8B_H100();
    CHECK(m.name == "llama3-8b");
    // Layers: 32 * (Q 4096^2 + K,V 2 * 4096 * 1024 + O 4096^2 + MLP 3 * 4096 * 14336).
    const double layers = 6979321856.0;
    const double lm_head = 128256.0 * 4096;
    CHECK(m.prefill_s_per_token == Approx(2 * layers / flops));
    CHECK(m.prefill_s_per_token == Approx(28.22e-6).epsilon(1e-3));
    CHECK(m.prefill_attn_s_per_token2 == Approx(4.0 * 32 * 4096 / flops));
    const double per_seq = 4096.0 * 131072 / bytes + 2 * (layers + lm_head) / flops;
    CHECK(m.decode_s_per_step_per_seq == Approx(per_seq));
    CHECK(m.decode_s_per_step == Approx((layers + lm_head) * 2 / bytes + per_seq));
    CHECK(m.decode_s_per_step == Approx(6.218e-3).epsilon(1e-3));
    CHECK_THAT(m.source, Catch::Contains("H100") && Catch::Contains("Meta-Llama-3-8B"));
  }
  SECTION("Llama-2-13B") {
    const ModelProfile& m = Llama2_13B_H100();
    CHECK(m.name == "llama2-13b");
    const double layers = 12687769600.0;  // 40 * (4 * 5120^2 + 3 * 5120 * 13824)
    const double lm_head = 32000.0 * 5120;
    CHECK(m.prefill_s_per_token == Approx(2 * layers / flops));
    CHECK(m.prefill_attn_s_per_token2 == Approx(4.0 * 40 * 5120 / flops));
    const double per_seq = 4096.0 * 819200 / bytes + 2 * (layers + lm_head) / flops;
    CHECK(m.decode_s_per_step_per_seq == Approx(per_seq));
    CHECK(m.decode_s_per_step == Approx((layers + lm_head) * 2 / bytes + per_seq));
    CHECK(m.decode_s_per_step == Approx(11.618e-3).epsilon(1e-3));
    CHECK_THAT(m.source, Catch::Contains("Llama-2-13b"));
  }
}

TEST_CASE("ModelProfile: parameter counts are the models' published sizes", "[workload]") {
  const TransformerShape llama3 = {.layers = 32, .hidden = 4096, .attention_heads = 32,
                                   .kv_heads = 8, .head_dim = 128, .ffn_hidden = 14336,
                                   .vocab = 128256};
  CHECK(LayerParameters(llama3) == 6979321856u);
  CHECK(TotalParameters(llama3) == 8029995008u);  // "8B"
  const TransformerShape llama2 = {.layers = 40, .hidden = 5120, .attention_heads = 40,
                                   .kv_heads = 40, .head_dim = 128, .ffn_hidden = 13824,
                                   .vocab = 32000};
  CHECK(TotalParameters(llama2) == 13015449600u);  // "13B"
  TransformerShape tied = llama2;
  tied.tied_embeddings = true;
  CHECK(TotalParameters(tied) == 13015449600u - 32000u * 5120u);
}

TEST_CASE("PrefillSeconds: linear plus causal attention over cached and new tokens",
          "[workload]") {
  const ModelProfile& m = Llama3_8B_H100();
  CHECK(PrefillSeconds(m, 0, 5000) == 0);
  // 100 new tokens after 1,000 cached: 100 * 1,000 + 100 * 101 / 2 = 105,050 pairs.
  CHECK(PrefillSeconds(m, 100, 1000) ==
        Approx(100 * m.prefill_s_per_token + 105050 * m.prefill_attn_s_per_token2));
  // Computing a prefix and then the rest costs what computing everything at once costs.
  CHECK(PrefillSeconds(m, 3000, 0) + PrefillSeconds(m, 5000, 3000) ==
        Approx(PrefillSeconds(m, 8000, 0)));
  // A cached prefix saves its own time, and the longer the context the dearer a token.
  CHECK(PrefillSeconds(m, 5000, 3000) < PrefillSeconds(m, 8000, 0));
  CHECK(PrefillSeconds(m, 1000, 30000) > PrefillSeconds(m, 1000, 0));
}

TEST_CASE("DecodeSeconds: per token, growing with the batch", "[workload]") {
  const ModelProfile& m = Llama2_13B_H100();
  CHECK(DecodeSeconds(m, 0, 8) == 0);
  CHECK(DecodeSeconds(m, 100, 1) == Approx(100 * m.decode_s_per_step));
  CHECK(DecodeSeconds(m, 100, 0) == DecodeSeconds(m, 100, 1));
  CHECK(DecodeSeconds(m, 10, 4) ==
        Approx(10 * (m.decode_s_per_step + 3 * m.decode_s_per_step_per_seq)));
  // Batching amortises the weights: 8 sequences cost far less than 8 times one.
  CHECK(DecodeSeconds(m, 1, 8) < 8 * DecodeSeconds(m, 1, 1) / 2);
}

TEST_CASE("DecodeStepSeconds: agrees with the reference context and grows with context",
          "[workload]") {
  for (const ModelProfile* m : {&Llama3_8B_H100(), &Llama2_13B_H100()}) {
    INFO(m->name);
    CHECK(DecodeStepSeconds(*m, 1, kDecodeReferenceContextTokens) ==
          Approx(m->decode_s_per_step));
    CHECK(DecodeStepSeconds(*m, 4, 4 * kDecodeReferenceContextTokens) ==
          Approx(m->decode_s_per_step + 3 * m->decode_s_per_step_per_seq));
    CHECK(DecodeStepSeconds(*m, 1, 100000) - DecodeStepSeconds(*m, 1, 0) ==
          Approx(100000 * m->decode_s_per_context_token));
  }
}

TEST_CASE("ProfileByName: returns the built-in profiles, NOT_FOUND lists them",
          "[workload]") {
  CHECK(ProfileByName("llama3-8b")->decode_s_per_step == Llama3_8B_H100().decode_s_per_step);
  CHECK(ProfileByName("llama2-13b")->kv_bytes_per_token == 819200);
  const auto missing = ProfileByName("gpt-5");
  REQUIRE_FALSE(missing.ok());
  CHECK(missing.status().code() == StatusCode::kNotFound);
  CHECK(missing.status().message() ==
        "unknown model profile 'gpt-5' (known: llama3-8b, llama2-13b)");
}

}  // namespace
}  // namespace kvpool::workload
