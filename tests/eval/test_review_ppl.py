"""`steel eval ppl` against an independent reference (a stock Qwen2 model, one full forward per window,
torch's cross_entropy by hand), and chunks that disagree with their manifest."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from test_ppl_contamination import _data_dir

from steel.cli import UserError
from steel.data.chunks import write_chunk
from steel.eval.ppl import perplexity
from steel.infer.load import cast_parameters


def _tiny_qwen2(vocab: int = 300):
    from transformers import Qwen2Config, Qwen2ForCausalLM

    torch.manual_seed(0)
    cfg = Qwen2Config(vocab_size=vocab, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64)
    return Qwen2ForCausalLM(cfg).eval()


class CountingModel(torch.nn.Module):
    """The model, counting its forwards (a check that fails before scoring anything runs none)."""

    def __init__(self, model):
        super().__init__()
        self.inner, self.config, self.calls = model, model.config, 0

    def forward(self, **kw):
        self.calls += 1
        return self.inner(**kw)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_perplexity_against_full_forward_reference(tmp_path, dtype):
    model = _tiny_qwen2()
    if dtype != torch.float32:
        cast_parameters(model, dtype)
    rng = np.random.default_rng(1)
    toks = {"a": rng.integers(0, 300, 50), "b": rng.integers(0, 300, 21)}
    d = _data_dir(tmp_path / "data", toks, 300)
    seq = 8
    got = perplexity(model, d, seq_len=seq, batch_size=3, advance=lambda n: None)
    per = {}
    for name, t in toks.items():
        total, count, start = 0.0, 0, 0
        while len(t) - start >= 2:  # windows written out by hand: [start, start + seq), the next starts at its end
            ids = torch.tensor(t[start : start + seq], dtype=torch.long)[None]
            with torch.no_grad():
                logits = model(input_ids=ids).logits[0].float()
            total += float(F.cross_entropy(logits[:-1], ids[0, 1:], reduction="sum"))
            count += ids.shape[1] - 1
            start += seq
        per[name] = (total, count)
    # 50 tokens in windows of 8: 6 x 7 + 1 (the 2-token tail); 21: 2 x 7 + 4; a 1-token tail scores nothing.
    assert {k: c for k, (_, c) in per.items()} == {"a": 43, "b": 18}
    # NOTE: the same per-window forwards (batching changes no row on CPU); 1e-5 covers summation order in
    # fp32. In bf16 the logits are bf16 either way and the loss is taken in fp32 from them: same bound.
    for name, (total, count) in per.items():
        assert got["sources"][name]["tokens"] == count
        assert got["sources"][name]["nll"] == pytest.approx(total / count, rel=1e-5)
    overall = sum(t for t, _ in per.values()) / sum(c for _, c in per.values())  # token-weighted
    assert got["nll"] == pytest.approx(overall, rel=1e-5)
    assert got["ppl"] == pytest.approx(math.exp(overall), rel=1e-5)


def _two_chunks(tmp_path):
    rng = np.random.default_rng(0)
    return _data_dir(tmp_path / "data", {"a": rng.integers(0, 300, 40), "b": rng.integers(0, 300, 40)}, 300)


def test_chunk_shorter_than_its_manifest_is_refused_before_scoring(tmp_path):
    # The manifest's count decides the windows: a chunk holding fewer tokens made torch.stack fail with a
    # traceback (windows of different lengths) after the chunks before it were scored.
    d = _two_chunks(tmp_path)
    write_chunk(d / "b.bin", np.arange(30) % 300, 300, json.loads((d / "manifest.json").read_text())
                ["tokenizer"]["fingerprint"])
    model = CountingModel(_tiny_qwen2())
    with pytest.raises(UserError, match=r"b\.bin: the chunk header says 30 tokens, .*manifest\.json says 40"):
        perplexity(model, d, seq_len=8, batch_size=2, advance=lambda n: None)
    assert model.calls == 0


def test_chunk_longer_than_its_manifest_is_refused(tmp_path):
    # ... and one holding more was scored in part without a word (the manifest's count, the file's first tokens).
    d = _two_chunks(tmp_path)
    m = json.loads((d / "manifest.json").read_text())
    m["chunks"][0]["tokens"] = 25
    (d / "manifest.json").write_text(json.dumps(m))
    with pytest.raises(UserError, match=r"a\.bin: the chunk header says 40 tokens, .*manifest\.json says 25"):
        perplexity(_tiny_qwen2(), d, seq_len=8, batch_size=2, advance=lambda n: None)


def test_missing_last_chunk_is_refused_before_scoring(tmp_path):
    # A missing chunk was found only when its turn came, after every chunk before it had been scored.
    d = _two_chunks(tmp_path)
    (d / "b.bin").unlink()
    model = CountingModel(_tiny_qwen2())
    with pytest.raises(UserError, match=r"b\.bin: cannot read chunk"):
        perplexity(model, d, seq_len=8, batch_size=2, advance=lambda n: None)
    assert model.calls == 0


def test_chunk_of_another_tokenizer_is_refused(tmp_path):
    d = _two_chunks(tmp_path)
    write_chunk(d / "b.bin", np.arange(40) % 300, 300, "f" * 64)
    with pytest.raises(UserError, match=r"b\.bin: the chunk header's tokenizer fingerprint 'f{64}' differs"):
        perplexity(_tiny_qwen2(), d, seq_len=8, batch_size=2, advance=lambda n: None)



def test_ppl_tokenizer_flag_that_is_not_a_tokenizer_is_an_error(tmp_path, tiny_llama_dir, capsys):
    # The tokenizer only checks the data's fingerprint here, and a --tokenizer that could not be read
    # (a typo) turned that check off without a word instead of failing as in every other command.
    from test_ppl_contamination import _fingerprint

    from steel.cli import main as steel_main

    d = _data_dir(tmp_path / "data", {"a": np.arange(40) % 250}, 261, _fingerprint(tiny_llama_dir))
    argv = ["eval", "ppl", "--model", str(tiny_llama_dir), "--data", str(d), "--seq-len", "8", "--device", "cpu"]
    assert steel_main([*argv, "--tokenizer", str(tmp_path / "typo")]) == 2
    assert f"--tokenizer {tmp_path / 'typo'}: not a directory" in capsys.readouterr().err
    assert steel_main([*argv, "--tokenizer", str(tiny_llama_dir)]) == 0
