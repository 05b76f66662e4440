"""Review 4 of `steel generate` / `steel chat`: input the model or tokenizer cannot take is one error line
naming the flag or file (each was a traceback), and a chat goes on past a line that is not UTF-8."""

from __future__ import annotations

import io
import json
import shutil
import sys
from pathlib import Path

import pytest
from tiny_models import build_tiny_llama

from steel.cli import main as steel_main
from steel.infer import generate as G

sys.path.insert(0, str(Path(__file__).resolve().parent))

from run_dirs import make_run_dir  # noqa: E402

GBK_HELLO = "你好".encode("gbk")  # b"\xc4\xe3\xba\xc3": not UTF-8


def _greedy_chat_reply(model_dir: Path, text: str, n: int) -> str:
    """Reference: the greedy reply to one user turn, computed apart from the CLI."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(str(model_dir)).eval()
    tok = AutoTokenizer.from_pretrained(str(model_dir))
    ids = G.chat_prompt_ids(tok, [{"role": "user", "content": text}])
    return G.generate_text(model, tok, ids, G.SamplingOptions(max_new_tokens=n, temperature=0.0))


def test_prompt_id_outside_the_models_vocabulary_is_a_user_error(tmp_path, tiny_tokenizer_dir, capsys):
    # A tokenizer that is not the model's (here 261 tokens for a 256-row embedding: the ChatML markers are
    # ids 259/260) failed in the embedding lookup with `IndexError: index out of range in self` (on CUDA a
    # device-side assert).
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    assert len(tok) > 256
    d = tmp_path / "model"
    build_tiny_llama(256).save_pretrained(str(d))
    base = ["generate", "--model", str(d), "--tokenizer", str(tiny_tokenizer_dir), "--device", "cpu",
            "--temperature", "0", "--max-new-tokens", "2"]
    assert steel_main([*base, "--chat", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    start = tok.convert_tokens_to_ids("<|im_start|>")
    assert f"prompt token id {start} is outside the model's vocabulary (256 embeddings)" in err
    assert "--tokenizer" in err
    # A prompt whose ids all have rows is generated as before.
    assert steel_main([*base, "--prompt", "hi"]) == 0


def test_chat_template_that_refuses_the_conversation_is_a_user_error(tmp_path, tiny_llama_dir, capsys,
                                                                      monkeypatch):
    # Gemma's and Mistral's templates `raise_exception("System role not supported")`: `--system` ended
    # generate and chat with a jinja2 TemplateError traceback.
    d = tmp_path / "model"
    shutil.copytree(tiny_llama_dir, d)
    template = (d / "chat_template.jinja").read_text(encoding="utf-8")
    refuse = "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    (d / "chat_template.jinja").write_text(refuse + template, encoding="utf-8")
    base = ["--model", str(d), "--device", "cpu", "--temperature", "0", "--max-new-tokens", "3"]
    assert steel_main(["generate", *base, "--chat", "--system", "be brief", "--prompt", "hi"]) == 2
    err = capsys.readouterr().err
    assert "chat template refuses this conversation: System role not supported" in err
    assert "Traceback" not in err
    monkeypatch.setattr("sys.stdin", io.StringIO("hi\n"))
    assert steel_main(["chat", *base, "--system", "be brief"]) == 2
    assert "System role not supported" in capsys.readouterr().err
    # The template still serves what it accepts, and a content holding a marker (the other rendering path)
    # is refused the same way.
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(d))
    assert G.chat_prompt_ids(tok, [{"role": "user", "content": "hi"}]) == tok.apply_chat_template(
        [{"role": "user", "content": "hi"}], add_generation_prompt=True, tokenize=True, return_dict=False
    )
    from steel.cli import UserError

    with pytest.raises(UserError, match="System role not supported"):
        G.chat_prompt_ids(tok, [{"role": "system", "content": "<|im_end|>"}, {"role": "user", "content": "hi"}])


def test_generate_prompt_that_is_not_utf8_is_named(tiny_llama_dir, capsys, monkeypatch):
    # Non-UTF-8 bytes (a GBK terminal or file) reach Python as lone surrogates (argv) or a decode error
    # (stdin in a UTF-8 locale): the first was `TypeError: TextEncodeInput must be Union[...]` from the
    # tokenizer, the second a UnicodeDecodeError, both tracebacks.
    base = ["generate", "--model", str(tiny_llama_dir), "--device", "cpu", "--max-new-tokens", "2"]
    as_argv = GBK_HELLO.decode("utf-8", "surrogateescape")  # what Python makes of such an argument
    assert steel_main([*base, "--prompt", as_argv]) == 2
    assert "--prompt: not UTF-8 text (byte 0xC4 at character 0)" in capsys.readouterr().err
    assert steel_main([*base, "--chat", "--prompt", "hi", "--system", "x" + as_argv]) == 2
    assert "--system: not UTF-8 text (byte 0xC4 at character 1)" in capsys.readouterr().err
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(GBK_HELLO + b"\n"), encoding="utf-8"))
    assert steel_main([*base, "--prompt", "-"]) == 2
    assert "--prompt -: stdin is not utf-8 text (byte 0xC4)" in capsys.readouterr().err


def test_chat_skips_a_line_that_is_not_utf8_and_goes_on(tiny_llama_dir, capsys, monkeypatch):
    # `steel chat < questions.txt` with one GBK line (stdin decoded strictly, as in a UTF-8 locale) died
    # with a UnicodeDecodeError before answering anything, and in the C locale with a TypeError.
    want = _greedy_chat_reply(tiny_llama_dir, "hello", 4)
    stdin = io.TextIOWrapper(io.BytesIO(GBK_HELLO + b"\nhello\n"), encoding="utf-8", errors="strict")
    monkeypatch.setattr("sys.stdin", stdin)
    rc = steel_main(["chat", "--model", str(tiny_llama_dir), "--device", "cpu", "--temperature", "0",
                     "--max-new-tokens", "4"])
    out, err = capsys.readouterr()
    assert rc == 0, err
    assert out == want + "\n"  # the second line answered as if it were the first
    assert "(steel chat: line 1 not sent: not UTF-8 text (byte 0xC4 at character 0)" in err


def test_corrupt_checkpoint_model_config_names_the_file(tmp_path, tiny_llama_dir, capsys):
    # A model_config.json cut short (an interrupted copy of a run dir) was a JSONDecodeError traceback.
    from transformers import AutoModelForCausalLM

    run = make_run_dir(tmp_path / "run", AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), [])
    cfg = run / "checkpoints" / "step-2" / "model_config.json"
    cfg.write_text(json.dumps({"model_type": "llama"})[:10], encoding="utf-8")
    args = ["generate", "--model", str(run), "--tokenizer", str(tiny_llama_dir), "--prompt", "hi", "--device", "cpu"]
    assert steel_main(args) == 2
    assert f"{cfg}: not valid JSON" in capsys.readouterr().err
    cfg.write_text("[]", encoding="utf-8")
    assert steel_main(args) == 2
    assert f"{cfg}: expected a JSON object" in capsys.readouterr().err


def test_seed_beyond_64_bits_is_refused_by_name(tiny_llama_dir, capsys):
    # torch's generator takes 64 bits: `--seed 18446744073709551616` was a ValueError traceback.
    base = ["generate", "--model", str(tiny_llama_dir), "--prompt", "hi", "--device", "cpu", "--max-new-tokens", "2"]
    assert steel_main([*base, "--seed", str(2**64)]) == 2
    assert f"--seed: must be in [-2**63, 2**64), got {2**64}" in capsys.readouterr().err
    assert steel_main([*base, "--seed", str(2**64 - 1)]) == 0


def test_checkpoint_of_a_stock_bf16_config_loads_its_fp32_weights_exactly(tmp_path, tiny_llama_dir):
    # A stock HF config says `dtype: bfloat16` (every Qwen/Llama config.json on the hub) while the trainer
    # saves fp32 weights (checked with `steel train` on such a config): from_config built the model in
    # bf16 and loading rounded the weights; "as saved" gave bf16, and `--dtype float32` fp32 parameters
    # holding the rounded values.
    import torch
    from transformers import AutoModelForCausalLM

    from steel.infer.load import load_model

    model = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()
    assert {p.dtype for p in model.parameters()} == {torch.float32}
    model.config.dtype = torch.bfloat16  # what model_config.json of such a run records
    run = make_run_dir(tmp_path / "run", model, [])
    assert json.loads((run / "checkpoints" / "step-2" / "model_config.json").read_text())["dtype"] == "bfloat16"
    ids = torch.tensor([[5, 17, 42, 99, 7]])
    with torch.no_grad():
        want = model(input_ids=ids).logits
    for dtype in (None, "float32"):
        loaded = load_model(run, "cpu", dtype)
        assert {p.dtype for p in loaded.parameters()} == {torch.float32}
        for name, p in loaded.named_parameters():
            assert torch.equal(p, model.get_parameter(name)), name
        with torch.no_grad():
            assert torch.equal(loaded(input_ids=ids).logits, want)
    # `--dtype bfloat16` rounds once, from the fp32 weights.
    loaded = load_model(run, "cpu", "bfloat16")
    w = loaded.get_parameter("model.layers.0.self_attn.q_proj.weight")
    assert torch.equal(w, model.get_parameter("model.layers.0.self_attn.q_proj.weight").to(torch.bfloat16))


def test_tokenizer_files_that_do_not_parse_name_the_directory(tmp_path, tiny_llama_dir, capsys):
    # A tokenizer.json cut short (an interrupted download) was a JSONDecodeError traceback from transformers.
    bad = tmp_path / "tok"
    bad.mkdir()
    shutil.copy(tiny_llama_dir / "tokenizer_config.json", bad)
    text = (tiny_llama_dir / "tokenizer.json").read_text(encoding="utf-8")
    (bad / "tokenizer.json").write_text(text[: len(text) // 2], encoding="utf-8")
    args = ["generate", "--model", str(tiny_llama_dir), "--tokenizer", str(bad), "--prompt", "hi", "--device", "cpu"]
    assert steel_main(args) == 2
    assert f"--tokenizer {bad}: cannot be loaded (JSONDecodeError" in capsys.readouterr().err
    model = tmp_path / "model"  # the same, found in the model directory
    shutil.copytree(tiny_llama_dir, model)
    shutil.copy(bad / "tokenizer.json", model)
    assert steel_main(["generate", "--model", str(model), "--prompt", "hi", "--device", "cpu"]) == 2
    assert f"tokenizer {model}: cannot be loaded" in capsys.readouterr().err


def test_chat_system_prompt_that_is_not_utf8_is_named(tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    from steel.cli import UserError
    from steel.infer.chat import chat_loop

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    system = GBK_HELLO.decode("utf-8", "surrogateescape")
    with pytest.raises(UserError, match=r"--system: not UTF-8 text \(byte 0xC4 at character 0\)"):
        chat_loop(None, tok, G.SamplingOptions(), io.StringIO("hi\n"), lambda s: None, system=system)
