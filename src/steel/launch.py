"""`python -m steel.launch TORCHRUN_ARGS...`: torchrun (`torch.distributed.run`, same arguments, same behaviour)
whose rendezvous that times out (a node that never came) ends with one line saying what happened, where, and
what to check, instead of torch's traceback.

NOTE: the agent is torch's: a node that never joins ends it in `next_rendezvous` (c10d:
`RendezvousTimeoutError`, no message) or in the static store's wait (`DistStoreError: Timed out after N seconds
waiting for clients. 1/2 clients joined.`), before any rank (and so any Steel code) starts. Only a wrapper around
the agent can say which endpoint, how many nodes and how long (session 16).
"""

from __future__ import annotations

import sys


def _where(args) -> str:
    """The rendezvous endpoint torchrun dials, HOST:PORT: static's `--rdzv_endpoint` if given, else `--master_addr`
    and `--master_port` (torch's `get_rdzv_endpoint`); c10d's without a port gets c10d's (29400)."""
    from torch.distributed.elastic.rendezvous.utils import parse_rendezvous_endpoint

    if args.rdzv_backend == "static" and not args.rdzv_endpoint:
        return f"{args.master_addr}:{args.master_port or 29500}"
    try:
        host, port = parse_rendezvous_endpoint(args.rdzv_endpoint, 29400 if args.rdzv_backend == "c10d" else -1)
    except ValueError:
        return args.rdzv_endpoint or "(no --rdzv_endpoint)"
    if port < 0:
        return args.rdzv_endpoint
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"


def rendezvous_line(args, error: BaseException) -> str | None:
    """The line for torchrun's parsed `args` whose rendezvous ended in `error`; None for another error."""
    from torch.distributed import DistStoreError
    from torch.distributed.elastic.rendezvous.api import RendezvousConnectionError, RendezvousTimeoutError
    from torch.distributed.elastic.rendezvous.utils import _parse_rendezvous_config

    conf = _parse_rendezvous_config(args.rdzv_conf or "")  # (torchrun's own reading: spaces stripped)
    where = _where(args)
    if args.rdzv_backend == "static":
        how = f"static, this node's --node_rank {args.node_rank}"
        same = ("--nnodes, --rdzv_endpoint" if args.rdzv_endpoint else "--nnodes, --master_addr and --master_port") \
            + " (each node its own --node_rank)"
        wait, key = conf.get("timeout", "900"), "timeout"
    else:
        how = f"{args.rdzv_backend}, --rdzv_id {args.rdzv_id}"
        same = "--nnodes, --rdzv_endpoint and --rdzv_id"
        wait, key = conf.get("join_timeout", "600"), "join_timeout"
    # NOTE: with --max-restarts, the agent meets the others again after a rank fails: that rendezvous may time out
    # too, once ranks have run (and written checkpoints)
    started = "no rank started" if not args.max_restarts else (
        f"no rank started (or restarted, with --max-restarts {args.max_restarts}: a rank that failed and the "
        "restart's rendezvous timed out)")
    said = str(error).strip()
    said = f"{type(error).__name__}{': ' + said if said else ''}"
    check = (f"Check that every node runs the same command with the same {same}, that {where} is node 0's address "
             f"and its port is reachable from every node (a firewall), and that no node's launch failed (its own "
             "output says why)")
    if isinstance(error, RendezvousTimeoutError) or (
            isinstance(error, DistStoreError) and "waiting for clients" in said):  # (static: the master's wait)
        nodes = f"--nnodes {args.nnodes}" if ":" in str(args.nnodes) else f"{args.nnodes} nodes"
        return (f"steel: error: torchrun's rendezvous at {where} ({how}) waited {wait} s for {nodes} "
                f"and not all came ({said}); {started}. {check}; to wait longer, --rdzv_conf {key}=SECONDS")
    if isinstance(error, RendezvousConnectionError):
        # the cause's first line says how it failed (timed out, refused, a name that does not resolve); torch's C++
        # stack follows it
        cause, why = error.__cause__, ""
        if cause is not None:
            first = (str(cause).strip().splitlines() or [""])[0]
            why = f": {type(cause).__name__}" + (f": {first[:300]}" if first else "")
        return (f"steel: error: torchrun could not reach its rendezvous at {where} ({how}; {said}{why}); {started}. "
                f"{check}")
    return None


def main(argv: list[str] | None = None) -> int:
    from torch.distributed.run import main as torchrun
    from torch.distributed.run import parse_args

    argv = sys.argv[1:] if argv is None else argv
    try:
        torchrun(argv)
    except Exception as e:
        # (the agent's own errors: a rank's reaches the agent as ChildFailedError, which goes on as torchrun's)
        line = rendezvous_line(parse_args(argv), e)
        if line is None:
            raise
        sys.stderr.write(line + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
