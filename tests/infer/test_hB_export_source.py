"""`steel export RUN_DIR` says which checkpoint it exported (`steel_export.json` in OUT and the line it
prints), and OUT stays a plain HF directory; STEEL_NO_PROGRESS silences transformers' own bars ("Loading
weights", "Writing model shards") in Steel's load and export paths, as it does Steel's."""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from run_dirs import make_two_step_run, save_during_load  # noqa: E402

from steel.cli import main as steel_main  # noqa: E402


@pytest.fixture
def run_dir(tmp_path, tiny_tokenizer_dir) -> Path:
    return make_two_step_run(tmp_path / "run", tiny_tokenizer_dir)


def test_export_records_the_checkpoint_it_exported(tmp_path, run_dir, capsys):
    from transformers import AutoModelForCausalLM

    out = tmp_path / "hf"
    assert steel_main(["export", str(run_dir), str(out)]) == 0
    ckpt = run_dir / "checkpoints" / "step-5"
    assert f"(checkpoint {os.path.abspath(ckpt)}, step 5)" in capsys.readouterr().out
    source = json.loads((out / "steel_export.json").read_text(encoding="utf-8"))
    assert {k: source[k] for k in ("source", "checkpoint", "step")} == {
        "source": os.path.abspath(run_dir), "checkpoint": os.path.abspath(ckpt), "step": 5}
    # The weights are that checkpoint's, and OUT still loads as a plain HF directory.
    want, got = load_file(ckpt / "model.safetensors"), load_file(out / "model.safetensors")
    assert want.keys() == got.keys() and all(torch.equal(want[k], got[k]) for k in want)
    model = AutoModelForCausalLM.from_pretrained(str(out), trust_remote_code=True)
    assert torch.equal(model.lm_head.weight, want["lm_head.weight"])


def test_export_of_an_hf_directory_has_no_step(tmp_path, tiny_llama_dir):
    out = tmp_path / "hf"
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    source = json.loads((out / "steel_export.json").read_text(encoding="utf-8"))
    assert (source["source"], source["checkpoint"], source["step"]) == (str(tiny_llama_dir), None, None)


def test_export_records_the_step_it_loaded_while_training_saves(tmp_path, run_dir, monkeypatch):
    loaded = save_during_load(monkeypatch, run_dir)
    out = tmp_path / "hf"
    assert steel_main(["export", str(run_dir), str(out)]) == 0
    source = json.loads((out / "steel_export.json").read_text(encoding="utf-8"))
    assert loaded == [run_dir / "checkpoints" / "step-5"]
    assert (source["checkpoint"], source["step"]) == (os.path.abspath(loaded[0]), 5)


@pytest.fixture
def hf_bars(monkeypatch):
    """transformers' progress bars on during the test, as they were after it (quiet_hf_progress_bars turns
    them off for the rest of a process: a command's, not the test session's), and stderr taken for a terminal
    (captured, it is not one, which also turns them off)."""
    from transformers.utils import logging as hf_logging

    from steel.runlog import console

    monkeypatch.setattr(console, "_force_terminal", True)
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()  # on, whatever an earlier test of this process did
    yield
    if not was:
        hf_logging.disable_progress_bar()


@pytest.mark.parametrize("quiet", [False, True])
def test_steel_no_progress_silences_transformers_bars(tmp_path, tiny_llama_dir, monkeypatch, capfd, hf_bars, quiet):
    if quiet:
        monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    else:
        monkeypatch.delenv("STEEL_NO_PROGRESS", raising=False)
    from steel.infer.load import load_model

    load_model(tiny_llama_dir)
    assert steel_main(["export", str(tiny_llama_dir), str(tmp_path / "hf")]) == 0
    err = capfd.readouterr().err
    # Without the variable transformers shows them (the test's control: the bars exist on these paths).
    for bar in ("Loading weights", "Writing model shards"):
        assert (bar in err) is not quiet, err


@pytest.mark.parametrize("quiet", [False, True])
def test_steel_no_progress_silences_transformers_bars_in_every_command(tiny_llama_dir, monkeypatch, capfd, hf_bars,
                                                                       quiet):
    # `steel model check-causal HF_DIR` loads with from_pretrained outside steel.infer.load: the variable is
    # honoured by the CLI itself, for every command.
    if quiet:
        monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    else:
        monkeypatch.delenv("STEEL_NO_PROGRESS", raising=False)
    assert steel_main(["model", "check-causal", str(tiny_llama_dir), "--seq-len", "8", "--positions", "2"]) == 0
    err = capfd.readouterr().err
    assert ("Loading weights" in err) is not quiet, err


def test_steel_no_progress_without_transformers_imported_sets_the_hub_variable(tmp_path):
    # A command that needs no transformers (steel data inspect) does not import it (0.65 s) to silence its bars:
    # HF_HUB_DISABLE_PROGRESS_BARS, which transformers and huggingface_hub read at import, does.
    import subprocess
    import sys

    code = ("import os, sys\nfrom steel.cli import main\nmain(['data', 'inspect', sys.argv[1]])\n"
            "print('transformers' in sys.modules, os.environ.get('HF_HUB_DISABLE_PROGRESS_BARS'))\n"
            "from transformers.utils import logging\nprint(logging.is_progress_bar_enabled())\n")
    env = {k: v for k, v in os.environ.items() if k != "HF_HUB_DISABLE_PROGRESS_BARS"} | {"STEEL_NO_PROGRESS": "1"}
    out = subprocess.run([sys.executable, "-c", code, str(tmp_path / "none")], env=env, capture_output=True, text=True,
                         timeout=120).stdout.split()
    assert out == ["False", "1", "False"], out


def test_transformers_bars_are_off_when_stderr_is_not_a_terminal(tmp_path, tiny_llama_dir, monkeypatch, capfd,
                                                                  hf_bars):
    # as Steel's own bars: a log (`make demo 2>&1 | tee`) got "Writing model shards: 100%|...|" lines
    monkeypatch.delenv("STEEL_NO_PROGRESS", raising=False)
    from steel.runlog import console

    monkeypatch.setattr(console, "_force_terminal", False)
    assert steel_main(["export", str(tiny_llama_dir), str(tmp_path / "hf")]) == 0
    err = capfd.readouterr().err
    for bar in ("Loading weights", "Writing model shards"):
        assert bar not in err, err
