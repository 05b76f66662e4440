"""`steel sft` ranks may each have their own `checkpoint.stop_after_minutes` (the trainer all-reduces the stop every
step, so all ranks stop at the same step); the fields that change the training are still compared."""

from __future__ import annotations

import yaml
from sft_runs import write_sft_run

from steel.sft.train import SFT_PER_NODE_FIELDS, setup
from steel.train.trainer import rank_agreed_values


def test_sft_time_limit_may_differ_between_ranks(tmp_path, tiny_tokenizer_dir):
    raw = yaml.safe_load(write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=2).read_text(encoding="utf-8"))
    limited = {**raw, "checkpoint": {"stop_after_minutes": 230.0}}
    other = {**raw, "allow_tokenizer_change": True}
    vals = []
    for i, c in enumerate((raw, limited, other)):
        p = tmp_path / f"{i}.yaml"
        p.write_text(yaml.safe_dump(c), encoding="utf-8")
        vals.append(rank_agreed_values(setup(str(p)), {"hidden_size": 32}, None, SFT_PER_NODE_FIELDS))
    assert vals[0] == vals[1]
    assert {k for k in vals[0] if vals[0][k] != vals[2][k]} == {"allow_tokenizer_change"}
