"""An accepted rank whose peers never all reach the startup exchange ends with one line naming the setting (the
command's own line: tests/train/test_s13v8_refused_rank_peer_gone.py).

A rank that ends alone before the exchange (a crash, a malformed RANK: its error says the others wait for it) or a
node never launched left every accepted rank waiting until parallel.timeout_minutes, then dying in the store's
own `DistStoreError: Wait timeout` traceback, which named neither the exchange nor the setting that timed it.
"""

from __future__ import annotations

import torch.distributed as dist
from test_s14h2_startup_exchange import finish, hash_store, run_ranks


def test_accepted_ranks_whose_peer_never_comes_say_so():
    # rank 2 of 3 never comes; rank 0 waits for it to count itself in, rank 1 for rank 0's verdict
    out = finish(*run_ranks(hash_store(1.0), 3, die={2: lambda op, args: True}, timeout=1.5)[:2])
    for r in (0, 1):
        kind, e = out[r]
        assert kind == "raised" and type(e) is OSError, (r, out[r])
        assert str(e).startswith("not every rank reached the startup exchange within parallel.timeout_minutes "
                                 "(0.025), or the rendezvous store's host went away ("), str(e)
        assert isinstance(e.__cause__, dist.DistStoreError), repr(e.__cause__)

