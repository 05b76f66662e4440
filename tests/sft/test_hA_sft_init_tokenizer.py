"""An SFT `tokenizer:` whose ids are not those of the init model's tokenizer is refused at a fresh start, naming the
field and both tokenizers (it was accepted silently whenever it fit in the vocabulary: every id then meant other
text to the pretrained weights); the same tokenizer (another chat template, another copy) is accepted, and
`allow_tokenizer_change: true` accepts a deliberate change."""

from __future__ import annotations

import shutil

from sft_runs import write_sft_run

from steel.cli import main as steel
from steel.data.tokenize import dir_fingerprint


def test_a_tokenizer_other_than_inits_is_refused(tmp_path, tiny_tokenizer_dir, capsys):
    from tiny_models import build_byte_tokenizer
    from transformers import AutoTokenizer

    from steel.tokenizer.qwen import chatml_template

    config = write_sft_run(tmp_path, tiny_tokenizer_dir, max_steps=1, data_extra=", packing: false")
    init, run = tmp_path / "init", tmp_path / "run"
    other = tmp_path / "other"  # as many tokens, one merge different
    build_byte_tokenizer(other, merges=[("Ġ", "A"), ("Ġ", "C")])
    assert len(AutoTokenizer.from_pretrained(str(other))) == len(AutoTokenizer.from_pretrained(str(init))) == 261
    want, got = dir_fingerprint(init), dir_fingerprint(other)
    assert want != got
    capsys.readouterr()
    assert steel(["sft", str(config), "--set", f"tokenizer={other}"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(
        f"steel: error: tokenizer: {other} (fingerprint {got[:12]}..., 261 tokens) is not the tokenizer of init "
        f"{init} ({init}: fingerprint {want[:12]}..., 261 tokens)"), err
    assert "allow_tokenizer_change: true" in err[0]
    assert not (run / "train.log").exists() and not (run / "checkpoints").exists()

    # The explicit escape hatch trains with it (and the run keeps that tokenizer).
    assert steel(["sft", str(config), "--set", f"tokenizer={other}", "--set", "allow_tokenizer_change=true",
                  "--set", f"run_dir={tmp_path / 'run_other'}"]) == 0
    assert dir_fingerprint(tmp_path / "run_other" / "tokenizer") == got

    # The init's tokenizer with another chat template is the same tokenizer: accepted.
    templated = tmp_path / "templated"
    shutil.copytree(init, templated)
    t = AutoTokenizer.from_pretrained(str(templated))
    t.chat_template = chatml_template("Hi")  # a short default system turn (seq_len 64)
    t.save_pretrained(str(templated))
    assert steel(["sft", str(config), "--set", f"tokenizer={templated}"]) == 0
    assert (run / "checkpoints" / "step-1").is_dir()
