"""`steel export`: the output loads where steel is not importable and gives the source's logits."""

from __future__ import annotations

import json
import subprocess
import sys
import sysconfig
from pathlib import Path

import pytest
import torch

from steel.cli import main as steel_main

# Runs in a fresh interpreter: -I (isolated: no cwd, no PYTHONPATH, no user site) and -S (no site, so
# the editable install's .pth that puts steel's src/ on sys.path is not processed); only the venv's
# site-packages directory is added back by hand.
CHILD = r"""
import json, sys
sys.path.append(sys.argv[1])
try:
    import steel
    raise SystemExit("steel is importable in the child: the test would prove nothing")
except ModuleNotFoundError:
    pass
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig
out = sys.argv[2]
remote = {"trust_remote_code": True} if sys.argv[4] == "remote" else {}  # a stock export must need none
model = AutoModelForCausalLM.from_pretrained(out, **remote).eval()
tok = AutoTokenizer.from_pretrained(out)
ids = tok.apply_chat_template([{"role": "user", "content": "你好，Steel"}], add_generation_prompt=True, tokenize=False)
ids = tok.encode(ids, add_special_tokens=False)
with torch.no_grad():
    logits = model(input_ids=torch.tensor([ids])).logits[0]
torch.save({"ids": ids, "logits": logits, "class": type(model).__module__ + "." + type(model).__name__,
            "eos": GenerationConfig.from_pretrained(out).eos_token_id}, sys.argv[3])
"""


def _steel_source(tmp_path: Path, tokenizer_dir: Path) -> Path:
    from transformers import AutoTokenizer

    from steel.model import build_model, load_model_config

    cfg = load_model_config("tiny")  # soft-MoE v3 of SENet experts, as steel-1b
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    src = tmp_path / "src"
    model.save_pretrained(str(src))
    AutoTokenizer.from_pretrained(str(tokenizer_dir)).save_pretrained(str(src))
    return src


def test_export_round_trip_without_steel(tmp_path, tiny_tokenizer_dir):
    src = _steel_source(tmp_path, tiny_tokenizer_dir)
    out = tmp_path / "export"
    assert steel_main(["export", str(src), str(out)]) == 0

    config = json.loads((out / "config.json").read_text())
    assert config["model_type"] == "steel"
    assert config["auto_map"]["AutoModelForCausalLM"].endswith("modeling_steel.SteelForCausalLM")
    for name in (
        "model.safetensors",
        "modeling_steel.py",
        "configuration_steel.py",
        "tokenizer.json",
        "generation_config.json",
    ):
        assert (out / name).is_file(), name
    tok_cfg = (out / "tokenizer_config.json").read_text() + (
        (out / "chat_template.jinja").read_text() if (out / "chat_template.jinja").exists() else ""
    )
    assert "<|im_start|>" in tok_cfg  # the ChatML chat template travels with the tokenizer

    result = tmp_path / "child.pt"
    site = sysconfig.get_paths()["purelib"]
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHILD, site, str(out), str(result), "remote"],
        check=False,
        capture_output=True,
        text=True,
        cwd=tmp_path,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = torch.load(result)
    assert child["class"].startswith("transformers_modules.") and child["class"].endswith("SteelForCausalLM")
    assert child["eos"] == [260, 258]  # <|im_end|>, <|endoftext|> in the tiny vocabulary

    from steel.infer.load import load_model

    with torch.no_grad():
        want = load_model(src).eval()(input_ids=torch.tensor([child["ids"]])).logits[0]
    # Same fp32 weights through the same code on the same machine: bit-identical.
    assert torch.equal(child["logits"], want)


