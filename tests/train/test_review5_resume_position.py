"""Review 5: the resume message under another global batch names where the data order goes on, in the
epoch it goes on in.

Review 4 made SFT's message "row N of epoch E" (tests/sft/test_review5_resume_epoch_end.py); pretraining's
`consumed` counts samples within its epoch too: in epoch 3 it said "from sample 12".
"""

from pathlib import Path

import torch

from steel.train.config import TrainConfig
from steel.train.distributed import Dist
from steel.train.trainer import warn_resume_changes


def _message(tmp_path: Path, caplog, data_state: dict) -> str:
    old, new = TrainConfig(micro_batch=2), TrainConfig(micro_batch=1)
    d = Dist(rank=0, world_size=1, local_rank=0, device=torch.device("cpu"), mode="none")
    caplog.clear()
    with caplog.at_level("WARNING", logger="steel"):
        warn_resume_changes(new, tmp_path, 0, data_state, {}, d, old=old)
    got = [r.getMessage() for r in caplog.records if "resume: global batch" in r.getMessage()]
    assert len(got) == 1, caplog.text
    return got[0].rsplit("the data order goes on from ", 1)[1]


def test_pretraining_names_the_epoch_past_the_first(tmp_path, caplog):
    base = {"kind": "pretrain", "micro_batch": 2, "world_size": 1}
    assert _message(tmp_path, caplog, {**base, "epoch": 0, "consumed": 12}) == "sample 12"
    assert _message(tmp_path, caplog, {**base, "epoch": 2, "consumed": 12}) == "sample 12 of epoch 3"

