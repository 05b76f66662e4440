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
import pytest
import torch

from steel.data.chunks import head_tail_md5, write_chunk, write_manifest

VOCAB = 256
EOS = 0
FINGERPRINT = "test-tokenizer-v1"
# FSDP on the CPU (gloo) needs CPU streams with record_event, which torch 2.6 (pyproject's floor) lacks; Steel
# refuses parallel.mode fsdp on CPU there (tests/train/test_s16g_fsdp_cpu_old_torch.py). On GPUs it runs.
needs_cpu_fsdp = pytest.mark.skipif(
    not hasattr(torch.cpu.Stream, "record_event"),
    reason=f"torch {torch.__version__}: FSDP2 cannot run on CPU (no record_event on CPU streams)",
)


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


# Every process of a launch has this variable in its environment, with a value of its own launch: found by it also
# when its parent has gone (a torchrun agent killed from outside leaves its ranks, each in a session of its own,
# outside any tree or process group of the agent).
_MARK = "STEEL_TEST_LAUNCH"


def _tree(p: subprocess.Popen) -> list[int]:
    """`p`'s pid and those of every process under it (Linux: found through /proc; elsewhere `p` alone).

    NOTE: torchrun starts each rank in a session of its own, so killing torchrun's process group missed them,
    and a rank killed after torchrun (its parent gone) could not be found any more: `_marked` finds those."""
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


def _marked(mark: str | None) -> list[int]:
    """The pids of the running processes whose environment holds `_MARK`=`mark`: those of one launch."""
    if mark is None:
        return []
    key, found = f"{_MARK}={mark}".encode(), []
    for environ in Path("/proc").glob("[0-9]*/environ"):
        with contextlib.suppress(OSError, ValueError):  # ended meanwhile, or another user's
            if key in environ.read_bytes().split(b"\0"):
                found.append(int(environ.parent.name))
    return found


def _kill_tree(p: subprocess.Popen, known: list[int] | None = None, mark: str | None = None) -> None:
    """SIGKILL `p`, every process under it, the processes `known` (found under it earlier) and those of its
    launch `mark` (`p`'s tree only while `p` is not reaped: its pid may be another process's since)."""
    tree = _tree(p) if p.returncode is None else []
    for pid in dict.fromkeys([*tree, *(known or []), *_marked(mark)]):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)


