"""Fixture data directories: documents of random tokens ending in EOS, written with the real chunk format."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from steel.data.chunks import head_tail_md5, write_chunk, write_manifest

VOCAB = 256
EOS = 0
FINGERPRINT = "test-tokenizer-v1"


def make_data_dir(
    path: Path,
    chunk_tokens: list[int],
    seed: int = 0,
    source: str = "web",
    weight: float = 1.0,
    fingerprint: str = FINGERPRINT,
    prefix: str = "chunk",
) -> Path:
    """A prepared data dir with one chunk per entry of `chunk_tokens` (random documents, each ending in EOS)."""
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chunks = []
    for i, n in enumerate(chunk_tokens):
        toks = rng.integers(1, VOCAB, size=n)
        ends = rng.choice(n, size=max(1, n // 50), replace=False)
        toks[ends] = EOS
        toks[-1] = EOS
        name = f"{prefix}-{i:05d}.bin"
        write_chunk(path / name, toks, VOCAB, fingerprint)
        chunks.append({"file": name, "tokens": n, "md5": head_tail_md5(path / name), "source": source})
    write_manifest(
        path,
        {
            "total_tokens": sum(chunk_tokens),
            "chunks": chunks,
            "tokenizer": {"fingerprint": fingerprint, "vocab_size": VOCAB, "eos_id": EOS},
            "sources": {source: {"read": 0, "kept": 0, "filtered": {}, "rejected": {}, "weight": weight, "kind": "text"}},
            "config": {},
        },
    )
    return path




def tiny_config(tmp_path: Path, data_dirs: list[Path], **over) -> Path:
    """A train config for a ~30k-parameter llama on the fixture vocabulary; keyword args override top-level keys."""
    import yaml

    cfg = {
        "run_dir": str(tmp_path / "run"),
        "max_steps": 10,
        "micro_batch": 4,
        "grad_accum": 2,
        "model": {
            "config": {
                "model_type": "llama", "vocab_size": VOCAB, "hidden_size": 32, "intermediate_size": 64,
                "num_hidden_layers": 2, "num_attention_heads": 4, "num_key_value_heads": 2,
                "max_position_embeddings": 64, "tie_word_embeddings": False,
            },
        },
        "data": {"dirs": [str(d) for d in data_dirs], "seq_len": 16, "seed": 11},
        "optim": {"lr": 1e-2, "min_lr": 1e-3, "warmup_steps": 2, "schedule": "cosine"},
        "checkpoint": {"every": 4, "keep": 10},
        "log": {"every": 1, "tensorboard": False, "progress": False},
    }
    for k, v in over.items():
        if isinstance(v, dict):
            cfg[k] = {**cfg.get(k, {}), **v}
        else:
            cfg[k] = v
    path = tmp_path / "train.yaml"
    path.write_text(yaml.safe_dump(cfg))
    return path


def _tree(p: subprocess.Popen) -> list[int]:
    """`p`'s pid and those of every process under it (Linux: found through /proc; elsewhere `p` alone).

    NOTE: torchrun starts each rank in a session of its own, so killing torchrun's process group missed them,
    and a rank killed after torchrun (its parent gone) could not be found any more."""
    children: dict[int, list[int]] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):  # a process that ended meanwhile
            children.setdefault(int(stat.read_text().rsplit(")", 1)[1].split()[1]), []).append(int(stat.parent.name))
    tree, todo = [], [p.pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo += children.get(pid, [])
    return tree


def _kill_tree(p: subprocess.Popen, known: list[int] | None = None) -> None:
    """SIGKILL `p`, every process under it and the processes `known` (found under it earlier)."""
    for pid in dict.fromkeys([*_tree(p), *(known or [])]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


def launch(cmd: list[str], *, env: dict, timeout: float, cwd: Path | None = None,
           stacks: bool = True) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd, capture_output=True, text=True)` for a launch of several processes (torchrun): one
    still running after `timeout` seconds fails the test with its output so far, and neither it nor any
    process under it is left running. With `stacks`, every Python process of the launch prints its stacks
    first (faulthandler on SIGABRT, 2 s apart so that two dumps never interleave on the shared pipe).

    NOTE: subprocess.run's timeout killed torchrun alone (its ranks ran on, orphaned, until gloo's timeout),
    and its TimeoutExpired showed none of the output: a hang in CI told nothing of where each rank was."""
    if stacks:
        env = {**env, "PYTHONFAULTHANDLER": "1"}
    p = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=cwd)
    try:
        out, err = p.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        ranks = []
        try:
            if stacks:
                # The launcher stopped first: torchrun's agent would stop the other ranks (SIGTERM, no stacks)
                # once it saw one die.
                launcher, *ranks = _tree(p)
                with contextlib.suppress(ProcessLookupError):
                    os.kill(launcher, signal.SIGSTOP)
                for pid in ranks:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGABRT)
                    time.sleep(2)
        finally:
            # NOTE: also when interrupted meanwhile (Ctrl-C): it left torchrun stopped and ranks running. The
            # processes found before the aborts too: a rank's child, its parent aborted, is no longer under p.
            _kill_tree(p, ranks)
            out, err = p.communicate()  # the pipes close once every process is gone
        what = "torchrun" if "torch.distributed.run" in cmd else Path(cmd[0]).name
        raise AssertionError(f"{what} did not end in {timeout} s (killed, with every process under it): "
                             f"{' '.join(map(str, cmd))}\nits stderr so far, each rank's Python stacks last:\n"
                             f"{err[-30000:]}\n--- stdout ---\n{out[-3000:]}") from None
    except BaseException:  # interrupted (Ctrl-C): no process left running
        _kill_tree(p)
        p.communicate()
        raise
    return subprocess.CompletedProcess(cmd, p.returncode, out, err)


