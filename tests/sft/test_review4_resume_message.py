"""An SFT resume under another global batch says where its data order goes on as SFT counts it: a row of an
epoch (it said "from sample N" with SFT's row position within the epoch, which is no sample count). A
checkpoint saved at the end of an epoch holds `consumed` = the number of rows (the next epoch starts when the
next row is taken): it goes on from row 0 of the next epoch, not from "row 6 of epoch 1" of 6 rows."""

from __future__ import annotations

import json

import pytest
from sft_runs import write_sft_run

from steel.cli import main as steel


# 6 one-conversation rows, 2 per step
@pytest.mark.parametrize("steps, consumed, where", [(2, 4, "row 4 of epoch 1"), (3, 6, "row 0 of epoch 2")])
def test_sft_resume_with_another_batch_names_the_row_and_epoch(tmp_path, tiny_tokenizer_dir, steps, consumed, where):
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=steps, data_extra=", packing: false",
                           extra=f"optim: {{lr: 1.0e-3, warmup_steps: 1}}\ncheckpoint: {{every: {steps}, keep: 2}}\n")
    assert steel(["sft", str(config)]) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / f"step-{steps}" / "data.json").read_text())
    assert (state["rows"], state["epoch"], state["consumed"]) == (6, 0, consumed), state
    assert steel(["sft", str(config), "--set", f"max_steps={steps + 1}", "--set", "micro_batch=1"]) == 0
    got = [x for x in (tmp_path / "run" / "train.log").read_text().splitlines() if "resume: global batch" in x]
    assert len(got) == 1 and got[0].endswith(f"the data order goes on from {where}"), got
