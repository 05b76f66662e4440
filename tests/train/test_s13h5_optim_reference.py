"""build_optimizer against a hand-built torch.optim.AdamW: every configured hyperparameter reaches the update.

A mutation audit (session 13) dropped `eps=cfg.eps` from build_optimizer (both the fp32 AdamW and the bf16
MasterWeightAdamW) and the suite stayed green: every test config used the default eps 1e-8, torch's default too.
Here eps, betas and weight_decay all differ from torch's defaults, and the reference decays exactly the
matrices (2-D tensors) and leaves norms and biases (1-D) undecayed.
"""

from __future__ import annotations

import pytest
import torch

from steel.train.config import OptimSection
from steel.train.optim import adamw_fused, build_optimizer


class Tiny(torch.nn.Module):
    def __init__(self, dtype):
        super().__init__()
        g = torch.Generator().manual_seed(0)
        self.embed = torch.nn.Parameter(torch.randn(7, 5, generator=g).to(dtype))  # 2-D: decayed
        self.proj = torch.nn.Parameter(torch.randn(3, 5, generator=g).to(dtype))  # 2-D: decayed
        self.bias = torch.nn.Parameter(torch.randn(3, generator=g).to(dtype))  # 1-D: not decayed
        self.norm = torch.nn.Parameter((1 + torch.randn(5, generator=g)).to(dtype))  # 1-D: not decayed


def _grads(step: int, model: Tiny) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(10 + step)
    # Gradients of order 1e-3: an eps of 1e-3 (configured) vs 1e-8 (torch's default) halves the update.
    return [(torch.randn(p.shape, generator=g) * 1e-3).to(p.dtype) for p in model.parameters()]


@pytest.mark.parametrize("master_weights", [False, True])
def test_build_optimizer_matches_adamw_with_the_configured_hyperparameters(master_weights):
    cfg = OptimSection(lr=1e-2, weight_decay=0.5, betas=[0.8, 0.9], eps=1e-3)
    cpu = torch.device("cpu")
    model = Tiny(torch.bfloat16 if master_weights else torch.float32)
    ref = [p.detach().float().clone().requires_grad_() for p in model.parameters()]
    # The reference: decay on the two matrices only, every hyperparameter spelled out by hand.
    ref_opt = torch.optim.AdamW(
        [{"params": [ref[0], ref[1]], "weight_decay": 0.5}, {"params": [ref[2], ref[3]], "weight_decay": 0.0}],
        lr=1e-2, betas=(0.8, 0.9), eps=1e-3, fused=adamw_fused(cpu),
    )
    opt = build_optimizer(model, cfg, cpu, master_weights=master_weights)
    for step in range(3):
        for p, r, gr in zip(model.parameters(), ref, _grads(step, model)):
            p.grad, r.grad = gr.clone(), gr.float()
        opt.step()
        ref_opt.step()
        opt.zero_grad(set_to_none=True)
        ref_opt.zero_grad(set_to_none=True)
        for i, (p, r) in enumerate(zip(model.parameters(), ref)):
            got = opt.state[p]["master"] if master_weights else p.detach()
            # Same AdamW kernel on the same fp32 numbers: bit for bit.
            assert torch.equal(got, r.detach()), f"step {step}, parameter {i} differs from the AdamW reference"
