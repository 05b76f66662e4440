"""A config error of one rank's `setup()` (its YAML, a `--set`), or a refusal of `init_distributed` itself
(`parallel.mode: none` in one node's config), stops every rank with it under `steel sft`.

As in `steel train` (tests/train/test_s12f1_setup_error_rank.py, test_s13h1_init_refusal_rank.py): both came
before any process group existed, so the refused rank exited at once and the others waited in the rendezvous or
at init until parallel.timeout_minutes. Two ranks on CPU (gloo).
"""

from __future__ import annotations

import sys
import textwrap
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_fixtures import assert_stopped_by, rank_errors, torchrun_two  # noqa: E402

# argv: CFG [SET...]: rank 1 alone gets the `--set`s
PER_RANK = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    r = int(os.environ["RANK"])
    code = main(["sft", sys.argv[1], *[x for s in sys.argv[2:] if r == 1 for x in ("--set", s)]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")


def _config(tmp_path, tiny_llama_dir):
    (tmp_path / "chat.json").write_text('[{"instruction": "q", "output": "a"}, {"instruction": "r", "output": "b"}]')
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"init: {tiny_llama_dir}\nrun_dir: {tmp_path / 'run'}\nmax_steps: 2\nmicro_batch: 1\n"
                   "parallel: {mode: ddp, timeout_minutes: 2}\n"
                   "data: {seq_len: 64, packing: false, datasets: [{name: c, path: [chat.json]}]}\n"
                   "log: {every: 1, tensorboard: false, progress: false}\n")
    return cfg


def test_one_rank_config_error_stops_every_rank_with_it(tmp_path, tiny_llama_dir):
    from steel.sft.train import setup

    cfg = _config(tmp_path, tiny_llama_dir)
    bad = "optim.lr=fast"
    with pytest.raises(Exception) as refused:  # the error rank 1 gets, in this process
        setup(str(cfg), [bad])
    r = torchrun_two(PER_RANK, tmp_path, cfg, bad, cwd=tmp_path)
    assert_stopped_by(rank_errors(r, 2), 1, str(refused.value))
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step was taken


def test_one_rank_mode_none_stops_every_rank_with_it(tmp_path, tiny_llama_dir):
    cfg = _config(tmp_path, tiny_llama_dir)
    r = torchrun_two(PER_RANK, tmp_path, cfg, "parallel.mode=none", cwd=tmp_path)
    assert_stopped_by(rank_errors(r, 2), 1, "parallel.mode: 'none' with WORLD_SIZE > 1; use ddp or fsdp")
    assert not (tmp_path / "run").exists()  # refused before rank 0 locked or wrote anything
