"""`steel eval mc --mode generate` stays plain greedy over the tokenizer's ids whatever an export's
`generation_config.json` lists as `bad_words_ids` (since session 16 an export lists its rows past the tokenizer
there): HF would build a bias vector from that list at every generate call (0.26-0.45 s for a 23,936-id gap,
bench/export_suppress_tokens.py) for ids `TokensOnly` already masks, and would drop ids the list names."""

from __future__ import annotations

import torch

from steel.eval import mc


def test_generate_mode_ignores_the_models_bad_words_ids(tiny_llama_dir, monkeypatch):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.generation import utils

    from steel.infer.generate import chat_prompt_ids, stop_token_ids

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    msgs = [{"role": "user", "content": "以下是单项选择题 ABCD ABCD"}]
    ids = chat_prompt_ids(tok, msgs)
    stops = stop_token_ids(tok)
    ref = list(ids)  # independent greedy: argmax of a full forward per step
    with torch.no_grad():
        for _ in range(12):
            nxt = int(model(torch.tensor([ref])).logits[0, -1].argmax())
            if nxt in stops:
                break
            ref.append(nxt)
    assert len(ref) > len(ids)
    want = tok.decode(ref[len(ids):], skip_special_tokens=True)
    model.generation_config.bad_words_ids = [[ref[len(ids)]]]  # the first greedy token, as a listed row would be
    built = []

    class Recording(utils.NoBadWordsLogitsProcessor):
        def __init__(self, *args, **kwargs):
            built.append(args)
            super().__init__(*args, **kwargs)

    monkeypatch.setattr(utils, "NoBadWordsLogitsProcessor", Recording)
    assert mc.predict_generate_mode(model, tok, [msgs], 12, 1) == [want]
    assert built == []
    listed = model.generate(input_ids=torch.tensor([ids]), max_new_tokens=12, do_sample=False, pad_token_id=0)
    assert built and listed[0, len(ids)].item() != ref[len(ids)]  # HF's own generate reads the list: can fail
