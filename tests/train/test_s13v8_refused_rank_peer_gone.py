"""A rank whose peers never all reach the startup exchange ends with one `steel: error:` line, no traceback.

A rank that ends alone before `init_distributed` (a crash, a malformed RANK: its error says the others wait for
it) never comes to the rendezvous store. A rank refused meanwhile (its node's config) died in the store's `wait`
timeout (or in a "Connection reset" when the store's host had gone): a DistStoreError traceback with exit
status 1 instead of its own error and exit 2. An accepted rank died in the same traceback, which named neither
the exchange nor the setting that timed it; it now says so in one line, exit 1. In this process: rank 1 of 2,
against a store this test hosts where rank 0 never comes.
"""

from __future__ import annotations

import datetime
import os
import socket

import pytest
import torch.distributed as dist
from train_fixtures import make_data_dir, tiny_config

CASES = {
    "refused": (["--set", "parallel.mode=none"], 2,
                "steel: error: parallel.mode: 'none' with WORLD_SIZE > 1; use ddp or fsdp"),
    "accepted": ([], 1, "steel: error: not every rank reached the startup exchange within parallel.timeout_minutes "
                        "(0.05), or the rendezvous store's host went away ("),
}


@pytest.mark.parametrize("case", CASES)
def test_rank_1_whose_rank_0_never_comes_ends_with_one_line(tmp_path, monkeypatch, capsys, case):
    from steel.cli import main

    args, want_code, want_line = CASES[case]
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    # 0.05 minutes: the wait for rank 0 times out after 3 s
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 0.05})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = dist.TCPStore("127.0.0.1", port, 2, True, datetime.timedelta(seconds=30), wait_for_workers=False)
    for k in [k for k in os.environ if k.startswith("TORCHELASTIC")]:
        monkeypatch.delenv(k)
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": "1",
                 "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(k, v)
    monkeypatch.delenv("STEEL_TRACEBACK", raising=False)
    code = main(["train", str(cfg), *args])
    err = capsys.readouterr().err
    assert code == want_code, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last == want_line if case == "refused" else last.startswith(want_line), last
    assert "Traceback" not in err, err[-3000:]
    del host
