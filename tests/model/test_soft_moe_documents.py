"""The causal soft MoE under document masking: each document of a packed row is computed as if alone.

Without document masking the slots are prefix sums over the whole row (the previous implementation,
kept verbatim below as the reference it must still match bit for bit).
"""

from __future__ import annotations

import math
import types

import pytest
import torch
import torch.nn.functional as F

from steel.infer.load import output_cache
from steel.model import build_model
from steel.model.causality import check_causal
from steel.model.modeling_steel import SteelSoftMoECausal, document_ids, make_ffn

EOS = 0  # tiny.yaml's eos_token_id
LENGTHS = (5, 11, 7)  # the first two end in EOS, the last is cut by the row end
CHUNKS = (1, 3, 4)


def previous_forward_full(self, x, with_state, token_mask):
    """SteelSoftMoECausal._forward_full as it was before document masking reached it (commit 9f989c9)."""
    B, T, C = x.shape
    c, K = self.chunk, math.ceil(x.shape[1] / self.chunk)
    w, combine = self._weights(x, token_mask)
    xf = x.float()
    num0 = w[:, 0, :, None] * xf[:, 0, None, :]
    den0 = w[:, 0]
    if K > 1:
        gw = w[:, 1 : (K - 1) * c + 1].reshape(B, K - 1, c, -1)
        gx = xf[:, 1 : (K - 1) * c + 1].reshape(B, K - 1, c, C)
        num = torch.cat([num0[:, None], torch.einsum("bkjs,bkjc->bksc", gw, gx)], 1).cumsum(1)
        den = torch.cat([den0[:, None], gw.sum(2)], 1).cumsum(1)
    else:
        num, den = num0[:, None], den0[:, None]
    ys = self.run_experts(self._slots(num, den).to(x.dtype))
    pad = K * c - T
    comb = F.pad(combine, (0, 0, 0, pad)).reshape(B, K, c, -1).to(x.dtype)
    y = torch.einsum("bkjs,bksc->bkjc", comb, ys).reshape(B, K * c, C)[:, :T]
    if not with_state:
        return y, None
    tail = slice((K - 1) * c + 1, T)
    state = {
        "seen": T, "num": num[:, -1], "den": den[:, -1], "ys": ys[:, -1],
        "pnum": torch.einsum("bts,btc->bsc", w[:, tail], xf[:, tail]), "pden": w[:, tail].sum(1),
    }
    return y, state


def packed_row(seed: int = 0) -> tuple[torch.Tensor, list[torch.Tensor]]:
    g = torch.Generator().manual_seed(seed)
    docs = [torch.randint(1, 512, (n,), generator=g) for n in LENGTHS]
    for d in docs[:-1]:
        d[-1] = EOS
    return torch.cat(docs)[None], docs  # (1, 23), [(5,), (11,), (7,)]


def moe(tiny_config, chunk: int) -> SteelSoftMoECausal:
    torch.manual_seed(0)
    m = make_ffn(tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=chunk))
    for name, prm in m.named_parameters():  # large weights: every branch moves the output (as test_ffn)
        torch.nn.init.normal_(prm, std=0.3 if prm.ndim > 1 else 1.0)
        if name == "scale":
            prm.data.abs_().add_(0.5)
    return m


def record_slots(m: SteelSoftMoECausal) -> list[torch.Tensor]:
    """Capture the slot vectors the experts are given."""
    seen, run = [], m.run_experts

    def recording(slots):
        seen.append(slots.detach().clone())
        return run(slots)

    m.run_experts = recording
    return seen


