"""`steel train` warns, once at its start, when the model's vocab_size is far above the data tokenizer's ids (a
config left at Qwen's 151,936 over a 4-8k tokenizer of one's own): the numbers, and the config field to change.

Found in session 16: tiny-cpu.yaml over data of a 352-id tokenizer trained 19.4M of its 19.5M parameters in rows no
id reaches, silently. Padding does not warn: Qwen's own 151,646 ids in 151,936, a multiple of 64, Megatron's
multiple of 1,024. A vocab_size below the tokenizer's stays an error.
"""

from __future__ import annotations

import logging
from types import SimpleNamespace

import pytest
from train_fixtures import VOCAB, make_data_dir, tiny_config  # (same dir)

from steel.cli import main


def warned(caplog, vocab_size: int, tokenizer_ids: int, hidden: int = 64, tied: bool = False) -> list[str]:
    from steel.train.trainer import warn_vocab_far_above_tokenizer

    cfg = SimpleNamespace(vocab_size=vocab_size, hidden_size=hidden, tie_word_embeddings=tied)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="steel"):
        warn_vocab_far_above_tokenizer(cfg, {"vocab_size": tokenizer_ids, "eos_id": 0}, 10_000_000)
    return [r.getMessage() for r in caplog.records]


@pytest.mark.parametrize(("vocab_size", "ids"), [
    (151_936, 151_646),  # Qwen's own padding (290 rows)
    (151_936, 151_643),  # Qwen's ids without its specials
    (6_016, 6_000),  # a multiple of 64
    (50_304, 50_257),  # GPT-2's, nanoGPT's multiple of 64
    (5_120, 4_097),  # a multiple of 1,024 (Megatron, 128 x 8-way tensor parallel): 1,023 rows, 20%
    (65_536, 60_000),  # 5,536 rows, 8% of them
    (VOCAB, VOCAB),
])
def test_padding_does_not_warn(caplog, vocab_size, ids):
    assert warned(caplog, vocab_size, ids) == []


def test_a_qwen_sized_vocab_over_a_small_tokenizer_warns_with_the_numbers_and_the_field(caplog):
    (line,) = warned(caplog, 151_936, 4_000, hidden=64)
    # 147,936 rows x 64 x 2 (embedding and head) = 18,935,808 parameters, of 10M given as the model's
    assert line == ("model.config: vocab_size 151936 is 38.0x the data tokenizer's 4000 ids: its 147936 rows past "
                    "them (97% of the embedding and of the output head) hold 18.9M of the model's 10M parameters, "
                    "are never an input nor a target, and the head still computes their logits for every token; set "
                    "model.overrides.vocab_size: 4000 (or 4032, a multiple of 64)")
    (tied,) = warned(caplog, 8_192, 6_144, hidden=32, tied=True)  # 2,048 rows (25%), one matrix; 6,144 = 96 x 64
    assert "its 2048 rows past them (25% of the embedding) hold 65.5k of" in tied
    assert tied.endswith("set model.overrides.vocab_size: 6144")


def test_the_bounds(caplog):
    assert warned(caplog, 4_000 + 1_024, 4_000) == []  # 1,024 rows: not more than UNUSED_VOCAB_ROWS_MIN
    assert len(warned(caplog, 4_000 + 1_025, 4_000)) == 1
    assert warned(caplog, 20_000, 18_000) == []  # 2,000 rows, 10%: not more than UNUSED_VOCAB_SHARE_MIN
    assert len(warned(caplog, 20_000, 17_999)) == 1
    assert warned(caplog, 4_096, 0) == warned(caplog, 4_096, None) == []  # (a manifest without the number)


def test_steel_train_warns_once_and_refuses_a_vocab_below_the_tokenizers(tmp_path, capsys):
    data = make_data_dir(tmp_path / "data", [600, 600])
    cfg = tiny_config(tmp_path, [data], max_steps=2)
    assert main(["train", str(cfg), "--set", "model.config.vocab_size=4096"]) == 0
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert log.count("model.config: vocab_size 4096 is 16.0x the data tokenizer's 256 ids: its 3840 rows") == 1, log
    assert "set model.overrides.vocab_size: 256\n" in log
    assert main(["train", str(cfg), "--set", "model.config.vocab_size=4096", "--set", "max_steps=3"]) == 0
    log = (tmp_path / "run" / "train.log").read_text(encoding="utf-8")
    assert log.count("is 16.0x the data tokenizer's 256 ids") == 2  # once more at the resume's start
    capsys.readouterr()
    (tmp_path / "b").mkdir()
    assert main(["train", str(tiny_config(tmp_path / "b", [data])), "--set", "model.config.vocab_size=255"]) == 2
    assert "model.config: vocab_size 255 < the data tokenizer's 256; set model.overrides.vocab_size: 256" in \
        capsys.readouterr().err
