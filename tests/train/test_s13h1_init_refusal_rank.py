"""A rank that `init_distributed` itself refuses stops every rank with its error under torchrun.

`parallel.mode: none` in one node's config, a process launched without LOCAL_RANK, or a LOCAL_RANK past the
node's visible GPUs was refused before the process group existed: that rank printed its error and exited, and
the others waited for it at init until parallel.timeout_minutes (or their torchrun agent killed them first). The
refused rank now writes its error to the rendezvous store, where the others read it before any backend starts.
Two ranks on CPU (gloo); each rank reports its exit code and exits 0 when it is the refusal's 2. The GPU cases
run the real checks of `_check_local_gpu` on rank 1 with torch.cuda reporting GPUs it does not have (rank 1 is
refused before any GPU would be used).
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import textwrap

import pytest
from train_fixtures import assert_stopped_by, make_data_dir, rank_errors, tiny_config, torchrun_two

# argv: CFG CASE [SET...]: rank 1 alone is refused (its `--set`s, its launch environment, its GPUs)
PER_RANK = textwrap.dedent("""
    import os, sys
    import torch
    from steel.cli import main
    r = int(os.environ["RANK"])
    case = sys.argv[2]
    if r == 1 and case in ("no_local_rank", "gpus"):
        torch.cuda.is_available = lambda: True
        torch.cuda.device_count = lambda: 1  # LOCAL_RANK 1 is past this node's one GPU
        if case == "no_local_rank":
            del os.environ["LOCAL_RANK"]
    code = main(["train", sys.argv[1], *[x for s in sys.argv[3:] if r == 1 for x in ("--set", s)]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")

CASES = {
    "mode_none": (["parallel.mode=none"], "parallel.mode: 'none' with WORLD_SIZE > 1; use ddp or fsdp"),
    "no_local_rank": ([], "LOCAL_RANK is not set while WORLD_SIZE=2: every process of a node would use GPU 0"),
    "gpus": ([], "LOCAL_RANK 1: this node has 1 visible GPU; launch at most 1 processes per node"),
    # refused by the config checks before init_distributed (trainer.main), told through the same store
    "seq_len": (["data.seq_len=100"], "data.seq_len: 100 > the model's max_position_embeddings 64"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_one_rank_refused_at_init_stops_every_rank_with_it(tmp_path, case):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    # timeout 1 minute: before the fix rank 0 waited that long at init, then died in a traceback
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 1})
    sets, cause = CASES[case]
    assert_stopped_by(rank_errors(torchrun_two(PER_RANK, tmp_path, cfg, case, *sets), 2), 1, cause)
    assert not (tmp_path / "run").exists()  # refused before rank 0 locked or wrote anything


# Launched by hand (no torchrun agent): rank 0 hosts the rendezvous store itself, and it is the refused rank.
BY_HAND = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    r = int(os.environ["RANK"])
    code = main(["train", sys.argv[1], *(["--set", "parallel.mode=none"] if r == 0 else [])])
    print(f"rank {r} exit code {code}", file=sys.stderr)
""")


def test_refused_rank_hosting_the_store_stops_the_others_without_torchrun(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 1})
    script = tmp_path / "by_hand.py"
    script.write_text(BY_HAND)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORCHELASTIC")}
    env.update(OMP_NUM_THREADS="1", STEEL_NO_PROGRESS="1", MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port),
               WORLD_SIZE="2")
    procs = [subprocess.Popen([sys.executable, str(script), str(cfg)], env={**env, "RANK": str(r), "LOCAL_RANK": str(r)},
                              stderr=subprocess.PIPE, text=True) for r in (0, 1)]
    err = [p.communicate(timeout=180)[1] for p in procs]
    own = "parallel.mode: 'none' with WORLD_SIZE > 1; use ddp or fsdp"
    assert f"steel: error: {own}\nrank 0 exit code 2" in err[0], err[0][-3000:]
    assert f"steel: error: rank 0 stopped at startup: {own}\nrank 1 exit code 2" in err[1], err[1][-3000:]


# One process per rank runs `steel train` twice: refused on rank 1 first, then accepted on both.
TWICE = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    r = int(os.environ["RANK"])
    first = main(["train", sys.argv[1], *(["--set", "parallel.mode=none"] if r == 1 else [])])
    second = main(["train", sys.argv[1]])
    print(f"rank {r} exit codes {first} {second}", file=sys.stderr)
""")


def test_a_second_start_in_the_same_process_does_not_read_the_first_ones_refusal(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp", "timeout_minutes": 1})
    r = torchrun_two(TWICE, tmp_path, cfg)
    assert "rank 0 exit codes 2 0" in r.stderr and "rank 1 exit codes 2 0" in r.stderr, r.stderr[-3000:]
    assert (tmp_path / "run" / "checkpoints" / "step-2").is_dir()
