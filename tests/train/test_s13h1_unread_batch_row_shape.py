"""A rank that cannot read its batches computes stand-in rows the model can take: of the shape its data source
gave (2d67690), or of one position before any row was read (f73a1fe), not `(micro_batch, data.seq_len)`.

A `make_data` source decides its own row length (its `data:` section may be empty, leaving data.seq_len at
2048): rank 1's stand-in rows were 2048 positions long, past the 16 learned positions of this GPT-2, so rank 1
died in an IndexError traceback inside the forward and rank 0 in a gloo "Connection closed by peer" traceback,
instead of every rank stopping with `rank 1 stopped while reading step S's batches: <its error>`. Two ranks on
CPU (gloo); rank 1's source fails at its first read (step 1) or at its third (step 2, grad_accum 2).
"""

from __future__ import annotations

import textwrap

import pytest
import yaml
from train_fixtures import rank_errors, torchrun_two

PER_RANK = textwrap.dedent("""
    import os, sys
    import torch
    from steel.cli import UserError
    from steel.config import ConfigError
    from steel.train.trainer import fit, setup
    r = int(os.environ["RANK"])

    class Rows:  # rows of 8 tokens (its own row length), 2 per micro-batch
        def __init__(self):
            self.n = 0
        def next_batch(self):
            self.n += 1
            if r == 1 and self.n == int(os.environ["FAIL_AT_READ"]):  # this node's shard is gone
                raise ValueError("node1/shard-7.bin: cannot read")
            g = torch.Generator().manual_seed(r * 100 + self.n)
            ids = torch.randint(1, 256, (2, 8), generator=g)
            return {"input_ids": ids, "labels": ids.clone()}
        def state_dict(self):
            return {"n": self.n}
        def load_state_dict(self, s):
            self.n = s["n"]

    try:
        fit(setup(sys.argv[1]), make_data=lambda cfg, d: Rows())
        code = 0
    except (ConfigError, UserError, ValueError) as e:
        print(f"steel: error: {e}", file=sys.stderr)
        code = 2
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")


@pytest.mark.parametrize("fail_at_read, step", [(1, 1), (3, 2)], ids=["before_any_row", "after_rows"])
def test_stand_in_rows_fit_the_model(tmp_path, monkeypatch, fail_at_read, step):
    monkeypatch.setenv("FAIL_AT_READ", str(fail_at_read))
    cfg = {
        "run_dir": str(tmp_path / "run"), "max_steps": 3, "micro_batch": 2, "grad_accum": 2,
        "model": {"config": {"model_type": "gpt2", "vocab_size": 256, "n_positions": 16, "n_embd": 32,
                             "n_layer": 2, "n_head": 4, "tie_word_embeddings": False}},
        "optim": {"lr": 1e-2, "warmup_steps": 0},
        "checkpoint": {"every": 100},
        "parallel": {"mode": "ddp", "timeout_minutes": 1},
        "log": {"every": 1, "tensorboard": False, "progress": False},
    }  # no data: section: data.seq_len stays 2048
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    errors = rank_errors(torchrun_two(PER_RANK, tmp_path, path), 2)
    cause = "node1/shard-7.bin: cannot read"
    assert errors == [f"steel: error: {cause}", f"steel: error: rank 1 stopped while reading step {step}'s batches: {cause}"]
