"""An accepted rank whose peers never all reach the startup exchange ends with one line naming the setting.

A rank that ends alone before the exchange (a crash, a malformed RANK: its error says the others wait for it) or a
node never launched left every accepted rank waiting until parallel.timeout_minutes, then dying in the store's
own `DistStoreError: Wait timeout` traceback, which named neither the exchange nor the setting that timed it.
"""

from __future__ import annotations

import datetime
import os
import socket

import torch.distributed as dist
from test_s14h2_startup_exchange import finish, hash_store, run_ranks
from train_fixtures import make_data_dir, tiny_config


def test_accepted_ranks_whose_peer_never_comes_say_so():
    # rank 2 of 3 never comes; rank 0 waits for it to count itself in, rank 1 for rank 0's verdict
    out = finish(*run_ranks(hash_store(1.0), 3, die={2: lambda op, args: True}, timeout=1.5)[:2])
    for r in (0, 1):
        kind, e = out[r]
        assert kind == "raised" and type(e) is OSError, (r, out[r])
        assert str(e).startswith("not every rank reached the startup exchange within parallel.timeout_minutes "
                                 "(0.025), or the rendezvous store's host went away ("), str(e)
        assert isinstance(e.__cause__, dist.DistStoreError), repr(e.__cause__)


def test_the_command_prints_one_line_not_a_traceback(tmp_path, monkeypatch, capsys):
    from steel.cli import main

    data = make_data_dir(tmp_path / "data", [3000, 2000])
    # 0.05 minutes: rank 1's wait for rank 0's epoch times out after 3 s
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
    code = main(["train", str(cfg)])
    err = capsys.readouterr().err
    assert code == 1, err[-3000:]
    last = err.strip().splitlines()[-1]
    assert last.startswith("steel: error: not every rank reached the startup exchange within "
                           "parallel.timeout_minutes (0.05), or the rendezvous store's host went away ("), last
    assert "Traceback" not in err, err[-3000:]
    del host
