"""Bench scripts refuse options they do not have instead of ignoring them: loader_throughput.py and
trainer_overhead.py took no arguments at all (`--help` started the benchmark, writing 512 MiB for the loader),
and model_causality.py's `--variants` with a name not in its list trained nothing and wrote an empty table
over --out."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest
import torch

BENCH = Path(__file__).resolve().parents[2] / "bench"


class BenchmarkStarted(Exception):
    pass


def load(script: str):
    spec = importlib.util.spec_from_file_location(script.removesuffix(".py"), BENCH / script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def started(*a, **kw):
    raise BenchmarkStarted


@pytest.fixture(autouse=True)
def keep_threads():
    n = torch.get_num_threads()  # the scripts set one thread for the process
    yield
    torch.set_num_threads(n)


@pytest.mark.parametrize("script, entry, first_step, first_line", [
    ("loader_throughput.py", "main", "write_chunk", "Tokens/s the pretraining loader delivers"),
    ("trainer_overhead.py", "main_", "make", "Tokens/s of `steel train`'s Trainer"),
])
def test_no_option_scripts_answer_help_and_refuse_flags(monkeypatch, capsys, script, entry, first_step, first_line):
    mod = load(script)
    monkeypatch.setattr(mod, first_step, started)  # what the benchmark does first: it must not get there
    for argv, code in ((["--help"], 0), (["--runs", "3"], 2)):
        monkeypatch.setattr(sys, "argv", [script, *argv])
        with pytest.raises(SystemExit) as e:
            getattr(mod, entry)()
        assert e.value.code == code
    out, err = capsys.readouterr()
    assert first_line in " ".join(out.split()) and "unrecognized arguments: --runs 3" in err


def test_model_causality_refuses_an_unknown_variant(tmp_path, monkeypatch, capsys):
    mod = load("model_causality.py")
    out = tmp_path / "causality.json"
    monkeypatch.setattr(sys, "argv", ["model_causality.py", "--variants", "senet,soft_moe_causal", "--out", str(out)])
    with pytest.raises(SystemExit) as e:
        mod.main()
    err = capsys.readouterr().err
    assert e.value.code == 2 and "unknown 'soft_moe_causal'" in err and "'soft_moe_causal c=16'" in err
    assert not out.exists()
    monkeypatch.setattr(sys, "argv", ["model_causality.py", "--variants", "senet,soft_moe_causal c=16", "--steps", "1",
                                      "--seq-len", "8", "--batch", "2", "--eval-seqs", "1", "--out", str(out)])
    mod.main()
    rows = json.loads(out.read_text())["results"]
    assert [r["variant"] for r in rows] == ["soft_moe_causal c=16", "senet"]  # the script's order
    # Both are causal: no logit before t moves when later tokens change, and the prefix-only loss is the
    # teacher-forced one up to fp32 summation order (~1e-6 here; soft_moe_v2, which reads the future, is
    # ~4e-4 apart already at init with seq 16).
    assert all(r["max_leak"] == 0.0 and abs(r["prefix_only"] - r["teacher_forced"]) < 1e-5 for r in rows)
