"""`steel model info steel-1b` prints the figures the README quotes (README, "steel model info"): per-part
parameters and the training (3 x forward) FLOPs per part. The other tests check flops_per_token's numbers
and the exit status, not what the command prints: printing forward FLOPs for the parts (a third of their
training cost) or a wrong unit in `_fmt` went unnoticed."""

from __future__ import annotations

import re

from steel.cli import main


def test_info_prints_the_readme_figures(capsys):
    assert main(["model", "info", "steel-1b"]) == 0
    out = capsys.readouterr().out
    # README table: embedding, attention, FFN, norms, lm_head, total parameters; true, attention, FFN,
    # lm_head training FLOPs per token at seq_len 2048; 6N = 1.97 x true, non-embedding 1.49 x true.
    for count in ("272,269,312", "231,307,776", "347,010,066", "66,304", "1,122,922,770"):
        assert count in out, count
    assert re.search(r"^\s+true\s+[\d,]+\s+3\.422G$", out, re.M)
    assert re.search(r"^\s+attention\s+[\d,]+\s+1\.784G$", out, re.M)
    assert re.search(r"^\s+ffn\s+[\d,]+\s+4\.500M$", out, re.M)
    assert re.search(r"^\s+lm_head\s+[\d,]+\s+1\.634G$", out, re.M)
    assert "6.738G  = 1.97 x true" in out and "= 1.49 x true" in out


def test_check_causal_positions_span_the_sequence_and_rtol_is_checked(monkeypatch, capsys):
    # --positions K probes K evenly spaced t from the first (0) to the last one with a later token
    # (seq_len - 2): a spacing of (seq_len - 2) / K never probed the end, where a leak through the last
    # chunk shows. A negative --rtol reported every model as leaking.
    import steel.model.causality as causality

    seen = {}
    real = causality.check_causal

    def spy(model, vocab_size, **kw):
        seen["positions"] = kw["positions"]
        return real(model, vocab_size, **kw)

    monkeypatch.setattr(causality, "check_causal", spy)
    assert main(["model", "check-causal", "tiny", "--set", "ffn_type=swiglu", "--seq-len", "10",
                 "--positions", "4"]) == 0
    assert seen["positions"] == [0, 3, 5, 8]  # round(i * 8 / 3) for i = 0..3
    assert main(["model", "check-causal", "tiny", "--rtol", "-1"]) == 2
    assert "--rtol must be >= 0 (got -1.0)" in capsys.readouterr().err
