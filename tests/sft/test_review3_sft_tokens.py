"""`tokens`, `tokens_per_s` and MFU of an SFT run count the positions the model computed, not only the targets.

The trainer added the number of targets (labels != -100) to `tokens`: right for pretraining, where every
position is a target, but with the loss on the assistant turns only, the system/user turns and ChatML
markers are computed at the same FLOPs per token and were left out, so tokens/s and MFU were under-reported
by a third on the Steel mixture. Padding (EOS after the last conversation of a row) is not counted.
"""

from __future__ import annotations

import json

import pytest
import torch
from sft_runs import write_sft_run

from steel.cli import main as steel


def conversations(config) -> tuple[list[int], int]:
    """(token count of each conversation, trained tokens of all), from the rows of one conversation each."""
    from transformers import AutoTokenizer

    from steel.sft.data import SftDataConfig, build_sft_rows
    from steel.sft.train import setup

    cfg = setup(str(config))
    tok = AutoTokenizer.from_pretrained(cfg.init)
    padded = SftDataConfig(**{**vars(cfg.data), "packing": False})
    ids, labels = build_sft_rows(padded, tok, {})
    eos = tok.convert_tokens_to_ids("<|endoftext|>")
    # Each conversation ends with its one EOS; padding follows it.
    lengths = [int((row == eos).nonzero()[0]) + 1 for row in ids]
    return lengths, int((labels != -100).sum())


def run(tmp_path, tiny_tokenizer_dir, max_steps: int, packing: bool) -> tuple[list[dict], dict]:
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=max_steps,
                           data_extra=f", packing: {str(packing).lower()}")
    assert steel(["sft", str(config)]) == 0
    records = [json.loads(x) for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    state = json.loads((tmp_path / "run" / "checkpoints" / f"step-{max_steps}" / "train_state.json").read_text())
    return records, state


@pytest.mark.parametrize("packing", [False, True], ids=["padded", "packed"])
def test_sft_tokens_count_computed_positions(tmp_path, tiny_tokenizer_dir, packing):
    config = write_sft_run(tmp_path / "probe", tiny_tokenizer_dir, max_steps=1)
    lengths, trained = conversations(config)
    assert len(lengths) == 6 and sum(lengths) > trained > 0
    if packing:
        from transformers import AutoTokenizer

        from steel.sft.data import build_sft_rows
        from steel.sft.train import setup

        cfg = setup(str(config))
        rows = len(build_sft_rows(cfg.data, AutoTokenizer.from_pretrained(cfg.init), {})[0])
        assert rows < 6  # packed: several conversations per row
        steps, epochs = rows, 2  # micro_batch 2: `rows` steps are two whole epochs
    else:
        steps, epochs = 3, 1  # 6 rows of one conversation each
    records, state = run(tmp_path, tiny_tokenizer_dir, steps, packing)
    # Whole epochs: every conversation's positions, prompts included, padding not.
    assert records[-1]["tokens"] == state["tokens"] == epochs * sum(lengths)
    assert state["targets"] == epochs * trained
    # Per step: each row's conversations (micro_batch 2 rows per step), never the padding of seq_len 64.
    per_step = [b["tokens"] - a["tokens"] for a, b in zip([{"tokens": 0}, *records], records)]
    assert all(0 < n < 2 * 64 for n in per_step), per_step


def test_row_lengths_of_packed_and_padded_rows():
    from steel.sft.train import row_lengths

    eos = 0
    rows = torch.tensor([
        [5, 6, 9, eos, 7, 9, eos, eos, eos, eos],  # two conversations (each ends "\n"(9), EOS), then padding
        [5, 6, 7, 8, 7, 6, 7, 8, 9, eos],  # one conversation filling the row
        [5, 9, eos, 5, 6, 7, 8, 6, 9, eos],  # packed to the last position
    ])
    assert row_lengths(rows, eos).tolist() == [7, 10, 10]
