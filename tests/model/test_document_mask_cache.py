"""document_mask with a KV cache: cached decoding reads the sequence as the uncached forward does.

The uncached forward computes each EOS-ended document of a row alone (positions restart, no attention
across an EOS, soft_moe_causal slots restart). A cached step used to attend to the whole cache at global
positions, so HF `generate` with a prompt holding an EOS decoded something the model never computes
uncached. The reference here is the model's own uncached forward, one full forward per new token.
"""

from __future__ import annotations

import pytest
import torch
from transformers import DynamicCache

from steel.infer.load import output_cache
from steel.model import build_model

PAD = 450  # not EOS: pads must not be read as documents of their own
N_NEW = 10
# greedy must not hinge on ties: the tiny model's logits are ~1 apart at initializer_range 0.2
VARIANTS = [("swiglu", {}), ("senet", {}), ("soft_moe_v1", {}), ("soft_moe_causal", {}),
            ("soft_moe_causal", {"moe_chunk_size": 3})]


def _model(tiny_config, ffn, **fields):
    torch.manual_seed(0)
    return build_model(tiny_config(ffn_type=ffn, document_mask=True, initializer_range=0.2, **fields)).eval()


def _prompt(eos: int, eos_at: str) -> torch.Tensor:
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(1, 400, (1, 9), generator=g)
    if eos_at == "middle":
        ids[0, 4] = eos
    else:  # the first new token begins a document
        ids[0, -1] = eos
    return ids


def _full_forward_greedy(model, ids: torch.Tensor, mask: torch.Tensor | None, n: int) -> torch.Tensor:
    """Reference: each new token is the argmax of one uncached forward over the whole sequence so far."""
    with torch.no_grad():
        for _ in range(n):
            nxt = model(input_ids=ids, attention_mask=mask, use_cache=False).logits[:, -1].argmax(-1, keepdim=True)
            ids = torch.cat([ids, nxt], 1)
            if mask is not None:
                mask = torch.cat([mask, torch.ones_like(nxt)], 1)
    return ids


KW = dict(max_new_tokens=N_NEW, pad_token_id=PAD, eos_token_id=None)  # decode on past any EOS


@pytest.mark.parametrize("eos_at", ["middle", "last"])
@pytest.mark.parametrize("ffn,fields", VARIANTS, ids=str)
def test_cached_greedy_generate_equals_uncached_forwards(tiny_config, ffn, fields, eos_at):
    model = _model(tiny_config, ffn, **fields)
    ids = _prompt(model.config.eos_token_id, eos_at)
    ref = _full_forward_greedy(model, ids, None, N_NEW)
    assert len(set(ref[0, 9:].tolist())) > 2  # a real sequence, not one token repeated
    assert torch.equal(model.generate(ids, do_sample=False, **KW), ref)
    assert torch.equal(model.generate(ids, do_sample=False, use_cache=False, **KW), ref)
    assert torch.equal(model.generate(ids, do_sample=False, cache_implementation="static", **KW), ref)


@pytest.mark.parametrize("ffn,fields", VARIANTS, ids=str)
def test_cached_steps_across_eos_equal_the_full_forward(tiny_config, ffn, fields):
    """Teacher-forced: EOS inside the prompt, EOS fed as a decoding step (the next step begins a document,
    position 0, sees nothing before it), two EOS in a row, and a multi-token continuation of a cache."""
    model = _model(tiny_config, ffn, **fields)
    eos = model.config.eos_token_id
    ids = torch.randint(1, 400, (2, 16), generator=torch.Generator().manual_seed(2))
    ids[0, 3] = ids[0, 8] = ids[0, 9] = ids[1, 6] = ids[1, 12] = eos
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits
        out = model(input_ids=ids[:, :5], use_cache=True)
        cache, steps = output_cache(out), [out.logits]
        for t in range(5, 11):
            out = model(input_ids=ids[:, t : t + 1], cache=cache, use_cache=True)
            steps.append(out.logits)
        steps.append(model(input_ids=ids[:, 11:], cache=cache, use_cache=True).logits)  # 5 tokens at once
    # Same keys and positions as the full forward; matmul blocking over 1 vs T rows: ~10 fp32 ulps of the
    # largest logit (as test_generation.test_cached_greedy_equals_uncached).
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=4e-6 * full.abs().max().item())


