"""Tests written by a mutation audit of `steel.eval` (session 15, D): each one kills a deliberate mutation of
perplexity or multiple-choice scoring that the rest of the suite let pass."""

from __future__ import annotations

import numpy as np
import pytest
from test_ppl_contamination import _data_dir
from tiny_models import build_tiny_llama

from steel.eval.ppl import perplexity


@pytest.mark.parametrize("batch_size", [1, 2, 3])
def test_perplexity_forwards_at_most_batch_size_windows(tmp_path, batch_size):
    # --batch-size bounds the memory of a forward: 7 full windows of one chunk go 3 + 3 + 1 at batch 3
    model = build_tiny_llama(300)
    seen = []
    model.register_forward_pre_hook(lambda m, a, kw: seen.append(tuple(kw["input_ids"].shape)), with_kwargs=True)
    d = _data_dir(tmp_path / "data", {"a": np.random.default_rng(0).integers(0, 300, 7 * 16)}, 300)
    res = perplexity(model, d, 16, batch_size, advance=lambda n: None)
    assert res["tokens"] == 7 * 15
    full, last = divmod(7, batch_size)
    assert seen == [(batch_size, 16)] * full + ([(last, 16)] if last else [])


def test_reader_takes_lower_case_answers_and_skips_rows_of_empty_fields(tmp_path):
    from steel.eval import mc

    # a spreadsheet's save leaves rows of empty fields (",,,,,,") and may write the answer in lower case
    path = tmp_path / "s.csv"
    path.write_text(",Question,A,B,C,D,Answer\n0,q1,a,b,c,d,b\n,,,,,,\n1,q2,a,b,c,d, C \n, , ,,,,\n",
                    encoding="utf-8")
    qs = mc.read_questions(path, "cmmlu", "s")
    assert [(q.question, q.answer, q.where) for q in qs] == [("q1", "B", f"{path}:2"), ("q2", "C", f"{path}:4")]


def _q(i: int, answer: str = "A"):
    from steel.eval import mc

    return mc.Question("s", f"问题{i}", (f"a{i}", f"b{i}", f"c{i}", f"d{i}"), answer, f"dev.csv:{i + 2}")


def test_more_shots_than_dev_examples_is_refused_not_silently_fewer():
    from steel.cli import UserError
    from steel.eval import mc

    dev = [_q(0), _q(1)]
    with pytest.raises(UserError, match="s: 3 shots asked but the dev split has 2 examples"):
        mc.build_prompt("ceval", "x", dev, _q(9), 3)
    assert mc.build_prompt("ceval", "x", dev, _q(9), 2).count("答案：A\n\n") == 2


def test_fit_shots_drops_the_earliest_examples_first():
    from steel.eval import mc

    dev = [_q(i) for i in range(4)]

    def make(examples, k):
        return [d.question for d in examples] + ["Q"]

    # each example costs 1 position, the question 1: a limit of 3 leaves room for 2 of the 3 asked
    prompt, k = mc.fit_shots(make, dev, 3, len, 3, _q(9))
    assert (prompt, k) == (["问题1", "问题2", "Q"], 2)  # dev[0] went, the two before the question stay
    assert mc.fit_shots(make, dev, 3, len, 4, _q(9)) == (["问题0", "问题1", "问题2", "Q"], 3)
    assert mc.fit_shots(make, dev, 3, len, 1, _q(9)) == (["Q"], 0)


def test_continuation_scoring_reads_context_plus_all_but_the_last_target_token(tmp_path):
    from tiny_models import build_byte_tokenizer

    from steel.eval import mc

    # merges make " A" and " B" one token, " C" and " D" stay two (a space, then the letter)
    tok = build_byte_tokenizer(tmp_path / "tok")
    prompt = "q\n答案："
    n = len(tok.encode(prompt, add_special_tokens=False))
    assert mc.scored_positions(tok, prompt, "letter", []) == n
    # " C": the model reads the context and " " to score "C": n + 1 positions, never n + 2
    assert mc.scored_positions(tok, prompt, "continuation", []) == n + 1
    assert mc.scored_positions(tok, prompt, "continuation", [7]) == n + 2  # a BOS before the text


def test_extract_answer_takes_the_last_plain_choice_and_quotes_only_without_letters():
    from steel.eval.mc import extract_answer

    # a plain choice (no "答案"), changed mid-reply: the last one is the answer
    assert extract_answer("我先选A，后来改选C") == "C"
    choices = ("北京", "上海", "广州", "深圳")
    # a reply naming two letters is ambiguous; quoting an option's text decides only where no letter is named
    assert extract_answer("可能是A或B，我觉得是北京", choices) is None
    assert extract_answer("我觉得是北京", choices) == "A"


def test_a_letter_of_several_tokens_is_refused_for_letter_scoring(tmp_path):
    from tiny_models import build_byte_tokenizer

    from steel.cli import UserError
    from steel.eval import mc

    tok = build_byte_tokenizer(tmp_path / "tok")
    assert mc.letter_token_ids(tok, "答案：") == [tok.convert_tokens_to_ids(c) for c in "ABCD"]
    # "甲" is three bytes, three tokens here: its first byte alone would score for it
    with pytest.raises(UserError, match="option letter '甲' after '答案：' is 3 tokens, letter scoring needs one"):
        mc.letter_token_ids(tok, "答案：", letters=("A", "甲"))


def test_perplexity_refuses_data_of_a_larger_vocabulary_and_lists_only_sources_with_data(tmp_path):
    from steel.cli import UserError

    model = build_tiny_llama(300)
    rng = np.random.default_rng(0)
    d = _data_dir(tmp_path / "big", {"a": rng.integers(0, 300, 40)}, 400)
    with pytest.raises(UserError, match=r"manifest.json: tokenizer vocab_size 400 exceeds the model's 300"):
        perplexity(model, d, 16, 2, advance=lambda n: None)
    # a source of one token predicts nothing: no data, so not "unscored" (that names sources --max-tokens left out)
    d = _data_dir(tmp_path / "one", {"a": rng.integers(0, 300, 40), "t": rng.integers(0, 300, 1)}, 300)
    res = perplexity(model, d, 16, 2, advance=lambda n: None)
    assert set(res["sources"]) == {"a"} and res["unscored_sources"] == []
    res = perplexity(model, d, 16, 2, max_tokens=1, advance=lambda n: None)
    assert set(res["sources"]) == {"a"} and res["tokens"] == 1
