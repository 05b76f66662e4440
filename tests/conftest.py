"""Shared pytest fixtures. Keep each fixture small and documented; areas add theirs below."""

from __future__ import annotations

import pytest


# --- tokenizer ---------------------------------------------------------------------------------------
@pytest.fixture(scope="session")
def qwen_tokenizer_dir(tmp_path_factory):
    """Qwen's tokenizer (151,646 ids), built once per session by `steel.tokenizer.qwen` (~3 s).

    Needs dashscope's rank file (`pip install --no-deps dashscope`, done by scripts/setup.sh).
    """
    from steel.tokenizer.qwen import build_qwen_tokenizer

    return build_qwen_tokenizer(tmp_path_factory.mktemp("qwen_tokenizer"))


# --- paths -------------------------------------------------------------------------------------------
@pytest.fixture
def home(tmp_path, monkeypatch):
    """A fresh home directory for `~` (HOME set to it), with the working directory at tmp_path: where a `~`
    taken literally would have been looked for, or created."""
    home = tmp_path / "home"
    home.mkdir()
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)
    return home


# --- torch.compile -----------------------------------------------------------------------------------
def _aot_decomposes_backward_ops() -> bool:
    """Whether this torch's AOTAutograd trace runs a backward formula's aten op that has a
    CompositeImplicitAutograd kernel (aten.silu_backward) as that decomposition: asked of the trace itself,
    by the backward graph aot_autograd hands its compiler for SiLU."""
    import torch
    import torch.nn.functional as F
    from functorch.compile import make_boxed_func
    from torch._dynamo.backends.common import aot_autograd

    ops: set = set()

    def seen(gm, inputs):
        ops.update(n.target for n in gm.graph.nodes if n.op == "call_function")
        return make_boxed_func(gm.forward)

    def silu(x):
        return F.silu(x)

    torch._dynamo.reset()
    x = torch.ones(4, requires_grad=True)
    torch.compile(silu, backend=aot_autograd(fw_compiler=seen, bw_compiler=seen), fullgraph=True)(x).sum().backward()
    torch._dynamo.reset()
    assert torch.ops.aten.silu.default in ops, ops  # the probe saw the graphs
    return torch.ops.aten.silu_backward.default not in ops


@pytest.fixture(scope="session")
def as_aot_traces():
    """A context for the eager reference of a bit-for-bit check against torch.compile(backend="aot_eager"): it
    runs what AOTAutograd's trace runs where the two differ. NOTE: torch 2.6 (pyproject's floor) traces an aten
    op that a backward formula calls below autograd through its CompositeImplicitAutograd kernel where it has one:
    SiLU's backward becomes sigmoid/mul/add (grad * (s * (1 + x * (1 - s)))), up to 5e-7 from eager's silu_backward
    kernel. Inside this context such an op runs through that same decomposition (OpOverload.decompose); on a
    torch whose trace keeps the op (2.11, 2.13) the context does nothing."""
    import contextlib

    import torch
    from torch.utils._python_dispatch import TorchDispatchMode

    if not _aot_decomposes_backward_ops():
        return contextlib.nullcontext

    class Decomposed(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            kwargs = kwargs or {}
            if torch._C._dispatch_has_kernel_for_dispatch_key(func.name(), "CompositeImplicitAutograd"):
                out = func.decompose(*args, **kwargs)
                if out is not NotImplemented:
                    return out
            return func(*args, **kwargs)

    return Decomposed
