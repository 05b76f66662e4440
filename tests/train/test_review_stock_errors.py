"""A stock HF config Steel cannot train is refused with one short `steel: error:` line naming why, before any
model is built: an encoder-decoder (T5, no AutoModelForCausalLM class) and an attention-free causal LM
(Mamba, RWKV: no attention heads to count FLOPs for)."""

import json

import pytest
from train_fixtures import VOCAB, make_data_dir, tiny_config

from steel.cli import main as steel

CONFIGS = {
    "t5": ({"model_type": "t5", "d_model": 32, "num_layers": 2, "num_heads": 4},
           "model.config: t5 (T5Config) is not a causal LM"),
    "mamba": ({"model_type": "mamba", "hidden_size": 32, "num_hidden_layers": 2, "state_size": 4},
              "model: flops: mamba has no attention heads"),
}


@pytest.mark.parametrize("arch", sorted(CONFIGS))
def test_untrainable_stock_config_is_one_short_error_line(tmp_path, capsys, arch):
    spec, message = CONFIGS[arch]
    data = make_data_dir(tmp_path / "data", [2000])
    (tmp_path / "m.yaml").write_text(json.dumps({**spec, "vocab_size": VOCAB}))
    cfg = tiny_config(tmp_path, [data], max_steps=2, model={"config": str(tmp_path / "m.yaml")})
    assert steel(["train", str(cfg)]) == 2  # was a 3 kB list of every causal config class (t5), a traceback (mamba)
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("steel: error: ") and message in err[0], err[:3]
    assert len(err[0]) < 300
    assert not (tmp_path / "run" / "checkpoints").exists()


def test_hf_dir_with_weights_as_model_config_says_they_are_not_loaded(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel

    hf = tmp_path / "hf"
    GPT2LMHeadModel(GPT2Config(vocab_size=VOCAB, n_embd=32, n_layer=2, n_head=4, n_positions=64)).save_pretrained(hf)
    data = make_data_dir(tmp_path / "data", [2000])
    cfg = tiny_config(tmp_path, [data], max_steps=1, model={"config": str(hf)})
    assert steel(["train", str(cfg)]) == 0
    log = (tmp_path / "run" / "train.log").read_text()
    assert f"model.config: {hf} holds weights (model.safetensors), but only its config.json is used" in log
    assert steel(["train", str(cfg), "--set", "max_steps=2"]) == 0  # a resume: the weights are the checkpoint's
    assert (tmp_path / "run" / "train.log").read_text().count("holds weights") == 1


def test_a_stock_model_that_sees_later_tokens_is_refused(tmp_path, capsys):
    """BertLMHeadModel without is_decoder: true attends both ways: trained as a causal LM it reads the token it
    is asked to predict (the loss falls to ~0 and the model is useless). Refused before training."""
    from transformers import BertConfig, BertLMHeadModel

    bert = {"model_type": "bert", "vocab_size": VOCAB, "hidden_size": 32, "num_hidden_layers": 2,
            "num_attention_heads": 4, "intermediate_size": 64, "max_position_embeddings": 64}
    # The reference: the stock model's logits at position 3 do change with token 6 (so the check has a leak to find).
    ids = __import__("torch").arange(1, 9)[None]
    m = BertLMHeadModel(BertConfig(**{k: v for k, v in bert.items() if k != "model_type"})).eval()
    other = ids.clone()
    other[0, 6] = 50
    assert not m(input_ids=ids).logits[0, 3].equal(m(input_ids=other).logits[0, 3])

    data = make_data_dir(tmp_path / "data", [2000])
    (tmp_path / "m.yaml").write_text(json.dumps(bert))
    cfg = tiny_config(tmp_path, [data], max_steps=2, model={"config": str(tmp_path / "m.yaml")})
    assert steel(["train", str(cfg)]) == 2
    # (transformers logs its own is_decoder hint to stderr too)
    err = [x for x in capsys.readouterr().err.splitlines() if x.startswith("steel: error:")]
    assert len(err) == 1 and "model.config: bert (BertLMHeadModel) is not causal" in err[0], err[:3]
    assert err[0].endswith("set is_decoder: true")
    assert not (tmp_path / "run" / "checkpoints").exists()
    # As a decoder it is causal and trains.
    (tmp_path / "m.yaml").write_text(json.dumps({**bert, "is_decoder": True}))
    assert steel(["train", str(cfg)]) == 0


def test_causality_probe_skips_flash_attention_configs():
    # The probe runs the freshly built model on the CPU: a stock config asking for flash attention (GPU only)
    # died there before training started. Such a config is not probed.
    from types import SimpleNamespace

    import torch

    from steel.train.trainer import check_stock_model_is_causal

    class NoCpuForward(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.w = torch.nn.Parameter(torch.zeros(1))  # the probe reads the device from a parameter

        def forward(self, *a, **k):
            raise RuntimeError("FlashAttention only supports CUDA")

    cfg = SimpleNamespace(model_type="llama", _attn_implementation="flash_attention_2", vocab_size=16,
                          max_position_embeddings=8)
    check_stock_model_is_causal(NoCpuForward(), cfg)  # no forward, no error
    with pytest.raises(RuntimeError, match="only supports CUDA"):  # an sdpa config is probed
        check_stock_model_is_causal(NoCpuForward(), SimpleNamespace(**{**vars(cfg), "_attn_implementation": "sdpa"}))
