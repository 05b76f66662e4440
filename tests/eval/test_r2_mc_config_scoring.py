"""`steel eval mc --config FILE --mode generate`: the flag replaces a logprob file's mode and its `scoring:`
with it, whatever that scoring is; a file whose own mode is generate and which sets `scoring:` is refused
even when --mode generate repeats its mode (README, "Evaluation")."""

from __future__ import annotations

import json

from test_mc import make_ceval_dir

from steel.cli import main as steel_main


def _argv(tiny_llama_dir, cfg, bench, *extra):
    return ["eval", "mc", "--model", str(tiny_llama_dir), "--config", str(cfg), "--data", str(bench),
            "--shots", "0", "--limit", "1", "--max-new-tokens", "1", "--device", "cpu", *extra]


def test_mode_generate_drops_a_continuation_scoring_of_a_logprob_file(tmp_path, tiny_llama_dir, capsys):
    bench = make_ceval_dir(tmp_path / "ceval")
    cfg = tmp_path / "cont.yaml"
    cfg.write_text("task: ceval\nmode: logprob\nscoring: continuation\n", encoding="utf-8")
    out = tmp_path / "r.json"
    assert steel_main(_argv(tiny_llama_dir, cfg, bench, "--mode", "generate", "--out", str(out))) == 0, \
        capsys.readouterr().err
    result = json.loads(out.read_text(encoding="utf-8"))
    assert (result["mode"], result["scoring"]) == ("generate", "generate")


def test_generate_file_with_scoring_refused_under_a_repeated_mode_flag(tmp_path, tiny_llama_dir, capsys):
    bench = make_ceval_dir(tmp_path / "ceval")
    cfg = tmp_path / "gen.yaml"
    cfg.write_text("task: ceval\nmode: generate\nscoring: letter\n", encoding="utf-8")
    assert steel_main(_argv(tiny_llama_dir, cfg, bench, "--mode", "generate")) == 2
    err = capsys.readouterr().err
    assert err == f"steel: error: {cfg}: scoring: only for mode logprob (got mode generate)\n", err
    # --mode logprob makes the file's scoring the one used: taken.
    assert steel_main(_argv(tiny_llama_dir, cfg, bench, "--mode", "logprob")) == 0, capsys.readouterr().err
