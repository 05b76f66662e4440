"""A rank whose data copy cannot be read during training (a node's chunk files deleted or replaced after startup:
the loader maps each chunk when it first reads it, e.g. the anneal copy's chunks once the annealing phase reads
them) stops every rank with that error, before the step's update, under torchrun: the others died in the step's
next collective with a gloo "Connection closed by peer" traceback (under NCCL: a hang until
parallel.timeout_minutes). Told in the step's existing count all-reduce (no new collective or read-back). Two
ranks on CPU (gloo); each rank exits 0 when its exit code is a refusal's 2, so torchrun never stops a rank before
it has printed.
"""

from __future__ import annotations

import textwrap

from train_fixtures import make_data_dir, rank_errors, tiny_config, torchrun_two

# argv: CFG NODE1_DATA: rank 1 reads its own copy of the data, NODE1_DATA, whose chunk files are deleted once
# startup is over (before the first step maps them)
PER_RANK = textwrap.dedent("""
    import os, pathlib, sys
    from steel.cli import main
    from steel.train import trainer
    r = int(os.environ["RANK"])
    if r == 1:
        train = trainer.Trainer.train
        def chunks_gone(self):
            for p in pathlib.Path(sys.argv[2]).glob("*.bin"):
                p.unlink()
            return train(self)
        trainer.Trainer.train = chunks_gone
    code = main(["train", sys.argv[1], *(["--set", f"data.dirs=[{sys.argv[2]}]"] if r == 1 else [])])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 2 else 1)
""")


def test_rank1_chunk_unreadable_mid_run_stops_every_rank_with_its_error(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    node1 = make_data_dir(tmp_path / "node1" / "data", [3000, 2000])  # the same data: another copy
    cfg = tiny_config(tmp_path, [data], max_steps=3, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 1, "keep": 5})
    errors = rank_errors(torchrun_two(PER_RANK, tmp_path, cfg, node1), 2)
    own = [x for x in errors if "stopped" not in x]
    assert len(errors) == 2 and len(own) == 1, errors
    assert own[0].startswith(f"steel: error: {node1}/chunk-0000") and "cannot read chunk" in own[0], errors
    assert errors == sorted([own[0], own[0].replace("steel: error: ", "steel: error: rank 1 stopped while reading "
                                                    "step 1's batches: ", 1)])
    assert not (tmp_path / "run" / "checkpoints").exists()  # no step was taken, none saved
    assert not (tmp_path / "run" / "metrics.jsonl").exists()
