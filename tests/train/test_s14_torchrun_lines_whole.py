"""torchrun_two's ranks print whole lines: torchrun starts each rank with `python -u`, where `print(a, b)` is
several writes (a, " ", b, "\n") on the pipe the two ranks share, so one rank's text could land inside the
other's line and break the tests that read the ranks' error lines. The fixture makes each rank line-buffered."""

from __future__ import annotations

import re
import textwrap

from train_fixtures import torchrun_two

PER_RANK = textwrap.dedent("""
    import os, sys
    r = int(os.environ["RANK"])
    for i in range(3000):
        print("rank", r, "line", i, file=sys.stderr)
""")


def test_two_ranks_lines_never_interleave(tmp_path):
    p = torchrun_two(PER_RANK, tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    lines = [x for x in p.stderr.splitlines() if x.startswith("rank") or "line" in x]
    whole = [x for x in lines if re.fullmatch(r"rank [01] line \d+", x)]
    assert len(whole) == 6000 and len(lines) == 6000, [x for x in lines if x not in whole][:5]
    for r in (0, 1):
        assert [int(x.split()[3]) for x in whole if x.startswith(f"rank {r} ")] == list(range(3000))
