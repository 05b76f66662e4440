"""Document masking: in a packed row, each document is computed as if it were alone."""

from __future__ import annotations

import pytest
import torch

from steel.model import build_model
from steel.model.modeling_steel import document_ids, document_position_ids

EOS = 0  # tiny.yaml's eos_token_id


def test_document_ids_and_positions():
    ids = torch.tensor([[5, 6, EOS, 7, EOS, EOS, 8, 9]])
    doc = document_ids(ids, EOS)
    assert doc.tolist() == [[0, 0, 0, 1, 1, 2, 3, 3]]
    assert document_position_ids(doc).tolist() == [[0, 1, 2, 0, 1, 0, 0, 1]]


@pytest.mark.parametrize("use_cache", [True, False], ids=["cache", "no-cache"])
@pytest.mark.parametrize("attn", ["sdpa", "eager"])
@pytest.mark.parametrize("ffn", ["swiglu", "senet", "soft_moe_v1"])
def test_packed_row_equals_documents_alone(tiny_config, ffn, attn, use_cache):
    """use_cache=False is the training path (transformers detects packed sequences only without a cache);
    the third document is longer than the first, so a mask reading the wrong row indices would show."""
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type=ffn, document_mask=True, initializer_range=0.2)
    cfg._attn_implementation = attn
    model = build_model(cfg).eval()
    docs = [torch.randint(1, 512, (n,)) for n in (5, 3, 7)]
    docs = [torch.cat([d, torch.tensor([EOS])]) for d in docs[:2]] + [docs[2]]  # last doc cut by the row end
    packed = torch.cat(docs)[None]  # (1, 17)
    with torch.no_grad():
        out = model(input_ids=packed, use_cache=use_cache).logits[0]
        alone = torch.cat([model(input_ids=d[None], use_cache=use_cache).logits[0] for d in docs])
        plain = build_model(tiny_config(ffn_type=ffn, initializer_range=0.2))
        plain.load_state_dict(model.state_dict())
        unmasked = plain.eval()(input_ids=packed, use_cache=use_cache).logits[0]
    # Same rows, same keys after masking; SDPA/eager over 17 vs <= 7 keys sums masked zeros: fp32 ulps.
    torch.testing.assert_close(out, alone, rtol=1e-5, atol=1e-5)
    # And the option matters: without it the second and third documents see the first.
    assert (unmasked[6:] - alone[6:]).abs().max() > 1e-3


def test_no_attention_across_eos(tiny_config):
    """Perturbing a document changes nothing in the other documents of the row (before or after it)."""
    torch.manual_seed(0)
    model = build_model(tiny_config(ffn_type="senet", document_mask=True, initializer_range=0.2)).eval()
    row = torch.tensor([[3, 4, 5, EOS, 6, 7, 8, 9, EOS, 10, 11]])
    other = row.clone()
    other[0, 4:8] = torch.tensor([20, 21, 22, 23])  # rewrite the middle document
    with torch.no_grad():
        a, b = model(input_ids=row).logits, model(input_ids=other).logits
    assert torch.equal(a[:, :4], b[:, :4]) and torch.equal(a[:, 9:], b[:, 9:])
    assert not torch.equal(a[:, 4:8], b[:, 4:8])


@pytest.mark.parametrize("attn", ["flash_attention_2", "flash_attention_3"])
def test_flash_attention_with_document_mask_is_refused(tiny_config, attn):
    """transformers' flash path takes no mask function: the document mask was dropped (positions still
    restarted), so training attended across documents unsaid. (Set after the build: building with flash
    attention needs the flash_attn package; the refusal comes before any flash code runs.)"""
    model = build_model(tiny_config(ffn_type="swiglu", document_mask=True)).eval()
    model.config._attn_implementation = attn
    with pytest.raises(ValueError, match=f"document_mask: attn_implementation {attn} ignores the document mask"):
        model(input_ids=torch.tensor([[3, 4, 6, 7], [3, 4, EOS, 5]]))
    # One document per row (a prompt, a row ending with its EOS) needs no mask: it goes on to flash attention
    # (here without the flash_attn package: transformers' own error, not the refusal).
    with pytest.raises(Exception) as err:
        model(input_ids=torch.tensor([[3, 4, 6, 7], [3, 4, 5, EOS]]))
    assert "document_mask" not in str(err.value)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flex_attention_document_mask_matches_sdpa_on_gpu(tiny_config):
    """The GPU fast path (FlexAttention with a block mask built from the same document ids) = the SDPA mask."""
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="senet", document_mask=True, initializer_range=0.2)
    model = build_model(cfg).cuda().eval()
    row = torch.randint(1, 512, (2, 256), device="cuda")
    row[:, [40, 41, 100, 200]] = EOS  # four documents and an empty one
    with torch.no_grad():
        ref = model(input_ids=row).logits
        model.config._attn_implementation = "flex_attention"
        fast = model(input_ids=row).logits
    # fp32 on GPU: FlexAttention's tiled online softmax vs SDPA's kernel reorder sums (TF32 off by default
    # for matmuls in torch): 1e-4 absolute on logits of magnitude ~5.
    torch.testing.assert_close(fast, ref, rtol=1e-4, atol=1e-4)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_flex_attention_under_bf16_autocast_trains_like_sdpa_on_gpu(tiny_config):
    """The training setting (fp32 weights, bf16 autocast, forward + backward) through FlexAttention: q and k
    reach it in bf16 like v (they left RoPE in fp32), and its loss and gradients follow SDPA's."""
    torch.manual_seed(0)
    cfg = tiny_config(ffn_type="swiglu", document_mask=True, initializer_range=0.2)
    row = torch.randint(1, 512, (2, 256), device="cuda")
    row[:, [40, 100, 200]] = EOS
    runs = {}
    for attn in ("sdpa", "flex_attention"):
        torch.manual_seed(0)
        model = build_model(cfg).cuda()
        model.config._attn_implementation = attn
        with torch.autocast("cuda", torch.bfloat16):
            loss = model(input_ids=row, labels=row).loss
        loss.backward()
        runs[attn] = (loss.detach(), model.model.layers[0].self_attn.q_proj.weight.grad)
    (l0, g0), (l1, g1) = runs["sdpa"], runs["flex_attention"]
    # Both compute in bf16 (8-bit mantissa) with other tilings and summation orders: 1% of the loss, 5% of
    # the gradient's scale, far below what a dropped mask or an fp32/bf16 mix-up moves.
    torch.testing.assert_close(l1, l0, rtol=1e-2, atol=0)
    assert (g1 - g0).abs().max() <= 0.05 * g0.abs().max()
