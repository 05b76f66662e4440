"""`steel sft` with the run_dir of a pretraining run: refused naming run_dir, and the pretraining run is left alone.

SFT took the pretraining run's newest checkpoint for its own, appended its log lines to the run's
train.log and refused with "data.seed: 1234 in the checkpoint ..., 0 configured ... set data.seed: 1234
again" -- and, seed set so, with "the dataset files changed since the checkpoint".
"""

from __future__ import annotations

import json

from sft_runs import write_sft_run

from steel.cli import main as steel_main


def test_sft_in_a_pretraining_run_dir_is_refused_naming_run_dir(tmp_path, tiny_tokenizer_dir, capsys):
    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=2, ffn_type="soft_moe_v1",
                           data_extra=", seed: 1234", extra="checkpoint: {every: 2}\n")
    assert steel_main(["sft", str(config)]) == 0
    run, ck = tmp_path / "run", tmp_path / "run" / "checkpoints" / "step-2"
    assert json.loads((ck / "data.json").read_text())["kind"] == "sft"
    # The same run dir as a pretraining run leaves it: its loader's state (steel.data.loader) says so.
    (run / "tokenizer").rename(tmp_path / "saved_tokenizer")
    (ck / "data.json").write_text(json.dumps({"version": 1, "kind": "pretrain", "seq_len": 64, "micro_batch": 2,
                                              "world_size": 1, "seed": 1234, "epoch": 0, "consumed": 4}))
    log = (run / "train.log").read_bytes()
    capsys.readouterr()
    assert steel_main(["sft", str(config), "--set", "max_steps=4"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # after the weight-loading progress bar
    assert err == (f"steel: error: run_dir: {run} holds a pretraining run (its checkpoint {ck}); "
                   "an SFT run needs a run_dir of its own (its init may be that run)")
    assert (run / "train.log").read_bytes() == log and not (run / "tokenizer").exists()
    assert not (ck.parent / "step-4").exists()
