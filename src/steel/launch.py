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


def _conf(spec: str | None) -> dict[str, str]:
    """`--rdzv_conf k=v,k=v` as torchrun reads it."""
    return dict(kv.split("=", 1) for kv in (spec or "").split(",") if "=" in kv)


def rendezvous_line(args, error: BaseException) -> str | None:
    """The line for torchrun's parsed `args` whose rendezvous ended in `error`; None for another error."""
    from torch.distributed import DistStoreError
    from torch.distributed.elastic.rendezvous.api import RendezvousConnectionError, RendezvousTimeoutError

    conf = _conf(args.rdzv_conf)
    if args.rdzv_backend == "static":
        where = f"{args.master_addr}:{args.master_port or 29500}"
        how = f"static, this node's --node_rank {args.node_rank}"
        same = "--nnodes, --master_addr and --master_port (each node its own --node_rank)"
        wait, key = conf.get("timeout", "900"), "timeout"
    else:
        where = args.rdzv_endpoint or "(no --rdzv_endpoint)"
        how = f"{args.rdzv_backend}, --rdzv_id {args.rdzv_id}"
        same = "--nnodes, --rdzv_endpoint and --rdzv_id"
        wait, key = conf.get("join_timeout", "600"), "join_timeout"
    said = str(error).strip()
    said = f"{type(error).__name__}{': ' + said if said else ''}"
    check = (f"Check that every node runs the same command with the same {same}, that {where} is node 0's address "
             f"and its port is reachable from every node (a firewall), and that no node's launch failed (its own "
             "output says why)")
    if isinstance(error, RendezvousTimeoutError) or (
            isinstance(error, DistStoreError) and "waiting for clients" in said):  # (static: the master's wait)
        nodes = f"--nnodes {args.nnodes}" if ":" in str(args.nnodes) else f"{args.nnodes} nodes"
        return (f"steel: error: torchrun's rendezvous at {where} ({how}) waited {wait} s for {nodes} "
                f"and not all came ({said}); no rank started. {check}; to wait longer, --rdzv_conf {key}=SECONDS")
    if isinstance(error, RendezvousConnectionError):
        cause = error.__cause__
        return (f"steel: error: torchrun could not reach its rendezvous at {where} ({how}; {said}"
                f"{f': {type(cause).__name__}' if cause is not None else ''}); no rank started. {check}")
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
