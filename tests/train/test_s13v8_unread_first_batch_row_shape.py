"""A rank that cannot read its very first batch (step 1, or the first step after a resume) computes stand-in
rows the model can take.

2d67690 gave the stand-in rows the shape of the rank's last rows; before any row was read they were still
`(micro_batch, data.seq_len)`, and a `make_data` source's `data:` may be empty (data.seq_len 2048): rank 1's
stand-in rows ran past this GPT-2's 16 learned positions, an IndexError traceback on rank 1 and a gloo
"Connection closed by peer" traceback on rank 0, instead of every rank stopping with `rank 1 stopped while
reading step 1's batches: <its error>`. Two ranks on CPU (gloo); rank 1's source fails at its first read.
"""

from __future__ import annotations

import textwrap

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
            if r == 1 and self.n == 1:  # step 1: this node's shard is gone before any row was read
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


def test_stand_in_rows_before_any_row_was_read_fit_the_model(tmp_path):
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
    assert errors == [f"steel: error: {cause}", f"steel: error: rank 1 stopped while reading step 1's batches: {cause}"]
