"""A full disk while a checkpoint's tensors are written ends the run with exit status 1 (an OS error), not 2.

The README: "exit 2 for a refusal, 1 for an OS error", a full disk among them; the safetensors write error was a
CheckpointError (a refusal, 2) on every rank. And "the previous checkpoint is intact" is said only when there is
one: the first save of a fresh run said it too.
"""

from __future__ import annotations

import errno
import textwrap

from safetensors import SafetensorError
from train_fixtures import make_data_dir, rank_errors, tiny_config, torchrun_two

from steel.cli import main as steel
from steel.train import checkpoint as ckpt


def _full_at(monkeypatch, step: int, error) -> None:
    save = ckpt.save_file

    def full(tensors, path, *a, **k):
        if f"step-{step}.tmp" in str(path) and str(path).endswith("model.safetensors"):
            raise error
        return save(tensors, path, *a, **k)

    monkeypatch.setattr(ckpt, "save_file", full)


def test_full_disk_at_the_first_save_exits_1_without_claiming_a_previous_checkpoint(tmp_path, capsys, monkeypatch):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=4, checkpoint={"every": 2, "keep": 5})
    _full_at(monkeypatch, 2, OSError(errno.ENOSPC, "No space left on device"))
    assert steel(["train", str(cfg)]) == 1
    path = tmp_path / "run" / "checkpoints" / "step-2.tmp" / "model.safetensors"
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("steel: error:")]
    assert err == [f"steel: error: {path}: cannot write ([Errno 28] No space left on device) "
                   "(STEEL_TRACEBACK=1 shows where)"], err


def test_full_disk_at_a_later_save_exits_1_and_says_the_previous_checkpoint_is_intact(tmp_path, capsys, monkeypatch):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=4, checkpoint={"every": 2, "keep": 5})
    # safetensors' own write error (its Rust writer) is a SafetensorError, not an OSError
    _full_at(monkeypatch, 4, SafetensorError("No space left on device (os error 28)"))
    assert steel(["train", str(cfg)]) == 1
    path = tmp_path / "run" / "checkpoints" / "step-4.tmp" / "model.safetensors"
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("steel: error:")]
    assert err == [f"steel: error: {path}: cannot write (No space left on device (os error 28)); the previous "
                   "checkpoint is intact (STEEL_TRACEBACK=1 shows where)"], err
    assert (tmp_path / "run" / "checkpoints" / "step-2" / "train_state.json").is_file()


# Rank 0's disk is full when it writes step 2's model.safetensors.
FULL_DISK = textwrap.dedent("""
    import errno, os, sys
    from steel.cli import main
    from steel.train import checkpoint
    r = int(os.environ["RANK"])
    if r == 0:
        save = checkpoint.save_file
        def full(tensors, path, *a, **k):
            if "step-2.tmp" in str(path) and str(path).endswith("model.safetensors"):
                raise OSError(errno.ENOSPC, "No space left on device")
            return save(tensors, path, *a, **k)
        checkpoint.save_file = full
    code = main(["train", sys.argv[1]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 1 else 3)
""")


def test_rank0_full_disk_writing_tensors_exits_1_on_every_rank(tmp_path):
    data = make_data_dir(tmp_path / "data", [3000, 2000])
    cfg = tiny_config(tmp_path, [data], max_steps=2, micro_batch=2, parallel={"mode": "ddp"},
                      checkpoint={"every": 2, "keep": 5})
    errors = rank_errors(torchrun_two(FULL_DISK, tmp_path, cfg), 1)  # both ranks: exit code 1
    full = (f"{tmp_path / 'run' / 'checkpoints' / 'step-2.tmp' / 'model.safetensors'}: cannot write "
            "([Errno 28] No space left on device)")
    hint = " (STEEL_TRACEBACK=1 shows where)"
    assert errors == [f"steel: error: {full}{hint}",  # rank 0's own
                      f"steel: error: rank 0 stopped while saving step 2: {full}{hint}"], errors  # rank 1's
