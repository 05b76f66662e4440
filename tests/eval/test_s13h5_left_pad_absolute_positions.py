"""Left-padded scoring gives each row the positions it has alone: 0 at its first real token.

A mutation audit (session 13) started the position ids at 1 (`mask.cumsum(-1)` without the `- 1`) and the
eval suite stayed green: its models are Llama and Steel, whose RoPE scores depend on position differences
only, so a shift of every position by one changes nothing but rounding. A model with learned absolute
positions (GPT-2 and its kin, which `steel eval` scores too) reads another position embedding for every token.
"""

from __future__ import annotations

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from steel.eval import mc


def test_left_padded_logits_equal_each_row_alone_with_absolute_positions():
    torch.manual_seed(0)
    model = GPT2LMHeadModel(GPT2Config(vocab_size=64, n_positions=32, n_embd=32, n_layer=2, n_head=4)).eval()
    g = torch.Generator().manual_seed(1)
    seqs = [torch.randint(1, 64, (n,), generator=g).tolist() for n in (9, 4, 13)]
    got = mc.last_logits(model, seqs, n_last=2, pad_id=0)  # (3, 2, V): rows left-padded to 13
    for b, s in enumerate(seqs):
        with torch.no_grad():
            want = model(torch.tensor([s])).logits[0, -2:].float()  # the row alone, positions 0..len-1
        # fp32; padding only adds masked keys to attention's reductions: ~1e-6.
        torch.testing.assert_close(got[b], want, rtol=1e-4, atol=1e-4)