@pytest.mark.parametrize("ffn,fields", [("swiglu", {}), ("soft_moe_causal", {"moe_chunk_size": 3})], ids=str)
def test_beam_search_and_sampling_cached_equal_uncached(tiny_config, ffn, fields):
    model = _model(tiny_config, ffn, **fields)
    ids = _prompt(model.config.eos_token_id, "middle")
    beams = dict(num_beams=3, num_return_sequences=3, do_sample=False, **KW)
    assert torch.equal(model.generate(ids, **beams), model.generate(ids, use_cache=False, **beams))
    sampled = {}
    for use_cache in (True, False):
        torch.manual_seed(3)
        sampled[use_cache] = model.generate(ids.expand(4, -1), do_sample=True, top_k=0, use_cache=use_cache, **KW)
    assert torch.equal(sampled[True], sampled[False])


@pytest.mark.parametrize("ffn,fields", [VARIANTS[0], *VARIANTS[3:]], ids=str)
def test_left_padded_batch_with_eos_equals_rows_alone(tiny_config, ffn, fields):
    """A left-padded batch of a prompt holding EOS and a shorter one: each row generates what it generates
    alone (positions count from each document's first real token, not from the pads)."""
    model = _model(tiny_config, ffn, **fields)
    eos = model.config.eos_token_id
    long = _prompt(eos, "middle")[0]
    short = torch.tensor([7, 300, eos, 12, 99])[2:]  # EOS first: the pads' neighbour, a document of one token
    prompts = [long, short]
    ids, mask = torch.full((2, 9), PAD), torch.zeros(2, 9, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, 9 - len(p) :], mask[i, 9 - len(p) :] = p, 1
    batched = model.generate(ids, attention_mask=mask, do_sample=False, **KW)
    static = model.generate(ids, attention_mask=mask, do_sample=False, cache_implementation="static", **KW)
    assert torch.equal(static, batched)
    assert torch.equal(batched, _full_forward_greedy(model, ids, mask, N_NEW))
    for i, p in enumerate(prompts):
        alone = _full_forward_greedy(model, p[None], None, N_NEW)[0, len(p) :]
        assert torch.equal(batched[i, 9:], alone), i


def test_inputs_embeds_with_document_mask_is_refused(tiny_config):
    """Documents are found by their EOS ids; embeddings carry none, so the mask could not be applied."""
    model = _model(tiny_config, "swiglu")
    embeds = model.get_input_embeddings()(torch.tensor([[5, 6, 0, 7]]))
    with pytest.raises(ValueError, match="document_mask"):
        model(inputs_embeds=embeds)


def test_cropped_cache_continues_from_its_last_token(tiny_config):
    """Assisted decoding crops the cache after rejected candidates: the document state is kept per cached
    token, so a crop across an EOS continues the document of the token now last."""
    model = _model(tiny_config, "swiglu")
    ids = torch.randint(1, 400, (1, 14), generator=torch.Generator().manual_seed(4))
    ids[0, 4] = ids[0, 9] = model.config.eos_token_id
    other = ids.clone()
    other[0, 7:] = torch.randint(1, 400, (7,), generator=torch.Generator().manual_seed(5))  # no EOS at 9
    with torch.no_grad():
        full = model(input_ids=other, use_cache=False).logits[:, 7:]
        cache = output_cache(model(input_ids=ids, use_cache=True))  # EOS at 9 ends a document
        cache.crop(-7)  # (transformers 5.25: a negative count of tokens to drop)
        step = model(input_ids=other[:, 7:], cache=cache, use_cache=True).logits
    torch.testing.assert_close(step, full, rtol=1e-5, atol=4e-6 * full.abs().max().item())


class _OneElementLengthCache(DynamicCache):
    """A DynamicCache whose get_seq_length is a (1,) tensor, as transformers 5.4's StaticCache gives it."""

    def get_seq_length(self, layer_idx=0):
        return torch.tensor([super().get_seq_length(layer_idx)])


@pytest.mark.parametrize("ffn,fields", [("swiglu", {}), ("soft_moe_causal", {"moe_chunk_size": 3})], ids=str)
def test_a_cache_length_given_as_a_one_element_tensor(tiny_config, ffn, fields):
    """transformers 5.4's StaticCache returns its length as a (1,) tensor, not 0-d: the per-token document
    state then came out 3-D and the next cached step failed in torch.cat ("got 2 and 3")."""
    model = _model(tiny_config, ffn, **fields)
    ids = _prompt(model.config.eos_token_id, "middle")
    ref = _full_forward_greedy(model, ids, None, 3)
    cache, out = _OneElementLengthCache(), ids
    with torch.no_grad():
        logits = model(input_ids=ids, past_key_values=cache, use_cache=True).logits
        for _ in range(3):
            out = torch.cat([out, logits[:, -1].argmax(-1, keepdim=True)], 1)
            logits = model(input_ids=out[:, -1:], past_key_values=cache, use_cache=True).logits
    assert torch.equal(out, ref)
