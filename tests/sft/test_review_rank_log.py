"""A non-zero rank of `steel sft` prints only its own warnings, each attributed to it (as `steel train` does).

Every rank ran `setup_run_log`, so under torchrun each printed the version/machine/launch header again
(unattributed copies of rank 0's, one set per process), and its warnings without its rank.
"""

from __future__ import annotations

import json
import logging

import torch

from steel.cli import main as steel_main


def test_non_zero_rank_prints_no_header_and_attributes_its_warnings(tmp_path, tiny_tokenizer_dir, capsys, monkeypatch):
    from transformers import AutoTokenizer

    import steel.train.distributed as dist
    from steel.model import build_model, load_model_config

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    torch.manual_seed(0)
    init = tmp_path / "init"
    build_model(load_model_config("tiny")).save_pretrained(str(init))
    tok.save_pretrained(str(init))
    (tmp_path / "chat.json").write_text(json.dumps([{"instruction": f"问{i}", "output": f"答{i}"} for i in range(6)],
                                        ensure_ascii=False), encoding="utf-8")
    config = tmp_path / "sft.yaml"
    config.write_text(
        f"init: {init}\nrun_dir: {tmp_path / 'run'}\nmax_steps: 1\nmicro_batch: 2\n"
        "data: {seq_len: 64, datasets: [{name: chat, path: [chat.json]}]}\n"
        "log: {every: 1, tensorboard: false, progress: false}\n",
        encoding="utf-8",
    )
    monkeypatch.setattr(dist, "init_distributed", lambda cfg: dist.Dist(1, 1, 0, torch.device("cpu"), "none"))
    steel = logging.getLogger("steel")
    saved = (list(steel.handlers), steel.level, steel.propagate)
    try:
        steel_main(["sft", str(config)])
        logging.getLogger("steel").warning("resume: something changed")
    finally:
        for h in list(steel.handlers):
            steel.removeHandler(h)
        for h in saved[0]:
            steel.addHandler(h)
        steel.setLevel(saved[1])
        steel.propagate = saved[2]
    err = [x for x in capsys.readouterr().err.splitlines() if x.strip()]
    assert not [x for x in err if "versions:" in x or "machine:" in x or "argv:" in x], err[:5]
    assert "[rank 1] WARNING resume: something changed" in err
