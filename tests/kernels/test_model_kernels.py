"""A tiny Steel model with every kernel on (Triton, in the interpreter on CPU) matches the same model
with every kernel off (the pure-torch references): logits, loss and every parameter gradient."""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_close_scaled
from torch.utils._python_dispatch import TorchDispatchMode

from steel.kernels import resolve_kernels
from steel.model import build_model, load_model_config


def _model(kernels: str, ffn_type: str, device: str):
    cfg = load_model_config("tiny")
    cfg.ffn_type, cfg.vocab_size, cfg.kernels = ffn_type, 203, resolve_kernels(kernels)  # odd vocabulary
    torch.manual_seed(0)
    return build_model(cfg).to(device).train()


class _OpNames(TorchDispatchMode):
    """Records the name of every op dispatched (custom ops included)."""

    def __init__(self):
        super().__init__()
        self.names: set[str] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.names.add(str(func.name()))
        return func(*args, **(kwargs or {}))


@pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")  # soft_moe_v3 reads the future
@pytest.mark.parametrize("ffn_type", ["soft_moe_v3", "swiglu"])  # steel-1b's SENet experts; stock SwiGLU
def test_all_kernels_match_unfused_model(device, ffn_type, monkeypatch):
    monkeypatch.setenv("STEEL_KERNELS_INTERPRET", "1")  # CPU: run the Triton kernels, not the fallback
    ref = _model("none", ffn_type, device)
    fused = _model("all", ffn_type, device)
    fused.load_state_dict(ref.state_dict())  # same parameter names either way
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 203, (2, 13), generator=g).to(device)
    labels = ids.clone()
    labels[0, :4] = -100  # a masked prompt, as in SFT
    outs = []
    ops = []
    for model in (ref, fused):
        with _OpNames() as seen:
            out = model(input_ids=ids, labels=labels, return_logits=True)
            out.loss.backward()
        ops.append(seen.names)
        outs.append((out.logits, out.loss, {n: p.grad for n, p in model.named_parameters()}))
    steel_ops = {
        "steel::rms_norm_fwd",
        "steel::rms_norm_bwd",
        "steel::rope",
        "steel::silu_mul_fwd",
        "steel::silu_mul_bwd",
        "steel::fused_linear_ce_fwd",
    }
    assert steel_ops <= ops[1], f"kernels not used: {steel_ops - ops[1]}"
    assert not any(n.startswith("steel::") for n in ops[0])
    (logits_r, loss_r, grads_r), (logits_f, loss_f, grads_f) = outs
    # NOTE: fp32 throughout; the kernels reorder sums (norm, log-sum-exp, chunked GEMMs) so values differ
    # by fp32 ulps, which 2 layers of attention/MoE can amplify by ~10x: 1e-5 of the largest entry.
    assert_close_scaled(logits_f, logits_r, 1e-5)
    assert_close_scaled(loss_f, loss_r, 1e-5)
    assert set(grads_f) == set(grads_r)
    for name in grads_r:
        assert grads_f[name] is not None, name
        assert_close_scaled(grads_f[name], grads_r[name], 1e-5)


@pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")
def test_kernels_under_activation_checkpointing(device, monkeypatch):
    # AC re-runs each block's forward (custom ops included) inside backward; the result must not change.
    from steel.train.config import ParallelSection
    from steel.train.distributed import Dist, parallelize

    monkeypatch.setenv("STEEL_KERNELS_INTERPRET", "1")
    ids = torch.randint(0, 203, (2, 9), generator=torch.Generator().manual_seed(2)).to(device)
    grads = []
    for ac in (False, True):
        model = _model("all", "soft_moe_v3", device)
        d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device(device), mode="none")
        model = parallelize(model, ParallelSection(mode="none", activation_checkpointing=ac), d)
        with _OpNames() as seen:
            model(input_ids=ids, labels=ids).loss.backward()
        assert "steel::rms_norm_fwd" in seen.names
        assert any("_checkpoint_wrapped_module" in n for n, _ in model.named_parameters()) == ac
        names = {n: n.replace("_checkpoint_wrapped_module.", "") for n, _ in model.named_parameters()}
        grads.append({names[n]: p.grad for n, p in model.named_parameters()})
    assert grads[0].keys() == grads[1].keys()
    for name, g in grads[0].items():
        assert torch.equal(g, grads[1][name]), name  # same kernels on the same inputs: bit-identical
