"""`parallelize` with `parallel.compile` and `parallel.activation_checkpointing` on a torch whose dynamo has no
`skip_fwd_side_effects_in_bwd_under_checkpoint` (Steel supports torch >= 2.6; the flag is newer than some of
them): setting an unknown `torch._dynamo.config` key raises AttributeError, so every run with both options
failed in `parallelize` before its first step. Without the flag the stock HF blocks may graph-break in the
checkpoint (run eagerly), as before the flag was set; Steel's blocks compile either way."""

from __future__ import annotations

import logging

import pytest
import torch
from torch import nn

from steel.model import build_model, load_model_config
from steel.train.config import ParallelSection
from steel.train.distributed import Dist, parallelize

FLAG = "skip_fwd_side_effects_in_bwd_under_checkpoint"


@pytest.fixture
def dynamo_config():
    """parallelize sets a process-wide dynamo flag: put it back after. (Not monkeypatch.setattr: its undo
    deletes the key from torch's ConfigModule, which then hides it.)"""
    saved = torch._dynamo.config.save_config()
    yield
    torch._dynamo.config.load_config(saved)


def test_compile_with_checkpointing_on_a_torch_without_the_dynamo_flag(monkeypatch, caplog):
    monkeypatch.delitem(torch._dynamo.config._config, FLAG, raising=False)  # as on a torch without it
    assert not hasattr(torch._dynamo.config, FLAG)
    monkeypatch.setattr(nn.Module, "compile", lambda self, **k: None)  # what is compiled is not the point here
    model = build_model(load_model_config("tiny", ["vocab_size=256"]))
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="none")
    with caplog.at_level(logging.INFO, logger="steel"):
        parallelize(model, ParallelSection(activation_checkpointing=True, compile=True), d)
    assert FLAG in caplog.text  # said once in the run log: stock blocks may run their checkpoint eagerly


def test_the_flag_is_set_where_torch_has_it(monkeypatch, dynamo_config):
    if FLAG not in torch._dynamo.config._config:
        return  # this torch lacks it: the test above is the one that applies
    setattr(torch._dynamo.config, FLAG, False)
    monkeypatch.setattr(nn.Module, "compile", lambda self, **k: None)
    model = build_model(load_model_config("tiny", ["vocab_size=256"]))
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="none")
    parallelize(model, ParallelSection(activation_checkpointing=True, compile=False), d)
    assert getattr(torch._dynamo.config, FLAG) is False  # only with compile on
    parallelize(build_model(load_model_config("tiny", ["vocab_size=256"])),
                ParallelSection(activation_checkpointing=True, compile=True), d)
    assert getattr(torch._dynamo.config, FLAG) is True
