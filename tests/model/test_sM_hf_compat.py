"""HF PreTrainedModel calls a user makes on a Steel model, checked against hand computations: the loss with
-100 labels, resize_token_embeddings (tied and untied), num_parameters, from_pretrained(dtype=bf16)."""

from __future__ import annotations

import math

import pytest
import torch
from transformers import AutoModelForCausalLM

from steel.model import SteelForCausalLM, build_model

IDS = torch.randint(1, 512, (2, 7), generator=torch.Generator().manual_seed(1))


def test_loss_with_ignored_labels_by_hand(tiny_config):
    torch.manual_seed(0)
    model = build_model(tiny_config()).eval()
    labels = IDS.clone()
    labels[0, :3] = -100
    labels[1, 5] = -100
    with torch.no_grad():
        loss = model(IDS, labels=labels).loss
        logits = model(IDS).logits.double()
    total, count = 0.0, 0
    for b in range(2):
        for t in range(6):  # position t predicts labels[b, t + 1]; the last position predicts nothing
            y = int(labels[b, t + 1])
            if y != -100:
                row = logits[b, t]
                total += float(torch.logsumexp(row, 0) - row[y])
                count += 1
    assert count == 9
    assert loss.item() == pytest.approx(total / count, rel=1e-6)  # fp32 log-softmax vs this fp64 sum


@pytest.mark.parametrize("tied", [False, True])
def test_resize_token_embeddings(tiny_config, tied, tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_config(tie_word_embeddings=str(tied).lower())).eval()
    old_emb, old_head = model.model.embed_tokens.weight.detach().clone(), model.lm_head.weight.detach().clone()
    model.resize_token_embeddings(600)
    assert model.config.vocab_size == 600
    assert model.model.embed_tokens.weight.shape == model.lm_head.weight.shape == (600, 64)
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tied
    assert torch.equal(model.model.embed_tokens.weight[:512], old_emb)
    assert torch.equal(model.lm_head.weight[:512], old_head)
    ids = torch.tensor([[599, 3, 511]])
    with torch.no_grad():
        logits = model(ids).logits
    assert logits.shape == (1, 3, 600)
    model.save_pretrained(tmp_path)
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path).eval()
    assert loaded.config.vocab_size == 600 and (loaded.lm_head.weight is loaded.model.embed_tokens.weight) == tied
    with torch.no_grad():
        assert torch.equal(loaded(ids).logits, logits)


def test_num_parameters(tiny_config):
    untied = build_model(tiny_config())
    tied = build_model(tiny_config(tie_word_embeddings="true"))
    # tiny.yaml: V 512, C 64, 2 layers, 4 heads of 16, 2 KV heads, soft MoE v3 of 3 SENet experts (inner 32), 6 slots
    C, V, L, kv, h = 64, 512, 2, 2 * 16, 128 // 4
    layer = (C * C + C) + 2 * (C * kv + kv) + C * C + 2 * C + 3 * 4 * C * h + C * 6 + 1
    n = V * C + L * layer + C + V * C
    assert untied.num_parameters() == n
    assert tied.num_parameters() == n - V * C  # the shared matrix once
    assert untied.num_parameters(exclude_embeddings=True) == n - V * C  # (HF: nn.Embedding only, not lm_head)


def test_from_pretrained_in_bf16(tiny_config, tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_config())
    model.save_pretrained(tmp_path)
    loaded = SteelForCausalLM.from_pretrained(tmp_path, dtype=torch.bfloat16).eval()
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    assert loaded.model.rotary_emb.inv_freq.dtype == torch.float32  # RoPE frequencies stay fp32
    # the same weights cast to bf16 in a model built in bf16
    ref = AutoModelForCausalLM.from_config(tiny_config(), dtype=torch.bfloat16).eval()
    ref.load_state_dict({k: v.to(torch.bfloat16) for k, v in model.state_dict().items()})
    with torch.no_grad():
        out = loaded(IDS, labels=IDS)
        assert out.logits.dtype == torch.bfloat16
        assert torch.equal(out.logits, ref(IDS).logits)
        assert math.isfinite(out.loss.item())
