"""The soft-MoE router's initialisation: `phi` LeCun normal (std = hidden_size^-0.5, the paper's SoftRouter,
modeling_steel `_init_weights`) and `scale` 1. No test pinned either: a router drawn at initializer_range (or
with std 1/C) starts with near-uniform routing and trains differently, silently.
"""

from __future__ import annotations

import pytest
import torch

from steel.model import build_model
from steel.model.modeling_steel import SteelSoftMoE


def test_router_init_is_lecun_normal_and_scale_one(tiny_config):
    torch.manual_seed(0)
    C = 256  # wide enough for a precise std estimate: 2 layers x 256 x 6 = 3,072 draws (std error ~1.3%)
    cfg = tiny_config(hidden_size=C, num_attention_heads=4, ffn_type="soft_moe_v3")
    model = build_model(cfg)
    routers = [m for m in model.modules() if isinstance(m, SteelSoftMoE)]
    assert len(routers) == cfg.num_hidden_layers
    phi = torch.cat([m.phi.detach().reshape(-1) for m in routers])
    # LeCun normal: std C^-0.5 = 0.0625 here; initializer_range is 0.02 and 1/C 0.0039. 10% is ~8 standard
    # errors of the estimate and far from either of the other two.
    assert phi.std().item() == pytest.approx(C**-0.5, rel=0.1)
    assert abs(phi.mean().item()) < 3 * C**-0.5 / phi.numel() ** 0.5
    assert all(torch.equal(m.scale.detach(), torch.ones(1)) for m in routers)
