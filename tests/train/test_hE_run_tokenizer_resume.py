"""RUN_DIR/tokenizer/ at a resume: a run made before `steel train` kept the data's tokenizer there gets it at its
next resume (checkpoints then find it from anywhere), and a resume refused for data of another tokenizer leaves
the run's copy as it was (its checkpoints were trained on those ids)."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))

from tiny_models import build_byte_tokenizer  # noqa: E402
from train_fixtures import make_data_dir, tiny_config  # noqa: E402

from steel.cli import main as steel_main  # noqa: E402
from steel.data.chunks import read_manifest, write_manifest  # noqa: E402
from steel.data.tokenize import dir_fingerprint  # noqa: E402
from steel.infer.load import find_tokenizer_dir  # noqa: E402


def _md5(p: Path) -> str:
    return hashlib.md5(p.read_bytes()).hexdigest()


def test_resume_keeps_or_restores_the_run_tokenizer(tmp_path, monkeypatch):
    tok = tmp_path / "tok"
    build_byte_tokenizer(tok)
    fp = dir_fingerprint(tok)
    data = make_data_dir(tmp_path / "data", [400, 300], fingerprint=fp)
    manifest = read_manifest(data)
    manifest["tokenizer"]["spec"] = str(tok)
    write_manifest(data, manifest)
    other = make_data_dir(tmp_path / "other", [300], seed=1, fingerprint="0" * 64)  # another tokenizer's ids
    run = tmp_path / "run"
    cfg = tiny_config(tmp_path, [data], max_steps=2, checkpoint={"every": 2, "keep": 10})
    monkeypatch.chdir(tmp_path)
    assert steel_main(["train", str(cfg)]) == 0
    shutil.rmtree(run / "tokenizer")  # as a run made before RUN_DIR/tokenizer/ was kept
    assert steel_main(["train", str(cfg), "--set", "max_steps=4"]) == 0
    assert dir_fingerprint(run / "tokenizer") == fp
    assert find_tokenizer_dir(run / "checkpoints" / "step-4", None) == run / "tokenizer"
    before = {p.name: _md5(p) for p in (run / "tokenizer").iterdir()}
    assert steel_main(["train", str(cfg), "--set", "max_steps=6", "--add-data", str(other)]) == 2
    assert {p.name: _md5(p) for p in (run / "tokenizer").iterdir()} == before
    assert not (run / "tokenizer.tmp").exists()
