"""`parallelize` with `parallel.compile` and `parallel.activation_checkpointing`: every checkpointed decoder
block compiles as one graph, for Steel and for stock HF models.

A graph break inside `torch.utils.checkpoint` makes dynamo run the whole checkpointed block eagerly, so
with both options on a break would leave every layer uncompiled. `parallelize` compiles with the default
backend (inductor); here `Module.compile` gets `backend="aot_eager", fullgraph=True` (fast on CPU, and a
break is an error), and the step must give the uncompiled model's loss and gradients.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from transformers import AutoConfig, AutoModelForCausalLM

from steel.model import build_model, load_model_config
from steel.train.config import ParallelSection
from steel.train.distributed import Dist, parallelize

STOCK = {"vocab_size": 256, "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 2,
         "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}


def _model(kind: str) -> nn.Module:
    torch.manual_seed(0)
    if kind == "steel":
        cfg = load_model_config("tiny", ["vocab_size=256", "ffn_type=soft_moe_causal", "document_mask=true",
                                         "moe_chunk_size=3"])
        return build_model(cfg).train()
    return AutoModelForCausalLM.from_config(AutoConfig.for_model(kind, **STOCK)).train()


def _step(model: nn.Module, ids: torch.Tensor):
    loss = model(input_ids=ids, labels=ids, use_cache=False).loss
    loss.backward()
    return loss.detach(), [p.grad for p in model.parameters()]


@pytest.fixture
def dynamo_config():
    """`parallelize` sets a process-wide dynamo flag: put it back for the tests after this one. (Not
    monkeypatch.setattr: its undo deletes the key from torch's ConfigModule, which then hides it.)"""
    saved = torch._dynamo.config.save_config()
    yield
    torch._dynamo.config.load_config(saved)


@pytest.mark.parametrize("kind", ["steel", "llama", "qwen2"])
def test_checkpointed_blocks_compile_as_one_graph(kind, monkeypatch, dynamo_config, as_aot_traces):
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="none")
    eager = parallelize(_model(kind), ParallelSection(activation_checkpointing=True), d)
    compile_ = nn.Module.compile
    monkeypatch.setattr(nn.Module, "compile", lambda self, **k: compile_(self, backend="aot_eager", fullgraph=True))
    torch._dynamo.reset()
    compiled = parallelize(_model(kind), ParallelSection(activation_checkpointing=True, compile=True), d)
    ids = torch.randint(1, 256, (2, 16), generator=torch.Generator().manual_seed(1))
    ids[:, 5] = 0  # an EOS: two documents per row for Steel's document mask
    with as_aot_traces():  # torch 2.6's trace decomposes SiLU's backward: the reference does too
        want = _step(eager, ids)
    got = _step(compiled, ids)
    torch.testing.assert_close(got, want, rtol=0, atol=0)  # aot_eager runs the same aten ops: bit-identical
