"""A refused rank whose peers never write their startup note still ends with its own error.

A rank that ends alone before `init_distributed` (an argument error of its node's command line: the README says
the others wait until parallel.timeout_minutes) never writes its note to the rendezvous store; a rank refused
meanwhile (its node's config) then died in the store's `wait` timeout (or in a "Connection reset" when the
store's host had gone): a DistStoreError traceback with exit status 1 instead of its own `steel: error:` line
and exit 2. In this process: rank 1 of 2, refused, against a store this test hosts where rank 0 never writes.
"""

from __future__ import annotations

import datetime
import socket

import torch.distributed as dist
from train_fixtures import make_data_dir, tiny_config


def test_a_refused_rank_whose_peer_never_wrote_its_note_ends_with_its_own_error(tmp_path, monkeypatch, capsys):
    from steel.cli import main

    data = make_data_dir(tmp_path / "data", [3000, 2000])
    # 0.05 minutes: the wait for rank 0's note times out after 3 s
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 0.05})
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    host = dist.TCPStore("127.0.0.1", port, 2, True, datetime.timedelta(seconds=30), wait_for_workers=False)
    for k in [k for k in __import__("os").environ if k.startswith("TORCHELASTIC")]:
        monkeypatch.delenv(k)
    for k, v in {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(port), "WORLD_SIZE": "2", "RANK": "1",
                 "LOCAL_RANK": "1"}.items():
        monkeypatch.setenv(k, v)
    code = main(["train", str(cfg), "--set", "parallel.mode=none"])
    err = capsys.readouterr().err
    assert code == 2, err[-3000:]
    assert err.strip().splitlines()[-1] == "steel: error: parallel.mode: 'none' with WORLD_SIZE > 1; use ddp or fsdp"
    assert "Traceback" not in err, err[-3000:]
    del host
