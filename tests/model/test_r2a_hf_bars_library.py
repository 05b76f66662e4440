"""transformers' progress bars are a process-wide switch: Steel turns it off in a `steel` command whose stderr
is not a terminal (a piped log), but a library call (steel.infer.load.load_model in a Jupyter notebook, whose
stderr is no terminal while tqdm bars show there) must leave it as the user's process had it."""

from __future__ import annotations

import pytest
import torch


@pytest.fixture
def bars_on(monkeypatch):
    from transformers.utils import logging as hf_logging

    import steel.runlog as runlog

    monkeypatch.delenv("STEEL_NO_PROGRESS", raising=False)
    monkeypatch.setattr(runlog.console, "_force_terminal", False)  # as in Jupyter: rich says "not a terminal"
    monkeypatch.setattr(runlog, "_QUIET_HF", False, raising=False)  # a fresh process: no `steel` command ran
    was = hf_logging.is_progress_bar_enabled()
    hf_logging.enable_progress_bar()
    yield hf_logging
    (hf_logging.enable_progress_bar if was else hf_logging.disable_progress_bar)()


@pytest.fixture
def hf_dir(tmp_path):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    cfg = LlamaConfig(vocab_size=64, hidden_size=16, intermediate_size=32, num_hidden_layers=1,
                      num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=32)
    LlamaForCausalLM(cfg).save_pretrained(str(tmp_path / "hf"))
    return tmp_path / "hf"


def test_load_model_as_a_library_call_leaves_transformers_bars_on(bars_on, hf_dir):
    from steel.infer.load import load_model

    load_model(hf_dir)
    assert bars_on.is_progress_bar_enabled()


def test_steel_no_progress_still_turns_them_off_in_a_library_call(bars_on, hf_dir, monkeypatch):
    from steel.infer.load import load_model

    monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    load_model(hf_dir)
    assert not bars_on.is_progress_bar_enabled()


def test_a_steel_command_without_a_terminal_turns_them_off(bars_on, hf_dir):
    from steel.cli import main as steel_main

    assert steel_main(["model", "info", str(hf_dir)]) == 0
    assert not bars_on.is_progress_bar_enabled()
