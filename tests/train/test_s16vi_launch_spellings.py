"""`python -m steel.launch`'s line for a rendezvous that timed out names the endpoint and the wait torch actually
used, whatever spelling of torchrun's arguments the user gave (review VI of session 16).

Before: the line re-read the arguments itself. `--rdzv_endpoint node0` (c10d) was reported without the port torch
dials (29400), a static launch given `--rdzv_endpoint HOST:PORT` was reported at `--master_addr:--master_port`
(127.0.0.1:29500, an address nobody configured), and `--rdzv_conf ' join_timeout = 5'` (torch strips the spaces)
was reported as torch's default 600 s. With `--max-restarts`, a timeout can come at a restart's rendezvous, after
ranks ran: 'no rank started' was then false. torch's own parsers are the reference: `get_rdzv_endpoint`,
`parse_rendezvous_endpoint` with the c10d backend's DEFAULT_PORT, `_parse_rendezvous_config`.
"""

from __future__ import annotations

import pytest


def line(argv: list[str]) -> str:
    from torch.distributed.elastic.rendezvous.api import RendezvousTimeoutError
    from torch.distributed.run import parse_args

    from steel.launch import rendezvous_line

    return rendezvous_line(parse_args([*argv, "-m", "steel.cli", "train", "x.yaml"]), RendezvousTimeoutError())


@pytest.mark.parametrize(("argv", "where", "wait"), [
    (["--rdzv_backend", "c10d", "--rdzv_endpoint", "node0"], "node0:29400", "600"),  # c10d's default port
    (["--rdzv-backend", "c10d", "--rdzv-endpoint", "node0:1234"], "node0:1234", "600"),
    (["--rdzv_backend", "c10d", "--rdzv_endpoint", "[fd00::1]:1234"], "[fd00::1]:1234", "600"),  # IPv6
    (["--rdzv_backend", "c10d", "--rdzv_endpoint", "[fd00::1]"], "[fd00::1]:29400", "600"),
    (["--rdzv_backend", "c10d", "--rdzv_endpoint", "node0:1234", "--rdzv_conf", " join_timeout = 5 ,x=1"],
     "node0:1234", "5"),  # torch strips the spaces
    (["--rdzv_backend", "c10d", "--rdzv_endpoint", "node0:1234", "--rdzv-conf", "timeout=5"], "node0:1234",
     "600"),  # (c10d's wait is join_timeout's; `timeout` is another backend's)
    (["--node_rank", "0", "--rdzv_endpoint", "node0:1234"], "node0:1234", "900"),  # static: the endpoint wins
    (["--node_rank", "0", "--master_addr", "node0"], "node0:29500", "900"),
    (["--node-rank", "0", "--master-addr", "node0", "--master-port", "7", "--rdzv_conf", "timeout=3"], "node0:7",
     "3"),
])
def test_the_endpoint_and_the_wait_are_torchs(argv, where, wait):
    said = line(["--nnodes", "2", *argv])
    assert said.startswith(f"steel: error: torchrun's rendezvous at {where} ("), said
    assert f" waited {wait} s for 2 nodes " in said, said
    assert f"that {where} is node 0's address" in said, said


def test_a_restart_may_come_after_ranks_ran():
    first = ["--nnodes", "2", "--rdzv_backend", "c10d", "--rdzv_endpoint", "node0:1234"]
    assert "; no rank started. Check" in line(first)
    said = line([*first, "--max-restarts", "3"])
    assert "no rank started. Check" not in said
    assert "; no rank started (or restarted, with --max-restarts 3: a rank that failed and the restart's " \
           "rendezvous timed out). Check" in said, said


def test_an_endpoint_not_reached_says_how_it_failed():
    """torch's RendezvousConnectionError says only 'See inner exception for details': the line gave the inner
    exception's type alone (DistNetworkError), not whether it timed out, was refused or did not resolve."""
    from torch.distributed import DistNetworkError
    from torch.distributed.elastic.rendezvous.api import RendezvousConnectionError
    from torch.distributed.run import parse_args

    from steel.launch import rendezvous_line

    args = parse_args(["--nnodes", "2", "--rdzv_backend", "c10d", "--rdzv_endpoint", "node0:1234", "-m", "x"])
    try:
        try:
            raise DistNetworkError("The client socket has timed out after 60000ms while trying to connect to "
                                   "(node0, 1234).\nException raised from throwTimeoutError at TCPStore.cpp:123")
        except DistNetworkError as inner:
            raise RendezvousConnectionError("The connection to the C10d store has failed. See inner exception for "
                                            "details.") from inner
    except RendezvousConnectionError as e:
        said = rendezvous_line(args, e)
    assert said.startswith(
        "steel: error: torchrun could not reach its rendezvous at node0:1234 (c10d, --rdzv_id none; "
        "RendezvousConnectionError: The connection to the C10d store has failed. See inner exception for details.: "
        "DistNetworkError: The client socket has timed out after 60000ms while trying to connect to (node0, 1234).); "
        "no rank started. Check that"), said
    assert "Exception raised from" not in said
