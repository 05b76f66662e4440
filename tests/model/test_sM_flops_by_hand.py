"""FLOPs per token of steel-1b (soft MoE v3) and of a dense Llama shape, counted by hand from the widths.

The counts below are written out matrix by matrix (not with steel.model.flops' own grouping), so a slip in
either one shows. One multiply-accumulate (MAC) = 2 FLOPs; training = forward + backward = 3 x forward.
"""

from __future__ import annotations

import pytest
from transformers import LlamaConfig

from steel.model import load_model_config
from steel.model.flops import flops_per_token, parameter_counts


def test_steel_1b_soft_moe_v3_by_hand():
    cfg = load_model_config("steel-1b")
    T = 2048
    C, L, V, H, D = 1792, 18, 151936, 32, 56  # widths of configs/model/steel-1b.yaml (no GQA: Hkv = H)
    h = 1792 // 4  # SENet inner width (intermediate_size // mlp_div_ratio)
    n, p = 6, 1  # experts, slots per expert
    S = n * p
    # per token, per layer, forward MACs
    q_proj, k_proj, v_proj, o_proj = C * (H * D), C * (H * D), C * (H * D), (H * D) * C
    keys_seen = (T + 1) / 2  # a causal query t attends to t + 1 keys: mean over t = 0..T-1
    qk, av = H * D * keys_seen, H * D * keys_seen
    router = C * S  # l2norm(x) . l2norm(phi)
    dispatch = S * C  # slots = D^T x: each token adds its weighted x into each of the S slots
    combine = S * C  # y_t = sum_s combine[t, s] ys[s]
    senet_one_vector = C * h + C * h + h * C + h * C  # gate_up, up, gate_down, down
    experts = S * senet_one_vector / T  # S slot vectors per sequence of T tokens
    layer = q_proj + k_proj + v_proj + o_proj + qk + av + router + dispatch + combine + experts
    lm_head = C * V
    forward = 2 * (L * layer + lm_head)
    f = flops_per_token(cfg, T)
    assert f["forward"] == pytest.approx(forward, rel=1e-12)
    assert f["true"] == pytest.approx(3 * forward, rel=1e-12)
    assert f["lm_head"] == 2 * C * V
    assert f["ffn"] == pytest.approx(2 * L * (router + dispatch + combine + experts), rel=1e-12)
    # README, "steel model info": true 3.422 G, attention 1.784 G, FFN 4.5 M, lm_head 1.634 G
    assert round(f["true"] / 1e9, 3) == 3.422
    assert round(3 * f["attention"] / 1e9, 3) == 1.784 and round(3 * f["ffn"] / 1e6, 1) == 4.5
    # 6N: N = 1,122,922,770 (configs/model/steel-1b.yaml's arithmetic), non-embedding N without the input lookup
    assert f["params"] == 1_122_922_770
    assert f["params_non_embedding"] == 1_122_922_770 - V * C
    assert f["six_n"] == 6 * 1_122_922_770 and f["six_n_non_embedding"] == 6 * (1_122_922_770 - V * C)


@pytest.mark.parametrize("tied", [False, True])
def test_dense_llama_shape_by_hand_and_the_issue_formula(tied):
    # The 1b Llama shape of bench/gpu_throughput.py (GQA 32/4), a smaller vocabulary to keep the meta build quick.
    C, I, L, H, Hkv, V, T = 2048, 5632, 22, 32, 4, 32000, 2048
    D = C // H
    cfg = LlamaConfig(hidden_size=C, intermediate_size=I, num_hidden_layers=L, num_attention_heads=H,
                      num_key_value_heads=Hkv, vocab_size=V, tie_word_embeddings=tied)
    layer_matmul_params = C * H * D + 2 * C * Hkv * D + H * D * C + 3 * C * I  # q, k, v, o; gate, up, down
    attention_per_key = 2 * H * D  # QK^T and AV: H * D MACs each per key
    forward = 2 * (L * (layer_matmul_params + attention_per_key * (T + 1) / 2) + C * V)
    f = flops_per_token(cfg, T)
    assert f["true"] == pytest.approx(3 * forward, rel=1e-12)

    # The issue's MFU numerator: 6N + 12 L d T, N = parameters without the input embedding.
    norms = (2 * L + 1) * C
    n_issue = L * layer_matmul_params + norms + (0 if tied else V * C)
    parts = parameter_counts(cfg)
    assert f["params_non_embedding"] == parts["non_embedding"] == n_issue
    assert f["six_n_non_embedding"] == 6 * n_issue
    # The dense true count is that formula with the matmuls only (norms are no matmul), the LM head always
    # (tied or not it multiplies every token) and causal attention, (T + 1) / 2 keys, not T: 6 L d (T + 1).
    d = H * D
    head_if_tied = V * C if tied else 0
    assert f["true"] == pytest.approx(6 * (n_issue - norms + head_if_tied) + 6 * L * d * (T + 1), rel=1e-12)
