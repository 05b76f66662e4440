"""A refused rank whose peers never write their startup note still ends with its own error.

A rank that ends alone before `init_distributed` (an argument error of its node's command line: the README says
the others wait until parallel.timeout_minutes) never writes its note to the rendezvous store; a rank refused
meanwhile (its node's config) then died in the store's `wait` timeout, or in a "Connection reset" when the
store's host had gone, a traceback with exit status 1 instead of its own `steel: error:` line and exit 2.
Launched by hand: rank 0 hosts the store and leaves without a note; rank 1 is refused.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

from train_fixtures import make_data_dir, tiny_config

HOST_THEN_LEAVE = textwrap.dedent("""
    import datetime, time
    import torch.distributed as dist
    store, _, _ = next(dist.rendezvous("env://", 0, 2, timeout=datetime.timedelta(seconds=60)))
    time.sleep(2)  # rank 1 is waiting for this rank's note
""")

REFUSED = textwrap.dedent("""
    import sys
    from steel.cli import main
    code = main(["train", sys.argv[1], "--set", "parallel.mode=none"])
    print(f"rank 1 exit code {code}", file=sys.stderr)
""")


def test_a_refused_rank_whose_peer_left_without_a_note_ends_with_its_own_error(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    # 0.1 minutes: the wait for rank 0's note times out, if the store's host did not leave first
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 0.1})
    (tmp_path / "host.py").write_text(HOST_THEN_LEAVE)
    (tmp_path / "refused.py").write_text(REFUSED)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHELASTIC")}
    env.update(OMP_NUM_THREADS="1", STEEL_NO_PROGRESS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               WORLD_SIZE="2")
    host = subprocess.Popen([sys.executable, str(tmp_path / "host.py")], env={**env, "RANK": "0", "LOCAL_RANK": "0"})
    refused = subprocess.run([sys.executable, str(tmp_path / "refused.py"), str(cfg)],
                             env={**env, "RANK": "1", "LOCAL_RANK": "1"}, capture_output=True, text=True, timeout=120)
    host.wait(timeout=60)
    own = "parallel.mode: 'none' with WORLD_SIZE > 1; use ddp or fsdp"
    assert f"steel: error: {own}\nrank 1 exit code 2" in refused.stderr, refused.stderr[-3000:]
    assert "Traceback" not in refused.stderr, refused.stderr[-3000:]
