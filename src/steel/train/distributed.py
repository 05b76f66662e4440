"""Process group, device, and every wrapper the model gets (AC, compile, FSDP2, DDP), applied here only.

The model code knows nothing of devices or parallelism (torchtitan's rule): `parallelize()` takes a
plain single-device `nn.Module` and returns the module to train. Launch with `torchrun`; outside
torchrun this is one process on CUDA:0 or the CPU.
"""

from __future__ import annotations

import atexit
import contextlib
import datetime
import logging
import os
import sys
from dataclasses import dataclass
from typing import NoReturn

import torch
import torch.distributed as dist
from torch import nn

from steel.config import ConfigError
from steel.train.config import ParallelSection


@dataclass
class Dist:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device
    mode: str  # none | ddp | fsdp

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def _env_int(name: str, default: int) -> int:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        return int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r}: expected an integer (torchrun sets it; launch with torchrun)") from None


def world_and_rank() -> tuple[int, int]:
    """(WORLD_SIZE, RANK) as torchrun sets them, checked: each error names the variable.

    NOTE: a rank whose own WORLD_SIZE or RANK is malformed cannot tell the other ranks why it stops (it has no
    place in the startup exchange): it ends alone, and under torchrun the others wait for it until
    parallel.timeout_minutes. Its error says so. Every other refusal reaches them (`init_distributed`).
    """
    try:
        world, rank = _env_int("WORLD_SIZE", 1), _env_int("RANK", 0)
        if world < 1:
            raise ConfigError(f"WORLD_SIZE {world}: expected >= 1")
        if not 0 <= rank < world:
            raise ConfigError(f"RANK {rank}: expected 0 <= RANK < WORLD_SIZE ({world})")
    except ConfigError as e:
        if os.environ.get("WORLD_SIZE", "").strip() in ("", "1"):  # one process: nobody waits for it
            raise
        raise ConfigError(f"{e}; this rank cannot tell the other ranks, which wait for it until "
                          "parallel.timeout_minutes") from None
    return world, rank


def local_rank() -> int:
    """LOCAL_RANK as torchrun sets it, checked."""
    local = _env_int("LOCAL_RANK", 0)
    if local < 0:
        raise ConfigError(f"LOCAL_RANK {local}: expected >= 0")
    return local


def _check_local_gpu(world: int, local: int) -> None:
    """The GPU of LOCAL_RANK must exist on this node. `--nproc_per_node 8` on a node with fewer visible GPUs
    (or a launcher giving each process one GPU through CUDA_VISIBLE_DEVICES) died in `set_device` with
    "invalid device ordinal"; WORLD_SIZE without LOCAL_RANK (a hand-written srun line) put all of a node's
    ranks on GPU 0, which NCCL refuses or deadlocks on."""
    if world > 1 and not os.environ.get("LOCAL_RANK", "").strip():
        raise ConfigError(f"LOCAL_RANK is not set while WORLD_SIZE={world}: every process of a node would use GPU "
                          "0; launch with torchrun (it sets LOCAL_RANK, the process's index on its node)")
    n = torch.cuda.device_count()
    if local >= n:
        visible = os.environ.get("CUDA_VISIBLE_DEVICES")
        raise ConfigError(
            f"LOCAL_RANK {local}: this node has {n} visible GPU{'s' if n != 1 else ''}"
            + (f" (CUDA_VISIBLE_DEVICES={visible})" if visible is not None else "")
            + f"; launch at most {n} processes per node (torchrun --nproc_per_node {n}), each seeing all of the "
            "node's GPUs")


def fsdp_runs_on(device: torch.device) -> bool:
    """Whether this torch's FSDP2 runs on `device`. NOTE: FSDP2 records an event on its CPU streams at every
    all-gather, and torch 2.6's (Steel's floor) CPU streams have no record_event: every rank died at the first
    forward ("'Stream' object has no attribute 'record_event'"); torch 2.11's have it."""
    return device.type != "cpu" or hasattr(torch.cpu.Stream, "record_event")


def pick_mode(mode: str, world: int, device: torch.device) -> str:
    """parallel.mode as run: `auto` is FSDP2 with several processes, DDP where this torch's FSDP2 cannot run on
    the device (CPU on torch 2.6: `auto` is what runs), and none with one process."""
    if mode != "auto":
        return mode
    if world == 1:
        return "none"
    return "fsdp" if fsdp_runs_on(device) else "ddp"


