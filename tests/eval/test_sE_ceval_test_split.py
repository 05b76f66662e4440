"""C-Eval's test split has no public answers: the HF `ceval/ceval-exam` dataset (and a CSV written from it) gives
it an empty `answer` column rather than none. Contamination reads no answers, so it must read such a file; scoring
needs answers, so `eval mc` refuses it naming the file, the line and what to do."""

from __future__ import annotations

import pytest
from tiny_models import write_csv

from steel.cli import UserError
from steel.eval import contamination, mc

HEADER = ["id", "question", "A", "B", "C", "D", "answer", "explanation"]


def _ceval_with_empty_test_answers(root):
    rows = [[str(i), f"计算机网络的第{i}个问题是什么呢请回答", f"甲{i}", f"乙{i}", f"丙{i}", f"丁{i}", "", ""] for i in range(3)]
    write_csv(root / "test" / "computer_network_test.csv", HEADER, rows)
    write_csv(root / "dev" / "computer_network_dev.csv", HEADER,
              [[str(i), f"d{i}", "a", "b", "c", "d", "A", ""] for i in range(5)])
    return root


def test_contamination_reads_a_test_split_with_an_empty_answer_column(tmp_path):
    root = _ceval_with_empty_test_answers(tmp_path / "ceval")
    qs = mc.read_questions(root / "test" / "computer_network_test.csv", "ceval", "computer_network", need_answer=False)
    assert [q.answer for q in qs] == [None] * 3 and qs[1].choices == ("甲1", "乙1", "丙1", "丁1")
    # The second question copied into the training text is found; the others are not.
    train = tmp_path / "train.jsonl"
    train.write_text('{"text": "计算机网络的第1个问题是什么呢请回答\\nA. 甲1\\nB. 乙1\\nC. 丙1\\nD. 丁1"}\n', encoding="utf-8")
    res = contamination.contamination_report([train], "ceval", root, "test", 8, 0.5)
    assert [f["where"].rsplit(":", 1)[1] for f in res["flagged"]] == ["3"]


def test_scoring_a_split_with_empty_answers_is_refused_naming_the_line(tmp_path):
    root = _ceval_with_empty_test_answers(tmp_path / "ceval")
    opts = mc.McOptions(task="ceval", data=root, split="test", shots=0)
    with pytest.raises(UserError, match=r"computer_network_test\.csv:2: empty 'answer' .*score --split val"):
        mc.load_benchmark(opts)
    # An empty cell in a split that should have answers is no answer, in CMMLU too (no C-Eval advice there).
    cm = write_csv(tmp_path / "cm.csv", ["", "Question", "A", "B", "C", "D", "Answer"],
                   [["0", "q", "a", "b", "c", "d", "A"], ["1", "q", "a", "b", "c", "d", " "]])
    with pytest.raises(UserError, match=r"cm\.csv:3: empty 'Answer' \(answers are needed to score this split\)$"):
        mc.read_questions(cm, "cmmlu", "cm")
