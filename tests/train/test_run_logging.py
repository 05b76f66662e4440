"""What a run leaves on disk after a crash or an error: TensorBoard curves that do not fold back at a resume,
and train.log ending with the error that stopped the run."""

import json
import shutil

import pytest
from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel


@pytest.fixture
def data(tmp_path):
    return make_data_dir(tmp_path / "data", [3000, 2000, 2500])


def tb_steps(run, tag="train/loss"):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(run / "tb"))
    acc.Reload()
    return [e.step for e in acc.Scalars(tag)]


def jsonl_steps(run):
    return [json.loads(x)["step"] for x in (run / "metrics.jsonl").read_text().splitlines()]


def test_tensorboard_drops_the_steps_after_the_resumed_checkpoint(tmp_path, data):
    # A resume used to truncate metrics.jsonl only: the event files kept steps 9, 10 logged after the last
    # checkpoint, and train/loss read 1..10, 9, 10, 11, 12.
    cfg = tiny_config(tmp_path, [data], log={"every": 1, "tensorboard": True, "progress": False})
    assert steel(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    assert tb_steps(run) == list(range(1, 11))
    shutil.rmtree(run / "checkpoints" / "step-10")  # killed after step 10 was logged, before its checkpoint
    assert steel(["train", str(cfg), "--set", "max_steps=12"]) == 0
    steps = tb_steps(run)
    assert steps == list(range(1, 13)) == jsonl_steps(run)
    assert tb_steps(run, "train/lr") == steps


def test_refused_resume_ends_the_run_log_with_the_error(tmp_path, data, capsys):
    cfg = tiny_config(tmp_path, [data], max_steps=4)
    assert steel(["train", str(cfg)]) == 0
    capsys.readouterr()
    assert steel(["train", str(cfg), "--set", "max_steps=6", "--set", "data.seed=12"]) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("steel: error:")]
    assert len(lines) == 1 and "data.seed: 11 in the checkpoint" in lines[0]
    assert err.count("data.seed: 11 in the checkpoint") == 1  # not also printed by the logger
    last = (tmp_path / "run" / "train.log").read_text().splitlines()[-1]
    assert " ERROR " in last and lines[0] in last


def test_an_error_before_the_run_log_does_not_reach_another_runs_log(tmp_path, data, capsys):
    # An earlier command of the same process (tests, notebooks) left its file handler attached.
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    assert steel(["train", str(cfg)]) == 0
    before = (tmp_path / "run" / "train.log").read_text()
    assert steel(["train", str(tmp_path / "missing.yaml")]) == 2
    assert "steel: error:" in capsys.readouterr().err
    assert (tmp_path / "run" / "train.log").read_text() == before


def test_nonfinite_stop_ends_the_run_log_with_the_error(tmp_path, data, capsys):
    cfg = tiny_config(tmp_path, [data], max_steps=6)
    assert steel(["train", str(cfg), "--set", "optim.lr=1e30", "--set", "max_nonfinite=2"]) == 2
    err = capsys.readouterr().err
    lines = [x for x in err.splitlines() if x.startswith("steel: error:")]
    assert len(lines) == 1 and "consecutive steps with a non-finite loss" in lines[0]
    assert lines[0].endswith("no checkpoint was written yet")  # it said "the last checkpoint is intact"
    last = (tmp_path / "run" / "train.log").read_text().splitlines()[-1]
    assert " ERROR " in last and lines[0] in last


def test_run_log_header_says_how_many_processes_ran(tmp_path, monkeypatch):
    """Under torchrun the log is rank 0's: its header named rank 0's host and GPUs only, so a 2-process (or
    4-node) run's train.log read as a one-process run, and its global batch and tokens/s could not be read from it."""
    import logging

    from steel.runlog import setup_run_log

    def header(name):
        path = tmp_path / f"{name}.log"
        logger = setup_run_log(path, "max_steps: 1\n", name=f"steel-test-{name}")
        for h in logger.handlers:
            h.close()
        return [line.split(" INFO ", 1)[1] for line in path.read_text().splitlines() if " INFO " in line]

    for var in ("WORLD_SIZE", "LOCAL_WORLD_SIZE", "RANK"):
        monkeypatch.delenv(var, raising=False)
    assert not [x for x in header("single") if x.startswith("launch:")]
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "0")
    lines = header("torchrun")
    assert lines[3] == "launch: torchrun, 16 processes (8 per node, 2 nodes); this log is rank 0's"
    assert lines[4].startswith("resolved config:")
    logging.getLogger("steel-test-torchrun").handlers.clear()


def test_metrics_jsonl_is_strict_json_with_non_finite_values(tmp_path):
    # json.dumps wrote a bare NaN/Infinity, which jq and other strict JSON readers refuse: a non-finite
    # loss or grad norm is written as null (TensorBoard keeps the NaN point).
    from steel.train.metrics import MetricsLogger, read_metrics

    def strict(line):
        return json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))

    m = MetricsLogger(tmp_path, enabled=True, tensorboard=False, wandb=False, wandb_project="", config={})
    m.log(1, {"loss": 2.5, "grad_norm": float("inf"), "lr": 1e-3})
    m.log(2, {"loss": float("nan"), "grad_norm": float("nan"), "lr": 1e-3, "mfu": None})
    m.close()
    recs = [strict(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert recs == [{"step": 1, "loss": 2.5, "grad_norm": None, "lr": 1e-3},
                    {"step": 2, "loss": None, "grad_norm": None, "lr": 1e-3, "mfu": None}]
    assert read_metrics(tmp_path) == recs


def test_a_non_zero_ranks_warnings_are_formatted_and_attributed(capsys):
    # Ranks > 0 have no run log: with no handler Python's last-resort handler printed bare lines that read
    # as duplicates of rank 0's (a rank's own RNG reseed warning included).
    import logging

    from steel.train import trainer as T

    log = logging.getLogger("steel")
    before, level = list(log.handlers), log.level
    try:
        log.handlers[:] = []  # earlier tests' run-log handlers (files of their tmp dirs)
        log.setLevel(logging.WARNING)
        T._rank_stderr_handler(1)
        T._rank_stderr_handler(1)  # a second run in one process adds no second handler
        assert len(log.handlers) == 1
        log.warning("resume: something changed")
        assert capsys.readouterr().err.splitlines() == ["[rank 1] WARNING resume: something changed"]
    finally:
        log.handlers[:] = before
        log.setLevel(level)


def test_a_nonzero_rank_prefixes_its_python_warnings(capsys, monkeypatch):
    """SteelCausalityWarning (and torch's, transformers') went through `warnings`, not the log: under torchrun
    every rank printed it bare, read as duplicates of rank 0's."""
    import logging
    import warnings

    from steel.model import SteelCausalityWarning
    from steel.train import trainer as T

    monkeypatch.setattr(warnings, "showwarning", warnings.showwarning)  # restored after the test
    log = logging.getLogger("steel")
    before = list(log.handlers)
    try:
        T._rank_stderr_handler(1)
        T._rank_stderr_handler(1)  # a second run in one process wraps it once
        with warnings.catch_warnings():
            warnings.simplefilter("always")
            warnings.warn("soft_moe_v3 reads the future", SteelCausalityWarning, stacklevel=1)
        err = capsys.readouterr().err.splitlines()
        assert err[0].startswith("[rank 1] ") and err[0].endswith("SteelCausalityWarning: soft_moe_v3 reads the future")
        assert not any(x.startswith("[rank 1] [rank 1]") for x in err), err
    finally:
        log.handlers[:] = before
