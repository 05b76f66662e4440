"""A stock config keeps its own EOS default (Llama's eos_token_id 2) unless told otherwise: trained on data
whose documents end with another id, the run's model_config.json and the export's config.json named id 2
(an ordinary token of the user's tokenizer) as the end of text, without a word at training time."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from train_fixtures import EOS, make_data_dir, tiny_config  # noqa: E402

from steel.cli import main as steel_main  # noqa: E402


def _train(tmp_path: Path, **model_config) -> tuple[str, dict]:
    data = make_data_dir(tmp_path / "data", [300])
    cfg = tiny_config(tmp_path, [data], max_steps=1)
    if model_config:
        import yaml

        c = yaml.safe_load(cfg.read_text())
        c["model"]["config"].update(model_config)
        cfg.write_text(yaml.safe_dump(c))
    assert steel_main(["train", str(cfg)]) == 0
    run = tmp_path / "run"
    saved = json.loads((run / "checkpoints" / "step-1" / "model_config.json").read_text())
    return (run / "train.log").read_text(), saved


def test_stock_default_eos_is_named(tmp_path):
    log, saved = _train(tmp_path)
    assert saved["eos_token_id"] == 2 != EOS  # LlamaConfig's default, not the data's
    assert f"eos_token_id 2 is not the data's EOS id {EOS}" in log
    assert f"model.overrides.eos_token_id: {EOS}" in log


def test_matching_eos_is_quiet(tmp_path):
    log, saved = _train(tmp_path, eos_token_id=EOS)
    assert saved["eos_token_id"] == EOS
    assert "is not the data's EOS" not in log