def check_fsdp_device(mode: str, device: torch.device) -> None:
    """Refuse FSDP where this torch's FSDP2 cannot run on the device (`fsdp_runs_on`)."""
    if mode == "fsdp" and not fsdp_runs_on(device):
        raise ConfigError(
            f"parallel.mode: fsdp on CPU does not run with torch {torch.__version__} (its FSDP2 needs CPU streams "
            "with record_event, which this torch lacks); use parallel.mode: ddp on CPU, fsdp on GPUs, or a newer torch"
        )


def init_distributed(cfg: ParallelSection, refused: Exception | None = None) -> Dist:
    """The process group and this rank's device. `refused` is what this rank's config checks raised before it
    (a bad model field): under torchrun every rank then stops with it, as with this function's own refusals (the
    mode, LOCAL_RANK malformed or unset, the GPU of LOCAL_RANK), through the rendezvous store, before any backend
    starts. A malformed WORLD_SIZE or RANK ends this rank alone (`world_and_rank`).

    NOTE: a rank refused before the process group existed exited at once, and the others waited for it at init
    until parallel.timeout_minutes (their torchrun agent killed them first on its node): the rendezvous store is
    up before the backend (gloo, NCCL) starts, and a refused rank needs no device to write to it.
    """
    world, rank = world_and_rank()
    local, device, mode = 0, torch.device("cpu"), "none"
    try:
        local = local_rank()
        if torch.cuda.is_available():
            _check_local_gpu(world, local)
            device = torch.device("cuda", local)
        mode = pick_mode(cfg.mode, world, device)
        if world > 1 and mode == "none":
            raise ConfigError("parallel.mode: 'none' with WORLD_SIZE > 1; use ddp or fsdp")
        if world > 1:
            check_fsdp_device(mode, device)
    except ConfigError as e:
        refused = refused or e
    timeout = datetime.timedelta(minutes=cfg.timeout_minutes)
    if world > 1 and not dist.is_initialized():
        store = _startup_store(rank, world, timeout, refused)
        # A key of its own per call: a process that starts a second process group on the same store (a program
        # calling `main` again) must not read the notes of the first.
        global _startup_calls
        _startup_calls += 1
        # raises on every rank when one was refused
        start = _startup_errors(store, rank, world, refused, timeout, f"steel/startup/{_startup_calls}")
        if device.type == "cuda":
            torch.cuda.set_device(device)
        dist.init_process_group(
            "nccl" if device.type == "cuda" else "gloo",
            # NOTE: init_process_group prefixes the store it makes with "default_pg"; torchrun's agent keeps its
            # store across a worker restart (--max-restarts), where the backend's keys of a failed attempt (a
            # gloo peer's address, NCCL's unique id) were read by the restarted ranks: "Gloo connectFullMesh
            # failed ... Connection refused". Every start gets a prefix of its own, rank 0's, agreed at startup.
            store=dist.PrefixStore(f"default_pg/{start}", store),
            rank=rank,
            world_size=world,
            device_id=device if device.type == "cuda" else None,
            timeout=timeout,
        )
    elif refused is not None:
        if world > 1:  # a process group joined before this call (an in-process caller): the others hear of it
            errors_from(Dist(rank, world, local, device, "none"), refused)
        raise refused
    elif device.type == "cuda":
        torch.cuda.set_device(device)
    if world == 1 and mode != "none":
        # Outside torchrun (one process) there is nothing to shard or all-reduce: run unwrapped rather
        # than fail in DDP/fully_shard for want of a process group (`parallelize` logs it, once the run
        # log exists).
        mode = "none"
    return Dist(rank, world, local, device, mode)


def _startup_store(rank: int, world: int, timeout: datetime.timedelta, refused: Exception | None):
    """The rendezvous store init_process_group would join (torchrun's agent store, else one rank 0 hosts at
    MASTER_ADDR:MASTER_PORT). A refused rank that cannot reach it (no MASTER_ADDR: not a torchrun launch) raises
    its own error."""
    try:
        store, _, _ = next(dist.rendezvous("env://", rank, world, timeout=timeout))
    except (ValueError, RuntimeError):  # a variable unset or bad: torch's own error, or the refusal's
        if refused is not None:
            raise refused from None
        raise
    store.set_timeout(timeout)
    return store


