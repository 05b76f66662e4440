"""The `sft data: ... N trained tokens` line counts the targets the trainer trains on, loss_on_prompt too."""

from __future__ import annotations

import json
import re

from sft_runs import write_sft_run

from steel.cli import main as steel


def test_logged_trained_tokens_are_the_targets_of_an_epoch_with_loss_on_prompt(tmp_path, tiny_tokenizer_dir):
    # Every row's first label (its <|im_start|>) was counted, though never a target. Padded rows: 6
    # conversations, micro_batch 2, so 3 steps are exactly one epoch; the reference is the trainer's own
    # count of the targets it trained on in that epoch (train_state's `targets`).
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=3,
                           data_extra=", packing: false, loss_on_prompt: true")
    assert steel(["sft", str(config)]) == 0
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    logged = re.search(r"sft data: 6 rows of 64 tokens, (\d+) trained tokens", log)
    state = json.loads((tmp_path / "run" / "checkpoints" / "step-3" / "train_state.json").read_text())
    assert logged is not None and int(logged.group(1)) == state["targets"] > 0
