"""train.log states the mixture each epoch draws at the annealing switch too (session 16, review VK of f5502fa).

f5502fa logged it at start, resume and `--add-data`; the switch at `anneal.step` (an append with a schedule, the
README says) changes the mixture most (`mode: mix` adds the high-quality data, `replace` draws from it alone), and
train.log said only how many samples it appended. The counts are computed by hand from the chunk sizes."""

import pytest
from train_fixtures import make_data_dir, tiny_config

from steel.cli import main as steel

SEQ = 16  # tiny_config's seq_len: a chunk of n tokens has (n - 1) // 16 windows


def _mixture_lines(run):
    return [ln.split(" INFO ", 1)[1] for ln in (run / "train.log").read_text().splitlines()
            if " INFO data: each epoch draws " in ln]


def _line(parts: list[tuple[str, int]]) -> str:
    total = sum(n for _, n in parts)
    return (f"data: each epoch draws {total} samples ({total * SEQ:,} tokens): "
            + ", ".join(f"{name} {100 * n / total:.1f}% ({n})" for name, n in parts))


@pytest.mark.parametrize("mode", ["mix", "replace"])
def test_mixture_is_logged_at_the_annealing_switch(tmp_path, mode):
    web = make_data_dir(tmp_path / "web", [3000], source="web")  # 187 windows
    hq = make_data_dir(tmp_path / "hq", [1700], seed=1, source="hq", weight=2)  # 106 windows, each twice: 212
    cfg = tiny_config(tmp_path, [web], max_steps=3, anneal={"step": 1, "dirs": [str(hq)], "mode": mode})
    assert steel(["train", str(cfg)]) == 0
    after = [("web", 187), ("hq", 212)] if mode == "mix" else [("hq", 212)]
    assert _mixture_lines(tmp_path / "run") == [_line([("web", 187)]), _line(after)]
    assert _line([("web", 187), ("hq", 212)]).endswith("web 46.9% (187), hq 53.1% (212)")  # 187 / 399, by hand
