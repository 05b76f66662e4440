"""A checkpoint named by a short relative path (`--model step-4` from checkpoints/, `--model .` from inside
it) finds its run's tokenizer: the parents were taken textually, and `Path("step-4").parent.parent` is `.`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "eval"))
from tiny_models import build_byte_tokenizer  # noqa: E402

from steel.infer.load import _run_config, find_tokenizer_dir  # noqa: E402


@pytest.mark.parametrize("cwd, arg", [("checkpoints", "step-4"), ("checkpoints/step-4", ".")])
def test_relative_checkpoint_finds_the_run_tokenizer(tmp_path, monkeypatch, cwd, arg):
    run = tmp_path / "run"
    build_byte_tokenizer(run / "tokenizer")
    ckpt = run / "checkpoints" / "step-4"
    ckpt.mkdir(parents=True)
    (ckpt / "model_config.json").write_text("{}\n", encoding="utf-8")
    (run / "config.yaml").write_text("run_dir: run\n", encoding="utf-8")
    assert find_tokenizer_dir(ckpt, None) == run / "tokenizer"
    monkeypatch.chdir(run / cwd)
    assert Path(find_tokenizer_dir(Path(arg), None)).resolve() == (run / "tokenizer").resolve()
    # the run's config (for the data's tokenizer, when RUN/tokenizer is missing) is found the same way
    data, run_dir = _run_config(Path(arg))
    assert (data, run_dir.resolve()) == ({"run_dir": "run"}, run.resolve())