@pytest.mark.parametrize("bias, cls", [(True, "Qwen2ForCausalLM"), (False, "LlamaForCausalLM")])
def test_stock_export_is_transformers_own_class(tmp_path, tiny_tokenizer_dir, bias, cls, capsys):
    """--stock: a dense Steel model as Qwen2/Llama, loaded without steel and without trust_remote_code (a
    closed stdin: transformers' "run custom code?" prompt would fail the child), with the same logits."""
    from transformers import AutoTokenizer

    from steel.model import SteelConfig, SteelForCausalLM

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    cfg = SteelConfig(vocab_size=len(tok), hidden_size=64, intermediate_size=96, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, ffn_type="swiglu", attention_bias=bias,
                      rope_theta=10000.0, document_mask=True, eos_token_id=tok.eos_token_id)
    torch.manual_seed(0)
    model = SteelForCausalLM(cfg).eval()
    with torch.no_grad():  # biases start at zero: make them count
        for p in model.parameters():
            p.add_(0.05 * torch.randn_like(p))
    src = tmp_path / "src"
    model.save_pretrained(str(src))
    tok.save_pretrained(str(src))
    out = tmp_path / "stock"
    assert steel_main(["export", str(src), str(out)]) == 0  # a Steel export there first: its .py files must go
    assert (out / "modeling_steel.py").is_file()
    assert steel_main(["export", str(src), str(out), "--stock", "--overwrite"]) == 0
    assert "document_mask" in capsys.readouterr().err  # the one behaviour the stock class lacks is named
    assert not list(out.glob("*.py"))
    config = json.loads((out / "config.json").read_text())
    assert config["architectures"] == [cls] and "auto_map" not in config

    result = tmp_path / "child.pt"
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", CHILD, sysconfig.get_paths()["purelib"], str(out), str(result), "stock"],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=tmp_path, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    child = torch.load(result)
    assert child["class"] == f"transformers.models.{cls[:-11].lower()}.modeling_{cls[:-11].lower()}.{cls}"
    # The stock class is Steel's network without the document mask (the warning above). NOTE: it is switched off
    # here too, so both call SDPA alike (is_causal, no mask tensor): the prompt holds no EOS, so the mask changes
    # nothing, but torch 2.6's CPU SDPA rounds a boolean mask's path differently from is_causal's (6e-8 at
    # layer 0), where torch >= 2.11 gives the same bits.
    model.config.document_mask = False
    assert cfg.eos_token_id not in child["ids"]
    with torch.no_grad():
        want = model(input_ids=torch.tensor([child["ids"]])).logits[0]
    # The same fp32 operations in the same order on the same machine: bit-identical.
    assert torch.equal(child["logits"], want)


def test_stock_export_probe_catches_a_dropped_field(tmp_path, monkeypatch):
    """A mapping that loses a config field (here RoPE's base) is refused by the probe, not written; in bf16
    too (the probe runs in fp32: bf16 rounding hid the 0.4% this moves a fresh model's logits)."""
    import transformers

    from steel.cli import UserError
    from steel.infer.export import stock_model
    from steel.model import SteelConfig, SteelForCausalLM

    cfg = SteelConfig(vocab_size=300, hidden_size=64, intermediate_size=96, num_hidden_layers=1,
                      num_attention_heads=4, ffn_type="swiglu", rope_theta=10000.0, eos_token_id=0)
    torch.manual_seed(0)
    model = SteelForCausalLM(cfg).eval()
    real = transformers.Qwen2Config

    def lossy(**kw):
        kw["rope_parameters"] = {"rope_type": "default", "rope_theta": 1e6}
        return real(**kw)

    # By name: importing transformers' modeling code replaces the `transformers` module object in
    # sys.modules, so a setattr on an object imported earlier may patch a module nobody reads.
    monkeypatch.setattr("transformers.Qwen2Config", lossy)
    with pytest.raises(UserError, match="computes other logits than the Steel model"):
        stock_model(model, tmp_path, [])
    from steel.infer.load import cast_parameters

    cast_parameters(model, torch.bfloat16)
    with pytest.raises(UserError, match="computes other logits than the Steel model"):
        stock_model(model, tmp_path, [])
    monkeypatch.setattr("transformers.Qwen2Config", real)
    new = stock_model(model, tmp_path, [])
    assert type(new).__name__ == "Qwen2ForCausalLM" and new.model.embed_tokens.weight.dtype == torch.bfloat16
    assert new.model.rotary_emb.inv_freq.dtype == torch.float32


def test_stock_export_refuses_soft_moe(tmp_path, tiny_tokenizer_dir, capsys):
    src = _steel_source(tmp_path, tiny_tokenizer_dir)  # soft_moe_v3: no transformers class computes it
    assert steel_main(["export", str(src), str(tmp_path / "o"), "--stock"]) == 2
    assert "--stock: ffn_type soft_moe_v3 has no transformers architecture" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()