class Launch:
    """Commands started at once, each a launch of several processes (torchrun: one agent per node, all on this
    machine), run as `launch` runs one: `wait()` returns each one's CompletedProcess; one still running after
    `timeout` seconds fails the test with every command's output so far (and, with `stacks`, every Python
    process's stacks) and no process of any of them is left running. `kill(i)` ends command `i` and every process
    it started (a node that dies) from outside.

    Each launch gets a TMPDIR of its own, removed at its end: torchrun's agent makes a `torchelastic_*` log
    directory there at each start and never removes it (hundreds were left in /tmp by the suite)."""

    def __init__(self, cmds: list[list[str]], *, env: dict, timeout: float, cwd: Path | None = None,
                 stacks: bool = True):
        import tempfile
        import threading
        import uuid

        self.cmds, self.timeout, self.stacks = cmds, timeout, stacks
        self.deadline = time.monotonic() + timeout
        self.tmp = tempfile.mkdtemp(prefix="steel-launch-")
        env = {**env, "TMPDIR": self.tmp}
        # inductor's cache (a compiled rank's kernels) stays where it was, shared by the launches as before
        env.setdefault("TORCHINDUCTOR_CACHE_DIR", os.path.join(tempfile.gettempdir(), f"torchinductor_{_user()}"))
        if stacks:
            env["PYTHONFAULTHANDLER"] = "1"
        self.marks = [uuid.uuid4().hex for _ in cmds]
        self.procs: list[subprocess.Popen] = []
        self.out: list[list[str]] = [["", ""] for _ in cmds]
        self.threads: list[threading.Thread] = []
        try:
            for cmd, mark in zip(cmds, self.marks):
                self.procs.append(subprocess.Popen(cmd, env={**env, _MARK: mark}, stdout=subprocess.PIPE,
                                                   stderr=subprocess.PIPE, text=True, cwd=cwd))
        except BaseException:
            # NOTE: the TMPDIR too (only wait() removed it: a command that could not start left it behind)
            self.close()
            raise
        for i, p in enumerate(self.procs):
            for k, pipe in enumerate((p.stdout, p.stderr)):
                self.threads.append(threading.Thread(target=self._read, args=(i, k, pipe), daemon=True))
            # A command that ended leaves no process behind: a rank whose agent was killed from outside held the
            # pipes open (the launch waited for it until its timeout) and ran on.
            self.threads.append(threading.Thread(target=self._reap, args=(i,), daemon=True))
        for t in self.threads:
            t.start()

    def _read(self, i: int, k: int, pipe) -> None:
        self.out[i][k] = pipe.read()

    def _reap(self, i: int) -> None:
        self.procs[i].wait()
        _kill_tree(self.procs[i], mark=self.marks[i])  # its own pid is not looked at once reaped (reused)

    def kill(self, i: int) -> None:
        """SIGKILL command `i` and every process it started."""
        _kill_tree(self.procs[i], mark=self.marks[i])

    def _kill_all(self, known: list[int] | None = None) -> None:
        for p, mark in zip(self.procs, self.marks):
            _kill_tree(p, known, mark)

    def close(self) -> None:
        """Kill every process of the launch, wait for its pipes and remove its TMPDIR (`wait()` ends so when it
        fails; `with Launch(...) as run:` on leaving the block)."""
        import shutil

        try:
            self._kill_all()
            self._join(None)  # the pipes close once every process is gone
            for p in self.procs:
                p.wait()
                p.stdout.close()
                p.stderr.close()
        finally:
            shutil.rmtree(self.tmp, ignore_errors=True)

    def __enter__(self) -> Launch:
        return self

    def __exit__(self, *exc) -> None:
        # NOTE: a launch not waited for (an error or Ctrl-C while a test polled it before killing a node) ran on,
        # its ranks until gloo's timeout, and left its TMPDIR.
        self.close()

    def _join(self, deadline: float | None) -> bool:
        for t in self.threads:
            t.join(None if deadline is None else max(0.0, deadline - time.monotonic()))
        return not any(t.is_alive() for t in self.threads)

    def wait(self) -> list[subprocess.CompletedProcess]:
        try:
            if not self._join(self.deadline):
                self._timed_out()
        except BaseException:  # interrupted (Ctrl-C), or timed out: no process left running
            self.close()
            raise
        finally:
            import shutil

            shutil.rmtree(self.tmp, ignore_errors=True)
        return [subprocess.CompletedProcess(cmd, p.returncode, out, err)
                for cmd, p, (out, err) in zip(self.cmds, self.procs, self.out)]

    def _timed_out(self) -> None:
        running = [p.poll() is None for p in self.procs]
        ranks: list[int] = []
        try:
            if self.stacks:
                # The launchers stopped first: torchrun's agent would stop the other ranks (SIGTERM, no stacks)
                # once it saw one die.
                for p, mark in zip(self.procs, self.marks):
                    launcher, *tree = _tree(p) if p.returncode is None else [None]  # an ended one: its pid reused
                    if launcher is not None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(launcher, signal.SIGSTOP)
                    ranks += [pid for pid in dict.fromkeys([*tree, *_marked(mark)]) if pid != launcher]
                for pid in ranks:
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGABRT)
                    time.sleep(2)
        finally:
            # NOTE: also when interrupted meanwhile (Ctrl-C): it left torchrun stopped and ranks running. The
            # processes found before the aborts too: a rank's child, its parent aborted, is no longer under p.
            self._kill_all(ranks)
            self._join(None)  # the pipes close once every process is gone
        parts = []
        for cmd, (out, err), p, late in zip(self.cmds, self.out, self.procs, running):
            what = "torchrun" if "torch.distributed.run" in cmd else Path(cmd[0]).name
            ended = (f"did not end in {self.timeout} s (killed, with every process under it)" if late else
                     f"ended (exit status {p.returncode}), another command did not")
            parts.append(f"{what} {ended}: "
                         f"{' '.join(map(str, cmd))}\nits stderr so far, each rank's Python stacks last:\n"
                         f"{err[-30000 // len(self.cmds):]}\n--- stdout ---\n{out[-3000:]}")
        raise AssertionError("\n\n".join(parts)) from None


