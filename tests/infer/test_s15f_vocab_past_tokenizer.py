"""A model whose vocabulary is larger than its tokenizer's (a user's own 6,000-id BPE trained with
`configs/train/tiny-cpu.yaml`, which sets Qwen's 151,936; Qwen's own padded rows 151,646-151,935): the ids
past the tokenizer have no text. `steel generate` / `steel chat` sampled them and the tokenizer's decode
dropped them without a word: a run printed an empty reply, exit 0 (session 15, F: a 40-step run with its
own tokenizer printed nothing for every prompt). Generation now picks only ids the tokenizer has."""

from __future__ import annotations

import torch
from tiny_models import BOS_PROMPT, build_tiny_llama

PAST = 600  # embedding rows past the tokenizer


def _padded_model_dir(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    n = len(tok)
    model = build_tiny_llama(n + PAST)
    with torch.no_grad():  # rows without a token dominate the logits: greedy would always pick one
        model.lm_head.weight[n:] *= 10.0
    d = tmp_path / "padded"
    model.save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d, model, tok, n


@torch.no_grad()
def _greedy_within(model, tok, n: int, steps: int) -> list[int]:
    """Reference: greedy over the first `n` logits, plain forwards of the whole sequence."""
    ids = tok.encode(BOS_PROMPT, add_special_tokens=False)
    new: list[int] = []
    for _ in range(steps):
        logits = model(torch.tensor([ids + new])).logits[0, -1]
        assert int(logits.argmax()) >= n  # the unrestricted choice has no token: the case under test
        new.append(int(logits[:n].argmax()))
    return new


def test_generate_picks_only_ids_the_tokenizer_has(tmp_path, tiny_tokenizer_dir, capsys):
    from steel.cli import main as steel_main

    d, model, tok, n = _padded_model_dir(tmp_path, tiny_tokenizer_dir)
    want = _greedy_within(model, tok, n, 6)
    capsys.readouterr()
    assert steel_main(["generate", "--model", str(d), "--prompt", BOS_PROMPT, "--temperature", "0",
                       "--max-new-tokens", "6", "--device", "cpu"]) == 0
    out = capsys.readouterr().out.removesuffix("\n")
    assert out == tok.decode(want, skip_special_tokens=True)
    assert out  # it printed nothing before


def test_sampling_never_draws_an_id_past_the_tokenizer(tmp_path, tiny_tokenizer_dir):
    from steel.infer.generate import SamplingOptions, generate_reply
    from steel.infer.load import load_model, load_tokenizer

    d, _, _, n = _padded_model_dir(tmp_path, tiny_tokenizer_dir)
    model, tok = load_model(d), load_tokenizer(d)
    ids = tok.encode(BOS_PROMPT, add_special_tokens=False)
    for seed in range(3):
        reply = generate_reply(model, tok, ids, SamplingOptions(max_new_tokens=12, temperature=1.0, seed=seed))
        assert len(reply.tokens) == 12 and max(reply.tokens) < n, reply.tokens
