"""config.kernels: the hook resolves steel.kernels functions, and a fused loss never materialises logits."""

from __future__ import annotations

import sys

import pytest
import torch

from steel.model import build_model, modeling_steel


def test_reference_by_default_and_reference_with_a_warning_without_steel_kernels(tiny_config, monkeypatch):
    cfg = tiny_config(ffn_type="senet")
    assert modeling_steel._resolve_kernel(cfg, "rmsnorm") is modeling_steel.rms_norm
    torch.manual_seed(0)
    plain = build_model(cfg).eval()
    cfg.kernels = {"rmsnorm": "triton"}
    # A directory saved with kernels on, loaded where steel is not installed: it used to be an ImportError
    # (the README promises that save_pretrained output loads with trust_remote_code alone).
    monkeypatch.setitem(sys.modules, "steel.kernels", None)
    with pytest.warns(UserWarning, match=r"config.kernels.rmsnorm = 'triton' needs the `steel.kernels` package"):
        model = build_model(cfg).eval()
    model.load_state_dict(plain.state_dict())
    ids = torch.randint(0, 512, (1, 7))
    with torch.no_grad():
        assert torch.equal(model(input_ids=ids).logits, plain(input_ids=ids).logits)


def test_fused_cross_entropy_skips_logits(tiny_config):
    kernels = pytest.importorskip("steel.kernels")
    torch.manual_seed(0)
    ref = build_model(tiny_config(ffn_type="swiglu"))
    fused = build_model(tiny_config(ffn_type="swiglu", kernels="{cross_entropy: fused}"))
    fused.load_state_dict(ref.state_dict())
    assert modeling_steel._resolve_kernel(fused.config, "cross_entropy") is kernels.fused_linear_cross_entropy
    ids = torch.randint(0, 512, (2, 11))
    labels = ids.clone()
    labels[:, :3] = -100
    out_r, out_f = ref(input_ids=ids, labels=labels), fused(input_ids=ids, labels=labels)
    assert out_f.logits is None and out_r.logits is not None
    # NOTE: on CPU without STEEL_KERNELS_INTERPRET=1 steel.kernels runs its reference here (the kernel itself is
    # tests/kernels/test_model_kernels.py); this checks the model's plumbing: the loss from the flattened hidden
    # states and lm_head's weight, no logits. Same mean cross-entropy: fp32 reordering, ~1e-6 relative.
    torch.testing.assert_close(out_f.loss, out_r.loss, rtol=1e-5, atol=0)
    assert fused(input_ids=ids, labels=labels, return_logits=True).logits.shape == (2, 11, 512)
