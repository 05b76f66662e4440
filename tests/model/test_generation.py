"""KV-cached generation computes what a full recompute computes, for every causal variant."""

from __future__ import annotations

import warnings

import pytest
import torch

from steel.infer.load import output_cache
from steel.model import build_model

CAUSAL_FFNS = ["swiglu", "senet", "soft_moe_v1", "soft_moe_causal"]

VARIANTS = [(f, {}) for f in CAUSAL_FFNS] + [("soft_moe_causal", {"moe_chunk_size": 3})]


@pytest.mark.parametrize("ffn,fields", VARIANTS, ids=lambda v: str(v))
def test_cached_greedy_equals_uncached(tiny_config, ffn, fields):
    torch.manual_seed(0)
    # initializer_range 0.2 so the logits are far from uniform and greedy picks are not ties.
    model = build_model(tiny_config(ffn_type=ffn, initializer_range=0.2, **fields)).eval()
    prompt = torch.randint(1, 512, (2, 5))
    kw = dict(max_new_tokens=12, do_sample=False, pad_token_id=0, eos_token_id=None)
    cached = model.generate(prompt, use_cache=True, **kw)
    uncached = model.generate(prompt, use_cache=False, **kw)
    assert torch.equal(cached, uncached)
    # Stronger than equal argmaxes: the cached logits of every new token equal the full recompute's.
    with torch.no_grad():
        full = model(input_ids=cached, use_cache=False).logits  # (B, T, V)
        out = model(input_ids=cached[:, :5], use_cache=True)
        cache, steps = output_cache(out), [out.logits]
        for t in range(5, cached.shape[1]):
            out = model(input_ids=cached[:, t : t + 1], cache=cache, use_cache=True)
            steps.append(out.logits)
    # Cached attention sees the same keys in the same order; only matmul blocking over 1 vs T rows differs:
    # errors of ~1e-6 of max |logit| (~10 fp32 ulps through 2 layers), hence atol relative to that scale.
    scale = full.abs().max().item()
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=4e-6 * scale)


def test_soft_moe_v3_cached_generation_is_a_different_computation(tiny_config):
    """The defect in one line: with a KV cache, v3's slots hold one token, not the sequence."""
    torch.manual_seed(0)
    model = build_model(tiny_config(ffn_type="soft_moe_v3", initializer_range=0.2)).eval()
    ids = torch.randint(1, 512, (1, 10))
    with torch.no_grad():
        full = model(input_ids=ids, use_cache=False).logits[:, -1]
        cache = output_cache(model(input_ids=ids[:, :-1], use_cache=True))
        step = model(input_ids=ids[:, -1:], cache=cache, use_cache=True).logits[:, -1]
    assert (full - step).abs().max() > 1e-2 * full.abs().max()


@pytest.mark.parametrize("ffn,fields", VARIANTS, ids=lambda v: str(v))
def test_left_padded_batch_equals_rows_alone(tiny_config, ffn, fields):
    """Padding never enters a computation: batched left-padded greedy = each prompt generated alone."""
    torch.manual_seed(0)
    model = build_model(tiny_config(ffn_type=ffn, initializer_range=0.2, **fields)).eval()
    prompts = [torch.randint(1, 512, (n,)) for n in (6, 3)]
    ids = torch.zeros(2, 6, dtype=torch.long)  # pad id 0, left padding
    mask = torch.zeros(2, 6, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, 6 - len(p) :], mask[i, 6 - len(p) :] = p, 1
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None)
    batched = model.generate(ids, attention_mask=mask, **kw)[:, 6:]
    for i, p in enumerate(prompts):
        alone = model.generate(p[None], **kw)[0, len(p) :]
        assert torch.equal(batched[i], alone), (ffn, i)


