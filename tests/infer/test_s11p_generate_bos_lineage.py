"""Plain `steel generate` continues a prompt without the BOS the tokenizer adds when the model was trained by
Steel from the start (prepared chunks hold none, so `<s>` at position 0 is an untrained embedding row), as
`eval ppl` and `eval mc` score it; a stock model keeps the BOS. Checked against a greedy loop of plain
forwards over the prompt's ids, with and without the BOS."""

from __future__ import annotations

from test_s11_eval_ppl_bos_lineage import _run
from tiny_models import build_metaspace_tokenizer, build_tiny_llama, greedy_text, steel_generate


def test_steel_trained_run_continues_without_bos_a_stock_model_with_it(tmp_path, capsys):
    tok_dir = tmp_path / "tok"
    tok = build_metaspace_tokenizer(tok_dir)
    assert tok("甲")["input_ids"][0] == tok.bos_token_id  # the tokenizer does put <s> first
    model = build_tiny_llama(len(tok))
    without, with_bos = greedy_text(model, tok, False), greedy_text(model, tok, True)
    assert without != with_bos  # the BOS changes the continuation

    pre = _run(tmp_path / "pre", model, tok_dir, {"model": {"config": "tiny"}, "data": {"dirs": []}})
    out, err = steel_generate(pre, capsys)
    assert out == without
    assert err.count("steel generate: no <s> before the prompt") == 1

    stock = tmp_path / "llama"
    build_metaspace_tokenizer(stock)
    model.save_pretrained(str(stock))
    out, err = steel_generate(stock, capsys)
    assert out == with_bos
    assert "no <s>" not in err
