"""soft_moe_causal's router scale past its cap (SCALE_CAP = 30) still takes the gradient that brings it back.

With a plain clamp the scale had no gradient at all past the cap, and AdamW does not decay it (1-D: no weight
decay), so the first optimizer step that carried it over 30 froze the routers' temperature for the rest of the
run, even when the loss later asked for a smaller scale. CLIP, whose rule the cap follows, clamps its
parameter after each step: at the cap it still moves back. Past the cap the forward uses the cap; a gradient
whose descent step goes back toward it passes, one that pushes the scale further out is dropped."""

from __future__ import annotations

import pytest
import torch

from steel.model.modeling_steel import SteelSoftMoECausal, make_ffn

CAP = SteelSoftMoECausal.SCALE_CAP


def _ffn(tiny_config):
    torch.manual_seed(0)
    m = make_ffn(tiny_config(ffn_type="soft_moe_causal", expert_type="senet", moe_chunk_size=3))
    for prm in m.parameters():
        torch.nn.init.normal_(prm, std=0.3)
    x = torch.randn(2, 7, m.phi.shape[0])
    return m, x


def _scale_grad(m, x, w, value):
    with torch.no_grad():
        m.scale.fill_(value)
    m.zero_grad()
    (m(x) * w).sum().backward()
    return m.scale.grad.item()


@pytest.mark.parametrize("side", [1.0, -1.0])
def test_past_the_cap_only_the_gradient_back_toward_it_passes(tiny_config, side):
    m, x = _ffn(tiny_config)
    w = torch.randn(2, 7, m.phi.shape[0])
    at_cap = _scale_grad(m, x, w, side * CAP)  # the clamp passes the gradient at the cap itself
    assert at_cap != 0.0
    # the loss (y * w) and its opposite (y * -w): one's descent step brings the scale back inside, the other's
    # pushes it out; past the cap the forward is the cap's, so the gradient that passes is the one at the cap
    inward = w if at_cap * side > 0 else -w
    assert _scale_grad(m, x, inward, side * (CAP + 0.5)) == pytest.approx(abs(at_cap) * side, rel=1e-6)
    assert _scale_grad(m, x, -inward, side * (CAP + 0.5)) == 0.0


def test_a_scale_carried_past_the_cap_comes_back_when_the_loss_asks(tiny_config):
    m, x = _ffn(tiny_config)
    w = torch.randn(2, 7, m.phi.shape[0])
    with torch.no_grad():
        m.scale.fill_(CAP - 0.3)
    # the sign of w for which a larger scale lowers the loss
    up = -w if _scale_grad(m, x, w, CAP - 0.3) > 0 else w
    with torch.no_grad():
        m.scale.fill_(CAP - 0.3)
    opt = torch.optim.AdamW([m.scale], lr=0.1, weight_decay=0.0)  # the trainer's group for 1-D parameters
    for target in [up] * 6 + [-up] * 30:
        opt.zero_grad()
        (m(x) * target).sum().backward()
        opt.step()
        if target is up:
            peak = m.scale.item()
    assert peak > CAP  # carried over the cap by the steps that asked for more
    assert m.scale.item() < CAP  # and back under it once the loss asks for less (it stayed at `peak`)
