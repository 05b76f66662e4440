"""soft_moe_causal with a large learned router scale: its prefix weights exp(logits - |scale|) lie in
[exp(-2|scale|), 1]. A prefix whose tokens all point away from a slot got a wrong slot past |scale| ~ 34.5
(its weight sum under `_slots`' 1e-30 floor) and a zero one past ~52 (every weight underflowed): a silently
wrong output (relative error 0.44 at 35, ~1 at 80, finite). The scale is now capped at SCALE_CAP = 30 (as CLIP
caps its logit scale): the module computes what the explicit per-prefix softmax of test_ffn's reference gives
in fp64 with the scale at the cap, gradients included. Past the cap only the gradient that brings the scale
back passes (tests/model/test_s14v3_scale_cap_gradient.py)."""

from __future__ import annotations

import copy

import pytest
import torch
from test_ffn import reference

from steel.model.modeling_steel import SteelSoftMoECausal, make_ffn


def causal_moe(tiny_config, chunk: int):
    """A soft_moe_causal FFN with weights of std 0.3 (every branch moves the output) and an input (2, 7, C)."""
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="soft_moe_causal", expert_type="senet", moe_chunk_size=chunk)
    m = make_ffn(cfg)
    for prm in m.parameters():
        torch.nn.init.normal_(prm, std=0.3)
    return cfg, m, torch.randn(2, 7, cfg.hidden_size)


@pytest.mark.parametrize("chunk", [1, 3])
@pytest.mark.parametrize("scale", [80.0, -120.0])
def test_large_scale_is_capped_not_underflowed(tiny_config, chunk, scale):
    cfg, m, x = causal_moe(tiny_config, chunk)
    with torch.no_grad():
        m.scale.fill_(scale)
    ref = copy.deepcopy(m).double()
    with torch.no_grad():
        ref.scale.fill_(SteelSoftMoECausal.SCALE_CAP if scale > 0 else -SteelSoftMoECausal.SCALE_CAP)
        y, y_ref = m(x), reference(ref, x.double(), cfg)
    # fp32 against fp64 with the same formula: the tolerance of test_ffn (a different summation order); the
    # uncapped weights (zero slots) were off by ~100% of the largest output.
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=2e-6 * y_ref.abs().max().item())


def test_scale_within_the_cap_unchanged_and_only_the_gradient_back_past_it(tiny_config):
    cfg, m, x = causal_moe(tiny_config, 3)
    with torch.no_grad():
        m.scale.fill_(20.0)
    y20 = m(x)
    y20.sum().backward()
    assert m.scale.grad.abs().item() > 0  # below the cap the scale learns
    with torch.no_grad():
        ref = copy.deepcopy(m).double()
        torch.testing.assert_close(y20.double(), reference(ref, x.double(), cfg), rtol=1e-5,
                                   atol=2e-6 * y20.abs().max().item())
        m.scale.fill_(40.0)
    grads = []
    for sign in (1, -1):
        m.zero_grad()
        (sign * m(x)).sum().backward()
        grads.append(m.scale.grad.item())
    # past it, clamped: no gradient pushes it further, the one that brings it back passes (> 0: descent lowers it)
    assert min(grads) == 0.0 and max(grads) > 0


@pytest.mark.parametrize("scale", [30.0, 35.0, 60.0])
def test_a_prefix_of_one_opposed_token_keeps_exact_outputs_and_gradients(tiny_config, scale):
    """The smallest weights there are: token 0 (chunk 0's whole prefix) exactly opposite slot 0, logit -|scale|;
    at the cap, weight exp(-60) ~ 8.7e-27: output and gradients as the fp64 reference's at min(scale, cap)."""
    cfg, m, x = causal_moe(tiny_config, 3)
    with torch.no_grad():
        x[:, 0] = -3 * m.phi[:, 0]
        m.scale.fill_(scale)
    ref = copy.deepcopy(m).double()
    with torch.no_grad():
        ref.scale.fill_(min(scale, SteelSoftMoECausal.SCALE_CAP))
    x32, x64 = x.clone().requires_grad_(), x.double().requires_grad_()
    y, y_ref = m(x32), reference(ref, x64, cfg)
    w = torch.randn_like(y_ref)
    (y.double() * w).sum().backward()
    (y_ref * w).sum().backward()
    torch.testing.assert_close(y.double(), y_ref, rtol=1e-5, atol=2e-6 * y_ref.abs().max().item())
    # the gradient of x: the forward's budget scaled to it (test_ffn's rule for every gradient)
    torch.testing.assert_close(x32.grad.double(), x64.grad, rtol=1e-5, atol=2e-6 * x64.grad.abs().max().item())
    for (name, p), (_, q) in zip(m.named_parameters(), ref.named_parameters()):
        if name != "scale":  # a sum that mostly cancels: test_ffn gives it its own budget
            torch.testing.assert_close(p.grad.double(), q.grad, rtol=1e-5, atol=2e-6 * q.grad.abs().max().item(),
                                       msg=name)
