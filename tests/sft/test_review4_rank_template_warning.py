"""The "no chat template" warning of `steel sft` is in rank 0's run log, and other ranks do not repeat it."""

from __future__ import annotations

import logging

import torch
from sft_runs import steel_logger_restored, write_sft_run

from steel.cli import main as steel_main


def test_non_zero_rank_prints_no_unattributed_warning(tmp_path, tiny_tokenizer_dir, capsys, caplog, monkeypatch):
    import steel.train.distributed as dist

    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=1)
    (tmp_path / "init" / "chat_template.jinja").unlink()  # an init whose tokenizer has no chat template
    monkeypatch.setattr(dist, "init_distributed", lambda cfg: dist.Dist(1, 1, 0, torch.device("cpu"), "none"))
    with steel_logger_restored(), caplog.at_level(logging.INFO, logger="steel"):
        steel_main(["sft", str(config)])  # rank 1 alone cannot save (rank 0 makes the checkpoint dir)
    err = capsys.readouterr().err.splitlines()
    assert any("rank-1.safetensors" in x for x in err)  # it ran as rank 1 up to its first save
    # every process logged it, before its rank's messages were attributed (a CLI run printed it through
    # logging's last-resort handler, bare); rank 0 logs it
    assert not [r for r in caplog.records if "has no chat template" in r.getMessage()]


def test_rank_0_logs_it_in_the_run_log(tmp_path, tiny_tokenizer_dir):
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=1)
    (tmp_path / "init" / "chat_template.jinja").unlink()
    assert steel_main(["sft", str(config)]) == 0
    # it was logged before the run log was open: on stderr only, through logging's last-resort handler
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert f"WARNING tokenizer {tmp_path / 'init'} has no chat template: the run's tokenizer gets ChatML's" in log
