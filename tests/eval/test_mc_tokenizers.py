"""`steel eval mc` with a SentencePiece-style tokenizer (Llama-2, Mistral, Yi, Baichuan): the letters are
the tokens the model sees after "答案：" ("A", not "▁A"), and prompts start with the BOS the tokenizer
puts before a text by default (as CMMLU's `tokenizer(prompt)` does); Qwen's tokenizer is unchanged."""

from __future__ import annotations

import pytest
import torch
from test_mc import VAL_ANSWERS, _biased_model, make_ceval_dir
from tiny_models import build_metaspace_tokenizer, build_tiny_llama

from steel.cli import UserError
from steel.eval import mc


def test_letter_ids_are_the_tokens_after_the_answer_cue():
    tok = build_metaspace_tokenizer()
    in_context = tok.convert_tokens_to_ids(list("ABCD"))  # "答案：A" ends in the piece "A"
    alone = tok.convert_tokens_to_ids(["▁A", "▁B", "▁C", "▁D"])  # what encode("A") gives
    assert tok.encode("A", add_special_tokens=False) == [alone[0]]
    assert mc.letter_token_ids(tok, "答案：") == in_context
    assert mc.letter_token_ids(tok, "答案是：") == in_context


def test_letter_that_merges_with_the_cue_is_an_error():
    tok = build_metaspace_tokenizer(extra=("：A",))
    with pytest.raises(UserError, match=r"option letter 'A' merges with the prompt's end '答案：'"):
        mc.letter_token_ids(tok, "答案：")


def test_special_prefix_is_what_the_tokenizer_puts_before_a_text():
    bos = 1
    assert mc.special_prefix(build_metaspace_tokenizer()) == [bos]
    assert mc.special_prefix(build_metaspace_tokenizer(eos=True)) == [bos]  # an appended EOS is left out
    tok = build_metaspace_tokenizer()
    prompt = mc.build_prompt("ceval", "计算机网络", [], mc.Question("s", "问题", tuple("甲乙丙丁"), "A", "-"), 0)
    assert mc.encode_prompt(tok, prompt) == tok(prompt)["input_ids"]
    # Positions read: the prompt with its BOS (letter), plus " A" minus its last token (continuation).
    assert mc.scored_positions(tok, prompt, "letter") == len(tok(prompt)["input_ids"])
    ctx, target = mc.continuation_tokens(tok, prompt, " A")
    assert ctx == tok(prompt)["input_ids"] and target == [tok.convert_tokens_to_ids("▁A")]


def test_sentencepiece_letter_scoring_reads_the_in_context_letter(tmp_path):
    tok = build_metaspace_tokenizer()
    # The model always favours the piece "C" (what follows "答案：" when the answer is C); "▁C" gets nothing.
    model = _biased_model(len(tok), {tok.convert_tokens_to_ids("C"): 10.0})
    opts = mc.McOptions(task="ceval", data=make_ceval_dir(tmp_path / "ceval"), shots=1, batch_size=4)
    res = mc.run_mc(model, tok, opts)
    # Predicting C everywhere scores the share of C answers (3/6 and 1/4); the "▁A".."▁D" logits were
    # all tied, so every prediction was A (the share of A answers, 1/6 and 1/4).
    assert [d["pred"] for d in opts.details] == ["C"] * 10
    assert res["subjects"]["computer_network"]["correct"] == VAL_ANSWERS["computer_network"].count("C") == 3
    assert res["subjects"]["high_school_history"]["correct"] == 1


def test_prompts_start_with_bos_as_the_tokenizer_does(tmp_path):
    tok = build_metaspace_tokenizer()
    root = make_ceval_dir(tmp_path / "ceval")
    model = build_tiny_llama(len(tok))
    opts = mc.McOptions(task="ceval", data=root, shots=1, batch_size=3)
    mc.run_mc(model, tok, opts)
    qs, dev, table = mc.load_benchmark(opts)
    letters = tok.convert_tokens_to_ids(list("ABCD"))
    flat = [(s, q) for s in qs for q in qs[s]]
    for (s, q), d in zip(flat, opts.details):
        # Reference: CMMLU's way, `tokenizer(prompt)` (BOS included), one unpadded forward.
        ids = tok(mc.build_prompt("ceval", table[s].name_zh, dev[s][:1], q, 1))["input_ids"]
        assert ids[0] == tok.bos_token_id
        with torch.no_grad():
            want = model(torch.tensor([ids])).logits[0, -1, letters].float()
        # NOTE: fp32; padding changes the reduction order of attention only (masked keys), ~1e-6 relative.
        torch.testing.assert_close(torch.tensor(d["raw"]), want, rtol=1e-4, atol=1e-4)


def test_bos_counts_in_the_context_limit(tmp_path, position_log):
    tok = build_metaspace_tokenizer()
    root = make_ceval_dir(tmp_path / "ceval")
    opts = mc.McOptions(task="ceval", data=root, shots=2, batch_size=4)
    qs, dev, table = mc.load_benchmark(opts)
    flat = [(s, q) for s in qs for q in qs[s]]
    need = [len(tok(mc.build_prompt("ceval", table[s].name_zh, dev[s][:2], q, 2))["input_ids"]) for s, q in flat]
    limit = max(need) - 1  # the longest 2-shot prompts need one position more, counting their BOS
    mc.run_mc(build_tiny_llama(len(tok), max_positions=limit), tok, opts)
    assert [d["shots"] for d in opts.details] == [2 if n <= limit else 1 for n in need]
    assert any(n > limit for n in need) and max(position_log) < limit


def test_qwen_tokenizer_unchanged(qwen_tokenizer_dir):
    """Qwen's tokenizer adds no BOS and "A" is the same token alone and after "答案：": nothing changes."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(qwen_tokenizer_dir))
    assert mc.special_prefix(tok) == []
    alone = [tok.encode(L, add_special_tokens=False)[0] for L in "ABCD"]
    assert alone == [32, 33, 34, 35]  # Qwen's ids of "A".."D"
    assert mc.letter_token_ids(tok, "答案：") == alone and mc.letter_token_ids(tok, "答案是：") == alone
