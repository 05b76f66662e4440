"""FSDP on CPU where the installed torch's FSDP2 cannot run there is refused at startup, naming parallel.mode.

torch 2.6 (pyproject's floor) has FSDP2, but its CPU streams have no `record_event`, which FSDP2 calls at every
all-gather: a two-rank CPU run (gloo) with `parallel.mode: fsdp` died on every rank at the first forward with
"'Stream' object has no attribute 'record_event'". The check is exercised on any torch by a CPU stream class
without that method; the torchrun case runs only on a torch that really lacks it.
"""

from __future__ import annotations

import textwrap

import pytest
import torch

from steel.config import ConfigError
from steel.train.distributed import check_fsdp_device


class _StreamWithoutRecordEvent:  # torch 2.6's torch.cpu.Stream, as FSDP2 sees it
    def __init__(self, *args, **kwargs):
        pass


def test_fsdp_on_cpu_is_refused_where_cpu_streams_cannot_record_events(monkeypatch):
    monkeypatch.setattr(torch.cpu, "Stream", _StreamWithoutRecordEvent)
    with pytest.raises(ConfigError, match=r"parallel\.mode: fsdp on CPU does not run with torch .*parallel\.mode: ddp"):
        check_fsdp_device("fsdp", torch.device("cpu"))
    check_fsdp_device("ddp", torch.device("cpu"))  # DDP needs no streams
    check_fsdp_device("fsdp", torch.device("cuda", 0))  # CUDA streams are another class


def test_fsdp_on_cpu_is_accepted_where_cpu_streams_record_events(monkeypatch):
    class Stream(_StreamWithoutRecordEvent):
        def record_event(self, event=None):
            return event

    monkeypatch.setattr(torch.cpu, "Stream", Stream)
    check_fsdp_device("fsdp", torch.device("cpu"))


PER_RANK = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    code = main(["train", sys.argv[1]])
    print(f"rank {os.environ['RANK']} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")


@pytest.mark.skipif(hasattr(torch.cpu.Stream, "record_event"),
                    reason=f"torch {torch.__version__}'s CPU streams record events: FSDP runs on CPU here")
def test_two_rank_cpu_fsdp_stops_every_rank_with_the_refusal(tmp_path):
    from train_fixtures import make_data_dir, rank_errors, tiny_config, torchrun_two

    data = make_data_dir(tmp_path / "data", [3000, 2000])
    tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "fsdp"})
    r = torchrun_two(PER_RANK, tmp_path, tmp_path / "train.yaml")
    errors = rank_errors(r, 2)
    assert len(errors) == 2, r.stderr[-3000:]
    assert all("parallel.mode: fsdp on CPU does not run with torch" in e for e in errors), errors
    assert "has no attribute 'record_event'" not in r.stderr, r.stderr[-3000:]  # refused, not died in FSDP2
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
