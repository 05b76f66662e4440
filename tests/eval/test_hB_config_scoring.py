"""`scoring:` in an `steel eval mc` config is refused in generate mode, as `--scoring` is: `scoring: letter`
(the default's value, which McOptions cannot tell from a default) was silently ignored there."""

from __future__ import annotations

import json

from test_mc import make_ceval_dir

from steel.cli import main as steel_main


def test_config_scoring_refused_in_generate_mode(tmp_path, tiny_llama_dir, capsys):
    bench = make_ceval_dir(tmp_path / "ceval")
    cfg = tmp_path / "gen.yaml"
    cfg.write_text("task: ceval\nmode: generate\nscoring: letter\n", encoding="utf-8")
    argv = ["eval", "mc", "--model", str(tiny_llama_dir), "--config", str(cfg), "--data", str(bench),
            "--shots", "0", "--limit", "1", "--max-new-tokens", "1", "--device", "cpu"]
    assert steel_main(argv) == 2
    err = capsys.readouterr().err
    assert err == f"steel: error: {cfg}: scoring: only for mode logprob (got mode generate)\n", err
    # Without `scoring:` the same run goes through.
    cfg.write_text("task: ceval\nmode: generate\n", encoding="utf-8")
    assert steel_main(argv) == 0, capsys.readouterr().err


def test_mode_flag_overrides_a_logprob_config_with_its_scoring(tmp_path, tiny_llama_dir, capsys):
    # A shipped 5-shot config (mode: logprob, scoring: letter) run with --mode generate: the flag replaces the
    # file's mode and what goes with it; refusing it made every logprob config unusable in generate mode.
    bench = make_ceval_dir(tmp_path / "ceval")
    cfg = tmp_path / "logprob.yaml"
    cfg.write_text("task: ceval\nmode: logprob\nscoring: letter\n", encoding="utf-8")
    argv = ["eval", "mc", "--model", str(tiny_llama_dir), "--config", str(cfg), "--data", str(bench),
            "--shots", "0", "--limit", "1", "--max-new-tokens", "1", "--device", "cpu", "--mode", "generate",
            "--out", str(tmp_path / "r.json")]
    assert steel_main(argv) == 0, capsys.readouterr().err
    assert json.loads((tmp_path / "r.json").read_text(encoding="utf-8"))["mode"] == "generate"
