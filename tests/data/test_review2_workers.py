"""`steel data prepare` with worker processes: a worker that dies (the out-of-memory killer, a crash in
native code) ends the run with one clear error naming the documents in flight, instead of a hang."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
from pathlib import Path

# Run in a child process: before the fix the run waited forever for the dead worker's batch (and
# Pool.terminate() hung as well), so a hang must end this test, not the test session.
SCRIPT = textwrap.dedent("""
    import json, logging, os, sys
    from pathlib import Path
    from steel.config import from_dict
    from steel.data.config import DataConfig
    import steel.data.prepare as prep

    class Bytes:  # a stand-in tokenizer: one id per UTF-8 byte, EOS 0
        eos_id, vocab_size, fingerprint, special_ids = 0, 257, "f" * 64, {}

        def encode_batch(self, texts):
            return [[b + 1 for b in t.encode()] for t in texts]

    real = prep.DocProcessor.process

    def process(self, batch):  # the worker handed the document "CRASH" dies as an OOM-killed one would
        if any(doc == "CRASH" for _, doc in batch):
            os.kill(os.getpid(), 9)
        return real(self, batch)

    prep.DocProcessor.process = process  # inherited by the forked workers
    d = Path(sys.argv[1])
    cfg = from_dict(DataConfig, {"root": str(d), "tokenizer": "unused", "workers": 2, "batch_chars": 100,
                                 "dedup": {"exact": False, "near": False},
                                 "sources": [{"name": "a", "path": ["a.jsonl"]}]})
    try:
        prep.prepare(cfg, d / "out", encoder=Bytes(), log=logging.getLogger("t"), quiet=True)
        print(json.dumps({"error": None}))
    except BaseException as e:
        print(json.dumps({"error": type(e).__name__, "message": str(e)}))
""")


def test_a_worker_killed_mid_run_is_an_error_not_a_hang(tmp_path):
    docs = [f"document {i}: " + "words " * 10 for i in range(400)]
    docs[250] = "CRASH"  # line 251
    (tmp_path / "a.jsonl").write_text("".join(json.dumps({"text": t}) + "\n" for t in docs), encoding="utf-8")
    (tmp_path / "run.py").write_text(SCRIPT, encoding="utf-8")
    proc = subprocess.Popen([sys.executable, str(tmp_path / "run.py"), str(tmp_path)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True,
                            env=os.environ | {"PYTHONPATH": os.pathsep.join(sys.path)})
    try:
        # a hang guard, not a speed check: the run takes about a second
        out, err = proc.communicate(timeout=120)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise AssertionError("prepare hung after a worker process died") from None
    assert proc.returncode == 0, err
    result = json.loads(out.strip().splitlines()[-1])
    assert result["error"] == "ChildProcessError", result  # an OSError: the CLI prints one line, exit status 1
    msg = result["message"]
    assert "worker process died (exit status -9" in msg
    # the documents in flight are named, and the dead worker's one is among them
    first, last = (int(x) for x in msg.split("documents a.jsonl:")[1].split(" were in flight")[0].split(" to a.jsonl:"))
    assert first <= 251 <= last, msg
    out_dir = tmp_path / "out"
    assert not (out_dir / "manifest.json").exists() and not (out_dir / ".partial").exists()
    assert not list(Path(out_dir).glob("*.bin*"))
