"""Soft MoE v2/v3 keep padding out of their slots: a padded row computes what it computes alone.

Before, every position of a row entered every slot (v3's dispatch and v2's combine are softmaxes over the
sequence), pads included: a left-padded batch (generation, eval) or a right-padded SFT row gave the real
tokens other outputs than the unpadded row, and the ids the pads held moved the real tokens' gradients.
"""

from __future__ import annotations

import pytest
import torch

from steel.model import build_model

pytestmark = pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")

LEAKING = ["soft_moe_v2", "soft_moe_v3"]
LENGTHS = (9, 3, 6, 1)  # pads 0, 6, 3, 8 in rows of T = 9


def _model(tiny_config, ffn):
    torch.manual_seed(0)
    # initializer_range 0.2: v3's slots depend strongly on their tokens (at 0.02 a pad moved the logits by
    # only ~1e-5, too close to float noise to tell a leak from rounding).
    return build_model(tiny_config(ffn_type=ffn, initializer_range=0.2)).eval()


def _batch(prompts, side: str, pad_ids: torch.Tensor):
    """Rows of T = max length, padded on `side` with `pad_ids` (B, T): (ids, mask, position_ids, slices)."""
    T = max(len(p) for p in prompts)
    ids, mask = pad_ids.clone(), torch.zeros(len(prompts), T, dtype=torch.long)
    where = []
    for i, p in enumerate(prompts):
        real = slice(T - len(p), T) if side == "left" else slice(0, len(p))
        ids[i, real], mask[i, real] = p, 1
        where.append(real)
    return ids, mask, (mask.cumsum(-1) - 1).clamp(min=0), where


def _prompts(n_vocab=512):
    g = torch.Generator().manual_seed(1)
    return [torch.randint(1, n_vocab, (n,), generator=g) for n in LENGTHS]


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("ffn", LEAKING)
def test_padded_rows_give_the_logits_of_each_row_alone(tiny_config, ffn, side):
    model = _model(tiny_config, ffn)
    prompts = _prompts()
    pads = torch.randint(1, 512, (len(prompts), max(LENGTHS)), generator=torch.Generator().manual_seed(2))
    ids, mask, pos, where = _batch(prompts, side, pads)
    with torch.no_grad():
        batched = model(input_ids=ids, attention_mask=mask, position_ids=pos).logits
        assert torch.isfinite(batched).all()
        for i, p in enumerate(prompts):
            alone = model(input_ids=p[None]).logits[0]
            # fp32, the same ops on the same values: only the length of the sums over T differs (pads add
            # exact zeros, but the reductions are blocked differently). Measured: up to 8.4e-7 of max |logit|
            # (~8 ulps through 2 layers), hence atol 4e-6 of that scale, as tests/model/test_generation.py.
            # Before the fix the pads moved the logits by 3.5-6 (max |logit| ~5).
            scale = alone.abs().max().item()
            torch.testing.assert_close(batched[i, where[i]], alone, rtol=1e-5, atol=4e-6 * scale,
                                       msg=lambda m, i=i: f"{ffn} {side} row {i}: {m}")


