"""Crash-safe checkpoints: `RUN_DIR/checkpoints/step-N/`, written as `step-N.tmp/` and renamed.

Layout of one checkpoint directory:

    model.safetensors        full (unsharded) fp32 weights, HF parameter names
    optimizer.safetensors    AdamW state, keys `state.<param name>.<exp_avg|exp_avg_sq|step>`
    optimizer.json           AdamW param groups (hyper-parameters, parameter names)
    scheduler.json           schedule kind and the step it is at (the LR is a function of the step)
    data.json                the data loader's state (seed, epoch, consumed, segments, chunk registry)
    train_state.json         step, tokens, skipped steps; written last
    rng/rank-R.safetensors   each rank's torch (and CUDA) RNG state
    config.yaml              the run's resolved config
    model_config.json        the model's config (HF `config.json` content)

Nothing is unpickled on load: tensors come from safetensors, the rest from JSON/YAML, so a checkpoint
from someone else cannot run code. NOTE: `torch.distributed.checkpoint`'s default format pickles its
`.metadata`, which is why model and optimizer are gathered to full tensors on rank 0 and written as
safetensors instead; loading gives each rank its shard of the full tensors, so any world size or
sharding can resume any checkpoint. Gathering costs host memory on rank 0 (about 16 bytes per
parameter: ~18 GB for 1.1B parameters), fine on a training node.
"""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import stat
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, safe_open, save_file
from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict, set_state_dict

from steel.cli import UserError
from steel.train.distributed import Dist, fail_together

log = logging.getLogger("steel")

_STEP_DIR = re.compile(r"^step-(\d+)$")


class CheckpointError(UserError):
    """A checkpoint that cannot be used (or written); names the file or directory. A UserError: every
    command that reads checkpoints reports it as one `steel: error:` line."""


def checkpoints_dir(run_dir: str | Path) -> Path:
    return Path(run_dir) / "checkpoints"


def list_checkpoints(run_dir: str | Path) -> list[tuple[int, Path]]:
    """Complete checkpoints (renamed from .tmp and holding train_state.json), oldest first."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return []
    out = []
    for p in root.iterdir():
        m = _STEP_DIR.match(p.name)
        if m and p.is_dir() and (p / "train_state.json").is_file():
            out.append((int(m.group(1)), p))
    return sorted(out)


def latest_checkpoint(run_dir: str | Path) -> Path | None:
    """The newest complete checkpoint directory of a run, or None."""
    ckpts = list_checkpoints(run_dir)
    return ckpts[-1][1] if ckpts else None


def load_model_state(ckpt_dir: str | Path) -> dict[str, torch.Tensor]:
    """Full weights with HF parameter names (fp32, or bf16 for param_dtype: bf16 runs), on CPU; no process group."""
    path = Path(ckpt_dir) / "model.safetensors"
    if not path.is_file():
        raise CheckpointError(f"{ckpt_dir}: no model.safetensors (not a Steel checkpoint?)")
    return _load_tensors(path)


def _write_json(path: Path, obj) -> None:
    with open(path, "w", encoding="utf-8") as f:
        json.dump(obj, f, indent=1)
        f.flush()
        os.fsync(f.fileno())


def _write_text(path: Path, text: str) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _new_file_mode(path: Path) -> int:
    """The mode a new file gets at `path`: the umask's, or the directory's default ACL where it has one
    (0644 under umask 022, 0660 in a directory whose default ACL gives others nothing). Leaves `path`
    created, empty."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o666)
    try:
        return stat.S_IMODE(os.fstat(fd).st_mode)
    finally:
        os.close(fd)


