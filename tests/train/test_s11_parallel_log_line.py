"""The run log says how the model runs: `mode: auto` under torchrun does not show DDP vs FSDP2, the backend,
nor what `dtype: auto` resolved to on this device."""

from __future__ import annotations

import logging

import torch
import torch.distributed as dist
from torch import nn

from steel.train.config import ParallelSection
from steel.train.distributed import Dist, parallelize


class _Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        self.layers = nn.ModuleList([nn.Linear(4, 4), nn.Linear(4, 4)])


class _Keep(logging.Handler):
    def __init__(self):
        super().__init__(logging.INFO)
        self.lines = []

    def emit(self, record):
        if record.getMessage().startswith("parallel: "):
            self.lines.append(record.getMessage())


def _parallelize(model, cfg, d):
    """The lines logged to the "steel" logger itself (a run log set up earlier in this process stops its
    propagation to pytest's caplog)."""
    logger, keep = logging.getLogger("steel"), _Keep()
    level = logger.level
    logger.addHandler(keep)
    logger.setLevel(logging.INFO)
    try:
        parallelize(model, cfg, d)
    finally:
        logger.removeHandler(keep)
        logger.setLevel(level)
    return keep.lines


def test_one_process_logs_unwrapped_fp32():
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="none")
    assert _parallelize(_Tiny(), ParallelSection(), d) == ["parallel: unwrapped, 1 process, device cpu, parameters fp32, compute fp32, "
                              "activation checkpointing off, compile off"]


def test_ddp_names_the_backend_and_bf16_autocast(tmp_path):
    dist.init_process_group("gloo", init_method=f"file://{tmp_path / 'store'}", rank=0, world_size=1)
    try:
        d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="ddp")
        lines = _parallelize(_Tiny(), ParallelSection(mode="ddp", dtype="bf16", activation_checkpointing=True), d)
    finally:
        dist.destroy_process_group()
    assert lines == ["parallel: DDP over gloo, 1 process, device cpu, parameters fp32, compute bf16 "
                              "autocast, activation checkpointing on, compile off"]


def test_bf16_parameters_compute_in_bf16():
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="none")
    assert _parallelize(_Tiny(), ParallelSection(param_dtype="bf16"), d) == ["parallel: unwrapped, 1 process, device cpu, parameters bf16, compute bf16, "
                              "activation checkpointing off, compile off"]
