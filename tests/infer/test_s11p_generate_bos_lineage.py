"""Plain `steel generate` continues a prompt without the BOS the tokenizer adds when the model was trained by
Steel from the start (prepared chunks hold none, so `<s>` at position 0 is an untrained embedding row), as
`eval ppl` and `eval mc` score it; a stock model keeps the BOS. Checked against a greedy loop of plain
forwards over the prompt's ids, with and without the BOS."""

from __future__ import annotations

import torch
from test_s11_eval_ppl_bos_lineage import _run
from tiny_models import build_metaspace_tokenizer, build_tiny_llama

from steel.cli import main as steel_main

PROMPT = "以下是中国关于考试的单项选择题"


@torch.no_grad()
def _greedy(model, tok, bos: bool, n: int = 6) -> str:
    ids = ([tok.bos_token_id] if bos else []) + tok.encode(PROMPT, add_special_tokens=False)
    new = []
    for _ in range(n):
        nxt = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
        if nxt == tok.eos_token_id:
            break
        new.append(nxt)
    return tok.decode(new, skip_special_tokens=True)


def _generate(model_dir, capsys) -> tuple[str, str]:
    capsys.readouterr()
    assert steel_main(["generate", "--model", str(model_dir), "--prompt", PROMPT, "--temperature", "0",
                       "--max-new-tokens", "6", "--device", "cpu"]) == 0
    got = capsys.readouterr()
    return got.out.removesuffix("\n"), got.err


def test_steel_trained_run_continues_without_bos_a_stock_model_with_it(tmp_path, capsys):
    tok_dir = tmp_path / "tok"
    tok = build_metaspace_tokenizer(tok_dir)
    assert tok("甲")["input_ids"][0] == tok.bos_token_id  # the tokenizer does put <s> first
    model = build_tiny_llama(len(tok))
    without, with_bos = _greedy(model, tok, False), _greedy(model, tok, True)
    assert without != with_bos  # the BOS changes the continuation

    pre = _run(tmp_path / "pre", model, tok_dir, {"model": {"config": "tiny"}, "data": {"dirs": []}})
    out, err = _generate(pre, capsys)
    assert out == without
    assert err.count("steel generate: no <s> before the prompt") == 1

    stock = tmp_path / "llama"
    build_metaspace_tokenizer(stock)
    model.save_pretrained(str(stock))
    out, err = _generate(stock, capsys)
    assert out == with_bos
    assert "no <s>" not in err
