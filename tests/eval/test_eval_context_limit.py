"""eval ppl and eval mc never score past the model's max_position_embeddings (RoPE extrapolates silently)."""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_mc import make_ceval_dir
from test_ppl_contamination import _data_dir
from tiny_models import SHORT_CONTEXT, build_tiny_llama

from steel.cli import UserError
from steel.cli import main as steel_main
from steel.eval import mc
from steel.eval.ppl import perplexity


def test_ppl_seq_len_over_the_model_limit_is_an_error(tmp_path, short_llama_dir, capsys, position_log):
    d = _data_dir(tmp_path / "data", {"a": np.arange(600) % 250}, 261)
    base = ["eval", "ppl", "--model", str(short_llama_dir), "--data", str(d), "--device", "cpu"]
    assert steel_main(base + ["--seq-len", str(SHORT_CONTEXT + 1)]) == 2
    err = capsys.readouterr().err
    assert f"--seq-len {SHORT_CONTEXT + 1}: longer than the model's max_position_embeddings {SHORT_CONTEXT}" in err
    assert position_log == []
    # The default (1024) is capped at the model's limit instead of failing.
    out = tmp_path / "ppl.json"
    assert steel_main(base + ["--out", str(out)]) == 0
    assert json.loads(out.read_text())["seq_len"] == SHORT_CONTEXT
    assert max(position_log) == SHORT_CONTEXT - 1
    model = build_tiny_llama(300, max_positions=16)
    with pytest.raises(UserError, match="--seq-len 17: longer than the model's max_position_embeddings 16"):
        perplexity(model, d, 17, 1, advance=lambda n: None)
    assert perplexity(model, d, 16, 4, advance=lambda n: None)["seq_len"] == 16


def _tok(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))


# The fixture's 2-shot prompts are 332 tokens (questions 0 and 2 of computer_network) or 344..353 long,
# 1-shot ones 264..282 (byte-level tokens): a 340-position model fits 2 shots for two questions.
LIMIT = 340
SHOTS = [2, 1, 2, 1, 1, 1, 1, 1, 1, 1]


@pytest.mark.parametrize("scoring", ["letter", "continuation"])
def test_mc_drops_earliest_shots_to_fit_and_counts_them(tmp_path, tiny_tokenizer_dir, position_log, scoring):
    tok = _tok(tiny_tokenizer_dir)
    root = make_ceval_dir(tmp_path / "ceval")
    model = build_tiny_llama(len(tok), max_positions=LIMIT)
    opts = mc.McOptions(task="ceval", data=root, shots=2, scoring=scoring, batch_size=4)
    res = mc.run_mc(model, tok, opts)
    assert max(position_log) < LIMIT
    assert [d["shots"] for d in opts.details] == SHOTS
    assert res["fewer_shots"] == {
        "total": 8,
        "per_subject": {"computer_network": 4, "high_school_history": 4},
        "max_positions": LIMIT,
    }
    assert "Questions given fewer than 2 shots to fit the model's 340 positions" in mc.markdown_report(res)
    # The prompts scored are the harness prompts minus their earliest examples (CMMLU's pop(1)).
    qs, dev, table = mc.load_benchmark(opts)
    flat = [(s, q) for s in qs for q in qs[s]]
    prompts = [
        mc.build_prompt("ceval", table[s].name_zh, dev[s][2 - k : 2], q, k) for (s, q), k in zip(flat, SHOTS)
    ]
    assert "例题1" in prompts[1] and "例题0" not in prompts[1]
    fn = mc.predict_letter_mode if scoring == "letter" else mc.predict_continuation_mode
    assert [d["pred"] for d in opts.details] == [p for p, _ in fn(model, tok, prompts, 4)]
    # A model with room for every prompt gets every shot and reports no drop.
    res = mc.run_mc(build_tiny_llama(len(tok), max_positions=1024), tok, opts)
    assert res["fewer_shots"]["total"] == 0 and {d["shots"] for d in opts.details} == {2}


def test_mc_question_too_long_even_zero_shot_is_an_error(tmp_path, tiny_tokenizer_dir, position_log):
    tok = _tok(tiny_tokenizer_dir)
    root = make_ceval_dir(tmp_path / "ceval")
    model = build_tiny_llama(len(tok), max_positions=200)  # 0-shot prompts are 196..211 tokens
    opts = mc.McOptions(task="ceval", data=root, shots=5)
    msg = r"computer_network_val.csv:3: the 0-shot prompt needs 208 positions, more than .* 200"
    with pytest.raises(UserError, match=msg):
        mc.run_mc(model, tok, opts)
    assert position_log == []  # refused before scoring anything


def test_mc_generate_mode_keeps_room_for_the_reply(tmp_path, tiny_tokenizer_dir, position_log):
    tok = _tok(tiny_tokenizer_dir)
    root = make_ceval_dir(tmp_path / "ceval")
    model = build_tiny_llama(len(tok), max_positions=LIMIT)
    opts = mc.McOptions(task="ceval", data=root, shots=3, mode="generate", max_new_tokens=8, batch_size=4)
    res = mc.run_mc(model, tok, opts)
    assert max(position_log) < LIMIT
    assert res["fewer_shots"]["total"] == 10 and all(d["shots"] < 3 for d in opts.details)
    opts = mc.McOptions(task="ceval", data=root, shots=0, mode="generate", max_new_tokens=200)
    with pytest.raises(UserError, match=r"0-shot prompt needs \d+ positions \(with --max-new-tokens 200\)"):
        mc.run_mc(model, tok, opts)
