"""An export of a model Steel trained from the start (never a BOS before its texts) keeps that fact when copied
away from its run: a `--stock` export is a plain LlamaForCausalLM, and `steel generate` on the copy put the
tokenizer's `<s>` first (the run it would have followed was gone). The exported tokenizer puts no `<s>` first,
so plain transformers (no steel) encode prompts as the model was trained, and steel_export.json records it.
A stock model's export keeps its tokenizer's BOS. References: greedy loops of plain forwards."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import sysconfig

import torch
from test_s11_eval_ppl_bos_lineage import _run
from tiny_models import BOS_PROMPT, build_metaspace_tokenizer, build_tiny_llama, greedy_text, steel_generate

from steel.cli import main as steel_main

PROMPT = BOS_PROMPT

# A fresh interpreter where `import steel` fails (see test_export.CHILD): the tokenizer's default encoding.
CHILD = r"""
import json, sys
sys.path.append(sys.argv[1])
try:
    import steel
    raise SystemExit("steel is importable in the child: the test would prove nothing")
except ModuleNotFoundError:
    pass
from transformers import AutoModelForCausalLM, AutoTokenizer
AutoModelForCausalLM.from_pretrained(sys.argv[2])
tok = AutoTokenizer.from_pretrained(sys.argv[2])
print(json.dumps({"ids": tok(sys.argv[3])["input_ids"], "plain": tok.encode(sys.argv[3], add_special_tokens=False)}))
"""


def _child(tmp_path, model_dir) -> dict:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHILD, sysconfig.get_paths()["purelib"], str(model_dir), PROMPT],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _steel_model(vocab: int, eos: int):
    from steel.model import SteelConfig, SteelForCausalLM

    cfg = SteelConfig(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, ffn_type="swiglu", attention_bias=False,
                      rope_theta=10000.0, eos_token_id=eos, tie_word_embeddings=False)
    torch.manual_seed(0)
    model = SteelForCausalLM(cfg).eval()
    with torch.no_grad():  # near-uniform logits at the default init: make the BOS change the greedy choice
        model.lm_head.weight.mul_(40)
    return model


def test_moved_stock_export_of_a_steel_run_gets_no_bos(tmp_path, capsys):
    tok_dir = tmp_path / "tok"
    tok = build_metaspace_tokenizer(tok_dir)
    assert tok(PROMPT)["input_ids"][0] == tok.bos_token_id  # the tokenizer does put <s> first
    model = _steel_model(len(tok), tok.eos_token_id)
    without, with_bos = greedy_text(model, tok, False), greedy_text(model, tok, True)
    assert without != with_bos  # the BOS changes the continuation

    pre = _run(tmp_path / "pre", model, tok_dir, {"model": {"config": "tiny"}, "data": {"dirs": []}})
    out = tmp_path / "hf"
    assert steel_main(["export", str(pre), str(out), "--stock"]) == 0
    assert "puts no <s> first" in capsys.readouterr().err
    assert json.loads((out / "config.json").read_text())["architectures"] == ["LlamaForCausalLM"]
    moved = tmp_path / "elsewhere" / "hf"
    shutil.move(str(out), str(moved))
    shutil.rmtree(pre)  # the run the export's record names is gone
    assert json.loads((moved / "steel_export.json").read_text())["trained_without_bos"] is True

    assert steel_generate(moved, capsys)[0] == without
    plain = tok.encode(PROMPT, add_special_tokens=False)
    assert _child(tmp_path, moved) == {"ids": plain, "plain": plain}  # plain transformers: no <s> either


def test_stock_model_export_keeps_its_bos(tmp_path, capsys):
    stock = tmp_path / "llama"  # a stock HF model: trained with its tokenizer's BOS
    tok = build_metaspace_tokenizer(stock)
    model = build_tiny_llama(len(tok))
    model.save_pretrained(str(stock))
    out = tmp_path / "hf"
    assert steel_main(["export", str(stock), str(out)]) == 0
    assert "<s>" not in capsys.readouterr().err
    assert json.loads((out / "steel_export.json").read_text())["trained_without_bos"] is False
    assert steel_generate(out, capsys)[0] == greedy_text(model, tok, True)
    plain = tok.encode(PROMPT, add_special_tokens=False)
    assert _child(tmp_path, out) == {"ids": [tok.bos_token_id, *plain], "plain": plain}