def _user() -> str:
    import getpass

    with contextlib.suppress(Exception):
        return getpass.getuser()
    return "unknown"


def launch(cmd: list[str], *, env: dict, timeout: float, cwd: Path | None = None,
           stacks: bool = True) -> subprocess.CompletedProcess:
    """`subprocess.run(cmd, capture_output=True, text=True)` for a launch of several processes (torchrun): one
    still running after `timeout` seconds fails the test with its output so far, and neither it nor any
    process it started is left running (`Launch`). With `stacks`, every Python process of the launch prints its
    stacks first (faulthandler on SIGABRT, 2 s apart so that two dumps never interleave on the shared pipe).

    NOTE: subprocess.run's timeout killed torchrun alone (its ranks ran on, orphaned, until gloo's timeout),
    and its TimeoutExpired showed none of the output: a hang in CI told nothing of where each rank was."""
    return Launch([cmd], env=env, timeout=timeout, cwd=cwd, stacks=stacks).wait()[0]


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


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def torchrun_nodes(node_args: list[list], *, timeout: float = 240, join_timeout: float = 120,
                   nnodes: int | None = None, env: dict | None = None) -> Launch:
    """Start one torchrun agent per entry of `node_args` (each `--nproc_per_node 1`, its own command line after
    the launcher's options: `-m steel.cli train ...` or a script and its argv), as the README's several-node
    launch does (`--nnodes N --rdzv_backend c10d --rdzv_endpoint ...`), all on this machine; returns the
    `Launch` (`wait()`, `kill(node)`). The agents rendezvous for `join_timeout` seconds at most, `nnodes` of them
    (by default as many as started: fewer, the others never come).

    NOTE: under c10d torchrun ignores `--node_rank` (it warns so): the rendezvous numbers the nodes in the
    order of their descriptors (address, then pid). Each agent here names a loopback address of its own
    (`--local_addr 127.0.0.<node + 1>`), so node i runs rank i, as a test that names the rank of a node needs.
    The addresses are compared as strings (9 nodes at most: 127.0.0.10 sorts before 127.0.0.2), and only node
    0's is connected to (MASTER_ADDR): the others are names, so a machine whose loopback holds 127.0.0.1 alone
    runs these tests too (seen in a network namespace with lo 127.0.0.1/32, review V2).
    Node 0's agent hosts the rendezvous store, as the endpoint's node does on a cluster (`is_host`): on one
    machine every agent took the endpoint for its own and the first to bind it hosted it, at times node 1's,
    whose end then took the store from node 0's agent (RendezvousConnectionError), which stopped its rank."""
    env = {**os.environ, "OMP_NUM_THREADS": "1", "STEEL_NO_PROGRESS": "1", **(env or {})}
    endpoint, rdzv_id = f"127.0.0.1:{_free_port()}", f"steel-test-{os.getpid()}-{time.monotonic_ns()}"
    cmds = [[sys.executable, "-m", "torch.distributed.run", "--nnodes", str(nnodes or len(node_args)), "--node_rank", str(i),
             "--nproc_per_node", "1", "--rdzv_backend", "c10d", "--rdzv_endpoint", endpoint, "--rdzv_id", rdzv_id,
             "--rdzv_conf", f"join_timeout={join_timeout:g},is_host={int(i == 0)}", "--local_addr", f"127.0.0.{i + 1}",
             *map(str, args)] for i, args in enumerate(node_args)]
    return Launch(cmds, env=env, timeout=timeout)