@pytest.mark.parametrize("chunk", CHUNKS)
def test_module_documents_alone(tiny_config, chunk):
    """FFN alone: the slots of each document are those of its own fresh forward (to an fp32 ulp); outputs
    and input gradients agree to GEMM rounding."""
    m = moe(tiny_config, chunk)
    slots = record_slots(m)
    ids, docs = packed_row()
    T = ids.shape[1]
    x = torch.randn(1, T, m.phi.shape[0], requires_grad=True)
    r = torch.randn(1, T, m.phi.shape[0])
    y = m(x, layout=m.document_layout(document_ids(ids, EOS), chunk))
    (gx,) = torch.autograd.grad((y * r).sum(), x)
    packed_slots = slots.pop()
    start = first_group = 0
    for d in docs:
        L = len(d)
        xa = x.detach()[:, start : start + L].clone().requires_grad_()
        # A fresh document-masked forward of the document alone (one document: offsets 0).
        ya = m(xa, layout=m.document_layout(torch.zeros(1, L, dtype=torch.long), chunk))
        (ga,) = torch.autograd.grad((ya * r[:, start : start + L]).sum(), xa)
        alone_slots = slots.pop()  # (K, S, C)
        K = alone_slots.shape[0]
        assert K == math.ceil(L / chunk)
        # Same group sums (same additions in the same order); the prefix sums are fp64 minus the preceding
        # documents' fp64 total, ~1e-16 of it away from the document's own, then cast to fp32: a value on
        # an fp32 rounding boundary can land on the neighbouring float (measured: 1 ulp, 2 of the 3 documents),
        # and num / den compounds two such: 4 ulps of the largest slot. A leak of the previous document's
        # content would move slots by O(1).
        scale = alone_slots.abs().max().item()
        torch.testing.assert_close(packed_slots[first_group : first_group + K], alone_slots, rtol=0,
                                   atol=4 * torch.finfo(torch.float32).eps * scale, msg=lambda m: f"{L}: {m}")
        # And the same computation as the unmasked path on that document alone (fp32 prefix sums, so a
        # few ulps apart on outputs ~3).
        with torch.no_grad():
            torch.testing.assert_close(m(xa)[0], ya[0], rtol=1e-5, atol=1e-5)
        slots.pop()
        # The experts run on 10 (packed) vs <= 11 (alone) rows: MKL blocks GEMMs by row count, so rows are
        # not bit-identical (measured: <= 2e-6 on outputs ~3); 1e-5 is ~100 fp32 ulps of that scale, and a
        # leak from the previous document moves outputs by O(1) (asserted in the model test below).
        torch.testing.assert_close(y[:, start : start + L], ya, rtol=1e-5, atol=1e-5)
        # Backward: the same per-document terms plus the fp64 prefix sums' subtraction, rounded back to fp32.
        torch.testing.assert_close(gx[:, start : start + L], ga, rtol=1e-5, atol=1e-5 * ga.abs().max().item())
        start, first_group = start + L, first_group + K


@pytest.mark.parametrize("chunk", CHUNKS)
def test_packed_row_equals_documents_alone(tiny_config, chunk, monkeypatch):
    """Whole model, document_mask on: each document's logits and the parameter gradients of the packed
    row equal those of the documents run alone (gradients: the sum of the separate runs)."""
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=chunk, document_mask=True, initializer_range=0.2)
    model = build_model(cfg)
    ids, docs = packed_row()
    r = torch.randn(ids.shape[1], cfg.vocab_size)
    out = model(input_ids=ids, use_cache=False).logits[0]
    grads = torch.autograd.grad((out * r).sum(), list(model.parameters()))
    alone, start = [], 0
    alone_grads = [torch.zeros_like(p) for p in model.parameters()]
    for d in docs:
        logits = model(input_ids=d[None], use_cache=False).logits[0]
        for acc, g in zip(alone_grads, torch.autograd.grad((logits * r[start : start + len(d)]).sum(),
                                                           list(model.parameters()), allow_unused=True)):
            if g is not None:
                acc += g
        alone.append(logits.detach())
        start += len(d)
    alone = torch.cat(alone)
    # Attention over 23 vs <= 11 keys and experts over more rows: fp32 GEMM blocking, as in
    # test_document_mask (1e-5 on logits of magnitude ~1).
    torch.testing.assert_close(out.detach(), alone, rtol=1e-5, atol=1e-5)
    for (name, _), g, ga in zip(model.named_parameters(), grads, alone_grads):
        # One backward over the row vs three summed: the same terms added in another order.
        torch.testing.assert_close(g, ga, rtol=1e-4, atol=1e-5 * max(ga.abs().max().item(), 1e-3),
                                   msg=lambda m: f"{name}: {m}")
    # The soft MoE is what had leaked (attention was already masked): with row-wide slots (no layout) the
    # second and third documents see the first.
    monkeypatch.setattr(SteelSoftMoECausal, "document_layout", staticmethod(lambda doc, chunk: None))
    with torch.no_grad():
        leaky = model(input_ids=ids, use_cache=False).logits[0]
    assert (leaky[LENGTHS[0] :] - alone[LENGTHS[0] :]).abs().max() > 1e-3


