"""`eval ppl`'s BOS warning is for a model trained with the BOS its tokenizer adds (a stock Llama): a model Steel
trained from the start (a pretraining run, SFT of one, an export of either) read prepared chunks and SFT rows,
which never hold a BOS, so windows without one are what it was trained on: no warning, whatever the tokenizer.
SFT of a stock HF init keeps the warning (its pretraining had the BOS)."""

from __future__ import annotations

import json
import shutil

import yaml
from test_sE_ppl_bos_warning import _ppl
from tiny_models import build_metaspace_tokenizer, build_tiny_llama

from steel.cli import main as steel_main


def _bos_warnings(tmp_path, model_dir, tok_dir, vocab) -> list[str]:
    tokens, seen = _ppl(tmp_path, tok_dir, model_dir, vocab)
    assert tokens == 15 + 15 + 7  # the warning or its absence changes no figure
    return [w for w in seen if "before a text" in w]


def _run(run_dir, model, tok_dir, config: dict):
    """A run dir as the trainer/SFT leave it: config.yaml, checkpoints/step-3/, tokenizer/."""
    from safetensors.torch import save_file

    text = yaml.safe_dump({"run_dir": str(run_dir), **config})
    ckpt = run_dir / "checkpoints" / "step-3"
    ckpt.mkdir(parents=True)
    (run_dir / "config.yaml").write_text(text, encoding="utf-8")
    (ckpt / "config.yaml").write_text(text, encoding="utf-8")
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(ckpt / "model.safetensors"))
    (ckpt / "model_config.json").write_text(json.dumps(model.config.to_dict()), encoding="utf-8")
    (ckpt / "train_state.json").write_text(json.dumps({"step": 3}), encoding="utf-8")
    shutil.copytree(tok_dir, run_dir / "tokenizer")
    return run_dir


def test_steel_pretrained_run_sft_and_export_are_not_warned(tmp_path):
    tok_dir = tmp_path / "tok"
    tok = build_metaspace_tokenizer(tok_dir)
    assert tok("甲")["input_ids"][0] == tok.bos_token_id  # the tokenizer does put <s> first
    model = build_tiny_llama(len(tok))
    pre = _run(tmp_path / "pre", model, tok_dir, {"model": {"config": "tiny"}, "data": {"dirs": []}})
    assert _bos_warnings(tmp_path / "a", pre, tok_dir, len(tok)) == []
    sft = _run(tmp_path / "sft", model, tok_dir, {"init": str(pre)})
    assert _bos_warnings(tmp_path / "b", sft, tok_dir, len(tok)) == []
    assert steel_main(["export", str(sft), str(tmp_path / "hf")]) == 0
    assert _bos_warnings(tmp_path / "c", tmp_path / "hf", tok_dir, len(tok)) == []


def test_sft_of_a_stock_init_and_the_stock_model_are_warned(tmp_path):
    stock = tmp_path / "llama"
    tok = build_metaspace_tokenizer(stock)
    model = build_tiny_llama(len(tok))
    model.save_pretrained(str(stock))
    sft = _run(tmp_path / "sft", model, stock, {"init": str(stock)})
    assert len(_bos_warnings(tmp_path / "a", sft, stock, len(tok))) == 1
    assert len(_bos_warnings(tmp_path / "b", stock, stock, len(tok))) == 1
    assert steel_main(["export", str(sft), str(tmp_path / "hf")]) == 0  # its provenance leads to the stock init
    assert len(_bos_warnings(tmp_path / "c", tmp_path / "hf", stock, len(tok))) == 1
