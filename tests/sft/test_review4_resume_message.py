"""An SFT resume under another global batch says where its data order goes on as SFT counts it: a row of an
epoch (it said "from sample N" with SFT's row position within the epoch, which is no sample count)."""

from __future__ import annotations

import json

from sft_runs import write_sft_run

from steel.cli import main as steel


def test_sft_resume_with_another_batch_names_the_row_and_epoch(tmp_path, tiny_tokenizer_dir):
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=2, data_extra=", packing: false",
                           extra="optim: {lr: 1.0e-3, warmup_steps: 1}\ncheckpoint: {every: 2, keep: 2}\n")
    assert steel(["sft", str(config)]) == 0
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-2" / "data.json").read_text())
    # 6 one-conversation rows, 2 per step: after 2 steps, 4 rows of the first epoch are consumed
    assert (state["rows"], state["epoch"], state["consumed"]) == (6, 0, 4), state
    assert steel(["sft", str(config), "--set", "max_steps=3", "--set", "micro_batch=1"]) == 0
    got = [x for x in (tmp_path / "run" / "train.log").read_text().splitlines() if "resume: global batch" in x]
    assert len(got) == 1 and got[0].endswith("the data order goes on from row 4 of epoch 1"), got