@pytest.mark.parametrize("chunk", [2, 3, 5])
@pytest.mark.parametrize("document_mask", [False, True])
def test_causal_moe_left_padding_by_any_amount_equals_rows_alone(tiny_config, chunk, document_mask):
    """The chunk grid of soft_moe_causal is counted from each row's first real token: padded by a
    non-multiple of the chunk size, a row saw other slot refreshes than alone (logits off by ~3)."""
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=chunk, initializer_range=0.2,
                      document_mask=document_mask)
    model = build_model(cfg).eval()
    eos = cfg.eos_token_id
    prompts = [torch.randint(1, 400, (n,)) for n in (9, 3, 5, 8, 7)]  # pads 0, 6, 4, 1, 2
    if document_mask:
        prompts[4][2] = eos  # two documents in a padded row
    T = 9
    # pad id 450, not EOS: pads must not count as documents of their own (then the grid would align anyway)
    ids, mask = torch.full((len(prompts), T), 450), torch.zeros(len(prompts), T, dtype=torch.long)
    for i, p in enumerate(prompts):
        ids[i, T - len(p) :], mask[i, T - len(p) :] = p, 1
    pos = (mask.cumsum(-1) - 1).clamp(min=0)
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask, position_ids=None if document_mask else pos).logits
        for i, p in enumerate(prompts):
            alone = model(input_ids=p[None]).logits[0]
            # fp32, the same ops on the same values up to the layout of the sums: a few ulps
            torch.testing.assert_close(batched[i, T - len(p) :], alone, rtol=1e-5, atol=1e-5)
    if not document_mask:  # cached decoding continues each row's own grid
        kw = dict(max_new_tokens=7, do_sample=False, pad_token_id=450, eos_token_id=None)
        gen = model.generate(ids, attention_mask=mask, **kw)[:, T:]
        for i, p in enumerate(prompts):
            assert torch.equal(gen[i], model.generate(p[None], **kw)[0, len(p) :]), i


def test_the_cache_goes_by_either_name(tiny_config):
    # transformers 5.25 renamed `past_key_values` to `cache` (generate passes `cache=`; a forward that took only
    # the old name decoded every new token with no past). Steel takes either, and says neither deprecated name
    # to this transformers (FutureWarning as error: create_causal_mask's old argument warned).
    from steel.model.modeling_steel import CACHE_KEY

    torch.manual_seed(0)
    model = build_model(tiny_config(ffn_type="soft_moe_causal", initializer_range=0.2)).eval()
    ids = torch.randint(1, 512, (2, 9))
    with torch.no_grad(), warnings.catch_warnings():
        warnings.simplefilter("error", FutureWarning)
        full = model(input_ids=ids, use_cache=False).logits[:, -1]
        steps = {}
        for name in ("cache", "past_key_values"):
            out = model(input_ids=ids[:, :-1], use_cache=True)
            assert CACHE_KEY in type(out).__dataclass_fields__  # the installed transformers' name
            steps[name] = model(input_ids=ids[:, -1:], use_cache=True, **{name: output_cache(out)}).logits[:, -1]
        assert torch.equal(steps["cache"], steps["past_key_values"])
        torch.testing.assert_close(steps["cache"], full, rtol=1e-5, atol=4e-6 * full.abs().max().item())
        with pytest.raises(ValueError, match="not both"):
            model(input_ids=ids[:, -1:], cache=output_cache(out), past_key_values=output_cache(out))


@pytest.mark.parametrize("ffn,fields", VARIANTS, ids=lambda v: str(v))
def test_static_cache_generates_as_the_dynamic_one(tiny_config, ffn, fields):
    """`cache_implementation="static"`: StaticCache.get_seq_length() returns its own counter tensor, which each
    layer's update increments in place; the causal MoE compared its state with that moving count and refused."""
    torch.manual_seed(0)
    model = build_model(tiny_config(ffn_type=ffn, initializer_range=0.2, **fields)).eval()
    ids = torch.randint(1, 512, (2, 7))
    mask = torch.ones_like(ids)
    mask[0, :2] = 0  # left padding too
    kw = dict(attention_mask=mask, max_new_tokens=8, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(model.generate(ids, cache_implementation="static", **kw), model.generate(ids, use_cache=False, **kw))


def test_static_cache_keeps_the_document_mask_of_the_prompt(tiny_config):
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=2, initializer_range=0.2, document_mask=True)
    model = build_model(cfg).eval()
    ids = torch.randint(1, 400, (2, 9))
    ids[0, 3] = ids[1, 5] = cfg.eos_token_id  # prompts of two documents each
    kw = dict(max_new_tokens=6, do_sample=False, pad_token_id=0, eos_token_id=None)
    assert torch.equal(model.generate(ids, cache_implementation="static", **kw), model.generate(ids, **kw))
