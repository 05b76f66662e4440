"""`steel train` states the mixture each epoch draws, per source (session 16, K).

A lab aiming at Steel-LLM's ~80% Chinese / 20% English and code sets source weights; the samples a source
gives per epoch are round(weight x windows) per chunk, which nothing printed: `steel data inspect` shows the
prepared tokens before weights. The shares here are computed by hand from the chunk sizes."""

import re

from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel

SEQ = 16  # tiny_config's seq_len: a chunk of n tokens has (n - 1) // 16 windows


def _mixture_lines(run):
    return [ln.split(" INFO ", 1)[1] for ln in (run / "train.log").read_text().splitlines()
            if " INFO data: each epoch draws " in ln]


def test_mixture_is_logged_at_start_and_after_an_append(tmp_path):
    zh = make_data_dir(tmp_path / "zh", [3000, 2000], source="zh_web")  # 187 + 124 windows, weight 1
    en = make_data_dir(tmp_path / "en", [2500], seed=1, source="en_books", weight=0.5)  # 156 windows x 0.5
    code = make_data_dir(tmp_path / "code", [1700], seed=2, source="code")  # 106 windows
    cfg = tiny_config(tmp_path, [zh, en], max_steps=2, checkpoint={"every": 2, "keep": 2})
    assert steel(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    zh_n, en_n, code_n = 187 + 124, 78, 106
    total = zh_n + en_n
    assert _mixture_lines(run) == [
        f"data: each epoch draws {total} samples ({total * SEQ:,} tokens): "
        f"zh_web {100 * zh_n / total:.1f}% ({zh_n}), en_books {100 * en_n / total:.1f}% ({en_n})"
    ]
    assert steel(["train", str(cfg), "--set", "max_steps=3", "--add-data", str(code)]) == 0
    total += code_n
    lines = _mixture_lines(run)
    assert len(lines) == 2 and lines[1] == (
        f"data: each epoch draws {total} samples ({total * SEQ:,} tokens): zh_web {100 * zh_n / total:.1f}% "
        f"({zh_n}), en_books {100 * en_n / total:.1f}% ({en_n}), code {100 * code_n / total:.1f}% ({code_n})"
    )
    assert re.search(r"zh_web 62\.8% \(311\)", lines[1])  # 311 / 495 = 0.628, by hand