_startup_calls = 0


def _startup_errors(store, rank: int, world: int, error: Exception | None, timeout: datetime.timedelta,
                    key: str) -> str:
    """`errors_from` over the rendezvous store, before the process group exists: every rank tells rank 0 whether
    it was refused, rank 0 writes one verdict, and when a rank was refused each raises its own error or `rank N
    stopped at startup: ...`. Returns the name of this start: the epoch rank 0 made up, the same on every rank
    and new at each start.

    An attempt's exchange lives under `KEY/<epoch>`, which rank 0 publishes at `KEY/epoch`: each other rank adds
    itself to a counter there (a refused one first adds its note), the one that completes it says so, and rank 0
    then reads the refused ranks' notes alone and writes the verdict, which the others read; the last reader
    deletes the start's keys. O(world) store requests in all (every rank reading every rank's note made a
    million at 1,000 ranks).

    NOTE: torchrun's agent keeps its store across a worker restart (`--max-restarts`), and an attempt that died
    during the exchange (a rank's crash before the process group starts) left its keys there: a restarted rank
    read the old notes before its peers wrote new ones, took the old start name while the restarted rank 0 made
    up another, and both waited in init_process_group until parallel.timeout_minutes (an old refusal stopped
    every restart). TORCHELASTIC_RESTART_COUNT cannot tell attempts apart: an agent whose node did not fail
    restarts its workers without counting (a membership change), so two nodes' counts differ. Only rank 0 writes
    the one name every attempt uses, `KEY/epoch`; a restarted rank that read a failed attempt's epoch there
    before the restarted rank 0 replaced it is sent on by rank 0 (`moved`, and the verdict's place when that epoch
    has none yet); one whose old epoch already had its verdict knows it by its counter, which then passes
    world - 1. The agent stops all of an attempt's workers before the restart's rendezvous, so a failed
    attempt's keys never change while the next one runs.
    """
    import json
    import uuid

    def at(epoch: str, name: str) -> str:
        return f"{key}/{epoch}/{name}"

    last = False
    try:
        if rank == 0:
            epoch = uuid.uuid4().hex
            old = store.compare_set(f"{key}/epoch", "", epoch).decode()
            if old != epoch:  # a failed attempt's: the restarted ranks that read it come on to this one
                store.set(f"{key}/epoch", epoch)
                store.set(at(old, "moved"), epoch)
                store.compare_set(at(old, "verdict"), "", json.dumps({"moved": epoch}))
            store.wait([at(epoch, "full")], timeout)  # every other rank has come (and written its note if refused)
            n = store.add(at(epoch, "notes"), 0)
            notes = [json.loads(store.get(at(epoch, f"note/{k}"))) for k in range(1, n + 1)]
            notes = sorted(([[0, _error_note(error)]] if error is not None else []) + notes, key=lambda x: x[0])
            verdict = {"failed": len(notes), "rank": notes[0][0], "note": notes[0][1]} if notes else {"failed": 0}
            store.set(at(epoch, "verdict"), json.dumps(verdict))
            for k in range(1, n + 1):
                store.delete_key(at(epoch, f"note/{k}"))
            if old != epoch:  # every rank is here now: none reads the failed attempt's keys again
                _forget_epoch(store, key, old)
        else:
            store.wait([f"{key}/epoch"], timeout)
            epoch = store.get(f"{key}/epoch").decode()
            while True:
                if error is not None:
                    k = store.add(at(epoch, "notes"), 1)
                    store.set(at(epoch, f"note/{k}"), json.dumps([rank, _error_note(error)]))
                n = store.add(at(epoch, "count"), 1)
                if n == world - 1:
                    store.set(at(epoch, "full"), "")
                # counted past world - 1: a failed attempt's epoch, whose verdict (if any) is not for this rank
                place = at(epoch, "verdict" if n < world else "moved")
                store.wait([place], timeout)
                verdict = json.loads(store.get(place)) if n < world else {"moved": store.get(place).decode()}
                if "moved" not in verdict:
                    break
                epoch = verdict["moved"]
            last = store.add(at(epoch, "read"), 1) == world - 1
            if last:  # every rank has read the verdict: nothing of this start is left for a restart
                store.delete_key(f"{key}/epoch")  # first: a later attempt never finds this epoch
                for name in ("verdict", "count", "full", "notes", "read"):
                    store.delete_key(at(epoch, name))
                if verdict["failed"]:
                    store.set(at(epoch, "done"), "")
    except RuntimeError as e:  # a rank that ended alone never came (its store host may have gone): say why this one stops
        if error is not None:
            raise error from None
        # NOTE: the store's own error ("Wait timeout", a DistStoreError) ended an accepted rank in a traceback
        # naming neither the exchange nor the setting that timed it.
        cause = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise OSError(f"not every rank reached the startup exchange within parallel.timeout_minutes "
                      f"({timeout.total_seconds() / 60:g}), or the rendezvous store's host went away ({cause}); a "
                      "rank that ended alone (a crash, a malformed RANK or WORLD_SIZE) printed why") from e
    if not verdict["failed"]:
        return epoch
    # No rank exits before every rank has read the verdict: rank 0 may host the store (no torchrun agent), and a
    # torchrun agent that sees its node's rank exit stops it and the node's other ranks.
    if not last:
        with contextlib.suppress(Exception):  # a rank that never reads, the store gone: end anyway
            store.wait([at(epoch, "done")], datetime.timedelta(seconds=60))
    if error is not None:
        raise error
    raise _stopped_error(verdict["rank"], verdict["failed"], verdict["note"], "at startup")


