"""A tiny `steel sft` run on disk: an init model dir (tiny config + the tiny tokenizer), six alpaca records, a config."""

from __future__ import annotations

import contextlib
import json
import logging
from pathlib import Path

import torch


def write_sft_run(tmp_path: Path, tokenizer_dir: Path, *, max_steps: int, ffn_type: str | None = None,
                  data_extra: str = "", extra: str = "") -> Path:
    """-> the config path; `data_extra` goes into the `data:` mapping (", seed: 1234"), `extra` after it."""
    from transformers import AutoTokenizer

    from steel.model import build_model, load_model_config

    cfg = load_model_config("tiny")
    if ffn_type is not None:
        cfg.ffn_type = ffn_type
    torch.manual_seed(0)
    init = tmp_path / "init"
    build_model(cfg).save_pretrained(str(init))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(init))
    (tmp_path / "chat.json").write_text(json.dumps([{"instruction": f"问{i}", "output": f"答{i}"} for i in range(6)],
                                        ensure_ascii=False), encoding="utf-8")
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"init: {init}\nrun_dir: {tmp_path / 'run'}\nmax_steps: {max_steps}\nmicro_batch: 2\n"
        f"data: {{seq_len: 64{data_extra}, datasets: [{{name: chat, path: [chat.json]}}]}}\n"
        f"{extra}log: {{every: 1, tensorboard: false, progress: false}}\n",
        encoding="utf-8",
    )
    return config


@contextlib.contextmanager
def steel_logger_restored():
    """Put the `steel` logger's handlers, level and propagation back afterwards (a run as rank 1 changes them)."""
    steel = logging.getLogger("steel")
    saved = (list(steel.handlers), steel.level, steel.propagate)
    try:
        yield steel
    finally:
        for h in list(steel.handlers):
            steel.removeHandler(h)
        for h in saved[0]:
            steel.addHandler(h)
        steel.setLevel(saved[1])
        steel.propagate = saved[2]
