"""`parallel.mode: auto` is what runs: with several processes on a device where the installed torch's FSDP2
cannot run (the CPU on torch 2.6, pyproject's floor: its CPU streams have no record_event), auto picks DDP and
says so in the run log, where it picked FSDP2 and Steel's own refusal of `fsdp` on CPU stopped every rank.

The two-rank run takes the CPU streams' record_event away in each rank (as torch 2.6 has them) before Steel
starts, so it checks the choice on any torch; on torch 2.6 it is what a plain run sees.
"""

from __future__ import annotations

import textwrap

import torch


class _StreamWithoutRecordEvent:  # torch 2.6's torch.cpu.Stream, as FSDP2 sees it
    def __init__(self, *args, **kwargs):
        pass


class _StreamWithRecordEvent(_StreamWithoutRecordEvent):
    def record_event(self, event=None):
        return event


CPU, GPU = torch.device("cpu"), torch.device("cuda", 0)


def test_auto_picks_ddp_on_cpu_where_fsdp2_cannot_run_there(monkeypatch):
    from steel.train.distributed import pick_mode

    monkeypatch.setattr(torch.cpu, "Stream", _StreamWithoutRecordEvent)
    assert pick_mode("auto", 2, CPU) == "ddp"
    assert pick_mode("auto", 2, GPU) == "fsdp"  # CUDA streams are another class
    assert pick_mode("auto", 1, CPU) == "none"
    assert [pick_mode(m, 2, CPU) for m in ("fsdp", "ddp", "none")] == ["fsdp", "ddp", "none"]  # forced: as set


def test_auto_picks_fsdp_on_cpu_where_fsdp2_runs_there(monkeypatch):
    from steel.train.distributed import pick_mode

    monkeypatch.setattr(torch.cpu, "Stream", _StreamWithRecordEvent)
    assert pick_mode("auto", 2, CPU) == "fsdp"
    assert pick_mode("auto", 8, GPU) == "fsdp"
    assert pick_mode("auto", 1, CPU) == "none"


PER_RANK = textwrap.dedent("""
    import os, sys
    import torch

    class Stream:  # torch 2.6's CPU stream: no record_event
        def __init__(self, *args, **kwargs):
            pass

    torch.cpu.Stream = Stream
    from steel.cli import main
    code = main(["train", sys.argv[1]])
    print(f"rank {os.environ['RANK']} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 0 else 1)
""")


def test_two_rank_cpu_auto_trains_with_ddp_where_fsdp2_cannot_run(tmp_path):
    from train_fixtures import make_data_dir, tiny_config, torchrun_two

    data = make_data_dir(tmp_path / "data", [3000, 2000])
    tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "auto"})
    r = torchrun_two(PER_RANK, tmp_path, tmp_path / "train.yaml")
    assert r.returncode == 0, r.stderr[-3000:]
    assert "rank 0 exit code 0" in r.stderr and "rank 1 exit code 0" in r.stderr, r.stderr[-3000:]
    assert "steel: error:" not in r.stderr, r.stderr[-3000:]
    log = (tmp_path / "run" / "train.log").read_text()
    assert (f"parallel: DDP over gloo (mode auto: torch {torch.__version__}'s FSDP2 does not run on cpu), "
            "2 processes, device cpu") in log, log
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") >= 2
