"""Beam search reorders the KV cache rows between steps; cached decoding must follow the reordered rows."""

from __future__ import annotations

import pytest
import torch

from steel.infer.load import output_cache
from steel.model import build_model


@pytest.mark.parametrize("ffn,fields", [("swiglu", {}), ("soft_moe_causal", {}), ("soft_moe_causal", {"moe_chunk_size": 3})],
                         ids=lambda v: str(v))
def test_cached_beam_search_equals_uncached(tiny_config, ffn, fields):
    torch.manual_seed(0)
    # initializer_range 0.2: the MoE branch moves the logits (at 0.02 it is ~1e-7 of them) and beams are no ties.
    model = build_model(tiny_config(ffn_type=ffn, initializer_range=0.2, **fields)).eval()
    prompt = torch.randint(1, 512, (2, 5))
    kw = dict(max_new_tokens=10, do_sample=False, num_beams=3, pad_token_id=0, eos_token_id=None)
    assert torch.equal(model.generate(prompt, use_cache=True, **kw), model.generate(prompt, use_cache=False, **kw))


def test_reordered_cache_step_equals_full_recompute(tiny_config):
    """What beam search does between two steps, checked on the logits (the reference recomputes the rows)."""
    torch.manual_seed(0)
    model = build_model(tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=2, initializer_range=0.2)).eval()
    ids, nxt = torch.randint(1, 512, (3, 6)), torch.randint(1, 512, (3, 1))
    beam_idx = torch.tensor([2, 0, 0])
    with torch.no_grad():
        cache = output_cache(model(input_ids=ids, use_cache=True))
        cache = model._reorder_cache(cache, beam_idx)
        step = model(input_ids=nxt, cache=cache, use_cache=True).logits[:, -1]
        full = model(input_ids=torch.cat([ids[beam_idx], nxt], 1), use_cache=False).logits[:, -1]
    # Same tolerance reasoning as test_generation: matmul blocking over 1 vs T rows, ~1e-6 of max |logit|.
    torch.testing.assert_close(step, full, rtol=1e-5, atol=4e-6 * full.abs().max().item())