def test_export_refuses_nonempty_out_and_bad_source(tmp_path, tiny_llama_dir, capsys):
    out = tmp_path / "o"
    out.mkdir()
    (out / "x").write_text("keep me")
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 2
    assert "not empty" in capsys.readouterr().err
    assert steel_main(["export", str(tmp_path / "nope"), str(tmp_path / "o2")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_export_stock_hf_model_same_logits(tmp_path, tiny_llama_dir):
    """Any HF causal LM exports too (no remote code needed), weights unchanged."""
    from transformers import AutoModelForCausalLM

    out = tmp_path / "llama"
    assert steel_main(["export", str(tiny_llama_dir), str(out)]) == 0
    ids = torch.tensor([[1, 2, 3, 200, 7]])
    with torch.no_grad():
        a = AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)).eval()(ids).logits
        b = AutoModelForCausalLM.from_pretrained(str(out)).eval()(ids).logits
    assert torch.equal(a, b)
    assert json.loads((out / "generation_config.json").read_text())["eos_token_id"] == [260, 258]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA")
@pytest.mark.gpu
def test_export_bfloat16_on_gpu(tmp_path, tiny_tokenizer_dir):
    src = _steel_source(tmp_path, tiny_tokenizer_dir)
    out = tmp_path / "bf16"
    assert steel_main(["export", str(src), str(out), "--dtype", "bfloat16"]) == 0
    from transformers import AutoModelForCausalLM

    m = AutoModelForCausalLM.from_pretrained(str(out), trust_remote_code=True).cuda()
    assert next(m.parameters()).dtype == torch.bfloat16


# Loads the exported tokenizer where steel is not importable (as CHILD), printing what the caller checks.
TOKENIZER_CHILD = r"""
import json, sys
sys.path.append(sys.argv[1])
from transformers import AutoTokenizer, PreTrainedTokenizerFast
kwargs = {"trust_remote_code": True} if sys.argv[3] == "trust" else {}
cls = PreTrainedTokenizerFast if sys.argv[3] == "fast" else AutoTokenizer
tok = cls.from_pretrained(sys.argv[2], **kwargs)
ids = tok.encode("你好 Steel", add_special_tokens=False)
print("RESULT " + json.dumps({"max": tok.model_max_length, "ids": ids}))
"""


