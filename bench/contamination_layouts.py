"""How many copies of a benchmark's questions `steel eval contamination` finds, per copy layout.

Every question of a split (CMMLU test by default: 7,703 questions in ../shared/data/cmmlu) is written into a
JSONL file in each layout a copy in training data could have (in a temporary directory: third-party text
never enters the repository), and each file is checked on its own. A layout where a copy is missed is a
blind spot; `the stem alone` is not a copy of the question and should stay a partial match.

Usage: .venv/bin/python bench/contamination_layouts.py [--task cmmlu] [--bench ../shared/data/cmmlu]
       [--n 13] [--threshold 0.5] [--out runs/bench/contamination_layouts.json]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

from steel.eval.contamination import contamination_report
from steel.eval.mc import DEFAULT_SPLIT, list_subjects, read_questions, subject_file

REPO = Path(__file__).resolve().parents[1]


def rotated(q) -> list[str]:
    return list(q.choices[1:]) + [q.choices[0]]


LAYOUTS = {
    "stem, then `A. x` lines": lambda q: [q.question, *(f"{L}. {c}" for L, c in zip("ABCDEFGH", q.choices))],
    "stem, then `A. x` lines with the options rotated": lambda q: [
        q.question, *(f"{L}. {c}" for L, c in zip("ABCDEFGH", rotated(q)))
    ],
    "stem, then `①x` lines": lambda q: [q.question, *(f"{L}{c}" for L, c in zip("①②③④⑤⑥⑦⑧", q.choices))],
    "stem, then `选项A：x` lines": lambda q: [q.question, *(f"选项{L}：{c}" for L, c in zip("ABCDEFGH", q.choices))],
    "the stem alone": lambda q: [q.question],
}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--task", default="cmmlu", choices=["cmmlu", "ceval"])
    ap.add_argument("--bench", default=str(REPO / ".." / "shared" / "data" / "cmmlu"))
    ap.add_argument("--split", default=None)
    ap.add_argument("--n", type=int, default=13)
    ap.add_argument("--threshold", type=float, default=0.5)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    bench, split = Path(args.bench), args.split or DEFAULT_SPLIT[args.task]
    questions = [
        q
        for s in list_subjects(args.task, bench, split)
        for q in read_questions(subject_file(args.task, bench, split, s), args.task, s, need_answer=False)
    ]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for name, layout in LAYOUTS.items():
            path = Path(tmp) / "copies.jsonl"
            with path.open("w", encoding="utf-8") as f:
                for q in questions:
                    f.write(json.dumps({"text": "\n".join(layout(q))}, ensure_ascii=False) + "\n")
            t0 = time.perf_counter()
            res = contamination_report([path], args.task, bench, split, n=args.n, threshold=args.threshold)
            by_layout: dict[str, int] = {}
            for f in res["flagged"]:
                by_layout[f["layout"]] = by_layout.get(f["layout"], 0) + 1
            rows.append({"layout": name, "questions": len(questions), "found": res["overall"]["contaminated"],
                         "by_best_layout": by_layout, "s": round(time.perf_counter() - t0, 1)})
            print(json.dumps(rows[-1], ensure_ascii=False), flush=True)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(rows, ensure_ascii=False, indent=1), encoding="utf-8")


if __name__ == "__main__":
    main()
