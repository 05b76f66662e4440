"""`parallel.compile` compiles each decoder layer on its own (`steel.train.distributed.parallelize`): a graph
break inside a layer, or a recompile every step, would cost GPU time on every layer of every step.

One layer is compiled with `fullgraph=True` (any graph break is an error) for every FFN, both attention
implementations that train on CPU (flex attention has no CPU backward; its forward was checked by hand
with inductor: no break, no recompile), document masking on and off, and the kernels on (the Triton
custom ops, in Triton's interpreter) and off; it must give the eager layer's outputs and gradients. The
backend is aot_eager (dynamo + AOT autograd, no codegen: fast on CPU; inductor was run by hand). Then
a whole model with every layer compiled trains a few steps on new data of the same shapes without a
recompile.
"""

from __future__ import annotations

import pytest
import torch

from steel.kernels import dispatch
from steel.model import build_model, load_model_config
from steel.model.configuration_steel import FFN_TYPES

EOS = 0  # tiny.yaml's eos_token_id


def _batch(seed: int, shape=(2, 18)) -> torch.Tensor:
    """Random tokens with a few EOS-ended documents, at other places for each seed."""
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(1, 512, shape, generator=g)
    return ids.masked_fill(torch.rand(shape, generator=g) < 0.15, EOS)


def _model(ffn_type: str, attn: str, document_mask: bool, kernels: str):
    cfg = load_model_config("tiny", [f"ffn_type={ffn_type}", f"attn_implementation={attn}", f"kernels={kernels}",
                                     f"document_mask={str(document_mask).lower()}", "moe_chunk_size=3"])
    torch.manual_seed(0)
    return build_model(cfg).train()


def _layer_inputs(model, ids: torch.Tensor) -> tuple[tuple, dict]:
    """What layer 0 receives from the model's forward (masks, position embeddings, MoE layout, cache=None)."""
    seen = {}

    def hook(module, args, kwargs):
        seen["args"], seen["kwargs"] = args, kwargs

    handle = model.model.layers[0].register_forward_pre_hook(hook, with_kwargs=True)
    with torch.no_grad():
        model(input_ids=ids, shift_labels=ids, loss_reduction="sum")
    handle.remove()
    h = seen["args"][0].detach().requires_grad_()
    return (h,), seen["kwargs"]


def _run_layer(layer, args, kwargs):
    out = layer(*args, **kwargs)
    grads = torch.autograd.grad(out.square().sum(), [args[0], *layer.parameters()], allow_unused=True)
    return out.detach(), grads


# (ffn_type, attention, document_mask, kernels). Every FFN with SDPA and document masking (the training
# path with the most inputs: a 4-D mask, restarted positions, soft_moe_causal's per-document layout);
# eager attention without it (soft_moe_causal's other path); the Triton ops (interpreted: ~4 s a case) on
# SwiGLU and on the SENet experts of soft_moe_causal, between them every steel.kernels op a layer calls.
CASES = [*((ffn, "sdpa", True, "none") for ffn in FFN_TYPES), ("swiglu", "eager", False, "none"),
         ("soft_moe_causal", "eager", False, "none"), ("swiglu", "eager", False, "all"),
         ("soft_moe_causal", "sdpa", True, "all")]


@pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")
@pytest.mark.parametrize(("ffn_type", "attn", "document_mask", "kernels"), CASES)
def test_one_layer_compiles_without_graph_breaks(ffn_type, attn, document_mask, kernels, monkeypatch, as_aot_traces):
    if kernels == "all":
        if not (dispatch.HAS_TRITON and dispatch.INTERPRET):
            pytest.skip("the Triton custom ops on CPU need TRITON_INTERPRET=1 before steel.kernels is imported")
        monkeypatch.setenv("STEEL_KERNELS_INTERPRET", "1")  # run the Triton kernels, not the CPU fallback
    torch._dynamo.reset()
    model = _model(ffn_type, attn, document_mask, kernels)
    args, kwargs = _layer_inputs(model, _batch(0))
    layer = model.model.layers[0]
    with as_aot_traces():  # torch 2.6's trace decomposes SiLU's backward: the reference does too
        want = _run_layer(layer, args, kwargs)
    compiled = torch.compile(layer, backend="aot_eager", fullgraph=True)
    got = _run_layer(compiled, args, kwargs)
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # aot_eager runs the same aten ops: bit-identical


@pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")
@pytest.mark.parametrize(("ffn_type", "document_mask"), [("soft_moe_causal", True), ("soft_moe_causal", False),
                                                         ("soft_moe_v3", True)])
def test_compiled_layers_do_not_recompile_on_new_data(ffn_type, document_mask):
    torch._dynamo.reset()
    model = _model(ffn_type, "sdpa", document_mask, "none")
    for layer in model.model.layers:  # as parallelize() does with parallel.compile
        layer.compile(backend="aot_eager", fullgraph=True)
    for step in range(4):
        ids = _batch(step)
        if step == 1:  # compiled once: from now on any recompile is an error
            torch.compiler.set_stance("fail_on_recompile")
        try:
            model(input_ids=ids, shift_labels=ids, loss_reduction="sum").loss.backward()
        finally:
            torch.compiler.set_stance("default")
