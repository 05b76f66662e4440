"""A non-zero rank of `steel sft` prints only its own warnings, each attributed to it (as `steel train` does).

Every rank ran `setup_run_log`, so under torchrun each printed the version/machine/launch header again
(unattributed copies of rank 0's, one set per process), and its warnings without its rank.
"""

from __future__ import annotations

import torch
from sft_runs import steel_logger_restored, write_sft_run

from steel.cli import main as steel_main


def test_non_zero_rank_prints_no_header_and_attributes_its_warnings(tmp_path, tiny_tokenizer_dir, capsys, monkeypatch):
    import steel.train.distributed as dist

    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=1)
    monkeypatch.setattr(dist, "init_distributed", lambda cfg: dist.Dist(1, 1, 0, torch.device("cpu"), "none"))
    with steel_logger_restored() as steel:
        steel_main(["sft", str(config)])
        steel.warning("resume: something changed")
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert not [x for x in err if "versions:" in x or "machine:" in x or "argv:" in x], err[:5]
    assert "[rank 1] WARNING resume: something changed" in err
