"""soft_moe_causal FLOPs when the sequence does not end on a chunk boundary.

The experts run on S slot vectors at every chunk start, the last (partial) chunk included: ceil(T / c) times
per sequence. tests/model/test_config_params.py uses T = 32, c = 8, where ceil and floor agree, so counting
floor(T / c) chunks went unnoticed. Here the expert work is counted from the built layer's own matrices
(weight by weight) and the chunk starts by listing them.
"""

from __future__ import annotations

import pytest

from steel.model import build_model
from steel.model.flops import flops_per_token, parameter_counts


@pytest.mark.parametrize(("T", "chunk"), [(10, 3), (7, 4), (5, 8)])
def test_causal_soft_moe_counts_the_partial_last_chunk(tiny_config, T, chunk):
    cfg = tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=chunk)
    model = build_model(cfg)
    mlp = model.model.layers[0].mlp
    C, S = cfg.hidden_size, mlp.phi.shape[1]
    expert_macs = sum(p.numel() for p in mlp.experts[0].parameters() if p.ndim == 2)  # MACs per vector
    chunk_starts = len(range(0, T, chunk))  # tokens 0, c, 2c, ... < T each rebuild the S slots
    routing = C * S + S * C + S * C  # router logits, building the slots, combining
    ffn_per_layer = routing + S * chunk_starts * expert_macs / T
    f = flops_per_token(cfg, T)
    assert f["ffn"] == pytest.approx(2 * cfg.num_hidden_layers * ffn_per_layer, rel=1e-12)


def test_parameter_parts_by_hand(tiny_config):
    # `steel model info` prints these parts; counted here weight by weight from the widths of tiny.yaml.
    cfg = tiny_config(ffn_type="soft_moe_v3")
    C, L, V, H, Hkv, D = 64, 2, 512, 4, 2, 16
    n, S, h = 3, 6, 128 // 4
    attention = L * ((C * H * D + H * D) + 2 * (C * Hkv * D + Hkv * D) + H * D * C)  # q, k, v with bias; o
    ffn = L * (C * S + 1 + n * 4 * C * h)  # phi, scale, n SENet experts of 4 matrices
    norms = (2 * L + 1) * C  # input/post-attention per layer, final
    parts = parameter_counts(cfg)
    assert {k: parts[k] for k in ("embedding", "attention", "ffn", "norms", "lm_head", "other")} == {
        "embedding": V * C, "attention": attention, "ffn": ffn, "norms": norms, "lm_head": V * C, "other": 0}
