"""The repetition penalty counts the prompt's tokens too, as transformers' generate does.

A mutation audit (session 13) penalised only the tokens generated so far and the suite stayed green:
`process_logits` is tested by hand with the ids it is given, but nothing checked which ids generation gives
it. transformers' RepetitionPenaltyLogitsProcessor penalises every id of `input_ids`, the prompt included.
"""

from __future__ import annotations

import torch
from transformers import AutoModelForCausalLM

from steel.infer import generate as G


def test_greedy_with_repetition_penalty_matches_transformers(tiny_llama_dir):
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    g = torch.Generator().manual_seed(2)
    prompt = torch.randint(3, 200, (12,), generator=g).tolist()
    n = 10
    with torch.no_grad():  # the reference: transformers' greedy search with its repetition penalty
        hf = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False, repetition_penalty=5.0,
                            eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
        plain = model.generate(torch.tensor([prompt]), max_new_tokens=n, do_sample=False,
                               eos_token_id=None, pad_token_id=0)[0, len(prompt):].tolist()
    # Unpenalised, the model repeats a prompt token before any of its own: the prompt's ids must count.
    assert set(plain) & set(prompt) and hf != plain
    opts = G.SamplingOptions(max_new_tokens=n, temperature=0.0, repetition_penalty=5.0)
    assert list(G.generate_ids(model, prompt, opts)) == hf
