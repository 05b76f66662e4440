"""The launch environment torchrun sets (WORLD_SIZE, RANK, LOCAL_RANK) checked before any GPU or process group.

`torchrun --nproc_per_node 8` on a node with fewer visible GPUs (or a launcher that gives each process one GPU
through CUDA_VISIBLE_DEVICES) made the ranks past the last GPU die in `torch.cuda.set_device` with a traceback
("CUDA error: invalid device ordinal"); a process launched with WORLD_SIZE but no LOCAL_RANK (a hand-written
srun line) put every rank of a node on GPU 0; a non-numeric variable was a bare ValueError traceback.
"""

import pytest
import torch
import torch.distributed as dist

from steel.config import ConfigError
from steel.train.config import ParallelSection
from steel.train.distributed import init_distributed

GPUS = 4


@pytest.fixture
def four_gpus(monkeypatch):
    """A node with 4 visible GPUs, as torch reports it; set_device fails past them as CUDA does."""
    chosen = []

    def set_device(device):
        if torch.device(device).index >= GPUS:
            raise RuntimeError("CUDA error: invalid device ordinal")
        chosen.append(torch.device(device))

    def no_process_group(*a, **k):
        raise AssertionError("init_process_group reached: the launch should have been refused before it")

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: GPUS)
    monkeypatch.setattr(torch.cuda, "set_device", set_device)
    monkeypatch.setattr(dist, "init_process_group", no_process_group)
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    for var in ("WORLD_SIZE", "RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE", "CUDA_VISIBLE_DEVICES"):
        monkeypatch.delenv(var, raising=False)
    return chosen


def test_each_local_rank_takes_its_own_gpu(four_gpus, monkeypatch):
    monkeypatch.setenv("LOCAL_RANK", "3")
    d = init_distributed(ParallelSection())
    assert d.device == torch.device("cuda", 3) and four_gpus == [torch.device("cuda", 3)]
    assert (d.rank, d.world_size, d.local_rank, d.mode) == (0, 1, 3, "none")


def test_more_processes_than_gpus_on_a_node_is_one_error_naming_both(four_gpus, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "16")
    monkeypatch.setenv("RANK", "13")
    monkeypatch.setenv("LOCAL_RANK", "5")
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "8")
    with pytest.raises(ConfigError) as e:
        init_distributed(ParallelSection())
    msg = str(e.value)
    assert "LOCAL_RANK 5" in msg and "4 visible GPUs" in msg and "--nproc_per_node 4" in msg
    assert four_gpus == []


def test_world_size_without_local_rank_is_refused_on_gpus(four_gpus, monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "8")
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(ConfigError, match="LOCAL_RANK is not set"):
        init_distributed(ParallelSection())
    assert four_gpus == []  # not every rank of the node on GPU 0


@pytest.mark.parametrize("env, message", [
    ({"WORLD_SIZE": "eight"}, "WORLD_SIZE='eight': expected an integer"),
    ({"WORLD_SIZE": "2", "RANK": "2", "LOCAL_RANK": "0"}, "RANK 2: expected 0 <= RANK < WORLD_SIZE (2)"),
    ({"WORLD_SIZE": "0"}, "WORLD_SIZE 0: expected >= 1"),
    ({"LOCAL_RANK": "-1"}, "LOCAL_RANK -1: expected >= 0"),
])
def test_bad_launch_variables_are_one_error_naming_the_variable(four_gpus, monkeypatch, env, message):
    for k, v in env.items():
        monkeypatch.setenv(k, v)
    with pytest.raises(ConfigError) as e:
        init_distributed(ParallelSection())
    assert message in str(e.value)
