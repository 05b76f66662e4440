"""Rank 0's own writes in `steel sft` (the tokenizer copy at the end of startup, a metrics.jsonl line each logged
step) stop every rank with their error under torchrun: its full disk ended the other rank in its next collective
with a gloo "Connection closed by peer" traceback (under NCCL: a hang until parallel.timeout_minutes). Two ranks on
CPU (gloo); each rank exits 0 when its exit code is an OSError's 1, so torchrun never stops a rank before it has
printed.
"""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "train"))
from train_fixtures import METRICS_FULL_AT_STEP_2, assert_stopped_by, rank_errors, torchrun_two  # noqa: E402

# argv: CFG WHAT: rank 0's disk is full when it writes WHAT ("metrics": step 2's metrics.jsonl line,
# "tokenizer": the run's tokenizer copy at the end of startup)
FULL_DISK = textwrap.dedent("""
    import errno, os, sys
    from steel.cli import main
    from steel.tokenizer import qwen
    r = int(os.environ["RANK"])
""") + METRICS_FULL_AT_STEP_2 + textwrap.dedent("""
    if r == 0 and sys.argv[2] == "tokenizer":
        def full_tokenizer(tok_dir, chat_template):
            raise OSError(errno.ENOSPC, "No space left on device", str(tok_dir / "tokenizer_config.json"))
        qwen.make_tokenizer_config_portable = full_tokenizer
    code = main(["sft", sys.argv[1]])
    print(f"rank {r} exit code {code}", file=sys.stderr)
    sys.exit(0 if code == 1 else 3)
""")
HINT = " (STEEL_TRACEBACK=1 shows where)"


def sft_config(tmp_path: Path, init: Path) -> Path:
    (tmp_path / "chat.json").write_text(json.dumps([{"instruction": f"q{i}", "output": f"a{i}"} for i in range(8)]))
    cfg = tmp_path / "sft.yaml"
    cfg.write_text(f"init: {init}\nrun_dir: {tmp_path / 'run'}\nmax_steps: 3\nmicro_batch: 1\n"
                   "parallel: {mode: ddp}\ndata: {seq_len: 64, packing: false, datasets: [{name: c, path: [chat.json]}]}\n"
                   "checkpoint: {every: 1}\nlog: {every: 1, tensorboard: false, progress: false}\n")
    return cfg


def test_rank0_metrics_write_error_stops_every_sft_rank_at_that_step(tmp_path, tiny_llama_dir):
    r = torchrun_two(FULL_DISK, tmp_path, sft_config(tmp_path, tiny_llama_dir), "metrics", cwd=tmp_path)
    full = f"[Errno 28] No space left on device: '{tmp_path / 'run' / 'metrics.jsonl'}'"
    assert rank_errors(r, 1) == [f"steel: error: {full}{HINT}",  # rank 0's own
                                 f"steel: error: rank 0 stopped while logging step 2: {full}{HINT}"]  # rank 1's
    assert [json.loads(x)["step"] for x in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()] == [1]
    assert sorted(p.name for p in (tmp_path / "run" / "checkpoints").iterdir()) == ["step-1"]


def test_rank0_tokenizer_copy_error_at_end_of_startup_stops_every_sft_rank(tmp_path, tiny_llama_dir):
    r = torchrun_two(FULL_DISK, tmp_path, sft_config(tmp_path, tiny_llama_dir), "tokenizer", cwd=tmp_path)
    cause = f"[Errno 28] No space left on device: '{tmp_path / 'run' / 'tokenizer' / 'tokenizer_config.json'}'"
    assert_stopped_by(rank_errors(r, 1), 0, cause)
    assert not (tmp_path / "run" / "metrics.jsonl").exists()  # no step was taken
