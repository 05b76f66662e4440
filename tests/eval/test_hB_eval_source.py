"""`steel eval mc|ppl --model RUN_DIR` record the checkpoint and step they scored (a run dir names none,
and its newest checkpoint changes while training goes on)."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import numpy as np
import pytest
from test_mc import make_ceval_dir
from test_ppl_contamination import _data_dir

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "infer"))
from run_dirs import make_two_step_run, save_during_load  # noqa: E402

from steel.cli import main as steel_main  # noqa: E402


@pytest.fixture
def run_dir(tmp_path, tiny_tokenizer_dir) -> Path:
    return make_two_step_run(tmp_path / "run", tiny_tokenizer_dir)


def _mc(model, bench: Path, out: Path) -> list[str]:
    return ["eval", "mc", "--model", str(model), "--task", "ceval", "--data", str(bench), "--shots", "0",
            "--limit", "2", "--subjects", "computer_network", "--device", "cpu", "--out", str(out)]


def _ppl(model, data: Path, out: Path) -> list[str]:
    return ["eval", "ppl", "--model", str(model), "--data", str(data), "--seq-len", "16", "--device", "cpu",
            "--out", str(out)]


def _data(tmp_path) -> Path:
    return _data_dir(tmp_path / "data", {"a": np.arange(40) % 250}, 261)


@pytest.mark.parametrize("command", ["mc", "ppl"])
def test_result_names_checkpoint_and_step(tmp_path, run_dir, tiny_llama_dir, command):
    out = tmp_path / "r.json"
    argv = _mc if command == "mc" else _ppl
    where = make_ceval_dir(tmp_path / "ceval") if command == "mc" else _data(tmp_path)
    assert steel_main(argv(run_dir, where, out)) == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    assert (r["model"], r["checkpoint"], r["step"]) == (str(run_dir), str(run_dir / "checkpoints" / "step-5"), 5)
    if command == "mc":  # the table beside the JSON names them too
        head = out.with_suffix(".md").read_text(encoding="utf-8")
        assert f"Model: `{run_dir}` (checkpoint `{run_dir / 'checkpoints' / 'step-5'}`, step 5); " in head
    ckpt = run_dir / "checkpoints" / "step-2"  # one checkpoint dir: itself
    assert steel_main(argv(ckpt, where, out)) == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    assert (r["model"], r["checkpoint"], r["step"]) == (str(ckpt), str(ckpt), 2)
    assert steel_main(argv(tiny_llama_dir, where, out)) == 0  # an HF directory has no step
    r = json.loads(out.read_text(encoding="utf-8"))
    assert (r["model"], r["checkpoint"], r["step"]) == (str(tiny_llama_dir), None, None)


@pytest.mark.parametrize("command", ["mc", "ppl"])
def test_recorded_step_is_the_one_loaded_while_training_saves(tmp_path, run_dir, monkeypatch, command):
    # Training writes step-9 between the command's look at the run and the weights' load: the record must
    # name the weights that were scored, not what the run dir holds later.
    loaded = save_during_load(monkeypatch, run_dir)
    out = tmp_path / "r.json"
    argv = _mc if command == "mc" else _ppl
    where = make_ceval_dir(tmp_path / "ceval") if command == "mc" else _data(tmp_path)
    assert steel_main(argv(run_dir, where, out)) == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    assert loaded == [run_dir / "checkpoints" / "step-5"]
    assert (r["checkpoint"], r["step"]) == (str(loaded[0]), 5)


def test_recorded_checkpoint_holds_the_scored_weights(tmp_path, run_dir):
    # The ppl of the run dir is that of its step-5 weights, computed from them independently.
    from steel.eval.ppl import perplexity
    from steel.infer.load import model_from_checkpoint

    data, out = _data(tmp_path), tmp_path / "r.json"
    assert steel_main(_ppl(run_dir, data, out)) == 0
    r = json.loads(out.read_text(encoding="utf-8"))
    want = perplexity(model_from_checkpoint(Path(r["checkpoint"])).eval(), data, 16, 4, None)
    other = perplexity(model_from_checkpoint(run_dir / "checkpoints" / "step-2").eval(), data, 16, 4, None)
    assert r["nll"] == want["nll"] != other["nll"]


@pytest.mark.parametrize("command", ["mc", "ppl"])
def test_an_export_records_the_checkpoint_it_was_exported_from(tmp_path, run_dir, command):
    # An export's step is in its steel_export.json only: eval of the export recorded checkpoint/step null, and an
    # export of the export lost it too.
    hf, hf2 = tmp_path / "hf", tmp_path / "hf2"
    assert steel_main(["export", str(run_dir), str(hf)]) == 0
    assert steel_main(["export", str(hf), str(hf2)]) == 0
    origin = {"checkpoint": os.path.abspath(run_dir / "checkpoints" / "step-5"), "step": 5}
    rec2 = json.loads((hf2 / "steel_export.json").read_text(encoding="utf-8"))
    assert (rec2["checkpoint"], rec2["exported_from"]) == (None, origin)
    out = tmp_path / "r.json"
    argv = _mc if command == "mc" else _ppl
    where = make_ceval_dir(tmp_path / "ceval") if command == "mc" else _data(tmp_path)
    for model in (hf, hf2):
        assert steel_main(argv(model, where, out)) == 0
        r = json.loads(out.read_text(encoding="utf-8"))
        assert (r["checkpoint"], r["step"], r["exported_from"]) == (None, None, origin)
    if command == "mc":
        head = out.with_suffix(".md").read_text(encoding="utf-8")
        assert f"Model: `{hf2}` (exported from checkpoint `{origin['checkpoint']}`, step 5); " in head
