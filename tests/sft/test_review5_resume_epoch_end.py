"""Review 5: an SFT checkpoint saved at the end of an epoch holds `consumed` = the number of rows (the next
epoch starts when the next row is taken): the resume message under another global batch read "goes on
from row 6 of epoch 1" for 6 rows; it goes on from row 0 of epoch 2."""

from __future__ import annotations

import json

from sft_runs import write_sft_run

from steel.cli import main as steel


def test_sft_checkpoint_at_the_end_of_an_epoch_goes_on_at_the_next(tmp_path, tiny_tokenizer_dir):
    # 6 one-conversation rows, 2 per step: after 3 steps the first epoch is done (consumed 6, epoch 0)
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=3, data_extra=", packing: false",
                           extra="optim: {lr: 1.0e-3, warmup_steps: 1}\ncheckpoint: {every: 3, keep: 2}\n")
    assert steel(["sft", str(config)]) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-3" / "data.json").read_text())
    assert (state["rows"], state["epoch"], state["consumed"]) == (6, 0, 6), state
    assert steel(["sft", str(config), "--set", "max_steps=4", "--set", "micro_batch=1"]) == 0
    got = [x for x in (tmp_path / "run" / "train.log").read_text().splitlines() if "resume: global batch" in x]
    assert len(got) == 1 and got[0].endswith("the data order goes on from row 0 of epoch 2"), got
