"""`steel train` logs its global batch and the tokens `max_steps` plans at start, not only at a resume.

The global batch is micro_batch x grad_accum x processes: a 4-node launch of the 8-GPU config trains 4x the
tokens per step, which train.log showed nowhere unless a resume changed it.
"""

from __future__ import annotations

from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel


def test_train_log_states_the_global_batch(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=1000, micro_batch=3, grad_accum=2)  # seq_len 16
    assert steel(["train", str(cfg), "--set", "max_steps=1"]) == 0
    lines = [x for x in (tmp_path / "run" / "train.log").read_text().splitlines() if "global batch:" in x]
    assert len(lines) == 1, lines
    assert lines[0].endswith("global batch: 6 samples x 16 tokens = 96 tokens per step (micro_batch 3 x "
                             "grad_accum 2 x 1 process); max_steps 1: 96 tokens"), lines[0]


def test_four_nodes_of_the_1b_config_show_their_4m_token_step(caplog):
    import logging

    import torch

    from steel.config import load_config
    from steel.train.config import TrainConfig
    from steel.train.distributed import Dist
    from steel.train.trainer import log_global_batch

    cfg = load_config(TrainConfig, "configs/train/steel-1b.yaml", [])
    with caplog.at_level(logging.INFO, logger="steel"):
        log_global_batch(cfg, Dist(0, 32, 0, torch.device("cpu"), "fsdp"))  # 4 nodes x 8 GPUs
    assert (f"global batch: 2048 samples x 2048 tokens = 4,194,304 tokens per step (micro_batch 8 x grad_accum 8 "
            f"x 32 processes); max_steps {cfg.max_steps}: ") in caplog.text, caplog.text
