"""A Steel training run directory as the trainer leaves it, without training: `config.yaml` (run_dir,
data.dirs), `checkpoints/step-N/` (model_config.json, model.safetensors, train_state.json, config.yaml)
and a prepared data dir whose manifest names its tokenizer (`tokenizer.spec` + fingerprint)."""

from __future__ import annotations

import json
from pathlib import Path

import yaml


def tokenizer_fingerprint(tok_dir: Path) -> str:
    from steel.tokenizer.engine import fingerprint

    return fingerprint(json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8")))


def make_data_dir(data_dir: Path, spec: str, fingerprint: str) -> Path:
    data_dir.mkdir(parents=True, exist_ok=True)
    manifest = {"chunks": [], "sources": {}, "total_tokens": 0,
                "tokenizer": {"fingerprint": fingerprint, "spec": spec, "vocab_size": 0, "eos_id": 0}}
    (data_dir / "manifest.json").write_text(json.dumps(manifest), encoding="utf-8")
    return data_dir


def make_run_dir(run_dir: Path, model, data_dirs: list[str], typed_run_dir: str | None = None,
                 steps: tuple[int, ...] = (2,)) -> Path:
    """`model` saved as checkpoints of a run whose config.yaml records `typed_run_dir` and `data_dirs`."""
    from safetensors.torch import save_file

    config = yaml.safe_dump({"run_dir": typed_run_dir or str(run_dir), "data": {"dirs": data_dirs}})
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / "config.yaml").write_text(config, encoding="utf-8")
    state = {k: v.detach().clone().contiguous() for k, v in model.state_dict().items()}
    for step in steps:
        ckpt = run_dir / "checkpoints" / f"step-{step}"
        ckpt.mkdir(parents=True)
        save_file(state, str(ckpt / "model.safetensors"))
        (ckpt / "model_config.json").write_text(json.dumps(model.config.to_dict()), encoding="utf-8")
        (ckpt / "train_state.json").write_text(json.dumps({"step": step}), encoding="utf-8")
        (ckpt / "config.yaml").write_text(config, encoding="utf-8")
    return run_dir


def make_two_step_run(run: Path, tokenizer_dir: Path) -> Path:
    """A run with checkpoints step-2 and step-5 of different tiny Llama weights, its tokenizer in run/tokenizer/."""
    import shutil

    from tiny_models import build_tiny_llama

    make_run_dir(run, build_tiny_llama(261, seed=1), [], steps=(2,))
    make_run_dir(run, build_tiny_llama(261, seed=2), [], steps=(5,))
    shutil.copytree(tokenizer_dir, run / "tokenizer")
    return run


def save_during_load(monkeypatch, run_dir: Path) -> list[Path]:
    """Make training write step-9 into `run_dir` as soon as a command starts loading a checkpoint; returns the
    list of checkpoints loaded (to check that the command loaded, and records, the one it resolved first)."""
    from tiny_models import build_tiny_llama

    import steel.infer.load as load

    loaded: list[Path] = []
    original = load.model_from_checkpoint

    def slow_load(ckpt):
        if not (run_dir / "checkpoints" / "step-9").exists():
            make_run_dir(run_dir, build_tiny_llama(261, seed=3), [], steps=(9,))
        loaded.append(Path(ckpt))
        return original(ckpt)

    monkeypatch.setattr(load, "model_from_checkpoint", slow_load)
    return loaded
