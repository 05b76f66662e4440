"""Open a model for inference from any of the places Steel leaves one.

- an HF directory (`config.json` + weights): a `steel export` output, a stock HF model on disk, or a
  Steel model saved with `save_pretrained`; loaded with `AutoModelForCausalLM` (remote code allowed,
  since exported Steel models carry their modeling file);
- a Steel run directory (`RUN_DIR/checkpoints/step-N/`) or one checkpoint directory: the model is
  rebuilt from the checkpoint's `model_config.json` and its full state dict (HF parameter names).

The tokenizer comes from `--tokenizer DIR` when given, else from the model directory (an HF dir, or a
`tokenizer/` folder in the run or checkpoint directory), else from the run's training data: the data
dir's `tokenizer/`, or the directory `tokenizer: DIR` named at prepare time (`tokenizer.spec` of its
manifest) when its fingerprint matches the manifest's.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import torch

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def accepts(model, name: str) -> bool:
    """Whether `model.forward` takes keyword `name` (e.g. `logits_to_keep`, `position_ids`)."""
    import inspect

    try:
        params = inspect.signature(model.forward).parameters
    except (TypeError, ValueError):
        return False
    return name in params


def output_cache(out):
    """The KV cache a forward returned: the output's `cache` since transformers 5.25, `past_key_values` before
    (5.25 keeps the old name as a property that warns)."""
    fields = getattr(type(out), "__dataclass_fields__", {})
    return getattr(out, "cache" if "cache" in fields else "past_key_values", None)


def max_positions(model) -> int | None:
    """The longest sequence the model was built for (`config.max_position_embeddings`); None if it says none.

    NOTE: RoPE computes angles for any position, so nothing in the model stops a longer input: past
    the trained length it silently produces garbage. Callers check against this limit instead.
    """
    n = getattr(getattr(model, "config", None), "max_position_embeddings", None)
    return int(n) if isinstance(n, int) and n > 0 else None


def mixes_positions(model) -> bool:
    """True for Steel FFN variants that mix tokens across the sequence (soft-MoE v2/v3): padding a
    row then changes its outputs, so batched scoring must not pad (see README, "The model").
    (`soft_moe_causal` starts its chunk grid at each row's first real token: left padding changes nothing.)"""
    ffn = getattr(getattr(model, "config", None), "ffn_type", None)
    if ffn is None:
        return False
    try:
        from steel.model.configuration_steel import LEAKING_FFN_TYPES
    except ImportError:
        LEAKING_FFN_TYPES = ("soft_moe_v2", "soft_moe_v3")
    return ffn in LEAKING_FFN_TYPES


def _register_steel() -> None:
    # Steel's own model type is registered with the Auto classes when steel.model is importable.
    try:
        import steel.model  # noqa: F401
    except ImportError:
        pass


def is_hf_dir(path: Path) -> bool:
    return (path / "config.json").is_file()


def resolve_checkpoint(path: Path) -> Path | None:
    """The checkpoint directory to load for a run dir or checkpoint dir; None for anything else."""
    if (path / "model_config.json").is_file() and not is_hf_dir(path):
        return path
    if (path / "checkpoints").is_dir():
        from steel.train.checkpoint import latest_checkpoint

        ckpt = latest_checkpoint(path)
        if ckpt is None:
            from steel.cli import UserError

            raise UserError(f"{path}: run directory has no complete checkpoint under checkpoints/")
        return Path(ckpt)
    return None


def resolve_model(path: Path) -> tuple[Path, dict]:
    """(the directory `load_model` should be given, what it is) for a model path: a run dir is resolved to its
    newest complete checkpoint here, once, so a result records the step it was computed from even while
    training writes newer ones. The record is `{"checkpoint": PATH, "step": N}` for a run or checkpoint
    dir (PATH spelled from the path given), both None for an HF directory or anything else; a `steel export`
    directory adds `"exported_from": {"checkpoint", "step"}` from its steel_export.json."""
    path = Path(path)
    if is_hf_dir(path):
        return path, {"checkpoint": None, "step": None} | _exported_from(path)
    if not path.exists():
        return path, {"checkpoint": None, "step": None}
    ckpt = resolve_checkpoint(path)
    if ckpt is None:
        return path, {"checkpoint": None, "step": None}
    return ckpt, {"checkpoint": str(ckpt), "step": checkpoint_step(ckpt)}


PROVENANCE = "steel_export.json"  # in a `steel export` directory: source, checkpoint and step, Steel version


def _exported_from(hf_dir: Path) -> dict:
    """`{"exported_from": {"checkpoint", "step"}}` for a `steel export` directory whose source was a Steel
    checkpoint (its steel_export.json), else {}: the step an export holds is recorded nowhere else."""
    try:
        rec = json.loads((hf_dir / PROVENANCE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    if not isinstance(rec, dict):
        return {}
    if isinstance(rec.get("exported_from"), dict):  # an export of an export: the checkpoint at its origin
        return {"exported_from": rec["exported_from"]}
    if rec.get("checkpoint") is None:
        return {}
    return {"exported_from": {"checkpoint": rec["checkpoint"], "step": rec.get("step")}}


def checkpoint_step(ckpt: Path) -> int | None:
    """The optimizer step a checkpoint holds: its train_state.json's `step`, else the N of `step-N`."""
    try:
        step = json.loads((ckpt / "train_state.json").read_text(encoding="utf-8")).get("step")
    except (OSError, ValueError, AttributeError):
        step = None
    if isinstance(step, int) and not isinstance(step, bool):
        return step
    name = ckpt.name
    return int(name[5:]) if name.startswith("step-") and name[5:].isdigit() else None


def _has_tokenizer_files(d: Path) -> bool:
    return (d / "tokenizer.json").is_file() or (d / "tokenizer_config.json").is_file()


def find_tokenizer_dir(path: Path, tokenizer: str | Path | None) -> Path:
    from steel.cli import UserError
    from steel.data.tokenize import tokenizer_dir_for

    if tokenizer is not None:
        # checked here: transformers took a missing path for a hub repo id ("Repo id must be in the form ...")
        if not Path(tokenizer).is_dir():
            raise UserError(f"--tokenizer {tokenizer}: not a directory")
        if not _has_tokenizer_files(Path(tokenizer)):
            raise UserError(f"--tokenizer {tokenizer}: no tokenizer.json or tokenizer_config.json")
        return Path(tokenizer)
    # NOTE: a run's tokenizer is its own `tokenizer/` (SFT runs; a checkpoint's run is two levels up) or
    # its data's; a `tokenizer/` beside or above a run dir belongs to no run (`runs/tokenizer` of
    # `steel tokenizer train --out`) and was taken before the data's without a word.
    near = [path, path / "tokenizer"]
    up = Path(os.path.abspath(path))  # `--model step-4` or `.` from inside a run: Path's parents are textual
    if is_hf_dir(path) or not ((path / "model_config.json").is_file() or (path / "checkpoints").is_dir()):
        near += [up.parent / "tokenizer", up.parent.parent / "tokenizer"]  # not a Steel run
    elif (path / "model_config.json").is_file():  # RUN/checkpoints/step-N
        near.append(up.parent.parent / "tokenizer")
    for c in near:
        if _has_tokenizer_files(c):
            return c
    # A run or checkpoint directory: the tokenizer its training data was prepared with.
    notes: list[str] = []
    for d in _run_data_dirs(path):
        found = tokenizer_dir_for(d, _run_bases(path), notes)  # DATA/tokenizer/, else the manifest's spec
        if found is not None:
            return found
    hint = f" ({'; '.join(notes)})" if notes else ""
    raise UserError(
        f"{path}: no tokenizer files found here, in a tokenizer/ folder or in the training data's tokenizer"
        f"{hint}; pass --tokenizer DIR"
    )


def _run_config(path: Path) -> tuple[dict, Path] | None:
    """(config.yaml of the run, the run directory) for a run dir or checkpoint dir."""
    import yaml

    is_ckpt = (path / "model_config.json").is_file()
    # A checkpoint dir carries its own config.yaml; its run is two levels up (checkpoints/step-N).
    run_dir = Path(os.path.abspath(path)).parent.parent if is_ckpt else path  # abspath: `--model .` in step-N
    for cfg in (path / "config.yaml", run_dir / "config.yaml"):
        if cfg.is_file():
            try:
                data = yaml.safe_load(cfg.read_text(encoding="utf-8")) or {}
            except yaml.YAMLError:
                return None
            if not isinstance(data, dict):
                return None
            return data, run_dir
    return None


def _run_bases(path: Path) -> list[Path]:
    """Where the run's relative paths may be relative to: the current directory, then training's.

    Training resolved `data.dirs` against its own working directory, which is recoverable when the
    recorded `run_dir` is relative: it is what remains of the run directory's absolute path once
    `run_dir`'s own parts are taken off its end (`/home/u/proj/runs/tiny` - `runs/tiny`).
    """
    bases = [Path.cwd()]
    found = _run_config(path)
    if found is not None:
        data, run_dir = found
        typed = data.get("run_dir")
        if isinstance(typed, str) and typed and not Path(typed).is_absolute():
            parts, actual = Path(typed).parts, run_dir.resolve().parts
            parts = tuple(p for p in parts if p != ".")
            if parts and ".." not in parts and actual[len(actual) - len(parts):] == parts:
                bases.append(Path(*actual[: len(actual) - len(parts)]))
    return list(dict.fromkeys(bases))


def _run_data_dirs(path: Path) -> list[Path]:
    """`data.dirs` of the run's config.yaml (run dir or checkpoint dir), existing directories only;
    relative entries are tried against each of `_run_bases`."""
    found = _run_config(path)
    if found is None:
        return []
    dirs = (found[0].get("data") or {}).get("dirs") or []
    if not isinstance(dirs, list):
        return []
    out: list[Path] = []
    bases = _run_bases(path)
    for d in map(str, dirs):
        cands = [Path(d)] if Path(d).is_absolute() else [b / d for b in bases]
        out += [c for c in cands if c.is_dir()][:1]
    return list(dict.fromkeys(out))


def load_tokenizer(path: str | Path, tokenizer: str | Path | None = None):
    from transformers import AutoTokenizer

    from steel.cli import UserError

    if not Path(path).exists():
        raise UserError(f"{path}: model path does not exist")
    tok_dir = find_tokenizer_dir(Path(path), tokenizer)
    try:
        tok = AutoTokenizer.from_pretrained(str(tok_dir), trust_remote_code=True)
    except (ValueError, KeyError) as e:  # a tokenizer.json cut short (JSONDecodeError) or not a tokenizer's
        what = f"--tokenizer {tokenizer}" if tokenizer is not None else f"tokenizer {tok_dir}"
        raise UserError(f"{what}: cannot be loaded ({type(e).__name__}: {e})") from None
    # NOTE: an export's tokenizer says model_max_length = the model's max_position_embeddings (for plain-HF users'
    # truncation=True), and encoding a longer text made transformers warn "Token indices sequence length is longer
    # than the specified maximum sequence length ... will result in indexing errors": false in eval mc (the shots
    # are dropped to fit afterwards), printed before generate's own one-line error. Steel checks lengths itself, so
    # that one warning is marked given on this object; model_max_length stays (SFT and export save the tokenizer).
    given = getattr(tok, "deprecation_warnings", None)
    if isinstance(given, dict):
        given["sequence-length-is-longer-than-the-specified-maximum"] = True
    return tok


def load_model(path: str | Path, device: str = "cpu", dtype: str | None = None):
    """Model in eval mode on `device`. `dtype` None keeps the saved dtype (float32 for checkpoints)."""
    from steel.cli import UserError

    path = Path(path)
    if not path.exists():
        raise UserError(f"{path}: model path does not exist")
    if dtype is not None and dtype not in DTYPES:
        raise UserError(f"--dtype {dtype!r}: expected one of {sorted(DTYPES)}")
    torch_dtype = DTYPES[dtype] if dtype else None
    _register_steel()
    if is_hf_dir(path):
        from transformers import AutoModelForCausalLM

        kwargs = {"trust_remote_code": True}
        if torch_dtype is not None:
            kwargs["dtype"] = torch_dtype
        from steel.runlog import quiet_hf_progress_bars

        quiet_hf_progress_bars()
        model = AutoModelForCausalLM.from_pretrained(str(path), **kwargs)
    else:
        ckpt = resolve_checkpoint(path)
        if ckpt is None:
            raise UserError(
                f"{path}: neither an HF model directory (config.json) nor a Steel run/checkpoint directory"
            )
        model = model_from_checkpoint(ckpt)
        if torch_dtype is not None:
            cast_parameters(model, torch_dtype)
    return model.to(device).eval()


def cast_parameters(model, dtype: torch.dtype) -> None:
    """Parameters to `dtype`, buffers as they are: `model.to(bf16)` also rounded RoPE's fp32 `inv_freq`
    (0.37 rad off at position 2047), where `from_pretrained(dtype=bf16)` of the export keeps it fp32."""
    with torch.no_grad():
        for p in model.parameters():
            if p.is_floating_point():
                p.data = p.data.to(dtype)
    model.config.dtype = dtype


def checkpoint_model_config(ckpt: Path):
    """The model config a trainer checkpoint directory holds (its model_config.json), as a PretrainedConfig."""
    from transformers import CONFIG_MAPPING

    from steel.cli import UserError

    try:
        data = json.loads((ckpt / "model_config.json").read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:  # a copy cut short (rsync, a full disk)
        raise UserError(f"{ckpt}/model_config.json: not valid JSON ({e})") from None
    if not isinstance(data, dict):
        raise UserError(f"{ckpt}/model_config.json: expected a JSON object (a model config)")
    model_type = data.get("model_type")
    if model_type not in CONFIG_MAPPING:
        raise UserError(f"{ckpt}/model_config.json: unknown model_type {model_type!r}")
    # The file is a PretrainedConfig.to_dict(); from_dict reads it back as save/from_pretrained would.
    return CONFIG_MAPPING[model_type].from_dict(data)


def model_from_checkpoint(ckpt: Path):
    """Rebuild a SteelForCausalLM from a trainer checkpoint directory (model_config.json + full state dict)."""
    from steel.cli import UserError
    from steel.model import build_model
    from steel.train.checkpoint import load_model_state

    cfg = checkpoint_model_config(ckpt)
    # NOTE: from_config builds in `config.dtype`, and a stock HF config says bfloat16 (the hub's config.json
    # of Qwen, Llama ...) while the trainer saves fp32 weights: loading them into that bf16 model rounded
    # them, "as saved" gave bf16 and `--dtype float32` the rounded values. Built in fp32, the weights are
    # taken exactly, then brought to the saved dtype below.
    cfg.dtype = torch.float32
    # NOTE: no random init: every weight is loaded below (a missing one is an error). At steel-1b widths the
    # init took 5 of a run dir's 8.6 s load in eval, generate and export.
    from transformers.initialization import no_init_weights

    with no_init_weights():
        model = build_model(cfg)
    state = load_model_state(ckpt)
    missing, unexpected = model.load_state_dict(state, strict=False)
    # NOTE: no_init_weights skips post_init's tie_weights too, so the weights are tied here, after loading, as
    # from_pretrained ties them: a tied weight missing from the checkpoint (lm_head.weight) becomes the one there,
    # and both present with different values stay apart, with transformers' warning (a config saying tied over
    # an untied model: an HF init whose lm_head differs, which from_pretrained leaves untied). Tied before
    # loading, the lm_head's values were copied over the embedding. Tied keys it fills are taken off `left`.
    left = set(missing)
    model.tie_weights(missing_keys=left)
    missing = [k for k in missing if k in left]
    if missing or unexpected:
        raise UserError(
            f"{ckpt}: checkpoint does not match its model config (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    # "As saved": a run trained with bf16 parameters (parallel.param_dtype: bf16) stores bf16 weights; the
    # model is built in fp32, so bring its parameters (not buffers such as RoPE's inv_freq) to that dtype.
    saved = {v.dtype for v in state.values() if v.is_floating_point()}
    cast_parameters(model, saved.pop() if len(saved) == 1 else torch.float32)
    return model