def torchrun_two(script: str, tmp_path: Path, *args, cwd: Path | None = None,
                 timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `script` (the code each rank runs; argv: `args`) on two gloo ranks under torchrun, on the CPU.

    A launch still running after `timeout` seconds is killed, torchrun and its ranks, and fails the test with
    its output so far: every rank's Python stacks (faulthandler, armed by the script's first line, prints them
    on the rank's stderr shortly before the timeout) and the lines each rank printed."""
    # NOTE: subprocess.run's timeout killed torchrun alone (its ranks ran on, orphaned, until gloo's timeout),
    # and its TimeoutExpired showed none of the output: a hang in CI told nothing of where each rank was.
    # Rank r's stacks 3 r s later than rank 0's: written at once, two ranks' dumps interleaved on the shared pipe.
    stacks_at = time.time() + timeout - min(30, timeout / 4)
    wrapper = tmp_path / "per_rank.py"
    # The ranks share one stderr pipe, and torchrun runs them with `python -u`: a rank's `print(line)` was two
    # writes (the text, then "\n"), and the other rank's line could land between them ("steel: error: Asteel:
    # error: B\n\n"); line-buffered, each line is one write, which a pipe never splits.
    wrapper.write_text("import faulthandler, os, sys, time; "
                       "[s.reconfigure(line_buffering=True, write_through=False) for s in (sys.stdout, sys.stderr)]; "
                       f"faulthandler.dump_traceback_later(max(1, {stacks_at} + 3 * int(os.environ['RANK']) - "
                       f"time.time()))\n{script}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", str(wrapper),
           *map(str, args)]
    # the ranks' stacks come from the script's own first line (before the timeout, the launch then ends as it does)
    return launch(cmd, env=env, timeout=timeout, cwd=cwd, stacks=False)



def torchrun_restarts(script: str, tmp_path: Path, restarts: int, *args, timeout: float = 240) -> subprocess.CompletedProcess:
    """Run `script` (argv: `args`) on two gloo ranks under torchrun with `--max-restarts restarts`: the agent starts
    a failed attempt again at once (its store kept), the script tells the attempt by TORCHELASTIC_RESTART_COUNT."""
    path = tmp_path / "per_rank.py"
    path.write_text(script)
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "--max-restarts",
           str(restarts), "--monitor-interval", "0.1", str(path), *map(str, args)]
    return launch(cmd, env=env, timeout=timeout)

# Per-rank script lines (after `import errno, os, sys` and `r = int(os.environ["RANK"])`): with argv[2]
# "metrics", rank 0's disk is full when it writes step 2's metrics.jsonl line.
METRICS_FULL_AT_STEP_2 = """
from steel.train import metrics
if r == 0 and sys.argv[2] == "metrics":
    log = metrics.MetricsLogger.log
    def full(self, step, values):
        if step == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.path))
        return log(self, step, values)
    metrics.MetricsLogger.log = full
"""


def rank_errors(r: subprocess.CompletedProcess, code: int) -> list[str]:
    """The sorted `steel: error:` lines of a `torchrun_two` launch whose ranks each printed `rank N exit code
    CODE` (a script that then exits 0 on that code, so torchrun stops no rank before it has printed), checked:
    no rank died in a gloo collective."""
    assert "by peer" not in r.stderr, r.stderr[-3000:]  # gloo: "Connection closed by peer", "reset by peer"
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"rank 0 exit code {code}" in r.stderr and f"rank 1 exit code {code}" in r.stderr, r.stderr[-3000:]
    return sorted(x for x in r.stderr.splitlines() if x.startswith("steel: error:"))


def assert_stopped_by(errors: list[str], rank: int, cause: str) -> None:
    """`errors` are rank `rank`'s own error, holding `cause`, and the other rank's `rank RANK stopped at
    startup: ` + that same error."""
    own = [x for x in errors if "stopped at startup" not in x]
    other = [x for x in errors if x.startswith(f"steel: error: rank {rank} stopped at startup: ")]
    assert len(errors) == 2 and len(own) == 1 and len(other) == 1, errors
    assert cause in own[0], own
    assert other[0] == own[0].replace("steel: error: ", f"steel: error: rank {rank} stopped at startup: ", 1)


def losses(run_dir: Path) -> list[tuple[int, float]]:
    import json

    return [(r["step"], r["loss"]) for r in map(json.loads, (Path(run_dir) / "metrics.jsonl").read_text().splitlines())]


class FakeTime:
    """A stand-in for a module's `time`: `perf_counter()` is `now`, which the test moves (e.g. 1 s per optimizer
    step); everything else is the real module's."""

    def __init__(self):
        self.now = 0.0

    def perf_counter(self) -> float:
        return self.now

    def __getattr__(self, name):
        return getattr(time, name)


class Bytes:
    """A stand-in tokenizer: one id per UTF-8 byte, EOS 0."""

    eos_id, vocab_size, fingerprint, special_ids = 0, 257, "f" * 64, {}

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]
