"""Stock HF layouts: the decoder blocks that activation checkpointing, compile and FSDP2 wrap are found in
every layout (Llama's model.layers, GPT-2's transformer.h, OPT's model.decoder.layers, MPT's
transformer.blocks, BERT-style bert.encoder.layer), and a model without one is refused, not run unwrapped."""

import pytest
import torch
from torch import nn
from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import CheckpointWrapper

from steel.config import ConfigError
from steel.train.config import ParallelSection
from steel.train.distributed import Dist, decoder_layers, parallelize
from steel.train.trainer import build_model, build_model_config

V = 64
STOCK = {
    "llama": ({"model_type": "llama", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
               "num_attention_heads": 4, "num_key_value_heads": 2, "max_position_embeddings": 64}, "model.layers"),
    "gpt2": ({"model_type": "gpt2", "n_embd": 32, "n_layer": 3, "n_head": 4, "n_positions": 64,
              "resid_pdrop": 0.0, "embd_pdrop": 0.0, "attn_pdrop": 0.0}, "transformer.h"),
    "opt": ({"model_type": "opt", "hidden_size": 32, "ffn_dim": 64, "num_hidden_layers": 3, "num_attention_heads": 4,
             "word_embed_proj_dim": 32, "dropout": 0.0, "max_position_embeddings": 64}, "model.decoder.layers"),
    "mpt": ({"model_type": "mpt", "d_model": 32, "n_layers": 3, "n_heads": 4, "max_seq_len": 64}, "transformer.blocks"),
    # BertLMHeadModel is an AutoModelForCausalLM (causal with is_decoder); its blocks are `layer`.
    "bert": ({"model_type": "bert", "hidden_size": 32, "intermediate_size": 64, "num_hidden_layers": 3,
              "num_attention_heads": 4, "is_decoder": True, "hidden_dropout_prob": 0.0, "max_position_embeddings": 64,
              "attention_probs_dropout_prob": 0.0}, "bert.encoder.layer"),
}


def one_process(**kw) -> tuple[ParallelSection, Dist]:
    return ParallelSection(**kw), Dist(0, 1, 0, torch.device("cpu"), "none")


@pytest.mark.parametrize("arch", sorted(STOCK))
def test_blocks_found_and_checkpointed_with_the_stock_gradients(arch):
    spec, where = STOCK[arch]
    cfg = build_model_config({**spec, "vocab_size": V}, {})
    torch.manual_seed(0)
    ref = build_model(cfg)
    blocks = ref.get_submodule(where)
    assert [id(m) for m in decoder_layers(ref)] == [id(m) for m in blocks]

    model = build_model(cfg)
    model.load_state_dict(ref.state_dict())
    model = parallelize(model, *one_process(activation_checkpointing=True))
    wrapped = model.get_submodule(where)
    assert all(isinstance(m, CheckpointWrapper) for m in wrapped), [type(m).__name__ for m in wrapped]
    # Recomputation really happens in backward: each block's forward starts twice per step (a pre-hook:
    # non-reentrant checkpointing stops the recomputation early, once the tensors backward needs are back).
    calls = []
    for m in wrapped:
        m._checkpoint_wrapped_module.register_forward_pre_hook(lambda *_: calls.append(1))
    ids = torch.randint(0, V, (2, 12), generator=torch.Generator().manual_seed(1))
    ref(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    model(input_ids=ids, labels=ids, use_cache=False).loss.backward()
    assert len(calls) == 2 * len(wrapped)
    got = {k.replace("._checkpoint_wrapped_module", ""): v for k, v in model.named_parameters()}
    assert got.keys() == dict(ref.named_parameters()).keys()
    for name, p in ref.named_parameters():
        # Recomputation runs the same kernels on the same inputs: bit-identical on CPU fp32.
        assert torch.equal(p.grad, got[name].grad), name


class NoBlocks(nn.Module):
    def __init__(self):
        super().__init__()
        self.a, self.b = nn.Linear(4, 4), nn.Linear(4, 4)

    def forward(self, x):
        return self.b(self.a(x))


@pytest.mark.parametrize("field", ["activation_checkpointing", "compile"])
def test_no_blocks_to_wrap_is_refused_naming_the_field(field):
    with pytest.raises(ConfigError, match=f"parallel.{field}: .*NoBlocks"):
        parallelize(NoBlocks(), *one_process(**{field: True}))
