"""Which implementation runs (Triton vs reference), the `kernels:` config switch, and torch.compile
with inductor over all four ops together."""

from __future__ import annotations

import pytest
import torch
from tolerances import assert_close_scaled

import steel.kernels as K
from steel.config import ConfigError
from steel.kernels import dispatch


def test_use_triton_rules(monkeypatch):
    x = torch.zeros(2)
    assert not dispatch.use_triton(x, "torch")
    with pytest.raises(ValueError, match="impl must be one of"):
        dispatch.use_triton(x, "cuda")
    monkeypatch.delenv("STEEL_KERNELS_INTERPRET", raising=False)
    assert not dispatch.use_triton(x, "auto")  # CPU: the reference unless the interpreter is asked for
    monkeypatch.setattr(dispatch, "INTERPRET", True)
    monkeypatch.setenv("STEEL_KERNELS_INTERPRET", "1")
    assert dispatch.use_triton(x, "auto") == dispatch.HAS_TRITON
    monkeypatch.setattr(dispatch, "INTERPRET", False)
    assert not dispatch.use_triton(x, "auto")
    if dispatch.HAS_TRITON:
        with pytest.raises(K.KernelUnavailable, match="TRITON_INTERPRET=1"):
            dispatch.use_triton(x, "triton")


def test_interpreter_left_on_for_cuda_tensors_uses_the_reference(monkeypatch):
    """TRITON_INTERPRET=1 left in the shell of a GPU run ran every kernel in the interpreter on the host."""
    import types
    import warnings

    x = types.SimpleNamespace(device=torch.device("cuda"))  # use_triton reads only the device
    monkeypatch.setattr(dispatch, "HAS_TRITON", True)
    monkeypatch.setattr(dispatch, "INTERPRET", False)
    assert dispatch.use_triton(x, "auto")
    monkeypatch.setattr(dispatch, "INTERPRET", True)
    monkeypatch.setattr(dispatch, "_warned_interpret", False)
    with pytest.warns(UserWarning, match="TRITON_INTERPRET=1 is set"):
        assert not dispatch.use_triton(x, "auto")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # once per process, not once per layer and step
        assert not dispatch.use_triton(x, "auto")
    assert dispatch.use_triton(x, "triton")  # asked for by name: the interpreter, as the user said


def test_auto_on_cpu_is_the_reference(monkeypatch):
    monkeypatch.delenv("STEEL_KERNELS_INTERPRET", raising=False)
    g = torch.Generator().manual_seed(4)
    x, w = torch.randn(5, 9, generator=g), torch.randn(9, generator=g)
    assert torch.equal(K.rms_norm(x, w, 1e-6), K.rms_norm_ref(x, w, 1e-6))
    assert torch.equal(K.silu_mul(x, x), K.silu_mul_ref(x, x))
    q, cos = torch.randn(1, 2, 5, 8, generator=g), torch.randn(1, 5, 8, generator=g)
    for a, b in zip(K.apply_rotary_pos_emb(q, q, cos, cos), K.apply_rotary_pos_emb_ref(q, q, cos, cos)):
        assert torch.equal(a, b)
    labels = torch.tensor([1, -100, 3, 0, 2])
    w2 = torch.randn(4, 9, generator=g)
    assert torch.equal(
        K.fused_linear_cross_entropy(x, w2, labels), K.fused_linear_cross_entropy_ref(x, w2, labels)
    )


def test_resolve_kernels():
    assert K.resolve_kernels("all") == {
        "rmsnorm": "triton",
        "rope": "triton",
        "silu_mul": "triton",
        "cross_entropy": "fused",
    }
    assert set(K.resolve_kernels("none").values()) == {"torch"} == set(K.resolve_kernels(None).values())
    assert K.resolve_kernels({"rope": "triton"})["rope"] == "triton"
    assert K.resolve_kernels({"rope": "triton"})["rmsnorm"] == "torch"
    with pytest.raises(ConfigError, match=r"model.kernels.rmsnrom: unknown kernel"):
        K.resolve_kernels({"rmsnrom": "triton"}, field="model.kernels")
    with pytest.raises(ConfigError, match=r"kernels.cross_entropy: want one of \('torch', 'fused'\)"):
        K.resolve_kernels({"cross_entropy": "triton"})
    with pytest.raises(ConfigError, match="kernels: want 'all'"):
        K.resolve_kernels("some")


