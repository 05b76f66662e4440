"""A kill at any point of a swap that replaces OUT/tokenizer/ (another tokenizer's) leaves nothing behind once a
reader (training, `steel data inspect`) has finished the swap: the replaced tokenizer/ is set aside in the swap's
stage, which the finishing reader removes with the journal.

It used to be set aside beside it (OUT/.tokenizer.old-XXXX/) and deleted there: a kill while it was deleted left that
directory, which the reader finishing the swap did not know of (only the next prepare or merge removed it).
"""

from __future__ import annotations

import json
import shutil

from test_s15c_prepare_swap_kill import (  # (same dir)
    NEW_FP,
    OLD_FP,
    OLD_TOKENIZER,
    config,
    output_files,
    run_child,
    write_docs,
)

from steel.data.chunks import read_manifest


def test_a_reader_finishing_a_killed_swap_leaves_no_scratch_directory(tmp_path):
    root = tmp_path / "in"
    root.mkdir()
    write_docs(root)
    old = tmp_path / "old"
    assert run_child(tmp_path, old, config(root, 600, ["a", "b"], True), OLD_FP, -1)[0] == 0
    (old / "tokenizer").mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):  # a few files to delete
        (old / "tokenizer" / name).write_text(json.dumps(OLD_TOKENIZER), encoding="utf-8")
    new_cfg, new = config(root, 450, ["a", "c"], False), tmp_path / "new"
    shutil.copytree(old, new)
    code, trace = run_child(tmp_path, new, new_cfg, NEW_FP, -1)
    assert code == 0 and not (new / "tokenizer").exists()
    committed = next(k + 1 for k, op in enumerate(trace) if op.startswith("replace ") and ".steel-swap.json.tmp" in op)
    out, left = tmp_path / "out", {}
    for k in range(committed, len(trace)):
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(old, out)
        assert run_child(tmp_path, out, new_cfg, NEW_FP, k)[0] == -9, trace[k]
        read_manifest(out)  # as training and inspect read it: the swap is finished
        assert output_files(out) == output_files(new), trace[k]
        hidden = sorted(p.name for p in out.iterdir() if p.name.startswith("."))
        if hidden != [".steel.lock"]:
            left[trace[k]] = hidden
    assert not left, left