def _load_tokenizer_in_child(out: Path, how: str, cwd: Path) -> tuple[dict, str]:
    proc = subprocess.run(
        [sys.executable, "-I", "-S", "-c", TOKENIZER_CHILD, sysconfig.get_paths()["purelib"], str(out), how],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, cwd=cwd, timeout=120, check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # (transformers' prompt ends without a newline: RESULT may follow it on the same line)
    line = next(x for x in proc.stdout.splitlines() if "RESULT " in x)
    return json.loads(line.split("RESULT ", 1)[1]), proc.stdout + proc.stderr


def test_export_tokenizer_max_length_and_plain_loading(tmp_path, tiny_tokenizer_dir):
    from transformers import AutoTokenizer

    src = _steel_source(tmp_path, tiny_tokenizer_dir)
    tok = AutoTokenizer.from_pretrained(str(src))
    tok.model_max_length = 32768  # what Qwen's tokenizer_config.json says, whatever the model
    tok.save_pretrained(str(src))
    out = tmp_path / "export"
    assert steel_main(["export", str(src), str(out)]) == 0
    limit = json.loads((out / "config.json").read_text())["max_position_embeddings"]
    assert limit == 256  # configs/model/tiny.yaml
    assert json.loads((out / "tokenizer_config.json").read_text())["model_max_length"] == limit
    # The tokenizer itself needs no custom code.
    assert "auto_map" not in json.loads((out / "tokenizer_config.json").read_text())
    want = tok.encode("你好 Steel", add_special_tokens=False)
    for how in ("trust", "fast"):  # the documented ways: no prompt, stdin closed
        got, output = _load_tokenizer_in_child(out, how, tmp_path)
        assert got == {"max": limit, "ids": want}, how
        assert "Do you wish to run the custom code" not in output, how
    # Without trust_remote_code transformers asks about config.json's custom code (see export.py); with
    # stdin closed it must still load the same tokenizer rather than fail or hang.
    got, _ = _load_tokenizer_in_child(out, "auto", tmp_path)
    assert got == {"max": limit, "ids": want}


def test_export_refuses_run_checkpoint_and_source_dirs(tmp_path, tiny_llama_dir, capsys):
    from run_dirs import make_run_dir
    from transformers import AutoModelForCausalLM

    run = make_run_dir(tmp_path / "run", AutoModelForCausalLM.from_pretrained(str(tiny_llama_dir)), [])
    ckpt = run / "checkpoints" / "step-2"
    for src, out, what in ((run, run, "run directory"), (tiny_llama_dir, run, "run directory"),
                           (ckpt, ckpt, "checkpoint directory"), (tiny_llama_dir, tiny_llama_dir, "source")):
        argv = ["export", str(src), str(out), "--overwrite", "--tokenizer", str(tiny_llama_dir)]
        assert steel_main(argv) == 2
        err = capsys.readouterr().err
        assert f"steel: error: {out}: output is" in err and what in err, err
    assert not (run / "config.json").exists() and not (ckpt / "config.json").exists()
    out = run / "hf"  # beside the checkpoints is fine: the run stays a run
    assert steel_main(["export", str(run), str(out), "--tokenizer", str(tiny_llama_dir)]) == 0
    assert (out / "config.json").is_file() and not (run / "config.json").exists()


def test_bf16_run_loads_and_exports_as_saved(tmp_path, tiny_tokenizer_dir):
    # A run trained with parallel.param_dtype: bf16 stores bf16 weights; it was loaded into an fp32
    # model, so `--dtype` "as saved" gave fp32 and the export was twice the size.
    from run_dirs import make_run_dir
    from safetensors.torch import load_file

    from steel.infer.load import load_model
    from steel.model import build_model, load_model_config

    torch.manual_seed(0)
    model = build_model(load_model_config("tiny", ["ffn_type=swiglu"])).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.data = p.data.to(torch.bfloat16)  # as parallelize() leaves them under param_dtype bf16
    run = make_run_dir(tmp_path / "run", model, [])
    loaded = load_model(run)
    assert {p.dtype for p in loaded.parameters()} == {torch.bfloat16}
    ids = torch.randint(0, 512, (1, 9))
    with torch.no_grad():
        assert torch.equal(loaded(input_ids=ids).logits, model(input_ids=ids).logits)
    out = tmp_path / "hf"
    assert steel_main(["export", str(run), str(out), "--tokenizer", str(tiny_tokenizer_dir)]) == 0
    assert json.loads((out / "config.json").read_text())["dtype"] == "bfloat16"
    assert {v.dtype for v in load_file(out / "model.safetensors").values()} == {torch.bfloat16}


def test_run_dir_in_bf16_computes_like_its_bf16_export(tmp_path, tiny_tokenizer_dir):
    # `--dtype bfloat16` on a run dir did model.to(bf16), rounding RoPE's fp32 inv_freq too (0.37 rad off
    # at position 2047), where the bf16 export loads with it in fp32: two numbers for one model.
    from run_dirs import make_run_dir
    from transformers import AutoTokenizer

    from steel.infer.load import load_model
    from steel.model import build_model, load_model_config

    torch.manual_seed(0)
    model = build_model(load_model_config("tiny")).eval()
    run = make_run_dir(tmp_path / "run", model, [])
    src = tmp_path / "src"
    model.save_pretrained(str(src))
    AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir)).save_pretrained(str(src))
    out = tmp_path / "export"
    assert steel_main(["export", str(src), str(out), "--dtype", "bfloat16"]) == 0
    a, b = load_model(run, "cpu", "bfloat16"), load_model(out, "cpu", "bfloat16")
    assert a.model.rotary_emb.inv_freq.dtype == b.model.rotary_emb.inv_freq.dtype == torch.float32
    assert next(a.parameters()).dtype == torch.bfloat16
    ids = torch.randint(0, 256, (1, 200))
    with torch.no_grad():
        assert torch.equal(a(ids).logits, b(ids).logits)
