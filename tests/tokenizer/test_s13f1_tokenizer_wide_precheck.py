"""`steel tokenizer train` fails on a UTF-16 input before it trains: it failed only on reaching the file, after
reading every input before it."""

from __future__ import annotations

import pytest

import steel.tokenizer.train as train_mod
from steel.cli import UserError

EN = "".join(f"plain ascii document number {k} about rivers and mountains\n" for k in range(200))


def _never(*args, **kwargs):
    raise AssertionError("training started before the UTF-16 input was told")


def test_utf16_input_fails_before_training(tmp_path, monkeypatch):
    (tmp_path / "in").mkdir()
    (tmp_path / "in" / "a.txt").write_text(EN, encoding="utf-8")
    (tmp_path / "in" / "b.txt").write_bytes(EN.encode("utf-16-le"))
    monkeypatch.setattr(train_mod, "train_bpe", _never)
    with pytest.raises(UserError) as e:
        train_mod.train_tokenizer([tmp_path / "in"], tmp_path / "out", vocab_size=300, show_progress=False)
    assert str(e.value) == (f"{tmp_path / 'in' / 'b.txt'}: the file is UTF-16-LE (no byte order mark, told by its "
                            f"first bytes), not UTF-8; convert it, e.g. `iconv -f UTF-16LE -t UTF-8`")
    assert not (tmp_path / "out").exists() or not any((tmp_path / "out").iterdir())


def test_utf8_inputs_still_train(tmp_path):
    (tmp_path / "a.txt").write_text(EN, encoding="utf-8")
    read = {}
    train_mod.train_tokenizer([tmp_path / "a.txt"], tmp_path / "out", vocab_size=300, show_progress=False, read=read)
    assert read == {"documents": 1, "files": 1, "of_files": 1}
