"""A pretraining run finds its tokenizer from anywhere: `steel train` keeps a copy in RUN_DIR/tokenizer/.

The usual layout `run_dir: /scratch/runs/x` (absolute) with `data.dirs: [data/zh]` prepared with
`tokenizer: tok` (relative): generate/chat/eval/export/sft from any other working directory, or after the
run was copied to another machine, said `no tokenizer files found` (the training directory is
recoverable only from a relative run_dir, and the data may not travel with the run).
"""

from __future__ import annotations

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


def test_run_keeps_its_data_tokenizer(tmp_path, monkeypatch):
    proj = tmp_path / "proj"
    tok = proj / "tok"
    build_byte_tokenizer(tok)
    fp = dir_fingerprint(tok)
    data = make_data_dir(proj / "data", [400, 300], fingerprint=fp)
    manifest = read_manifest(data)
    manifest["tokenizer"]["spec"] = "tok"  # `tokenizer: tok`, relative to where prepare ran
    write_manifest(data, manifest)
    run = tmp_path / "scratch" / "run"  # an absolute run_dir
    cfg = tiny_config(proj, [Path("data")], run_dir=str(run), max_steps=2)
    monkeypatch.chdir(proj)
    assert steel_main(["train", str(cfg)]) == 0
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    for path in (run, run / "checkpoints" / "step-2"):
        assert dir_fingerprint(find_tokenizer_dir(path, None)) == fp
    # The run moved to a machine without the data or the tokenizer.
    moved = tmp_path / "laptop" / "run"
    shutil.copytree(run, moved)
    shutil.rmtree(proj)
    assert dir_fingerprint(find_tokenizer_dir(moved, None)) == fp
