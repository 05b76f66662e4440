"""A new user's chain through the CLI with a tokenizer of their own, as the README prints it (session 15, F):
`steel tokenizer train` -> `steel data prepare` (that tokenizer dir, text + ChatML chat, filters, dedup) ->
`steel train configs/train/tiny-cpu.yaml --set ...` stopped by SIGINT (a Ctrl-C) halfway and run again ->
`steel export` -> the export loaded by transformers alone in a fresh process.

Covered nowhere else as one piece: the trainer's SIGINT through the real CLI process (its exit status 0, the
checkpoint at the stopped step, the resume bit-identical to an uninterrupted run; the in-process SIGTERM test
calls `Trainer.train`), and an export of a `steel tokenizer train` tokenizer read without Steel."""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import torch

from steel.cli import main as steel_main

ROOT = Path(__file__).resolve().parents[2]
VOCAB = 420  # 256 bytes + merges + the 3 special tokens, last
EOS = VOCAB - 3
STEPS = 36


def _corpus(d: Path) -> None:
    """Text of our own: Chinese and English sentences from small word lists, and Alpaca-style chat records."""
    d.mkdir()
    zh_s, zh_v, zh_o = ["小明", "老师", "我们", "这位工程师", "那只猫"], ["喜欢", "看见", "写了", "打开", "带来"], \
        ["一本书", "新的程序", "窗户", "很多苹果", "一封信"]
    en_s, en_v, en_o = ["The miller", "A student", "Our team", "The old sailor", "My sister"], \
        ["reads", "builds", "paints", "carries", "finds"], ["a red boat", "the long letter", "two bright lamps",
                                                             "some fresh bread", "a quiet garden"]
    rng = random.Random(5)
    zh, en = [], []
    for _ in range(120):
        zh.append("".join(f"{rng.choice(zh_s)}{rng.choice(zh_v)}{rng.choice(zh_o)}。" for _ in range(8)))
        en.append(" ".join(f"{rng.choice(en_s)} {rng.choice(en_v)} {rng.choice(en_o)}." for _ in range(8)))
    zh.append(zh[0])  # an exact duplicate for dedup
    (d / "zh.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in zh), "utf-8")
    (d / "en.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in en), "utf-8")
    chat = [{"instruction": f"{zh_s[i % 5]}{zh_v[i % 5]}什么？", "input": "", "output": f"{zh_o[(i * 2) % 5]}，第{i}次。"}
            for i in range(60)]
    (d / "chat.json").write_text(json.dumps(chat, ensure_ascii=False), "utf-8")


def _env() -> dict:
    return dict(os.environ, OMP_NUM_THREADS="1", STEEL_NO_PROGRESS="1")


def _train(args: list[str], cwd: Path, stop_after_step: int | None = None) -> tuple[int, str]:
    """`steel train ARGS` in a process of its own; with `stop_after_step`, a Ctrl-C (SIGINT to its process group,
    as a terminal sends it) once metrics.jsonl has logged that step. Returns (exit status, output)."""
    p = subprocess.Popen([sys.executable, "-m", "steel", "train", *args], cwd=cwd, env=_env(), text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        if stop_after_step is not None:
            metrics = cwd / "run" / "metrics.jsonl"
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline and p.poll() is None:
                lines = metrics.read_text().splitlines() if metrics.exists() else []
                if lines and json.loads(lines[-1])["step"] >= stop_after_step:
                    os.killpg(p.pid, signal.SIGINT)
                    break
                time.sleep(0.01)
        out, _ = p.communicate(timeout=300)
    finally:
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()
    return p.returncode, out


def _losses(run: Path) -> dict[int, float]:
    return {r["step"]: r["loss"] for r in map(json.loads, (run / "metrics.jsonl").read_text().splitlines())}


HF_SIDE = r"""
import importlib.abc, json, sys
class NoSteel(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path, target=None):
        if name == "steel" or name.startswith("steel."):
            raise ImportError("no steel here")
sys.meta_path.insert(0, NoSteel())
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer
d, text = sys.argv[1], sys.argv[2]
model = AutoModelForCausalLM.from_pretrained(d, trust_remote_code=True)
tok = AutoTokenizer.from_pretrained(d, trust_remote_code=True)
ids = tok(text)["input_ids"]
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids])).logits[0]
gen = model.generate(torch.tensor([ids]), max_new_tokens=8, do_sample=False, repetition_penalty=3.0)
chat = tok.apply_chat_template([{"role": "user", "content": "你好"}], tokenize=False, add_generation_prompt=True)
torch.save({"ids": ids, "logits": logits, "gen": gen[0, len(ids):].tolist(), "chat": chat,
            "steel": sorted(m for m in sys.modules if m.split(".")[0] == "steel")}, sys.argv[3])
"""


def test_own_tokenizer_prepare_train_ctrl_c_resume_export(tmp_path):
    corpus, tok, data = tmp_path / "corpus", tmp_path / "tok", tmp_path / "data"
    _corpus(corpus)
    assert steel_main(["tokenizer", "train", "--input", str(corpus / "zh.jsonl"), str(corpus / "en.jsonl"),
                       "--vocab-size", str(VOCAB), "--out", str(tok)]) == 0
    filters = [{"name": "length", "min_chars": 8}, {"name": "repeated_lines", "kinds": ["text"]}]
    sources = [{"name": "zh", "path": ["zh.jsonl"]}, {"name": "en", "path": ["en.jsonl"]},
               {"name": "chat", "kind": "chat", "path": ["chat.json"]}]
    cfg = {"root": str(corpus), "tokenizer": str(tok), "workers": 1, "chunk_tokens": 4096, "filters": filters,
           "dedup": {"exact": True, "near": True}, "sources": sources}
    (tmp_path / "data.yaml").write_text(json.dumps(cfg, ensure_ascii=False), "utf-8")
    assert steel_main(["data", "prepare", str(tmp_path / "data.yaml"), "--out", str(data)]) == 0
    assert steel_main(["data", "inspect", str(data)]) == 0
    m = json.loads((data / "manifest.json").read_text())
    assert (m["tokenizer"]["vocab_size"], m["tokenizer"]["eos_id"]) == (VOCAB, EOS)
    assert m["sources"]["zh"]["filtered"]["dedup_exact"] == 1 and m["sources"]["chat"]["kept"] == 60

    # The README's CPU config, sized for this tokenizer as its quick start says.
    args = [str(ROOT / "configs/train/tiny-cpu.yaml"), "--set", "run_dir=run", "--set", f"data.dirs=[{data}]",
            "--set", f"max_steps={STEPS}", "--set", f"model.overrides.vocab_size={VOCAB}",
            "--set", f"model.overrides.eos_token_id={EOS}", "--set", "data.seq_len=32", "--set", "log.every=1",
            "--set", "log.tensorboard=false", "--set", "checkpoint.every=1000"]
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    rc, out = _train(args, tmp_path / "a")
    assert rc == 0, out[-3000:]
    rc, out = _train(args, tmp_path / "b", stop_after_step=STEPS // 3)
    assert rc == 0, out[-3000:]  # a Ctrl-C saves and exits 0
    stopped = int(out.split("SIGINT: checkpoint saved at step ")[1].split(",")[0])
    assert STEPS // 3 <= stopped < STEPS
    run = tmp_path / "b" / "run"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [f"step-{stopped}"]
    rc, out = _train(args, tmp_path / "b")  # the same command again resumes
    assert rc == 0, out[-3000:]
    assert f"resuming from run/checkpoints/step-{stopped}" in out
    assert _losses(run) == _losses(tmp_path / "a" / "run") and len(_losses(run)) == STEPS
    from safetensors.torch import load_file

    final = f"checkpoints/step-{STEPS}/model.safetensors"
    a, b = load_file(tmp_path / "a" / "run" / final), load_file(run / final)
    assert all(torch.equal(a[k], b[k]) for k in a)

    # Export, then transformers alone (no steel module importable) in a fresh process.
    hf = tmp_path / "hf"
    assert steel_main(["export", str(run), str(hf)]) == 0
    text = "小明喜欢一本书。The miller reads a red boat."
    script = tmp_path / "hf_side.py"
    script.write_text(HF_SIDE, "utf-8")
    r = subprocess.run([sys.executable, "-I", str(script), str(hf), text, str(tmp_path / "hf.pt")], cwd=tmp_path,
                       env=_env(), capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    got = torch.load(tmp_path / "hf.pt")
    assert got["steel"] == []

    from steel.infer.generate import SamplingOptions, generate_ids, model_stop_ids
    from steel.infer.load import load_model, load_tokenizer

    model, stok = load_model(run), load_tokenizer(run)
    ids = stok.encode(text)
    assert got["ids"] == ids and max(ids) < EOS
    with torch.no_grad():
        assert torch.equal(got["logits"], model(input_ids=torch.tensor([ids])).logits[0])
    opts = SamplingOptions(max_new_tokens=8, temperature=0.0, repetition_penalty=3.0)
    mine = list(generate_ids(model, ids, opts, model_stop_ids(model, stok)))
    assert got["gen"][: len(mine)] == mine and len(set(mine)) > 1
    assert got["chat"] == "<|im_start|>user\n你好<|im_end|>\n<|im_start|>assistant\n"