def _forget_epoch(store, key: str, epoch: str) -> None:
    """Delete what a failed attempt left under `KEY/<epoch>`."""
    for k in range(1, store.add(f"{key}/{epoch}/notes", 0) + 1):
        store.delete_key(f"{key}/{epoch}/note/{k}")
    for name in ("moved", "verdict", "count", "full", "notes", "read", "done"):
        store.delete_key(f"{key}/{epoch}/{name}")


def _error_note(error: Exception | None):
    """(refusal, text) of what a rank raised, sent to the others; None for none."""
    if error is None:
        return None
    from steel.cli import UserError

    # Refusals (DataError, ChatError are ValueErrors) are ConfigErrors on the other ranks, the rest (a full
    # disk, a bug) OSErrors: each ends the command with one line and the exit status of its kind (2, 1).
    refusal = isinstance(error, (ConfigError, UserError, ValueError))
    return (refusal, str(error) if refusal or isinstance(error, OSError) else f"{type(error).__name__}: {error}")


def _stopped_error(first: int, failed: int, note, when: str) -> Exception:
    """`rank FIRST (and N more ranks) stopped WHEN: ...` of `failed` ranks, the first one's `note`."""
    more = f" (and {failed - 1} more rank{'s' if failed > 2 else ''})" if failed > 1 else ""
    refusal, text = note
    return (ConfigError if refusal else OSError)(f"rank {first}{more} stopped {when}: {text}")


def autocast_dtype(cfg: ParallelSection, device: torch.device) -> torch.dtype | None:
    """bf16 autocast on GPU (fp32 master weights), none (fp32) on CPU unless asked; none for bf16 parameters."""
    if cfg.param_dtype == "bf16" or cfg.dtype == "fp32" or (cfg.dtype == "auto" and device.type != "cuda"):
        return None
    return torch.bfloat16


BLOCK_LIST_NAMES = ("layers", "h", "blocks", "layer", "block")


def decoder_layers(model: nn.Module) -> list[nn.Module]:
    """The transformer blocks: the largest ModuleList named `layers` (Llama, Qwen2, Steel, OPT's
    model.decoder.layers, GPT-NeoX), `h` (GPT-2, Falcon, Bloom), `blocks` (MPT) or `layer`/`block` (BERT-style
    decoders: bert.encoder.layer). Outermost first on a tie, so a MoE layer's `experts` list never wins."""
    best: list[nn.Module] = []
    for name, mod in model.named_modules():
        if isinstance(mod, nn.ModuleList) and name.rsplit(".", 1)[-1] in BLOCK_LIST_NAMES:
            if len(mod) > len(best):
                best = list(mod)
    return best


