"""An export whose model has rows past its tokenizer (Qwen's padding; tiny.yaml's 512 over the tiny tokenizer's
261 ids; a vocab_size set above a tokenizer of one's own) is safe under HF's own generate: loaded with
AutoModelForCausalLM + AutoTokenizer where Steel is not installed, `generate` never picks an id the tokenizer has
no text for, and the model's logits are still the source's.

Found in session 16: `steel generate` skips those ids (`test_s15f_vocab_past_tokenizer`), but HF's generate on the
exported directory sampled them (decode gave "" for them: replies with holes, or nothing). The export's
`generation_config.json` now lists them as single-token `bad_words_ids`.

The rows past the tokenizer are made likely (the output head's rows scaled up), and a control run of the same
generate with `bad_words_ids=None` must pick them, or the test would prove nothing.
"""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig

import torch

from steel.cli import main as steel_main

# In a fresh interpreter without steel (-I -S, the venv's site-packages added back by hand), as test_export's.
CHILD = r"""
import json, sys
sys.path.append(sys.argv[1])
try:
    import steel
    raise SystemExit("steel is importable in the child: the test would prove nothing")
except ModuleNotFoundError:
    pass
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
out, result = sys.argv[2], sys.argv[3]
model = AutoModelForCausalLM.from_pretrained(out, trust_remote_code=True).eval()
tok = AutoTokenizer.from_pretrained(out, trust_remote_code=True)
text = tok.apply_chat_template([{"role": "user", "content": "你好，Steel"}], add_generation_prompt=True, tokenize=False)
ids = tok.encode(text, add_special_tokens=False)
x = torch.tensor([ids])
with torch.no_grad():
    logits = model(input_ids=x).logits[0]
runs = {}
for how, extra in (("export's config", {}), ("bad_words_ids=None", {"bad_words_ids": None})):
    new = []
    for seed in range(4):
        torch.manual_seed(seed)
        out_ids = model.generate(x, attention_mask=torch.ones_like(x), max_new_tokens=24, min_new_tokens=24, **extra)
        new.append(out_ids[0, len(ids):].tolist())
    runs[how] = new
torch.save({"ids": ids, "logits": logits, "len": len(tok), "runs": runs,
            "decoded": [tok.decode(r) for r in runs["export's config"]]}, result)
"""


def test_hf_generate_on_an_export_picks_no_id_past_the_tokenizer(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    from steel.model import build_model, load_model_config

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    n = len(tok)
    cfg = load_model_config("tiny")
    assert cfg.vocab_size > n + 200  # rows past the tokenizer: the case under test
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    with torch.no_grad():  # rows without a token dominate the logits: sampling would mostly pick one
        model.get_output_embeddings().weight[n:] *= 20.0
    src = tmp_path / "src"
    model.save_pretrained(str(src))
    tok.save_pretrained(str(src))
    out = tmp_path / "export"
    assert steel_main(["export", str(src), str(out)]) == 0
    gen = json.loads((out / "generation_config.json").read_text(encoding="utf-8"))
    assert gen["bad_words_ids"] == [[i] for i in range(n, cfg.vocab_size)]

    result = tmp_path / "child.pt"
    proc = subprocess.run([sys.executable, "-I", "-S", "-c", CHILD, sysconfig.get_paths()["purelib"], str(out),
                           str(result)], capture_output=True, text=True, cwd=tmp_path, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = torch.load(result)
    assert child["len"] == n
    past = [[t for t in r if t >= n] for r in child["runs"]["bad_words_ids=None"]]
    assert sum(map(len, past)) > 24, past  # the control: unrestricted, HF's generate picks those rows
    for r in child["runs"]["export's config"]:
        assert len(r) == 24 and max(r) < n, r
    with torch.no_grad():  # the model's logits are the source's: only generate was told to skip the rows
        ref = model(input_ids=torch.tensor([child["ids"]])).logits[0]
    assert torch.equal(child["logits"], ref)
    assert child["logits"][:, n:].max() > child["logits"][:, :n].max()  # (the rows are still there, and likely)


def test_a_sources_own_bad_words_stay_and_an_earlier_exports_rows_are_replaced(tmp_path, tiny_llama_dir):
    """tiny_llama_dir's model has exactly its tokenizer's rows: nothing past them to skip. Of a list the source
    carries, its own entries stay; single ids past the tokenizer (an earlier export's, of another tokenizer) go."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    src = tmp_path / "src"
    tok = AutoTokenizer.from_pretrained(str(tiny_llama_dir))
    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir))
    assert model.config.vocab_size == len(tok)
    model.generation_config.bad_words_ids = [[3], [40, 41], [len(tok) - 1], [len(tok)], [len(tok) + 7]]
    model.save_pretrained(str(src))
    tok.save_pretrained(str(src))
    out = tmp_path / "export"
    assert steel_main(["export", str(src), str(out)]) == 0
    gen = json.loads((out / "generation_config.json").read_text(encoding="utf-8"))
    assert gen["bad_words_ids"] == [[3], [40, 41], [len(tok) - 1]]
