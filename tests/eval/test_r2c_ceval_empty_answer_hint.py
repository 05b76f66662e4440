"""C-Eval's advice "its test answers are not public: score --split val" is for a test file only: a val file (the
split scored by default) or a dev file (the shots) with an empty or missing answer is damaged, and the advice sent
a user already scoring --split val to do just that."""

from __future__ import annotations

import pytest
from tiny_models import write_csv

from steel.cli import UserError
from steel.eval import mc

HEADER = ["id", "question", "A", "B", "C", "D", "answer", "explanation"]
GOOD = [[str(i), f"q{i}", "a", "b", "c", "d", "ABCD"[i % 4], ""] for i in range(5)]


def _ceval(root, val_rows, dev_rows, val_header=HEADER):
    write_csv(root / "val" / "computer_network_val.csv", val_header, val_rows)
    write_csv(root / "dev" / "computer_network_dev.csv", HEADER, dev_rows)
    return root


def test_val_file_with_an_empty_answer_gets_no_split_advice(tmp_path):
    rows = [r[:] for r in GOOD]
    rows[2][6] = ""
    root = _ceval(tmp_path / "ceval", rows, GOOD)
    with pytest.raises(UserError) as e:
        mc.load_benchmark(mc.McOptions(task="ceval", data=root, split="val", shots=0))
    assert str(e.value).endswith("computer_network_val.csv:4: empty 'answer' (answers are needed to score this split)")


def test_val_file_without_an_answer_column_gets_no_split_advice(tmp_path):
    root = _ceval(tmp_path / "ceval", [r[:6] for r in GOOD], GOOD, val_header=HEADER[:6])
    with pytest.raises(UserError) as e:
        mc.load_benchmark(mc.McOptions(task="ceval", data=root, split="val", shots=0))
    assert str(e.value).endswith("computer_network_val.csv:1: no 'answer' column (answers are needed to score this split)")


def test_dev_file_with_an_empty_answer_gets_no_split_advice(tmp_path):
    dev = [r[:] for r in GOOD]
    dev[0][6] = " "
    root = _ceval(tmp_path / "ceval", GOOD, dev)
    with pytest.raises(UserError) as e:
        mc.load_benchmark(mc.McOptions(task="ceval", data=root, split="val", shots=1))
    assert "computer_network_dev.csv:2: empty 'answer'" in str(e.value)
    assert "--split val" not in str(e.value)


def test_test_file_still_gets_the_advice(tmp_path):
    rows = [r[:6] + ["", ""] for r in GOOD]
    write_csv(tmp_path / "ceval" / "test" / "computer_network_test.csv", HEADER, rows)
    with pytest.raises(UserError, match=r"computer_network_test\.csv:2: empty 'answer' .*score --split val\)$"):
        mc.load_benchmark(mc.McOptions(task="ceval", data=tmp_path / "ceval", split="test", shots=0))