def parallelize(model: nn.Module, cfg: ParallelSection, d: Dist) -> nn.Module:
    log = logging.getLogger("steel")
    if cfg.mode not in ("auto", d.mode):
        log.info("parallel.mode: %s with one process: running unwrapped", cfg.mode)
    model.to(d.device)
    if cfg.param_dtype == "fp32":
        # A model loaded in bf16 (an HF directory saved so, a config with dtype: bfloat16) would otherwise
        # train as pure bf16 with no fp32 master weights, losing small updates to rounding.
        low = sorted({str(p.dtype) for p in model.parameters() if p.is_floating_point() and p.dtype != torch.float32})
        if low:
            log.info("parallel.param_dtype: fp32: model parameters in %s cast to fp32 (fp32 master weights)",
                     ", ".join(low))
            with torch.no_grad():
                for p in model.parameters():
                    if p.is_floating_point():
                        p.data = p.data.float()
    if cfg.param_dtype == "bf16":
        if d.mode == "fsdp":
            raise ConfigError("parallel.param_dtype: bf16 parameters are for modes none and ddp (this run resolved "
                              "mode auto to fsdp); under fsdp, dtype: bf16 computes in bf16 from fp32 masters")
        # Parameters only: buffers such as RoPE's inv_freq stay fp32.
        with torch.no_grad():
            for p in model.parameters():
                p.data = p.data.to(torch.bfloat16)
    layers = decoder_layers(model)
    if not layers:
        # Wrapping nothing would run the model without what was asked for, silently: no memory saved by
        # activation checkpointing, nothing compiled, or one FSDP unit holding every parameter.
        names = ", ".join(BLOCK_LIST_NAMES)
        for name in ("activation_checkpointing", "compile"):
            if getattr(cfg, name):
                raise ConfigError(f"parallel.{name}: no decoder blocks found in {type(model).__name__} (an "
                                  f"nn.ModuleList named {names}); set parallel.{name}: false")
        if d.mode == "fsdp":
            log.warning("parallel.mode fsdp: no decoder blocks found in %s (an nn.ModuleList named %s): the "
                        "whole model is one FSDP unit, all its parameters gathered at once", type(model).__name__,
                        names)
    if cfg.activation_checkpointing:
        from torch.distributed.algorithms._checkpoint.checkpoint_wrapper import apply_activation_checkpointing

        ids = {id(m) for m in layers}
        apply_activation_checkpointing(model, check_fn=lambda m: id(m) in ids)
        layers = decoder_layers(model) or layers
    if cfg.compile:
        # NOTE: per-block compile (torchtitan): shorter compile, same speed, and it composes with FSDP2.
        if cfg.activation_checkpointing:
            # NOTE: transformers' stock attention layers (the hub `kernels` wrapper) set a ContextVar in their
            # forward and reset it before returning. Dynamo refuses to trace such a side effect inside the
            # checkpoint (it would not be replayed in the recompute), and a graph break there runs the whole
            # checkpointed block eagerly: with both options on, no layer of a stock model was compiled. Not
            # replaying a set-then-reset in the recompute changes nothing. (Steel's layers have no side effect.)
            # NOTE: a process-wide dynamo setting, and not in every torch Steel supports (>= 2.6): setting an
            # unknown key raises, which failed every run with both options on such a torch.
            if hasattr(torch._dynamo.config, "skip_fwd_side_effects_in_bwd_under_checkpoint"):
                torch._dynamo.config.skip_fwd_side_effects_in_bwd_under_checkpoint = True
            else:
                log.info("parallel.compile with activation_checkpointing: torch %s has no dynamo "
                         "skip_fwd_side_effects_in_bwd_under_checkpoint; a block with a forward side effect "
                         "(stock HF attention) runs its checkpoint uncompiled", torch.__version__)
        for layer in layers:
            layer.compile()
    if d.mode == "fsdp":
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard

        dtype = autocast_dtype(cfg, d.device)
        mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32) if dtype else MixedPrecisionPolicy()
        for layer in layers:
            fully_shard(layer, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
    elif d.mode == "ddp":
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(model, device_ids=[d.local_rank] if d.device.type == "cuda" else None)
    log_parallel(cfg, d)
    return model


def log_parallel(cfg: ParallelSection, d: Dist) -> None:
    """One log line saying how the model runs: with `mode: auto` the config does not say whether torchrun made
    it DDP or FSDP2, over which backend, nor the precision `dtype: auto` resolved to on this device."""
    wrap = {"none": "unwrapped", "ddp": "DDP", "fsdp": "FSDP2"}.get(d.mode, d.mode)
    if dist.is_available() and dist.is_initialized():
        wrap += f" over {dist.get_backend()}"
    if cfg.mode == "auto" and d.mode == "ddp":  # `pick_mode`: auto is FSDP2 wherever it runs
        wrap += f" (mode auto: torch {torch.__version__}'s FSDP2 does not run on {d.device.type})"
    compute = autocast_dtype(cfg, d.device)
    logging.getLogger("steel").info(
        "parallel: %s, %d process%s, device %s, parameters %s, compute %s, activation checkpointing %s, compile %s",
        wrap, d.world_size, "es" if d.world_size > 1 else "", d.device.type, cfg.param_dtype,
        "bf16 autocast" if compute is not None else cfg.param_dtype, "on" if cfg.activation_checkpointing else "off",
        "on" if cfg.compile else "off")


def grad_sync(model: nn.Module, d: Dist, sync: bool):
    """Context for one micro-batch's backward: skip the gradient all-reduce except on the last one."""
    if d.mode == "ddp" and not sync:
        return model.no_sync()
    if d.mode == "fsdp":
        model.set_requires_gradient_sync(sync)
    return contextlib.nullcontext()


def all_reduce_sum(t: torch.Tensor, d: Dist) -> torch.Tensor:
    if d.world_size > 1:
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier(d: Dist) -> None:
    if d.world_size > 1:
        dist.barrier()


def broadcast_object(obj, d: Dist):
    """Rank 0's value on every rank (small picklable python objects only; never loaded from disk)."""
    if d.world_size == 1:
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def check_same_on_every_rank(values: dict, d: Dist, hint: str) -> None:
    """Refuse, on every rank with the same error, ranks whose `values` (name -> small picklable value) differ
    from rank 0's. A collective: call it on every rank.

    NOTE: every rank reads its own config file (a copy on each node, `--set` on one node's command line). A
    learning rate that differs made the DDP replicas drift apart silently (the checkpoint keeps rank 0's);
    another max_steps or checkpoint.every hung at the next collective until parallel.timeout_minutes.
    """
    if d.world_size == 1:
        return
    ref = broadcast_object(values, d)
    diff = sorted(k for k in ref.keys() | values.keys() if ref.get(k, "(unset)") != values.get(k, "(unset)"))
    bad = torch.zeros(d.world_size, dtype=torch.int64, device=d.device)
    bad[d.rank] = 1 if diff else 0
    bad = [r for r, x in enumerate(all_reduce_sum(bad, d).tolist()) if x]
    if not bad:
        return
    mine = [(k, ref.get(k, "(unset)"), values.get(k, "(unset)")) for k in diff]
    notes: list = [None] * d.world_size
    dist.all_gather_object(notes, mine)  # only on failure: every rank then raises the same error
    parts = []
    for r in bad[:4]:
        fields = ", ".join(f"{k} {v!r} (rank 0: {v0!r})" for k, v0, v in notes[r][:4])
        parts.append(f"rank {r}: {fields}{', ...' if len(notes[r]) > 4 else ''}")
    more = f"; and {len(bad) - 4} more ranks" if len(bad) > 4 else ""
    raise ConfigError(f"the ranks disagree ({'; '.join(parts)}{more}): {hint}")


@contextlib.contextmanager
def fail_together(d: Dist, when: str = "at startup"):
    """A block of per-rank work, then a collective (enter it on every rank): when the block raised on some
    ranks only, the others raise too, naming the first failing rank, `when` and its error; a failing rank raises
    its own error. `errors_from(d)` for work that ran before the process group existed.

    NOTE: a refusal that one rank alone raises (rank 0's run-dir lock held by another run, a node whose config
    or data copy differs) ended the other ranks in their next collective: a gloo "Connection closed by peer"
    traceback instead of the cause, or under NCCL a hang until parallel.timeout_minutes.
    """
    try:
        yield
    except Exception as e:
        errors_from(d, e, when)
        raise
    errors_from(d, None, when)


def errors_from(d: Dist, error: Exception | None, when: str = "at startup") -> None:
    """The collective of `fail_together`: `error` is what this rank's startup work raised (raised again here), or
    None."""
    if d.world_size == 1:
        if error is not None:
            raise error
        return
    flags = torch.zeros(d.world_size, dtype=torch.int64, device=d.device)
    flags[d.rank] = error is not None
    failed = [r for r, x in enumerate(all_reduce_sum(flags, d).tolist()) if x]
    if not failed:
        return
    if error is not None and len(failed) == d.world_size:  # every rank has its own error: no exchange needed
        raise error
    notes: list = [None] * d.world_size
    dist.all_gather_object(notes, _error_note(error))
    if error is not None:
        raise error
    raise _stopped_error(failed[0], len(failed), notes[failed[0]], when)


def report_setup_error(error: Exception) -> NoReturn:
    """Raise `error`, the config's own (`setup()`: YAML, `--set`, a field's type or value), after telling the
    other ranks under torchrun so that every rank stops with it: the others, whose config was accepted, read it
    in the rendezvous store at their `init_distributed` and raise `rank N stopped at startup: ...`.

    NOTE: raised before the process group existed, the error ended this rank at once and a rank on another node
    waited in the rendezvous or at init until parallel.timeout_minutes. Without a config this rank waits for the
    others with the default timeout.
    """
    try:
        world_and_rank()
    except ConfigError:
        raise error from None  # a rank that cannot name itself: nothing to join
    init_distributed(ParallelSection(), refused=error)
    raise error


# The default process group of each `destroy`, kept until `free_process_groups` releases it (see there); this
# process runs it at its exit when no command did (a script that called fit() itself, not through steel.cli).
_destroyed: list = []


def destroy(d: Dist | None = None) -> None:
    """dist.destroy_process_group() (when a group is up: `d`'s, of more than one rank), keeping the default
    group's Python object for `free_process_groups`."""
    if dist.is_initialized() and (d is None or d.world_size > 1):
        _destroyed.append(dist.group.WORLD)
        dist.destroy_process_group()


@atexit.register
def _free_destroyed() -> None:
    if _destroyed:
        free_process_groups()


def free_process_groups() -> None:
    """Free the gloo/NCCL backends that destroy_process_group() leaves alive once the command's objects are gone.

    destroy_process_group() only unregisters the groups: the model's FSDP2 state (a trainer is a reference
    cycle, freed only by the collector) and every DeviceMesh, which DTensor's caches keep alive after the model,
    still hold them, so gloo's threads (pt_gloo_runloop, gloo_tcp_loop) ran on to interpreter exit, where a
    rank was seen to abort after a successful run ("terminate called without an active exception", SIGABRT,
    under torchrun a failed run). Called by `steel.cli` when a command that joined a process group ends.
    """
    import gc

    gc.collect()
    mesh_module = sys.modules.get("torch.distributed.device_mesh")
    mesh_type = getattr(mesh_module, "DeviceMesh", None)
    if isinstance(mesh_type, type):
        for obj in gc.get_objects():
            # NOTE: issubclass on type(obj), not isinstance: DeviceMesh's metaclass checks instances in Python,
            # through obj.__class__, which for torch.distributed.reduce_op printed a FutureWarning on every rank
            # at the end of each run, and for an object whose __class__ raises ended the command in a traceback.
            if issubclass(type(obj), mesh_type):
                registry = getattr(obj, "_pg_registry", None)  # NOTE: private; absent in some torch versions
                if isinstance(registry, dict):
                    registry.clear()
    gc.collect()
    # NOTE: the groups last, through their Python objects, which let go of the GIL while a backend's destructor
    # waits for its threads (a gloo worker finishing a collective drops its tensors, which takes the GIL when
    # Python let go of them first). The collector freed DDP's reducer holding the GIL; when the reducer held the
    # last reference, the gloo destructor waited on a worker that waited for the GIL: a rank hung at its exit
    # until torchrun's caller gave up (1 in 45 runs of a 2-rank DDP test on a loaded machine).
    _destroyed.clear()
