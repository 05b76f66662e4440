"""save_pretrained -> a FRESH python process loads it through the Auto classes and computes the same logits,
both with steel installed (registered classes) and as plain remote code (steel never imported)."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import torch

from steel.model import build_model

FRESH = textwrap.dedent("""
    import sys, torch
    from transformers import AutoConfig, AutoModelForCausalLM
    d = sys.argv[1]
    ids = torch.load(d + "/ids.pt")
    # 1) remote code: the directory's own modeling_steel.py, without the steel package
    remote = AutoModelForCausalLM.from_pretrained(d, trust_remote_code=True)
    assert "steel" not in sys.modules, "remote code must not import steel"
    assert type(remote).__module__.startswith("transformers_modules"), type(remote).__module__
    torch.save(remote(input_ids=ids).logits, d + "/remote.pt")
    # 2) steel installed: the Auto classes resolve model_type "steel" to the registered classes
    import steel.model
    local = AutoModelForCausalLM.from_pretrained(d)
    assert type(local) is steel.model.SteelForCausalLM, type(local)
    assert AutoConfig.from_pretrained(d).ffn_type == "soft_moe_causal"
    torch.save(local(input_ids=ids).logits, d + "/local.pt")
""")


def test_save_load_roundtrip_in_fresh_process(tiny_config, tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_config(ffn_type="soft_moe_causal", moe_chunk_size=2, initializer_range=0.2)).eval()
    model.save_pretrained(tmp_path)
    assert (tmp_path / "modeling_steel.py").is_file() and (tmp_path / "configuration_steel.py").is_file()
    ids = torch.randint(0, 512, (2, 9))
    torch.save(ids, tmp_path / "ids.pt")
    with torch.no_grad():
        expected = model(input_ids=ids).logits
    proc = subprocess.run([sys.executable, "-c", FRESH, str(tmp_path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    for name in ("remote", "local"):
        # Same weights (safetensors round trip is bit-exact), same code, same CPU: identical logits.
        torch.testing.assert_close(torch.load(tmp_path / f"{name}.pt"), expected, rtol=0, atol=0)
