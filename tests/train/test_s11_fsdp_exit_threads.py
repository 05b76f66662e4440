"""After an FSDP2 run under torchrun, fit() leaves no gloo thread running: the process group is really gone.

destroy_process_group() did not free the gloo backend: FSDP2's DeviceMesh holds its process groups and DTensor's
caches hold the mesh, so gloo's threads (pt_gloo_runloop, gloo_tcp_loop) ran on until interpreter exit, where a
rank was seen to abort after a successful run ("terminate called without an active exception", SIGABRT). Two
ranks on CPU (gloo); each lists its OS threads after `steel train` returned.
"""

from __future__ import annotations

import os
import textwrap

import pytest
from train_fixtures import make_data_dir, needs_cpu_fsdp, tiny_config, torchrun_two

PER_RANK = textwrap.dedent("""
    import os, sys
    from steel.cli import main
    code = main(["train", sys.argv[1]])
    names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
    print(f"rank {os.environ['RANK']} exit code {code} threads {names}", file=sys.stderr)
""")


@pytest.mark.skipif(not os.path.isdir("/proc/self/task"), reason="lists threads through /proc (Linux)")
@pytest.mark.parametrize("mode", [pytest.param("fsdp", marks=needs_cpu_fsdp), "ddp"])
def test_no_gloo_thread_survives_fit(tmp_path, mode):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=3, micro_batch=2, checkpoint={"every": 3, "keep": 2},
                      parallel={"mode": mode})
    r = torchrun_two(PER_RANK, tmp_path, cfg)
    assert r.returncode == 0, r.stderr[-3000:]
    lines = [x for x in r.stderr.splitlines() if " exit code " in x and x.startswith("rank ")]
    assert sorted(x.split()[1] for x in lines) == ["0", "1"], r.stderr[-3000:]
    for line in lines:
        assert " exit code 0 " in line and "gloo" not in line, line
