"""A node's anneal copy (anneal.dirs are spelled per node) that is gone when the annealing phase starts reading it
stops every rank with that error under torchrun. Startup scans it on every rank (`scan_anneal_dirs`), but the
switch scans it again hours later: rank 1's copy deleted in between was refused on rank 1 alone, and rank 0 died
in its next collective with a gloo "Connection closed by peer" traceback (under NCCL: a hang until
parallel.timeout_minutes). Two ranks on CPU (gloo); each rank exits 0 when its exit code is a refusal's 2, so
torchrun never stops a rank before it has printed.
"""

from __future__ import annotations

import json
import textwrap

from train_fixtures import make_data_dir, rank_errors, tiny_config, torchrun_two

# argv: CFG NODE1_HQ: rank 1 reads its anneal copy NODE1_HQ, deleted once startup is over
PER_RANK = textwrap.dedent("""
    import os, shutil, sys
    from steel.cli import main
    from steel.train import trainer
    r = int(os.environ["RANK"])
    if r == 1:
        train = trainer.Trainer.train
        def copy_gone(self):
            shutil.rmtree(sys.argv[2])
            return train(self)
        trainer.Trainer.train = copy_gone
    code = main(["train", sys.argv[1], *(["--set", f"anneal.dirs=[{sys.argv[2]}]"] if r == 1 else [])])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")
HINT = " (STEEL_TRACEBACK=1 shows where)"


def test_rank1_anneal_copy_gone_at_the_switch_stops_every_rank_with_its_error(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    hq = make_data_dir(tmp_path / "hq", [2000], seed=1, source="hq")
    node1 = make_data_dir(tmp_path / "node1" / "hq", [2000], seed=1, source="hq")  # the same data: another copy
    cfg = tiny_config(tmp_path, [data], max_steps=4, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 1, "keep": 5}, anneal={"step": 2, "dirs": [str(hq)]})
    errors = rank_errors(torchrun_two(PER_RANK, tmp_path, cfg, node1), 2)
    own = [x for x in errors if "stopped" not in x]
    assert len(errors) == 2 and len(own) == 1 and own[0].startswith(f"steel: error: anneal.dirs: {node1}"), errors
    assert errors == sorted([own[0], own[0].replace("steel: error: ", "steel: error: rank 1 stopped at the "
                                                    "annealing switch (step 3): ", 1)])
    # stopped before step 3 was trained: steps 1 and 2, each checkpointed
    assert [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1, 2]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-1", "step-2"]
