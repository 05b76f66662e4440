"""`eval mc` (logprob) leaves out the BOS the tokenizer adds for a model Steel trained from the start: it read
prepared chunks and SFT rows, which never hold one, so `<s>` at position 0 (an untrained embedding row) put its
scores on inputs unlike its training's. A stock model keeps the BOS, as C-Eval's and CMMLU's scripts score it.
The scores are checked against a plain forward of the prompt's ids, with and without the BOS."""

from __future__ import annotations

import json

import pytest
import torch
from test_mc import make_ceval_dir
from test_s11_eval_ppl_bos_lineage import _run
from tiny_models import build_metaspace_tokenizer, build_tiny_llama

from steel.cli import main as steel_main
from steel.eval import mc


def _mc(tmp_path, model_dir, root, scoring) -> tuple[dict, list[dict]]:
    out = tmp_path / f"mc-{scoring}.json"
    assert steel_main(["eval", "mc", "--model", str(model_dir), "--task", "ceval", "--data", str(root),
                       "--shots", "0", "--limit", "2", "--scoring", scoring, "--batch-size", "1",
                       "--device", "cpu", "--out", str(out)]) == 0
    rows = [json.loads(line) for line in out.with_suffix(".questions.jsonl").read_text().splitlines()]
    return json.loads(out.read_text()), rows


@torch.no_grad()
def _reference(model, tok, root, scoring, bos: bool) -> list[list[float]]:
    """Each question's four scores from one forward of [BOS] + prompt (+ the continuation but its last token)."""
    opts = mc.McOptions(task="ceval", data=root, shots=0, limit=2)
    questions, _dev, table = mc.load_benchmark(opts)
    start = [tok.bos_token_id] if bos else []
    out = []
    for s in questions:
        for q in questions[s]:
            prompt = mc.build_prompt("ceval", table[s].name_zh, [], q, 0)
            ctx = start + tok.encode(prompt, add_special_tokens=False)
            row = []
            for letter in "ABCD":
                if scoring == "letter":  # the letter's own token after the prompt's last line "答案："
                    tail = prompt[prompt.rfind("\n") + 1 :]
                    target = tok.encode(tail + letter, add_special_tokens=False)[-1:]
                    logits = model(torch.tensor([ctx])).logits[0, -1]
                    row.append(float(logits[target[0]]))
                else:  # log P(" X" | prompt)
                    plain = tok.encode(prompt, add_special_tokens=False)
                    target = tok.encode(prompt + " " + letter, add_special_tokens=False)[len(plain) :]
                    logp = torch.log_softmax(model(torch.tensor([ctx + target[:-1]])).logits[0], -1)
                    row.append(float(logp[-len(target) :].gather(-1, torch.tensor(target)[:, None]).sum()))
            out.append(row)
    return out


@pytest.mark.parametrize("scoring", ["letter", "continuation"])
def test_steel_trained_run_is_scored_without_bos_a_stock_model_with_it(tmp_path, capsys, scoring):
    root = make_ceval_dir(tmp_path / "ceval")
    tok_dir = tmp_path / "tok"
    tok = build_metaspace_tokenizer(tok_dir)
    assert tok("甲")["input_ids"][0] == tok.bos_token_id  # the tokenizer does put <s> first
    model = build_tiny_llama(len(tok))
    without, with_bos = (_reference(model, tok, root, scoring, b) for b in (False, True))
    assert all(abs(a - b) > 1e-4 for r, w in zip(without, with_bos) for a, b in zip(r, w))  # the BOS matters

    pre = _run(tmp_path / "pre", model, tok_dir, {"model": {"config": "tiny"}, "data": {"dirs": []}})
    capsys.readouterr()
    res, rows = _mc(tmp_path / "a", pre, root, scoring)
    torch.testing.assert_close(torch.tensor([r["raw"] for r in rows]), torch.tensor(without))
    assert res["bos"] is False
    assert capsys.readouterr().err.count("steel eval mc: no <s> before the prompt") == 1

    sft = _run(tmp_path / "sft", model, tok_dir, {"init": str(pre)})  # SFT of a Steel run: still none
    res, rows = _mc(tmp_path / "b", sft, root, scoring)
    torch.testing.assert_close(torch.tensor([r["raw"] for r in rows]), torch.tensor(without))
    assert res["bos"] is False

    stock = tmp_path / "llama"  # the same weights as a stock HF model: trained with its tokenizer's BOS
    build_metaspace_tokenizer(stock)
    model.save_pretrained(str(stock))
    capsys.readouterr()
    res, rows = _mc(tmp_path / "c", stock, root, scoring)
    torch.testing.assert_close(torch.tensor([r["raw"] for r in rows]), torch.tensor(with_bos))
    assert res["bos"] is True
    assert "no <s>" not in capsys.readouterr().err