def _save_tensors(tensors: dict[str, torch.Tensor], path: Path, previous: Path | None = None) -> None:
    """Write `tensors` to `path`; a write error is an OSError naming the file (saying that the checkpoint before
    is intact where there is one: `previous`, the newest complete one)."""
    # safetensors refuses tensors sharing storage (tied embeddings): give each its own.
    seen: set[int] = set()
    out = {}
    for k, v in tensors.items():
        v = v.detach().cpu().contiguous()
        ptr = v.untyped_storage().data_ptr()
        out[k] = v.clone() if ptr in seen and v.numel() else v
        seen.add(ptr)
    # NOTE: safetensors >= 0.8 writes through a temp file made 0600 (safetensors#782): another user of a shared
    # run dir (eval, export, a resume under a service account) could read config.yaml but not the weights. The
    # file gets the mode every other file of the run gets there, which a directory's default ACL decides too.
    try:
        mode = _new_file_mode(path)
        save_file(out, str(path))
    except (SafetensorError, OSError) as e:  # e.g. "No space left on device": name the file, not a traceback
        # NOTE: an OSError (exit status 1, on every rank), not a CheckpointError: a full disk is no refusal of the
        # user's input (README: "exit 2 for a refusal, 1 for an OS error"). safetensors reports its own write
        # errors as SafetensorError ("No space left on device (os error 28)").
        intact = "; the previous checkpoint is intact" if previous is not None else ""
        raise OSError(f"{path}: cannot write ({e}){intact}") from None
    os.chmod(path, mode)
    fd = os.open(path, os.O_RDONLY)  # (not "rb+": a mode without the owner's write bit would refuse it)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _load_tensors(path: Path, owned: bool = False) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file. NOTE: `load_file`'s tensors are views of an mmap of the whole file, held
    while any of them lives; `owned` gives each its own memory, for tensors kept after loading: the optimizer
    state (`Optimizer.load_state_dict` keeps a tensor of its parameter's dtype and device as it is) mapped the
    resumed checkpoint's optimizer file for the whole run, so deleting that checkpoint (checkpoint.keep) freed
    no disk space until the process ended: ~8.8 GB at 1.1B parameters, and a resume on a quota'd disk failed
    with ENOSPC at its next save. One tensor at a time: the peak is the state plus one tensor, not twice it."""
    try:
        if not owned:
            return load_file(path)
        out = {}
        with safe_open(path, framework="pt") as f:
            for k in f.keys():
                out[k] = f.get_tensor(k).clone()
        return out
    except (SafetensorError, OSError) as e:
        raise CheckpointError(f"{path}: cannot read ({e}); a damaged checkpoint: delete this step directory "
                              "to resume from the one before") from None


def _flatten_optimizer(osd: dict) -> tuple[dict[str, torch.Tensor], list[dict]]:
    tensors = {}
    for name, st in osd["state"].items():
        for k, v in st.items():
            tensors[f"state.{name}.{k}"] = v if isinstance(v, torch.Tensor) else torch.tensor(v)
    return tensors, osd["param_groups"]


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], groups: list[dict]) -> dict:
    state: dict[str, dict] = {}
    for key, v in tensors.items():
        name, k = key[len("state.") :].rsplit(".", 1)
        state.setdefault(name, {})[k] = v
    for g in groups:
        if "betas" in g:
            g["betas"] = tuple(g["betas"])
    return {"state": state, "param_groups": groups}


def save_checkpoint(
    run_dir: str | Path,
    step: int,
    model: torch.nn.Module,
    optimizer: torch.optim.Optimizer,
    d: Dist,
    *,
    data_state: dict,
    train_state: dict,
    scheduler_state: dict,
    config_yaml: str,
    model_config: dict,
    keep: int,
) -> Path:
    """Write `step-N.tmp/` (all ranks take part in the gather), then rename it to `step-N/` on rank 0."""
    root = checkpoints_dir(run_dir)
    final, tmp = root / f"step-{step}", root / f"step-{step}.tmp"
    # NOTE: a rank's write error (a full disk, mostly rank 0's) stops every rank with it at the end of each
    # part: the others died in the next barrier with a gloo "Connection closed by peer" traceback (NCCL: a
    # hang until parallel.timeout_minutes).
    when = f"while saving step {step}"
    with fail_together(d, when):
        if d.is_main:
            if tmp.exists():
                shutil.rmtree(tmp)
            (tmp / "rng").mkdir(parents=True)
    # Full state dicts: a collective under FSDP/DDP; only rank 0 receives the tensors (cpu_offload).
    opts = StateDictOptions(full_state_dict=True, cpu_offload=True)
    # NOTE: get_state_dict gives an optimizer without state (no update taken yet: every step so far skipped, a
    # global batch without targets or a non-finite loss) one by a step on zero gradients at lr 0 (torch's
    # `_init_optim_state`): AdamW's step count 1 with zero moments, so the first real update used the second
    # step's bias correction, and the run depended on whether it was checkpointed then. Kept without state.
    fresh = not optimizer.state
    msd, osd = get_state_dict(model, optimizer, options=opts)
    if fresh:
        optimizer.state.clear()
        osd = {**osd, "state": {}}
    rng = {"cpu": torch.get_rng_state()}
    if d.device.type == "cuda":
        rng["cuda"] = torch.cuda.get_rng_state(d.device)
    previous = latest_checkpoint(run_dir)  # what a resume goes on from if this save fails (a re-save's own step too)
    with fail_together(d, when):  # then every rank's RNG file is on disk
        _save_tensors(rng, tmp / "rng" / f"rank-{d.rank}.safetensors", previous)
        if d.is_main:
            _save_tensors(msd, tmp / "model.safetensors", previous)
            opt_tensors, groups = _flatten_optimizer(osd)
            _save_tensors(opt_tensors, tmp / "optimizer.safetensors", previous)
            _write_json(tmp / "optimizer.json", groups)
            _write_json(tmp / "scheduler.json", scheduler_state)
            _write_json(tmp / "data.json", data_state)
            _write_json(tmp / "model_config.json", model_config)
            _write_text(tmp / "config.yaml", config_yaml)
    with fail_together(d, when):
        if d.is_main:
            _write_json(tmp / "train_state.json", {**train_state, "world_size": d.world_size})
            # NOTE: every file's data is fsynced as written; its directory entries too before the rename, so a
            # power loss after the rename cannot leave a `step-N/` that looks complete with an empty file in it.
            _fsync_dir(tmp / "rng")
            _fsync_dir(tmp)
            # A re-save of the same step (e.g. SIGTERM right after a periodic save): the old one is renamed
            # aside, not deleted, until the new one is in place (`remove_partial` puts it back after a kill in
            # between).
            replaced = _set_aside(final) if final.exists() else None
            os.replace(tmp, final)
            _fsync_dir(root)  # make the rename durable before older checkpoints are deleted
            if replaced is not None:
                shutil.rmtree(replaced, ignore_errors=True)
            for _, old in list_checkpoints(run_dir)[:-keep]:
                shutil.rmtree(_set_aside(old, ".del"), ignore_errors=True)
    return final


def _set_aside(ckpt: Path, suffix: str = ".old") -> Path:
    """Rename `step-N/` to `step-N.old/` (replaced by a re-save of its step) or `step-N.del/` (to be deleted),
    then return that. One rename: a kill while a checkpoint is deleted (which goes file by file) cannot leave
    a `step-N/` that still looks complete without its tensors."""
    aside = ckpt.with_name(ckpt.name + suffix)
    if aside.exists():
        shutil.rmtree(aside)
    os.replace(ckpt, aside)
    return aside


def remove_partial(run_dir: str | Path) -> None:
    """Clean up after a kill mid-save: delete `step-N.tmp/` (never a complete checkpoint), `step-N.del/`
    (set aside to be deleted) and `step-N.old/` (set aside by a re-save of step N), except that the newest
    `step-N.old/`, when newer than every complete checkpoint, is one whose re-save did not land: it is put
    back."""
    root = checkpoints_dir(run_dir)
    if not root.is_dir():
        return
    for p in [*root.glob("step-*.tmp"), *root.glob("step-*.del")]:
        shutil.rmtree(p, ignore_errors=True)
    newest = max((n for n, _ in list_checkpoints(run_dir)), default=-1)
    aside = sorted((int(m.group(1)), p) for p in root.glob("step-*.old")
                   if (m := _STEP_DIR.match(p.name[: -len(".old")])))
    if aside and aside[-1][0] > newest and (aside[-1][1] / "train_state.json").is_file():
        n, p = aside.pop()
        os.replace(p, root / f"step-{n}")
    for _, p in aside:
        shutil.rmtree(p, ignore_errors=True)


def read_json(ckpt_dir: Path, name: str):
    path = Path(ckpt_dir) / name
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: unreadable ({e})") from None


def load_checkpoint(ckpt_dir: Path, model: torch.nn.Module, optimizer: torch.optim.Optimizer, d: Dist) -> None:
    """Restore model, optimizer and this rank's RNG in place (other parts are JSON: `read_json`)."""
    ckpt_dir = Path(ckpt_dir)
    # NOTE: every rank reads the full tensors and keeps its shard (`broadcast_from_rank0` skips the
    # optimizer on ranks given an empty model dict and deadlocks, torch 2.13). Host memory per rank:
    # ~16 bytes/parameter while loading; the files are shared through the page cache.
    msd = load_model_state(ckpt_dir)
    # On CPU the optimizer keeps the loaded tensors (a view of the file's mmap would hold a deleted checkpoint's
    # space for the whole run): owned copies. On a GPU it copies them to the device, so the ranks keep sharing
    # the file's pages (owned copies would be ~8 bytes/parameter of private host memory per rank at once).
    owned = d.device.type == "cpu"
    osd = _unflatten_optimizer(_load_tensors(ckpt_dir / "optimizer.safetensors", owned=owned),
                               read_json(ckpt_dir, "optimizer.json"))
    opts = StateDictOptions(full_state_dict=True)
    try:
        set_state_dict(model, optimizer, model_state_dict=msd, optim_state_dict=osd, options=opts)
    except (RuntimeError, KeyError, ValueError) as e:
        detail = " ".join(str(e).split())
        raise CheckpointError(
            f"{ckpt_dir}: does not fit the configured model (the model config changed since this checkpoint; "
            f"it was written for {ckpt_dir / 'model_config.json'}): {detail[:500]}"
        ) from None
    if not osd["state"]:  # saved before any update: set_state_dict gave it one on zero gradients (see save)
        optimizer.state.clear()
    rng_file = ckpt_dir / "rng" / f"rank-{d.rank}.safetensors"
    if rng_file.is_file():
        rng = _load_tensors(rng_file)
        torch.set_rng_state(rng["cpu"])
        if "cuda" in rng and d.device.type == "cuda":
            torch.cuda.set_rng_state(rng["cuda"], d.device)
    else:
        torch.manual_seed(0x5EED + d.rank)
        log.warning("%s: no RNG state for rank %d (world size changed); RNG reseeded", ckpt_dir, d.rank)