def test_names_match_the_model_hook():
    # The model looks up `steel.kernels.<name of its reference function>` for each config key.
    from steel.model import modeling_steel
    from steel.model.configuration_steel import KERNEL_NAMES as MODEL_KEYS

    assert set(MODEL_KEYS) == set(K.KERNEL_NAMES)
    for key, name in K.KERNEL_NAMES.items():
        assert modeling_steel._REFERENCE_KERNELS[key].__name__ == name
        assert callable(getattr(K, name))
    # the one switch in a model config means the same as here
    from steel.model.configuration_steel import SteelConfig

    assert SteelConfig(kernels="all").kernels == K.resolve_kernels("all")
    assert SteelConfig(kernels="none").kernels == {}


@pytest.mark.slow  # ~40 s on 2 CPU cores: inductor's C++ codegen for the glue around the custom ops
def test_inductor_compiles_all_ops(device):
    # Inductor (not just aot_eager) must trace through the custom ops: Liger's RMSNorm failed here.
    g = torch.Generator().manual_seed(5)
    B, H, T, D, V = 2, 2, 5, 8, 11
    C = H * D
    x = torch.randn(B, T, C, generator=g).to(device).requires_grad_()
    w_norm = (1 + 0.1 * torch.randn(C, generator=g)).to(device).requires_grad_()
    w_head = torch.randn(V, C, generator=g).to(device).requires_grad_()
    pos = torch.arange(T, dtype=torch.float32)
    emb = torch.cat((pos[:, None] * torch.rand(D // 2, generator=g),) * 2, -1)[None].to(device)  # (1, T, D)
    labels = torch.randint(0, V, (B * T,), generator=g).to(device)

    def step(x, w_norm, w_head):
        h = K.rms_norm(x, w_norm, 1e-6, impl="triton")  # (B, T, C)
        q = h.view(B, T, H, D).transpose(1, 2)  # (B, H, T, D)
        q, k = K.apply_rotary_pos_emb(q, q, emb.cos(), emb.sin(), impl="triton")
        h = K.silu_mul(q, k, impl="triton").transpose(1, 2).reshape(B * T, C)
        return K.fused_linear_cross_entropy(h, w_head, labels, impl="triton")

    def run(fn):
        loss = fn(x, w_norm, w_head)
        return (loss, *torch.autograd.grad(loss, (x, w_norm, w_head)))

    eager = run(step)
    compiled = run(torch.compile(step, backend="inductor", fullgraph=True))
    for a, b in zip(eager, compiled):
        # NOTE: inductor fuses the torch glue (views, cos/sin) differently; fp32, a few ulps at most.
        assert_close_scaled(b, a, 1e-6)


def test_custom_ops_pass_opcheck(device):
    # torch's own checker: fake (meta) outputs match the real ones in shape/dtype/strides, the schema's
    # aliasing claims hold, and the autograd registration works under AOT dispatch (what compile uses).
    g = torch.Generator().manual_seed(6)
    r = lambda *s: torch.randn(*s, generator=g).to(device)
    x = r(3, 5, 7).transpose(0, 1).requires_grad_()  # non-contiguous input
    w = r(7).requires_grad_()
    q, k = r(2, 5, 3, 6).transpose(1, 2).requires_grad_(), r(2, 1, 5, 6).requires_grad_()
    cos, sin = r(1, 5, 6), r(1, 5, 6)
    h, wh = r(9, 7).requires_grad_(), r(11, 7).requires_grad_()
    labels = torch.tensor([1, -100, 3, 0, 2, 10, 4, -100, 5], device=device)
    y, rstd = torch.ops.steel.rms_norm_fwd(x, w, 1e-6)
    cases = [
        (torch.ops.steel.rms_norm_fwd, (x, w, 1e-6)),
        (torch.ops.steel.rms_norm_bwd, (torch.ones_like(y), x.detach(), w.detach(), rstd.detach())),
        (torch.ops.steel.rope, (q, k, cos, sin, False)),
        (torch.ops.steel.silu_mul_fwd, (x, x.detach() + 1)),
        (torch.ops.steel.silu_mul_bwd, (x.detach(), x.detach(), x.detach())),
        (torch.ops.steel.fused_linear_ce_fwd, (h, wh, labels, None, -100, 0.1, torch.float32, 4, True, True)),
    ]
    for op, args in cases:
        torch.library.opcheck(op, args)
