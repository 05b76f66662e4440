"""`steel data merge` and SIGTERM, and a merge into one of its inputs (review V3).

SIGTERM (a scheduler's stop, `kill`, `timeout`) killed a merge as the default action: no cleanup ran, OUT/.partial/
was left with every chunk linked or copied so far (a full copy of the shards across file systems) until the next
merge or prepare into OUT, and the run log said nothing. It is now handled as prepare handles it, like Ctrl-C:
`steel: interrupted`, exit status 130, the stage removed, the previous output as it was (in the swap itself the
signal waits, as before).

`steel data merge S0 S0 S1` (OUT one of the inputs) was refused only inside merge(), after the command had taken
S0's lock and opened S0/merge.log: the input shard got a run log, and without --overwrite the refusal said "output
directory is not empty" instead of naming the mistake.
"""

from __future__ import annotations

import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest
from swap_kill import SRC  # (same dir)
from test_s15c2_merge_swap_kill import config, output_files, write_docs

from steel.cli import main
from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import prepare

LOG = logging.getLogger("steel.test.s15v3")

CHILD = r'''
import os, signal, sys
import steel.runlog
from steel.cli import main

# it imports torch (seconds); not what is tested
steel.runlog.environment_report = lambda: {"steel": "test", "git": None, "versions": {}, "machine": {}}
real, links = os.link, []


def link(*a, **kw):  # SIGTERM arrives while the merge links its second chunk into the stage
    links.append(a)
    if len(links) == 2:
        os.kill(os.getpid(), signal.SIGTERM)
    return real(*a, **kw)


os.link = link
sys.exit(main(["data", "merge", "--overwrite", *sys.argv[1:]]))
'''


class Bytes:
    eos_id, vocab_size, special_ids, fingerprint = 0, 257, {}, "f" * 64

    def encode_batch(self, texts):
        return [[b + 1 for b in t.encode()] for t in texts]


@pytest.fixture(scope="module")
def shard_dirs(tmp_path_factory) -> list[str]:
    tmp = tmp_path_factory.mktemp("s15v3_shards")
    root = tmp / "in"
    root.mkdir()
    write_docs(root)
    cfg = from_dict(DataConfig, config(root, 450, {"a": ["a1.jsonl", "a2.jsonl"], "c": ["c.jsonl"]}))
    dirs = [tmp / f"s{i}" for i in range(2)]
    for i, d in enumerate(dirs):
        prepare(cfg, d, encoder=Bytes(), shard=(i, 2), log=LOG, quiet=True)
    return [str(d) for d in dirs]


def test_sigterm_in_a_merge_is_ctrl_c_the_previous_output_stays_and_no_stage(tmp_path, shard_dirs):
    out = tmp_path / "out"
    merge(out, shard_dirs[:1], log=LOG, allow_missing=True)  # the previous output: shard 0 alone
    before = output_files(out)
    script = tmp_path / "child.py"
    script.write_text(CHILD, encoding="utf-8")
    p = subprocess.run([sys.executable, str(script), str(out), *shard_dirs], env=dict(os.environ, PYTHONPATH=SRC),
                       capture_output=True, text=True, timeout=120)
    assert p.returncode == 130 and "steel: interrupted" in p.stderr, (p.returncode, p.stderr[-2000:])
    after = output_files(out)
    after.pop("merge.log")
    assert (out / "merge.log").read_text(encoding="utf-8").rstrip().endswith("steel: interrupted")
    assert after == before
    assert sorted(p.name for p in out.iterdir() if p.name.startswith(".")) == [".steel.lock"]


@pytest.mark.parametrize("overwrite", [False, True])
def test_a_merge_into_one_of_its_inputs_is_refused_before_it_writes_there(tmp_path, shard_dirs, capsys, overwrite):
    before = [output_files(Path(d)) for d in shard_dirs]
    capsys.readouterr()
    rc = main(["data", "merge", *(["--overwrite"] if overwrite else []), shard_dirs[0], *shard_dirs])
    err = capsys.readouterr().err
    assert rc == 2 and f"{shard_dirs[0]}: the output directory cannot be one of the inputs" in err, err
    assert [output_files(Path(d)) for d in shard_dirs] == before  # no merge.log in the shard