@pytest.mark.parametrize("side", ["left", "right"])
@pytest.mark.parametrize("ffn", LEAKING)
def test_real_token_gradients_do_not_depend_on_pad_ids(tiny_config, ffn, side):
    """SFT's right-padded rows: the loss of the real tokens must not read the pads (their ids are EOS
    there; any id here). Every gradient is bit-identical: a pad's every path to the loss has weight exactly
    0, so its terms in the parameter gradients are exact zeros, whatever its activations."""
    model = _model(tiny_config, ffn).train()
    prompts = _prompts()

    def grads(pad_seed):
        pads = torch.randint(1, 512, (len(prompts), max(LENGTHS)), generator=torch.Generator().manual_seed(pad_seed))
        ids, mask, pos, _ = _batch(prompts, side, pads)
        # next-token targets between real tokens only (with left padding the last pad "predicts" the first
        # real token: that loss term reads a pad's output)
        targets = torch.nn.functional.pad(ids[:, 1:], (0, 1), value=-100)
        targets = targets.masked_fill((mask == 0) | (torch.nn.functional.pad(mask[:, 1:], (0, 1)) == 0), -100)
        model.zero_grad()
        model(input_ids=ids, attention_mask=mask, position_ids=pos, shift_labels=targets,
              use_cache=False).loss.backward()
        return {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    a, b = grads(3), grads(4)
    assert a.keys() == b.keys() and any(".mlp.phi" in n for n in a)
    for name in a:
        if name == "model.embed_tokens.weight":  # the rows of the pad ids themselves: 0 in both
            continue
        assert torch.equal(a[name], b[name]), name
    real_ids = torch.cat(prompts).unique()
    emb_a, emb_b = a["model.embed_tokens.weight"], b["model.embed_tokens.weight"]
    assert torch.equal(emb_a[real_ids], emb_b[real_ids])
    others = torch.ones(emb_a.shape[0], dtype=torch.bool)
    others[real_ids] = False
    assert not emb_a[others].any() and not emb_b[others].any()  # a pad's embedding gets no gradient


@pytest.mark.parametrize("ffn", LEAKING)
def test_a_fully_padded_row_is_finite_and_changes_nothing(tiny_config, ffn):
    model = _model(tiny_config, ffn).train()
    prompts = _prompts()[:2]
    ids = torch.full((3, 9), 7)
    mask = torch.zeros(3, 9, dtype=torch.long)
    ids[0], mask[0] = prompts[0], 1
    ids[1, :3], mask[1, :3] = prompts[1], 1  # right-padded; row 2: padding only
    out = model(input_ids=ids, attention_mask=mask, use_cache=False).logits
    assert torch.isfinite(out).all()
    out.sum().backward()  # through the pads too: a softmax of -inf logits would make NaN gradients
    for n, p in model.named_parameters():
        assert torch.isfinite(p.grad).all(), n
    model.eval()
    with torch.no_grad():
        for i, p in enumerate(prompts):
            alone = model(input_ids=p[None]).logits[0]
            scale = alone.abs().max().item()
            # the same few-ulp noise as test_padded_rows_give_the_logits_of_each_row_alone
            torch.testing.assert_close(out[i, : len(p)].detach(), alone, rtol=1e-5, atol=4e-6 * scale)


@pytest.mark.parametrize("ffn", LEAKING)
def test_an_all_ones_mask_changes_no_bit(tiny_config, ffn):
    """The masked path with nothing masked is the unmasked computation, bit for bit."""
    model = _model(tiny_config, ffn)
    ids = _prompts()[0][None].repeat(2, 1)
    with torch.no_grad():
        plain = model(input_ids=ids).logits
        masked = model(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert torch.equal(plain, masked)


@pytest.mark.parametrize("use_cache", [True, False])
@pytest.mark.parametrize("ffn", LEAKING)
def test_left_padded_generation_equals_each_prompt_alone(tiny_config, ffn, use_cache):
    """Cached: the prefill's slots hold the prompt's real tokens only (a decoding step's hold the new
    token, as alone); uncached: every step recomputes the whole padded row under its mask."""
    model = _model(tiny_config, ffn)
    prompts = _prompts()
    ids, mask, _pos, _ = _batch(prompts, "left", torch.full((len(prompts), max(LENGTHS)), 450))
    kw = dict(max_new_tokens=8, do_sample=False, pad_token_id=450, eos_token_id=None, use_cache=use_cache)
    gen = model.generate(ids, attention_mask=mask, **kw)[:, ids.shape[1] :]
    for i, p in enumerate(prompts):
        assert torch.equal(gen[i], model.generate(p[None], **kw)[0, len(p) :]), (ffn, i)
