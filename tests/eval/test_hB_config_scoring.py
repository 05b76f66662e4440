"""`scoring:` in an `steel eval mc` config is refused in generate mode, as `--scoring` is: `scoring: letter`
(the default's value, which McOptions cannot tell from a default) was silently ignored there."""

from __future__ import annotations

import pytest
from test_mc import make_ceval_dir

from steel.cli import main as steel_main


@pytest.mark.parametrize(
    "body, flags, expected",
    [
        ("mode: generate\nscoring: letter\n", [], "{cfg}: scoring: only for mode logprob (got mode generate)"),
        ("mode: logprob\nscoring: letter\n", ["--mode", "generate"],
         "{cfg}: scoring: only for mode logprob (got mode generate from --mode)"),
    ],
)
def test_config_scoring_refused_in_generate_mode(tmp_path, tiny_llama_dir, capsys, body, flags, expected):
    bench = make_ceval_dir(tmp_path / "ceval")
    cfg = tmp_path / "gen.yaml"
    cfg.write_text("task: ceval\n" + body, encoding="utf-8")
    argv = ["eval", "mc", "--model", str(tiny_llama_dir), "--config", str(cfg), "--data", str(bench),
            "--shots", "0", "--limit", "1", "--max-new-tokens", "1", "--device", "cpu"]
    assert steel_main(argv + flags) == 2
    err = capsys.readouterr().err
    assert err == "steel: error: " + expected.format(cfg=cfg) + "\n", err
    # Without `scoring:` the same run goes through.
    cfg.write_text("task: ceval\n" + body.replace("scoring: letter\n", ""), encoding="utf-8")
    assert steel_main(argv + flags) == 0, capsys.readouterr().err