@pytest.mark.parametrize("chunk", CHUNKS)
def test_without_document_mask_bit_identical_to_previous(tiny_config, chunk, monkeypatch):
    m = moe(tiny_config, chunk)
    x = torch.randn(2, 13, m.phi.shape[0])
    mask = torch.ones(2, 13)
    mask[1, :4] = 0  # left padding
    for token_mask in (None, mask):
        for with_state in (False, True):
            y, state = m._forward_full(x, with_state, token_mask)
            y_ref, state_ref = previous_forward_full(m, x, with_state, token_mask)
            assert torch.equal(y, y_ref)
            if with_state:
                assert state.keys() == state_ref.keys()
                assert all(torch.equal(torch.as_tensor(state[k]), torch.as_tensor(state_ref[k])) for k in state)
    # Whole model, document_mask off, with and without a cache: the module never sees a layout.
    cfg = tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=chunk, initializer_range=0.2)
    model = build_model(cfg).eval()
    ids, _ = packed_row()
    with torch.no_grad():
        now = [model(input_ids=ids, use_cache=u).logits for u in (False, True)]
        monkeypatch.setattr(SteelSoftMoECausal, "_forward_full", previous_forward_full)
        before = [model(input_ids=ids, use_cache=u).logits for u in (False, True)]
    assert all(torch.equal(a, b) for a, b in zip(now, before))


@pytest.mark.parametrize("chunk", CHUNKS)
def test_decoding_after_packed_prefill_continues_the_last_document(tiny_config, chunk):
    """A cached prefill of packed rows leaves each row's state at its last document (its own chunk grid),
    so decoding continues as if that document had been prefilled alone. Rows end mid-chunk at different
    local positions."""
    m = moe(tiny_config, chunk).eval()
    ids = torch.randint(1, 512, (2, 12))
    ids[0, [4, 8]] = EOS  # last document: local 0..2
    ids[1, 1] = EOS  # last document: local 0..9
    x = torch.randn(2, 12 + 6, m.phi.shape[0])
    doc = document_ids(ids, EOS)
    cache = types.SimpleNamespace()
    with torch.no_grad():
        out = [m(x[:, :12], cache, 0, 0, layout=m.document_layout(doc, chunk))]
        for t in range(12, 18):
            out.append(m(x[:, t : t + 1], cache, 0, t))
        out = torch.cat(out, 1)
        for b in range(2):
            s = int((doc[b] != doc[b, -1]).sum())  # start of the last document
            alone = m(x[b : b + 1, s:])  # that document and the decoded tokens, one fresh sequence
            # Step-by-step fp32 slot sums vs one fp64 prefix sum, GEMMs over other row counts: fp32 ulps.
            torch.testing.assert_close(out[b : b + 1, s:], alone, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("chunk", [1, 3])
def test_document_masked_soft_moe_is_causal(tiny_config, chunk):
    """Exactly causal with documents in the row: one id in seven is an EOS, so rows hold several."""
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=chunk, document_mask=True, initializer_range=0.2,
                      eos_token_id=list(range(0, 512, 7)))
    r = check_causal(build_model(cfg), 512, seq_len=16)
    assert r.max_leak == 0.0, r


@pytest.mark.parametrize("chunk", [1, 3])
def test_cached_generation_with_document_mask_equals_recompute(tiny_config, chunk):
    """document_mask on, one document per prompt: the cached path (document prefill, then per-row steps)
    computes what a full document-masked recompute computes."""
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=chunk, document_mask=True, initializer_range=0.2)
    model = build_model(cfg).eval()
    prompt = torch.randint(1, 512, (2, 5))
    kw = dict(max_new_tokens=10, do_sample=False, pad_token_id=0, eos_token_id=None)
    cached = model.generate(prompt, use_cache=True, **kw)
    assert not (cached == EOS).any()  # one document throughout, so the recompute sees what the cache saw
    assert torch.equal(cached, model.generate(prompt, use_cache=False, **kw))
    with torch.no_grad():
        full = model(input_ids=cached, use_cache=False).logits
        out = model(input_ids=cached[:, :5], use_cache=True)
        cache, steps = output_cache(out), [out.logits]
        for t in range(5, cached.shape[1]):
            steps.append(model(input_ids=cached[:, t : t + 1], cache=cache, use_cache=True).logits)
    # As test_generation: matmul blocking over 1 vs T rows, ~10 fp32 ulps of max |logit|.
    scale = full.abs().max().item()
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=4e-6 * scale)
