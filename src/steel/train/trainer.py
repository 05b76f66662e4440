"""`steel train`: `setup()` validates input, `main()` builds the parts, `fit()` runs `Trainer.train()`.

The Trainer takes any data object with `next_batch()` -> `{"input_ids": (B, T), "labels": (B, T)}`
(HF convention, the trainer shifts) or `{"input_ids", "shift_labels"}` (already shifted), -100 =
ignored, optionally `"lengths": (B,)` (the positions of each row that hold data, right padding after
them), plus `state_dict()`/`load_state_dict()`: the pretraining loader
(`steel.data.loader.PretrainLoader`) and the SFT data both fit. The loss of a step is the sum of
token losses over the whole global batch divided by its number of target tokens, so it does not
depend on how the batch is split into micro-batches and ranks. `tokens` and `tokens_per_s` count the
positions that hold data (every position without `lengths`), not the targets: in SFT only the assistant
turns are targets, but the prompts cost the same FLOPs. `mfu` (and `computed_per_s`) count every position
computed, right padding included: the model computes it at the same cost.
"""

from __future__ import annotations

import json
import logging
import math
import os
import signal
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F

from steel import dirlock
from steel.config import ConfigError, dump_yaml, load_config, read_yaml, to_dict
from steel.data.loader import unique_dirs
from steel.runlog import progress_bar, setup_run_log
from steel.train import checkpoint as ckpt
from steel.train.config import TrainConfig
from steel.train.distributed import (
    Dist,
    all_reduce_sum,
    autocast_dtype,
    barrier,
    broadcast_object,
    check_same_on_every_rank,
    destroy,
    errors_from,
    fail_together,
    grad_sync,
    init_distributed,
    parallelize,
)
from steel.train.master_adamw import MasterWeightAdamW
from steel.train.metrics import MetricsLogger, memory_gb, peak_flops
from steel.train.optim import adamw_fused, build_optimizer, lr_at

log = logging.getLogger("steel")


class BatchSource(Protocol):
    def next_batch(self) -> dict[str, torch.Tensor]: ...
    def state_dict(self) -> dict: ...
    def load_state_dict(self, state: dict) -> None: ...


class NonFiniteError(RuntimeError):
    """Too many consecutive steps with a non-finite loss or gradient norm."""


@dataclass
class TrainState:
    step: int = 0  # optimizer steps done
    tokens: int = 0  # positions holding data (padding excluded), all ranks: tokens_per_s counts these
    targets: int = 0  # target tokens trained on (labels != -100), all ranks; = tokens in pretraining
    skipped: int = 0  # steps skipped: a non-finite loss/grad norm, or a global batch without targets
    nonfinite_run: int = 0  # consecutive non-finite skipped steps now (toward max_nonfinite)
    anneal: dict | None = None  # the annealing switch once done: {step, mode, dirs, md5s} (checked at resume)
    losses: list[float] = field(default_factory=list)  # this process's step losses (not checkpointed)

    def state_dict(self) -> dict:
        return {"step": self.step, "tokens": self.tokens, "targets": self.targets, "skipped": self.skipped,
                "nonfinite_run": self.nonfinite_run, "anneal": self.anneal}

    def load_state_dict(self, s: dict) -> None:
        self.step, self.tokens, self.skipped, self.nonfinite_run = s["step"], s["tokens"], s["skipped"], s["nonfinite_run"]
        # Checkpoints before 2026-12-07 have no `targets`: their `tokens` counted targets (see sft.train's resume).
        self.targets = s.get("targets", s["tokens"])
        self.anneal = s.get("anneal")


# --- model -------------------------------------------------------------------------------------------
def build_model_config(spec: Any, overrides: dict):
    """A model config from a spec (see ModelSection.config): Steel's loader when present, else stock HF."""
    try:
        from steel.model import load_model_config
    except ImportError:
        load_model_config = None
    if load_model_config is not None:
        # JSON is YAML: `--set`-style strings carry any value type through unchanged.
        return load_model_config(spec, [f"{k}={json.dumps(v)}" for k, v in overrides.items()])
    else:
        from transformers import AutoConfig

        if isinstance(spec, str) and Path(spec).is_dir():
            cfg = AutoConfig.from_pretrained(spec)
        else:
            data = read_yaml(spec) if isinstance(spec, str) else dict(spec)
            if "model_type" not in data:
                raise ConfigError(f"model.config: {spec!r} has no model_type")
            data = dict(data)
            try:
                cfg = AutoConfig.for_model(data.pop("model_type"), **data)
            except Exception as e:  # noqa: BLE001 -- transformers/huggingface_hub validators raise several types
                lines = [x.strip() for x in str(e).splitlines() if x.strip()]
                raise ConfigError(f"model.config: {lines[-1] if lines else e}") from None
    for k, v in overrides.items():
        if not hasattr(cfg, k):
            raise ConfigError(f"model.overrides.{k}: not a field of {type(cfg).__name__}")
        setattr(cfg, k, v)
    return cfg


def build_model(cfg) -> torch.nn.Module:
    try:
        from steel.model import build_model as steel_build
    except ImportError:
        steel_build = None
    if steel_build is not None:
        return steel_build(cfg)
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_config(cfg)


def changed_model_fields(saved: dict, model_config: dict) -> list[str]:
    """The model config fields that differ between a checkpoint's model_config.json and `model_config`."""
    model_config = json.loads(json.dumps(model_config))  # as saved: JSON turns int keys (id2label) into strings
    # NOTE: not `dtype`: the parameters' dtype is parallel.param_dtype's (parallelize casts them), whatever the
    # config says. An SFT run from a Steel run dir saved `dtype: null` before 2026-12-07 and "float32" since
    # (the init is now loaded as fp32 parameters), which warned at resume that the model computes otherwise.
    ignore = {"transformers_version", "_name_or_path", "architectures", "dtype", "torch_dtype"}
    return sorted(k for k in saved.keys() | model_config.keys()
                  if k not in ignore and saved.get(k) != model_config.get(k))


def check_model_shapes_at_resume(model_cfg, ckpt_dir: Path) -> None:
    """Refuse, before the model is built, a model config whose parameter shapes differ from the checkpoint's.

    Both models are built on the meta device (no memory, no init): a changed width or depth used to build
    the full model (a 1.1B one on a CPU machine was killed for memory) and then fail to load, after a
    warning that said the weights would load.
    """
    from transformers import CONFIG_MAPPING

    try:
        saved = ckpt.read_json(ckpt_dir, "model_config.json")
    except ckpt.CheckpointError:
        return
    if saved.get("model_type") not in CONFIG_MAPPING:
        return
    with torch.device("meta"):
        old = {k: tuple(v.shape) for k, v in build_model(CONFIG_MAPPING[saved["model_type"]].from_dict(saved)).state_dict().items()}
        new = {k: tuple(v.shape) for k, v in build_model(model_cfg).state_dict().items()}
    diff = sorted(k for k in old.keys() | new.keys() if old.get(k) != new.get(k))
    if diff:
        fields = changed_model_fields(saved, model_cfg.to_dict())
        raise ConfigError(
            f"model: the configured model does not fit the checkpoint {ckpt_dir} (changed: {', '.join(fields) or '?'}; "
            f"e.g. {diff[0]}: {old.get(diff[0])} in the checkpoint, {new.get(diff[0])} now); set it back, or "
            f"start a new run (another run_dir)"
        )


def flops_per_token(cfg, model: torch.nn.Module, seq_len: int) -> float:
    """Training FLOPs per token: the model's own count when available, else 6N + 12*L*d*T (PaLM, App. B)."""
    try:
        from steel.model.flops import flops_per_token as steel_flops
    except ImportError:
        steel_flops = None
    if steel_flops is not None:
        try:
            return float(steel_flops(cfg, seq_len)["true"])
        except ValueError as e:  # routed MoE (num_local_experts...) or attention-free (Mamba): not modelled
            raise ConfigError(f"model: {e}; Steel trains dense stock configs") from None
    emb = model.get_input_embeddings().weight.numel() if model.get_input_embeddings() is not None else 0
    n = sum(p.numel() for p in model.parameters()) - emb  # an embedding lookup is not a matmul
    return 6 * n + 12 * cfg.num_hidden_layers * cfg.hidden_size * seq_len


def check_causal_lm(model_cfg) -> None:
    """Refuse a config transformers has no causal LM class for (T5, BART encoders...): AutoModelForCausalLM's
    own error lists every causal config class there is (3 kB on one error line)."""
    from transformers.models.auto.modeling_auto import (
        MODEL_FOR_CAUSAL_LM_MAPPING,
        MODEL_FOR_CAUSAL_LM_MAPPING_NAMES,
    )

    # By class (registered ones such as SteelConfig) or by model_type (a config class loaded as remote code).
    if type(model_cfg) not in MODEL_FOR_CAUSAL_LM_MAPPING and model_cfg.model_type not in (
            "steel", *MODEL_FOR_CAUSAL_LM_MAPPING_NAMES):
        raise ConfigError(f"model.config: {model_cfg.model_type} ({type(model_cfg).__name__}) is not a causal LM "
                          "(transformers has no AutoModelForCausalLM class for it); Steel trains decoder-only models")


def warn_hf_weights_unused(spec: Any, init_seed: int) -> None:
    """`model.config` may be an HF model directory, but only its config.json is read: say so when the
    directory holds weights, which a user pointing at a trained model expects to continue from."""
    if not isinstance(spec, (str, Path)) or not Path(spec).is_dir():
        return
    weights = sorted(p.name for p in Path(spec).iterdir() if p.suffix in (".safetensors", ".bin", ".pt", ".pth"))
    if weights:
        log.warning("model.config: %s holds weights (%s), but only its config.json is used: training starts "
                    "from random weights (model.init_seed %d); `steel sft` (init:) starts from a model's weights",
                    spec, ", ".join(weights[:3]) + (", ..." if len(weights) > 3 else ""), init_seed)


def check_stock_model_is_causal(model: torch.nn.Module, model_cfg) -> None:
    """Refuse a stock model whose logits at position t change with the tokens after t (BertLMHeadModel without
    `is_decoder: true` attends both ways): trained as a causal LM it reads the token it is asked to predict.

    Three forward passes of 8 tokens on the freshly built model (a second or so for 1B parameters on a CPU).
    Steel's own leaking FFNs (soft_moe_v2/v3) are a documented choice with their own warning: not checked.
    """
    if getattr(model_cfg, "model_type", None) == "steel":
        return
    impl = getattr(model_cfg, "_attn_implementation", None) or ""
    if "flash" in impl:  # the probe runs on the CPU, where flash attention does not (a GPU-only config died here)
        log.info("model: %s runs %s, which the CPU causality probe cannot run; not probed", model_cfg.model_type, impl)
        return
    from steel.model.causality import check_causal

    seq = min(8, getattr(model_cfg, "max_position_embeddings", None) or 8)
    with torch.random.fork_rng(devices=[]):  # the run's RNG stream stays what it would be without the check
        report = check_causal(model, model_cfg.vocab_size, seq_len=seq, batch=1, positions=[seq // 2 - 1])
    if report.leaks:
        hint = "; set is_decoder: true" if getattr(model_cfg, "is_decoder", None) is False else ""
        raise ConfigError(
            f"model.config: {model_cfg.model_type} ({type(model).__name__}) is not causal: its logits at position "
            f"{report.worst_t} change by up to {report.max_leak:.3g} with later tokens, so training it as a causal "
            f"LM teaches it to read the next token{hint}"
        )


def check_seq_len_fits_model(model_cfg, seq_len: int, field: str = "data.seq_len",
                             raise_hint: str | None = None) -> None:
    """Refuse training rows longer than the model's max_position_embeddings: the model would be trained on
    positions its config disowns, and generate/chat/eval (which stop at that limit) never use them.
    `raise_hint`: how to raise the limit where the model comes from (default: pretraining's overrides)."""
    limit = getattr(model_cfg, "max_position_embeddings", None)
    if limit is not None and seq_len > limit:
        hint = raise_hint or f"raise the model's limit (model.overrides.max_position_embeddings: {seq_len})"
        raise ConfigError(f"{field}: {seq_len} > the model's max_position_embeddings {limit}; lower {field} or {hint}")


def check_model_fits_data(model_cfg, tokenizer: dict) -> None:
    """Refuse a model whose vocabulary or EOS id does not match the data's tokenizer (before training)."""
    vocab = tokenizer.get("vocab_size")
    if vocab is not None and vocab > model_cfg.vocab_size:
        raise ConfigError(
            f"model.config: vocab_size {model_cfg.vocab_size} < the data tokenizer's {vocab}; "
            f"set model.overrides.vocab_size: {vocab}"
        )
    eos = tokenizer.get("eos_id")
    if getattr(model_cfg, "document_mask", False) and eos is not None and model_cfg.eos_token_id != eos:
        raise ConfigError(
            f"model.overrides.eos_token_id: document_mask splits documents at EOS {model_cfg.eos_token_id}, "
            f"but the data's EOS id is {eos}"
        )


def warn_eos_differs(model_cfg, tokenizer: dict) -> None:
    """Warn when the model's eos_token_id is not the data's EOS: a stock config's default (Llama's 2) is then
    what model_config.json and an export's config.json tell other tools ends a text."""
    eos, have = tokenizer.get("eos_id"), model_cfg.eos_token_id
    if eos is not None and eos not in (have if isinstance(have, (list, tuple)) else [have]):
        log.warning("model.config: eos_token_id %s is not the data's EOS id %d; the model's config (and an "
                    "export's config.json) would name another end of text: set model.overrides.eos_token_id: %d",
                    have, eos, eos)


# A vocab_size this far above the data tokenizer's ids is a config left at another tokenizer's size (tiny-cpu.yaml's
# Qwen 151,936 over a 4-8k tokenizer of one's own), not padding. NOTE: padding stays below both bounds: Qwen pads
# its 151,646 ids to 151,936 (290 rows, 0.2%), nanoGPT/HF pad to a multiple of 64 (< 64 rows), Megatron to a
# multiple of 128 x tensor-parallel size (< 1,024 rows for TP <= 8); a tokenizer of 4k-16k ids padded to 1,024 rows
# more is under 25% of the rows (the head still computes every row's logit, so 10% is a cost worth naming).
UNUSED_VOCAB_ROWS_MIN = 1024
UNUSED_VOCAB_SHARE_MIN = 0.10


def warn_vocab_far_above_tokenizer(model_cfg, tokenizer: dict, parameters: int) -> None:
    """Warn once (at the start) when most of the embedding and output head are rows no data id reaches:
    `model_cfg.vocab_size` - the data tokenizer's `vocab_size` > both UNUSED_VOCAB_ROWS_MIN and
    UNUSED_VOCAB_SHARE_MIN of the rows. `parameters`: the model's, for the share those rows hold."""
    vocab, have = tokenizer.get("vocab_size"), model_cfg.vocab_size
    if not isinstance(vocab, int) or vocab <= 0:
        return
    unused = have - vocab
    if unused <= UNUSED_VOCAB_ROWS_MIN or unused <= UNUSED_VOCAB_SHARE_MIN * have:
        return
    rows = unused * model_cfg.hidden_size * (1 if getattr(model_cfg, "tie_word_embeddings", False) else 2)
    padded = -(-vocab // 64) * 64
    log.warning("model.config: vocab_size %d is %.1fx the data tokenizer's %d ids: its %d rows past them (%.0f%% of "
                "the embedding%s) hold %s of the model's %s parameters, are never an input nor a target, and the "
                "head still computes their logits for every token; set model.overrides.vocab_size: %d%s",
                have, have / vocab, vocab, unused, 100 * unused / have,
                "" if getattr(model_cfg, "tie_word_embeddings", False) else " and of the output head",
                _si(rows), _si(parameters), vocab, f" (or {padded}, a multiple of 64)" if padded != vocab else "")


def check_weights_name_sources(weights: dict, dirs: list) -> None:
    """Refuse a `data.weights` key that names no source of the run's data dirs (a typo would be ignored)."""
    from steel.data.chunks import ChunkFormatError, read_manifest

    known: set[str] = set()
    for d in dict.fromkeys(str(x) for x in dirs):
        try:
            m = read_manifest(d)
        except ChunkFormatError:
            continue  # a missing annealing dir is reported when it is needed
        known |= set(m.get("sources", {})) | {c.get("source", "") for c in m.get("chunks", [])}
    unknown = [k for k in weights if k not in known]
    if unknown:
        raise ConfigError(
            f"data.weights.{unknown[0]}: no source of that name in {', '.join(dict.fromkeys(map(str, dirs)))} "
            f"(sources: {', '.join(sorted(known))})"
        )


# --- annealing and resume checks ---------------------------------------------------------------------
def scan_anneal_dirs(cfg: TrainConfig, data) -> tuple[list, list]:
    """The chunks of `anneal.dirs` and those of them already registered in the run, checked for the switch.

    Run at startup (fresh or resumed, while the switch is ahead) so that what would stop the run at
    the anneal step - a missing dir, another tokenizer, no sample, a `mix` of data already in the run -
    is refused before hours of training, naming `anneal.dirs`.
    """
    from steel.data.loader import DataError, check_dirs_give_samples, chunk_samples, scan_data_dirs

    a, dirs = cfg.anneal, unique_dirs(cfg.anneal.dirs)
    try:
        found, tok = scan_data_dirs(dirs, data.weights)
        check_dirs_give_samples(found, dirs, cfg.data.seq_len)  # each dir, not only their total
    except DataError as e:
        raise ConfigError(f"anneal.dirs: {e}") from None
    if tok.get("fingerprint") != data.tokenizer.get("fingerprint"):
        raise ConfigError(
            f"anneal.dirs: {dirs[0]} has tokenizer fingerprint {tok.get('fingerprint')!r}, the run's is "
            f"{data.tokenizer.get('fingerprint')!r}; data prepared with different tokenizers cannot be mixed"
        )
    registered = {c.md5: c.file for c in data.chunks}
    reused = [x for x in found if x.md5 in registered]
    if reused and a.mode == "mix":
        x = reused[0]
        raise ConfigError(
            f"anneal.dirs: {x.path} is already in the run as {registered[x.md5]} (data dir "
            f"{Path(registered[x.md5]).parent}); anneal.mode mix would add its samples a second time to the "
            f"rest of the epoch: use anneal.mode: replace (the annealing phase then draws from these chunks "
            f"again) or raise its source's weight in data.weights"
        )
    if a.mode == "mix":  # a re-prepared copy of data already in the run (other chunk bytes, same input files)
        try:
            data.check_new_inputs(dirs)
        except DataError as e:
            raise ConfigError(f"anneal.dirs: {e}") from None
    samples = sum(chunk_samples(x.tokens, x.weight, cfg.data.seq_len) for x in found)
    need = cfg.micro_batch * data.world_size if a.mode == "replace" else 1
    if samples < need:
        raise ConfigError(
            f"anneal.dirs: {samples} samples of {cfg.data.seq_len + 1} tokens in {', '.join(dirs)}; the annealing "
            f"phase (mode {a.mode}) needs at least {need}"
        )
    if reused:
        log.info("anneal: %d of the %d chunks of anneal.dirs are already in the run (e.g. %s); the annealing "
                 "phase (mode replace) draws from them again", len(reused), len(found), reused[0].path)
    return found, reused


def warn_add_data_before_replace(cfg: TrainConfig, data, add_data, added: int, d) -> None:
    """Say, when it is appended, that data appended before an annealing switch of mode replace is drawn only
    until the switch (it joins the rest of this epoch, which the switch drops): the switch says it again, too
    late for that run, and `--add-data` after it changes nothing. Listing the dir in anneal.dirs anneals on it."""
    a = cfg.anneal
    if not added or a.step is None or a.mode != "replace" or "anneal" in data.phases or not d.is_main:
        return
    ann = {Path(x).resolve() for x in a.dirs}
    out = [x for x in unique_dirs(add_data) if Path(x).resolve() not in ann]
    if out:
        log.warning("--add-data %s: merged into the rest of this epoch; the annealing switch at step %d "
                    "(anneal.mode replace) drops what is not drawn by then: to anneal on it too, add it to "
                    "anneal.dirs", ", ".join(out), a.step)


def switch_to_anneal(cfg: TrainConfig, data) -> dict:
    """Switch the loader to the annealing mixture; returns the record kept in the train state.

    In mode `replace` the annealing phase draws from every chunk of `anneal.dirs`, also from chunks
    already in the run (listed in data.dirs too, or added earlier): re-using high-quality data seen
    before is a legitimate annealing recipe. Such a chunk is registered a second time under new sample
    ids; the replace segment orders only the ids from the switch on, and later epochs draw from them
    only, so no sample is read twice per annealing epoch (`PretrainLoader.add_data(reuse=True)`). Mode
    `mix` takes only chunks new to the run (`scan_anneal_dirs` refuses the others at startup).
    """
    a, dirs = cfg.anneal, unique_dirs(cfg.anneal.dirs)
    found, _ = scan_anneal_dirs(cfg, data)
    replace = a.mode == "replace"
    data.add_data(dirs, replace=replace, phase="anneal", reuse=replace)
    return {"step": a.step, "mode": a.mode, "dirs": dirs, "md5s": sorted(x.md5 for x in found)}


def check_resume_config(cfg: TrainConfig, ckpt_dir: Path, data_state: dict, train_state: dict) -> None:
    """Refuse a config change at resume that the checkpoint would silently override or that breaks the run.

    Honoured instead: an annealing switch added or moved while it is still ahead, new data dirs (appended),
    another order of data.dirs (chunks are known by content), micro_batch/grad_accum/world size (the data
    order is in samples), optimizer hyper-parameters (`apply_optim_config`).
    """
    old_seed = data_state.get("seed")
    if old_seed is not None and old_seed != cfg.data.seed:
        raise ConfigError(
            f"data.seed: {old_seed} in the checkpoint {ckpt_dir}, {cfg.data.seed} configured; the shuffle order "
            f"of a run cannot change mid-run: set data.seed: {old_seed} again, or start a new run (another run_dir)"
        )
    old_len = data_state.get("seq_len")
    if old_len is not None and old_len != cfg.data.seq_len:
        raise ConfigError(
            f"data.seq_len: {old_len} in the checkpoint {ckpt_dir}, {cfg.data.seq_len} configured; the samples of "
            f"a run cannot change mid-run: set it back, or start a new run (another run_dir)"
        )
    a, step = cfg.anneal, train_state["step"]
    if "anneal" in data_state.get("phases", []):
        done = train_state.get("anneal")
        if done is None:  # a checkpoint written before the switch was recorded: its config says
            old = (read_yaml(ckpt_dir / "config.yaml") or {}).get("anneal") or {}
            done = {"step": old.get("step"), "mode": old.get("mode", "replace"),
                    "dirs": unique_dirs(old.get("dirs", []))}
        for name in ("step", "mode"):
            if getattr(a, name) != done[name]:
                raise ConfigError(
                    f"anneal.{name}: {getattr(a, name)!r} configured, but the annealing switch already happened "
                    f"with {name} {done[name]!r} (checkpoint {ckpt_dir}); set it back, or start a new run"
                )
        if unique_dirs(a.dirs) != done["dirs"]:
            same = False
            if "md5s" in done:  # moved dirs holding the same chunks are the same annealing data
                from steel.data.loader import DataError, scan_data_dirs

                try:
                    same = sorted(x.md5 for x in scan_data_dirs(unique_dirs(a.dirs))[0]) == done["md5s"]
                except DataError:
                    pass
            if not same:
                raise ConfigError(
                    f"anneal.dirs: {', '.join(a.dirs) or '[]'} configured, but the annealing switch already "
                    f"happened with {', '.join(done['dirs'])} (checkpoint {ckpt_dir}); set it back, or start a new run"
                )
    elif a.step is not None and a.step < step:
        raise ConfigError(
            f"anneal.step: {a.step} is before the checkpoint's step {step} ({ckpt_dir}) and the switch has not "
            f"happened; it cannot happen in the past: set anneal.step >= {step}, or start a new run"
        )


def check_registered_weights(cfg: TrainConfig, data) -> None:
    """Refuse a weight change for data already in the run: its chunks keep the sample counts registered."""
    from steel.data.loader import chunk_samples, scan_data_dirs

    # Every place a chunk is found now, by MD5: the configured dirs, then each appended dir on its own
    # (`--add-data`, annealing; a weight given for an appended source used to be ignored silently). An
    # annealing dir may hold copies of chunks of the run, re-used by mode replace, maybe under another
    # manifest weight: one combined scan refused them as duplicates. A registration is consistent when one
    # of its places gives its count.
    now: dict[str, list] = {}
    for x in scan_data_dirs(unique_dirs(cfg.data.dirs), cfg.data.weights)[0]:
        now.setdefault(x.md5, []).append(x)
    configured = {Path(x).resolve() for x in cfg.data.dirs}
    for extra in data.extra_dirs:
        if Path(extra).is_dir() and Path(extra).resolve() not in configured:
            for x in scan_data_dirs([extra], cfg.data.weights)[0]:
                now.setdefault(x.md5, []).append(x)
    for c in data.chunks:
        places = now.get(c.md5, [])
        if places and all(c.count != chunk_samples(c.tokens, x.weight, cfg.data.seq_len) for x in places):
            raise ConfigError(
                f"data.weights.{c.source}: weight {places[0].weight:g} configured, but the run registered {c.file} "
                f"with {c.count} samples per epoch under another weight; the weight of data already in a run "
                f"cannot change mid-run: set it back, or start a new run (another run_dir)"
            )


def _rank_stderr_handler(rank: int) -> None:
    """A formatted stderr handler for a non-zero rank's warnings (its own RNG reseed, a resume change).

    NOTE: those ranks have no run log; without a handler Python's last-resort handler printed bare,
    unattributed lines, read as duplicates of rank 0's.
    """
    if not any(getattr(h, "steel_rank", None) == rank for h in log.handlers):
        h = logging.StreamHandler(sys.stderr)
        h.setFormatter(logging.Formatter(f"[rank {rank}] %(levelname)s %(message)s"))
        h.steel_rank = rank
        log.addHandler(h)
    # Python warnings (SteelCausalityWarning, torch's and transformers') too: they printed bare on every rank.
    # Only in place of Python's own printer: a hook the program installed (logging.captureWarnings routes them
    # into its log handlers) stays; wrapped, its warnings went to stderr and never reached the log.
    import warnings

    if warnings.showwarning is getattr(warnings, "_showwarning_orig", None):
        shown = warnings.showwarning

        def showwarning(message, category, filename, lineno, file=None, line=None):
            if file is not None and file is not sys.stderr:
                return shown(message, category, filename, lineno, file, line)
            err = sys.stderr
            if err is None:  # no stderr (closed at launch): lost, as Python's own handler does, not an error
                return
            text = warnings.formatwarning(message, category, filename, lineno, line)
            try:
                err.write(f"[rank {rank}] {text}")  # one write: the ranks share the launcher's stderr
            except OSError:  # as Python's own handler: a closed pipe loses the warning, it does not stop the rank
                pass

        showwarning.steel_rank = rank
        warnings.showwarning = showwarning


def _si(n: float) -> str:
    """4194304 -> "4.19M"."""
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("k", 1e3)):
        if n >= size:
            return f"{n / size:.3g}{unit}"
    return f"{n:g}"


def log_model(model: torch.nn.Module, fpt: float) -> None:
    """Log the model's class, size and training FLOPs per token (`steel train` and `steel sft`)."""
    log.info("model: %s, %.1fM parameters, %.3g training FLOPs/token", type(model).__name__,
             sum(p.numel() for p in model.parameters()) / 1e6, fpt)


def log_global_batch(cfg: TrainConfig, d: Dist) -> None:
    """Log the global batch and the tokens `max_steps` plan: both scale with the number of processes, which
    the config does not show (a 4-node launch of an 8-GPU config trains 4x the tokens per step)."""
    samples = cfg.micro_batch * cfg.grad_accum * d.world_size
    tokens = samples * cfg.data.seq_len
    log.info("global batch: %d samples x %d tokens = %s tokens per step (micro_batch %d x grad_accum %d x %d "
             "process%s); max_steps %d: %s tokens", samples, cfg.data.seq_len, f"{tokens:,}", cfg.micro_batch,
             cfg.grad_accum, d.world_size, "es" if d.world_size > 1 else "", cfg.max_steps, _si(tokens * cfg.max_steps))


def warn_warmup_covers_run(o, max_steps: int) -> None:
    """Warn when the warmup lasts the whole run: the LR never reaches `optim.lr` (or only at the last step) and
    never decays. A warning, not an error: short smoke runs of a long config (`--set max_steps=10`) do it on
    purpose."""
    if o.warmup_steps < max_steps:
        warn_wsd_decay_overlaps_warmup(o, max_steps)
        return
    peak = lr_at(max_steps - 1, o, max_steps)  # the warmup rises to the last step
    log.warning("optim.warmup_steps %d >= max_steps %d: the learning rate warms up for the whole run and peaks at "
                "%.4g at the last step (optim.lr %.4g%s), with no decay; lower optim.warmup_steps for a full "
                "schedule", o.warmup_steps, max_steps, peak, o.lr,
                "" if o.warmup_steps == max_steps else f", {max_steps / o.warmup_steps:.1%} of it")


def warn_wsd_decay_overlaps_warmup(o, max_steps: int) -> None:
    """Warn when wsd's decay (its last `decay_steps` steps) begins before the warmup ends: the LR never holds at
    `optim.lr` and falls in one step from the warmup's peak into the decay line (decay_steps 5, warmup 8 of 10
    steps: 1.0 at step 8, 0.2 at step 9); a decay longer than the run starts below `optim.lr`. Both were silent."""
    decay = o.decay_steps or max(1, max_steps // 10)
    if o.schedule != "wsd" or max_steps - decay >= o.warmup_steps:
        return
    w = o.warmup_steps
    shape = (f"it peaks at {lr_at(w - 1, o, max_steps):.4g} after the warmup, then falls to "
             f"{lr_at(w, o, max_steps):.4g} in one step") if w else f"it starts at {lr_at(0, o, max_steps):.4g}"
    why = "the decay begins before the warmup ends" if w else "the decay is longer than the run"
    log.warning("optim.schedule wsd: warmup_steps %d + decay_steps %d%s > max_steps %d: %s and the learning rate "
                "never holds at optim.lr %.4g (%s); lower optim.decay_steps or optim.warmup_steps", w, decay,
                "" if o.decay_steps else " (10% of max_steps)", max_steps, why, o.lr, shape)


def _ranks(ranks: list[int]) -> str:
    """`[0, 1, 2, 3, 8]` -> "0-3, 8"."""
    spans: list[list[int]] = []
    for r in ranks:
        if spans and r == spans[-1][1] + 1:
            spans[-1][1] = r
        else:
            spans.append([r, r])
    return ", ".join(f"{a}-{b}" if b > a else str(a) for a, b in spans)


def check_run_dir_not_left_at_literal_home(run_dir: Path) -> None:
    """Refuse a new run in a `run_dir` under the home directory while `./~/<the same rest>` holds a run's checkpoint.

    NOTE: before 2026-12-07 (f1b3f53) a `~` in run_dir (`run_dir: ~/runs/a`, `--set run_dir=~/runs/a`) was taken
    literally: the run went into a directory named `~` in the working directory. The same config now names
    $HOME/runs/a, where the resume of such a run found no checkpoint and started it again from step 0, silently.
    Called before the lock creates `run_dir`, so that the run can be moved there as it is.
    """
    try:
        rest = Path(os.path.abspath(run_dir)).relative_to(os.path.abspath(os.path.expanduser("~")))
    except ValueError:
        return
    literal = Path("~") / rest
    if os.path.abspath(literal) == os.path.abspath(run_dir) or ckpt.latest_checkpoint(run_dir) is not None:
        return
    found = ckpt.latest_checkpoint(literal)
    if found is not None:
        raise ConfigError(
            f"run_dir: {run_dir} holds no checkpoint, but ./{literal} does ({found}): a `~` in run_dir is the home "
            f"directory now, and was a directory named ~ in the working directory before 2026-12-07; to resume "
            f"that run, move it: mv ./{literal} {run_dir} (with {run_dir} absent); to start a new run, rename ./~ "
            f"first"
        )


SHARED_CHECK = ".steel-shared-check"


def check_run_dir_shared(run_dir: Path, d: Dist) -> None:
    """Refuse, on every rank with the same error, a `run_dir` that some ranks do not see as rank 0 does.

    Rank 0 writes a random token into `run_dir`, every rank reads it back, and an all-reduce tells every rank
    which ranks did not find it. A run_dir on node-local disk in a multi-node run otherwise failed only at
    the first checkpoint (`checkpoint.every` steps in), with an error from another node's ranks that did not
    say why (each rank writes its RNG state into the checkpoint, every rank reads it at resume). A collective:
    call it on every rank.
    """
    if d.world_size == 1:
        return
    import secrets
    import socket

    import torch.distributed as dist

    token = broadcast_object(secrets.token_hex(16) if d.is_main else None, d)
    # NOTE: a name never used before (the token in it): an NFS client may cache "no such file" for a name
    # it looked up earlier (a fixed name, read by the previous run) for up to a minute; and 2 s of
    # retries for a shared file system slow to show a new file on other nodes.
    probe = run_dir / f"{SHARED_CHECK}-{token}"
    if d.is_main:
        try:
            probe.write_text(token, encoding="ascii")
        except OSError:
            pass  # rank 0 then does not see it either: reported below, on every rank
    barrier(d)
    deadline = time.monotonic() + 2
    while True:
        try:
            seen = probe.read_text(encoding="ascii") == token
        except (OSError, UnicodeDecodeError):
            seen = False
        if seen or d.is_main or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    blind = torch.zeros(d.world_size, dtype=torch.int64, device=d.device)
    if not seen:
        blind[d.rank] = 1
    blind = [r for r, x in enumerate(all_reduce_sum(blind, d).tolist()) if x]  # all read before the unlink
    if d.is_main:
        probe.unlink(missing_ok=True)
    if not blind:
        return
    hosts: list = [None] * d.world_size
    dist.all_gather_object(hosts, socket.gethostname())  # only on failure: every rank knows it failed
    where = sorted({hosts[r] for r in blind})
    raise ConfigError(
        f"run_dir: {run_dir} is not the same directory on every rank: rank{'s' if len(blind) > 1 else ''} "
        f"{_ranks(blind)} (host{'s' if len(where) > 1 else ''} {', '.join(where)}) {'do' if len(blind) > 1 else 'does'} not see the file rank 0 (host "
        f"{hosts[0]}) wrote there; each rank writes its part of every checkpoint into it and reads the checkpoints "
        "at a resume: put run_dir on a file system every node sees (not node-local disk)"
    )


def apply_optim_config(optimizer: torch.optim.Optimizer, o) -> None:
    """Give the configured AdamW hyper-parameters to the param groups a checkpoint restored.

    `load_state_dict` brings back the saved betas/eps/weight_decay, which silently overrode a changed
    config; the LR is set every step from the schedule anyway. Group 0 decays, group 1 (norms, biases) not.
    """
    changed: dict[str, tuple] = {}
    for i, g in enumerate(optimizer.param_groups):
        want = {"betas": tuple(o.betas), "eps": o.eps, "weight_decay": o.weight_decay if i == 0 else 0.0}
        for k, v in want.items():
            cur = tuple(g[k]) if k == "betas" else g[k]
            if cur != v:
                changed.setdefault(k, (cur, v))
                g[k] = v
        if "fused" in g and g["params"]:  # torch.optim.AdamW: the implementation build_optimizer picks here
            # NOTE: the checkpoint's groups carry the saving machine's choice: a run started on a CPU went on
            # with the slower unfused AdamW on GPUs. `step` lives where that implementation wants it. The
            # choice is build_optimizer's (the implementations round differently: no exact resume otherwise).
            fused = adamw_fused(g["params"][0].device)
            if g["fused"] != fused:
                log.info("optim: fused AdamW %s in the checkpoint, %s on this device", g["fused"], fused)
                g["fused"], g["foreach"] = fused, None
                for p in g["params"]:
                    st = optimizer.state.get(p, {})
                    if "step" in st:
                        st["step"] = st["step"].to(device=p.device if fused else "cpu", dtype=torch.float32)
    for k, (cur, v) in changed.items():  # once per field, as a warning like every other resume change
        log.warning("resume: optim.%s %s in the checkpoint, %s configured: using %s", k, cur, v, v)


def warn_resume_changes(cfg: TrainConfig, ckpt_dir: Path, step: int, data_state: dict, model_config: dict,
                        d: Dist, old: TrainConfig | None = None) -> None:
    """Log what a resume honours from the new config but that makes the run differ from an uninterrupted one.

    Legitimate edits (a longer run, another batch split, a kernel switch) are not refused, but none may
    pass unsaid: the learning rate at the resume step (max_steps and optim.* reshape the schedule), the
    autocast dtype, the global batch, and model config fields that load into the same shapes (rope_theta,
    document_mask...). `old` is the checkpoint's config as a TrainConfig (default: read from its config.yaml).
    A changed `parallel.param_dtype` is refused (ConfigError): the optimizer state differs.
    """
    if old is None:
        try:
            old = load_config(type(cfg), ckpt_dir / "config.yaml")
        except (ConfigError, OSError):
            return  # an unreadable config.yaml: nothing to compare with
    if old.parallel.param_dtype != cfg.parallel.param_dtype:  # the one precision change it refuses
        raise ConfigError(
            f"parallel.param_dtype: {old.parallel.param_dtype} in the checkpoint {ckpt_dir}, "
            f"{cfg.parallel.param_dtype} configured; its optimizer state is for {old.parallel.param_dtype} "
            f"parameters (bf16 keeps fp32 master weights in the optimizer): set it back, or start a new run_dir")
    if step > cfg.max_steps:
        log.warning("resume: max_steps %d is below the checkpoint's step %d (%s): nothing is trained, the run "
                    "stays at step %d", cfg.max_steps, step, ckpt_dir, step)
    before, now = lr_at(step, old.optim, old.max_steps), lr_at(step, cfg.optim, cfg.max_steps)
    if before != now:
        log.warning("resume: max_steps/optim changed since %s: the learning rate of step %d is now %.4g "
                    "(was %.4g); the schedule is recomputed from the config", ckpt_dir, step + 1, now, before)
    if autocast_dtype(old.parallel, d.device) != autocast_dtype(cfg.parallel, d.device):  # auto = fp32 on CPU
        log.warning("resume: parallel.dtype %s, was %s in %s; the fp32 weights and optimizer state load as "
                    "saved, the forward and backward passes now run in %s", cfg.parallel.dtype, old.parallel.dtype,
                    ckpt_dir, autocast_dtype(cfg.parallel, d.device) or torch.float32)
    gb_old = data_state.get("micro_batch", old.micro_batch) * old.grad_accum * data_state.get("world_size", 1)
    gb_new = cfg.micro_batch * cfg.grad_accum * d.world_size
    if gb_old != gb_new:
        # NOTE: `consumed` counts rows (SFT) or samples (pretraining) within the current epoch (it said "from
        # sample 12" in epoch 3). SFT turns to the next epoch when it takes the next row, so a save at the end
        # of an epoch holds consumed >= rows: "row 6 of epoch 1" of 6 rows is row 0 of epoch 2.
        consumed, epoch = data_state.get("consumed", 0), data_state.get("epoch")
        if data_state.get("kind") == "sft" and epoch is not None:
            rows = data_state.get("rows")
            if rows and consumed >= rows:
                epoch, consumed = epoch + consumed // rows, consumed % rows
            where = f"row {consumed} of epoch {epoch + 1}"
        else:
            where = f"sample {consumed}" + (f" of epoch {epoch + 1}" if epoch else "")
        log.warning("resume: global batch %d samples (micro_batch x grad_accum x world size), was %d in %s; "
                    "the data order goes on from %s", gb_new, gb_old, ckpt_dir, where)
    try:
        saved = ckpt.read_json(ckpt_dir, "model_config.json")
    except ckpt.CheckpointError:
        return
    changed = changed_model_fields(saved, model_config)
    model_config = json.loads(json.dumps(model_config))
    if changed:
        log.warning("resume: model config differs from %s in %s (%s); the parameter shapes are the same, so "
                    "the weights load, but the model computes something else than before",
                    ckpt_dir / "model_config.json", ", ".join(changed),
                    ", ".join(f"{k}: {saved.get(k)!r} -> {model_config.get(k)!r}" for k in changed[:5]))


# --- the loop ----------------------------------------------------------------------------------------
class Trainer:
    def __init__(self, cfg: TrainConfig, model, optimizer, data: BatchSource, d: Dist, metrics: MetricsLogger,
                 flops_per_token: float, save_extra: dict, on_step=None):
        self.cfg, self.model, self.optimizer, self.data, self.d = cfg, model, optimizer, data, d
        self.metrics, self.flops_per_token, self.save_extra = metrics, flops_per_token, save_extra
        self.on_step = on_step  # hook(step) before each step's batches (annealing switch)
        self.release_lock = lambda: None  # set by main(): frees the run dir (fit() calls it at the end)
        self.state = TrainState()
        self.autocast = autocast_dtype(cfg.parallel, d.device)
        self.params = [p for p in model.parameters() if p.requires_grad]
        # Steel models take already-shifted targets and a sum reduction (fused CE possible); stock HF
        # models give logits and the loss is computed here.
        inner = getattr(model, "module", model)  # DDP wraps; FSDP2 keeps the class
        self.model_loss = getattr(getattr(inner, "config", None), "model_type", None) == "steel"
        # Soft MoE v2/v3 mix every position of a row into their slots: right padding (SFT rows, `lengths`)
        # must be masked out, or pads enter the slots of the row's tokens. A causal FFN cannot see a right pad,
        # and a 2-D mask would cost SDPA its plain causal path, so only they get one.
        from steel.model import LEAKING_FFN_TYPES

        self.mask_padding = self.model_loss and getattr(inner.config, "ffn_type", None) in LEAKING_FFN_TYPES
        self._stop: str | None = None
        self.step_positions = 0  # positions of the last train_step that hold data (padding excluded), all ranks
        self.step_computed = 0  # positions the last train_step computed (padding included), all ranks: MFU's
        self.computed = 0  # positions computed (padding included) by this process's steps, all ranks
        self.row_shape: tuple[int, int] | None = None  # (B, T) of the last micro-batch this rank read

    def _targets(self, batch: dict) -> torch.Tensor:
        if "shift_labels" in batch:
            return batch["shift_labels"]
        labels = batch["labels"]  # HF convention: the target of position t is labels[t + 1]
        return F.pad(labels[:, 1:], (0, 1), value=-100)

    def _positions(self, batch: dict) -> torch.Tensor:
        """The positions of a micro-batch that hold data, as a device scalar (no host read)."""
        if "lengths" in batch:
            return batch["lengths"].to(self.d.device, non_blocking=True).sum()
        return torch.full((), batch["input_ids"].numel(), dtype=torch.int64, device=self.d.device)  # a fill, no copy

    def train_step(self) -> tuple[float, float, int]:
        """One optimizer step over `grad_accum` micro-batches; returns (loss, grad norm, target tokens) and sets
        `step_positions` (the positions holding data, padding excluded: SFT's prompts are computed, not targets)
        and `step_computed` (every position computed, padding included)."""
        cfg, d = self.cfg, self.d
        failed = None
        try:
            micro = [self.data.next_batch() for _ in range(cfg.grad_accum)]
            self.row_shape = tuple(micro[-1]["input_ids"].shape)
        except Exception as e:
            if d.world_size == 1:
                raise
            # NOTE: this rank alone may fail to read (its node's copy of a chunk deleted or replaced since startup:
            # chunks are mapped when first read): the others died in the step's next collective (a gloo
            # "Connection closed by peer" traceback; NCCL: a hang). It computes stand-in rows without a target
            # instead, so every rank goes through the step's collectives, and every rank raises before the update;
            # told in the counts' all-reduce below, not in a collective or read-back of its own.
            # NOTE: the shape of this rank's last rows: a `make_data` source has its own row length (its `data:`
            # may be empty, data.seq_len then 2048), past a learned-position model's positions (an IndexError
            # traceback on this rank, the others dying in a collective) or its memory. Before any row was read
            # (step 1, the first step of a resume) one position per row: every causal LM takes it, and the
            # step's collectives do not depend on the row length.
            failed, shape = e, self.row_shape or (cfg.micro_batch, 1)
            micro = [{"input_ids": torch.zeros(shape, dtype=torch.long), "shift_labels": torch.full(shape, -100)}
                     for _ in range(cfg.grad_accum)]
        targets = [self._targets(b).to(d.device, non_blocking=True) for b in micro]
        # NOTE: padded positions are computed at the same FLOPs as the others: MFU counts them (without, rows of
        # 300-token conversations padded to 2048 would read 300/2048 of the GPU's real use), tokens/s does not.
        computed = torch.full((), sum(b["input_ids"].numel() for b in micro), dtype=torch.int64, device=d.device)
        unread = torch.full((), failed is not None, dtype=torch.int64, device=d.device)
        counts = torch.stack([sum((t != -100).sum() for t in targets), sum(self._positions(b) for b in micro), computed,
                              unread])
        counts = all_reduce_sum(counts.to(torch.float64), d)  # (targets, positions, computed, unread): one collective
        count = counts[0]
        loss_sum = torch.zeros((), device=d.device, dtype=torch.float64)
        for i, (b, t) in enumerate(zip(micro, targets)):
            with grad_sync(self.model, d, i == cfg.grad_accum - 1), torch.autocast(
                d.device.type, dtype=self.autocast or torch.float32, enabled=self.autocast is not None
            ):
                inp = b["input_ids"].to(d.device, non_blocking=True)
                pad = {}
                if self.mask_padding and "lengths" in b:
                    lengths = b["lengths"].to(d.device, non_blocking=True)
                    pad["attention_mask"] = (torch.arange(inp.shape[1], device=d.device) < lengths[:, None]).long()
                if self.model_loss:
                    # Steel computes its own loss: with `kernels: {cross_entropy: fused}` the (B, T, V)
                    # logits are never materialised (chunked linear + CE, steel.kernels.cross_entropy).
                    loss = self.model(input_ids=inp, shift_labels=t, loss_reduction="sum", use_cache=False, **pad).loss
                else:
                    # NOTE: use_cache=False: some transformers versions (5.4) build a KV cache in training
                    # mode, which activation checkpointing's recomputation then extends to twice the length.
                    logits = self.model(input_ids=inp, use_cache=False).logits  # (B, T, V)
                    # NOTE: CE in fp32 (autocast would upcast anyway). At V=151936, B=8, T=2048 the fp32
                    # logits are ~10 GB; lower micro_batch (raise grad_accum) or use a Steel model with
                    # the fused cross-entropy kernel.
                    loss = F.cross_entropy(logits.flatten(0, 1).float(), t.flatten(), ignore_index=-100,
                                           reduction="sum")
            # DDP/FSDP average gradients over ranks: scale by W so the result is sum / global count.
            (loss * (d.world_size / count.clamp(min=1)).to(loss.dtype)).backward()
            loss_sum += loss.detach().to(torch.float64)
        loss_mean = all_reduce_sum(loss_sum, d) / count.clamp(min=1)
        clip = cfg.optim.grad_clip if cfg.optim.grad_clip > 0 else math.inf
        if isinstance(self.optimizer, MasterWeightAdamW):  # bf16 grads: norm in fp32, clip the fp32 copies
            norm = self.optimizer.clip_grad_norm_(clip)
        else:
            norm = torch.nn.utils.clip_grad_norm_(self.params, clip)
        norm = norm.full_tensor() if hasattr(norm, "full_tensor") else norm
        # NOTE: one read-back per optimizer step (the non-finite check needs it before the update). Reading
        # loss, norm and count one by one waited on the GPU three times, the last one (after the update) for
        # the whole optimizer step, with nothing queued behind it. fp32 norm -> fp64 is exact.
        loss_val, norm, n_targets, n_positions, n_computed, n_unread = torch.stack(
            [loss_mean, norm.to(loss_mean), *counts]).tolist()
        if n_unread:
            self.optimizer.zero_grad(set_to_none=True)
            errors_from(d, failed, f"while reading step {self.state.step + 1}'s batches")
        self.step_positions, self.step_computed = int(n_positions), int(n_computed)
        if n_targets == 0:
            # NOTE: no position of the global batch (all ranks: the same count on each, so the same decision) has a
            # target (a data source's rows whose turns to train on were all masked or truncated away): there is no
            # gradient signal, but AdamW's momentum and weight decay moved every weight. Skipped as a non-finite
            # step is (the data is consumed, the step and its LR slot counted); the loss is undefined (null in
            # metrics.jsonl).
            loss_val = math.nan
            self.state.skipped += 1
            if d.is_main:
                log.warning("step %d: no position of the global batch has a target (every label is -100), optimizer "
                            "step skipped", self.state.step + 1)
        elif math.isfinite(loss_val) and math.isfinite(norm):
            for g in self.optimizer.param_groups:
                g["lr"] = lr_at(self.state.step, cfg.optim, cfg.max_steps)
            self.optimizer.step()
            self.state.nonfinite_run = 0
        else:
            self.state.skipped += 1
            self.state.nonfinite_run += 1
            # step + 1: the number metrics.jsonl and the stop message give this step (steps count from 1)
            log.warning("step %d: non-finite loss %s / grad norm %s, step skipped", self.state.step + 1, loss_val, norm)
        self.optimizer.zero_grad(set_to_none=True)
        return loss_val, norm, int(n_targets)

    def save(self) -> Path:
        s = self.state
        return ckpt.save_checkpoint(
            self.cfg.run_dir, s.step, self.model, self.optimizer, self.d,
            data_state=self.data.state_dict(), train_state=s.state_dict(),
            scheduler_state={"kind": self.cfg.optim.schedule, "step": s.step}, keep=self.cfg.checkpoint.keep,
            **self.save_extra,
        )

    def _on_signal(self, signum, frame) -> None:
        self._stop = signal.Signals(signum).name

    def _stop_requested(self, failed: Exception | None = None) -> str | None:
        """The stop every rank agrees on after a step; `failed` is what this rank's metrics write raised at it
        (under torchrun only): then every rank raises, the others naming the failing rank and its error.

        NOTE: rank 0 alone writes metrics.jsonl (TensorBoard, W&B): its full disk ended the other ranks in the
        next step's collective with a gloo "Connection closed by peer" traceback (NCCL: a hang). Told in this
        per-step collective, not one of its own."""
        limit = self.cfg.checkpoint.stop_after_minutes
        if not self._stop and limit and process_seconds() >= 60 * limit:
            self._stop = "time limit"
        if self.d.world_size == 1:  # nothing to agree on: no device flag to read back every step
            return self._stop
        # Every rank must stop at the same step (the save is a collective). The flags are made on the device
        # (all_reduce of `flag.to(cuda)` reduced a copy, and each rank read its own flag) by fills, not
        # copied from the host (a blocking copy).
        flag = torch.zeros(2, device=self.d.device)  # (stop, failed)
        if self._stop:
            flag[0] = 1.0
        if failed is not None:
            flag[1] = 1.0
        stops, failures = all_reduce_sum(flag, self.d).tolist()
        if failures > 0:  # before the save: as without torchrun, where the error ends the run at once
            errors_from(self.d, failed, f"while logging step {self.state.step}")
        return (self._stop or "stop on another rank") if stops > 0 else None

    def train(self) -> str:
        """Run to `max_steps` (or a signal, or `checkpoint.stop_after_minutes`). Returns "done", the signal's
        name or "time limit"."""
        cfg, s = self.cfg, self.state
        old = {sig: signal.signal(sig, self._on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
        peak, device_name = peak_flops(self.d.device)
        if peak is None:
            log.info("MFU: unknown (no peak FLOPs for %r in steel.train.metrics.PEAK_FLOPS); logged as null", device_name)
        status, failed = "done", None
        t0, tokens0, computed0 = time.perf_counter(), s.tokens, self.computed
        try:
            with progress_bar("train", total=cfg.max_steps, unit="steps",
                              disable=None if cfg.log.progress and self.d.is_main else True) as advance:
                advance(s.step)
                while s.step < cfg.max_steps:
                    if self.on_step is not None:
                        self.on_step(s.step)
                    loss, norm, count = self.train_step()
                    s.step += 1
                    s.tokens += self.step_positions
                    self.computed += self.step_computed
                    s.targets += count
                    s.losses.append(loss)
                    advance(1)
                    if s.nonfinite_run >= cfg.max_nonfinite:
                        last = ckpt.latest_checkpoint(cfg.run_dir)
                        raise NonFiniteError(
                            f"{s.nonfinite_run} consecutive steps with a non-finite loss or gradient norm "
                            f"(step {s.step}); lower optim.lr or check the data; "
                            + (f"the last checkpoint ({last.name}) is intact" if last is not None
                               else "no checkpoint was written yet")
                        )
                    if s.step % cfg.log.every == 0 or s.step == cfg.max_steps:
                        dt = time.perf_counter() - t0
                        tps = (s.tokens - tokens0) / dt if dt > 0 else 0.0
                        cps = (self.computed - computed0) / dt if dt > 0 else 0.0  # padding included
                        mfu = cps * self.flops_per_token / (peak * self.d.world_size) if peak else None
                        try:
                            self.metrics.log(s.step, {
                                "loss": loss, "lr": lr_at(s.step - 1, cfg.optim, cfg.max_steps), "grad_norm": norm,
                                "tokens": s.tokens, "tokens_per_s": tps, "computed_per_s": cps, "mfu": mfu,
                                "mem_gb": memory_gb(self.d.device), "skipped": s.skipped,
                            })
                        except Exception as e:
                            if self.d.world_size == 1:
                                raise
                            failed = e  # every rank stops with it in _stop_requested
                        t0, tokens0, computed0 = time.perf_counter(), s.tokens, self.computed
                    stop = self._stop_requested(failed)
                    failed = None
                    if s.step % cfg.checkpoint.every == 0 or s.step == cfg.max_steps or stop:
                        t_save = time.perf_counter()
                        self.save()
                        # NOTE: not training time: it made tokens_per_s and mfu dip in the window after each save.
                        t0 += time.perf_counter() - t_save
                    if stop and s.step < cfg.max_steps:  # on the last step the run is done, not stopped
                        log.info("%s: checkpoint saved at step %d, stopping", stop, s.step)
                        status = stop
                        break
        finally:
            for sig, h in old.items():
                signal.signal(sig, h)
        return status


_IMPORTED = time.monotonic()


def process_seconds() -> float:
    """Seconds since this process started (Linux: /proc; elsewhere since this module was imported), so that
    `checkpoint.stop_after_minutes` counts Python's and torch's start, the model build and the checkpoint
    load, as a job's time limit does."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            start_ticks = int(f.read().rsplit(")", 1)[1].split()[19])  # field 22, after "pid (comm)"
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        since_start = uptime - start_ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError):
        since_start = 0.0
    # (a container with a virtualised /proc/uptime but host-boot start ticks gives a negative value)
    return max(since_start, time.monotonic() - _IMPORTED)


# Spelled per node (node-local copies: the data is compared by content, `check_same_data_on_every_rank`; the
# run dir by a probe file, `check_run_dir_shared`; the model by its resolved config), or rank 0's only (log).
PER_NODE_FIELDS = ("run_dir", "data.dirs", "anneal.dirs", "model.config", "model.overrides", "log")
# May differ between ranks: what each rank does with them is its own or agreed at run time. The time limit is
# checked by every rank each step and the stop flag all-reduced (`Trainer._stop_requested`: the first rank past
# its limit stops them all at the same step); `data.verify` only decides whether this rank hashes its own chunk
# files (the ranks' registries are compared by MD5 anyway, `check_same_data_on_every_rank`).
RANK_LOCAL_FIELDS = ("checkpoint.stop_after_minutes", "data.verify")
RANKS_AGREE_HINT = ("every rank must run the same config (a config file that differs between nodes? --set on one "
                    "launch line only?) and see the same newest checkpoint in run_dir; make them the same and start "
                    "again")


def rank_agreed_values(cfg, model_config: dict, latest: Path | None,
                       per_node: tuple[str, ...] = PER_NODE_FIELDS) -> dict:
    """What every rank of a run must agree on, by name: the config (less the `per_node` fields), the resolved
    model config and the checkpoint it resumes from (`check_same_on_every_rank` compares them).

    NOTE: not the `RANK_LOCAL_FIELDS`: a job whose nodes start at different times may give each its own time
    limit, and a node with a slow copy of the data may skip the hashing; refusing them stopped such runs."""
    out: dict = {}

    def walk(name: str, v) -> None:
        if name in per_node or name in RANK_LOCAL_FIELDS:
            return
        if isinstance(v, dict) and v:
            for k, x in v.items():
                walk(f"{name}.{k}" if name else str(k), x)
        else:
            out[name] = v

    walk("", to_dict(cfg))
    ignore = {"transformers_version", "_name_or_path", "architectures"}
    out.update({f"model config {k}": v for k, v in json.loads(json.dumps(model_config)).items() if k not in ignore})
    out["resumed checkpoint"] = latest.name if latest is not None else None
    return out


# --- setup / main / fit ------------------------------------------------------------------------------
def write_run_config(run_dir: Path, config_yaml: str) -> None:
    """Write RUN_DIR/config.yaml atomically (temp file, then rename), once the config passed every check.

    A config refused at startup (a ConfigError at resume, a missing annealing dir...) used to have replaced
    it already: the run's record then showed a config it never ran with.
    """
    tmp = run_dir / "config.yaml.tmp"
    tmp.write_text(config_yaml, encoding="utf-8")
    tmp.replace(run_dir / "config.yaml")


# A tokenizer directory's files (HF's, Qwen's rank file): an HF model dir given as `tokenizer: DIR` keeps its weights.
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "added_tokens.json",
                   "chat_template.jinja", "chat_template.json", "vocab.json", "merges.txt", "tokenizer.model")


def _auto_map_modules(tok_dir: Path) -> set[str]:
    """The `.py` files of custom tokenizer code that tokenizer_config.json's `auto_map` names
    ("tokenization_x.XTokenizer" or "repo--tokenization_x.XTokenizer", alone or as a [slow, fast] pair):
    a copy without them fails to load ("does not appear to have a file named tokenization_x.py"), and with
    them the modules they import relatively (`from .helpers import K`, found by transformers' own rule, which
    its loader follows: a copy without helpers.py failed with FileNotFoundError)."""
    from transformers.dynamic_module_utils import get_relative_import_files

    try:
        auto_map = json.loads((tok_dir / "tokenizer_config.json").read_text(encoding="utf-8")).get("auto_map")
    except (OSError, ValueError, AttributeError):
        return set()
    refs = []
    for v in (auto_map.values() if isinstance(auto_map, dict) else auto_map if isinstance(auto_map, list) else ()):
        refs += v if isinstance(v, list) else [v]
    named = {r.split("--")[-1].rsplit(".", 1)[0] + ".py" for r in refs if isinstance(r, str) and "." in r}
    found = set(named)
    for n in sorted(named):
        if (tok_dir / n).is_file():
            try:
                found |= {Path(f).name for f in get_relative_import_files(str(tok_dir / n))}
            except (OSError, ValueError) as e:  # not UTF-8, a relative import of a missing module
                # The data pipeline encodes with tokenizer.json, never this code: a warning, not a failed start.
                log.warning("tokenizer: the modules %s imports were not copied (%s)", tok_dir / n, e)
    return found


def save_run_tokenizer(run_dir: Path, data_dirs: list) -> None:
    """Copy the data's tokenizer into RUN_DIR/tokenizer/ (as `steel sft` keeps its own), where generate, chat,
    eval, export and sft look first.

    NOTE: found reliably only from here: relative `data.dirs` are relative to this process's working
    directory, which nothing records, and a manifest's `tokenizer.dir` (absolute, recorded since 7946383)
    may not exist on another machine; so with an absolute `run_dir` those commands, run from anywhere else
    or on a copy of the run without its data, found no tokenizer.
    """
    import shutil

    from steel.data.tokenize import dir_fingerprint, tokenizer_dir_for

    # NOTE: why each candidate was not taken goes into the warning: a `tokenizer: DIR` retrained (--overwrite)
    # since the prepare was only "not found", though the directory was there.
    notes: list[str] = []
    src = next((t for t in (tokenizer_dir_for(d, notes=notes) for d in data_dirs) if t is not None), None)
    dest = run_dir / "tokenizer"
    if src is None:
        if not dest.is_dir():
            why = f" ({'; '.join(notes)})" if notes else ""
            log.warning("tokenizer: the data's tokenizer was not found%s, so %s has none: pass --tokenizer DIR to "
                        "steel generate/chat/eval/export (tokenizer: DIR to steel sft) for this run", why, run_dir)
        return
    if dest.is_dir() and dir_fingerprint(dest) is not None and dir_fingerprint(dest) == dir_fingerprint(src):
        return
    tmp = run_dir / "tokenizer.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    code = _auto_map_modules(Path(src))
    for f in sorted(Path(src).iterdir()):
        if f.is_file() and (f.name in TOKENIZER_FILES or f.suffix == ".tiktoken" or f.name in code):
            shutil.copyfile(f, tmp / f.name)
    if dest.is_dir() and not dest.is_symlink():
        shutil.rmtree(dest)
    elif dest.exists() or dest.is_symlink():
        dest.unlink()
    tmp.rename(dest)
    log.info("tokenizer: %s copied to %s", Path(src).resolve(), dest)  # resolved: a record, whatever the cwd


def setup(config_path: str | None, overrides: list[str] = ()) -> TrainConfig:
    return load_config(TrainConfig, config_path, overrides)


def main(cfg: TrainConfig, add_data: list[str] = (), make_data=None) -> Trainer:
    """Build every part and restore the newest checkpoint of `cfg.run_dir` when there is one.

    `make_data(cfg, dist) -> BatchSource` replaces the pretraining loader (SFT passes its own data);
    its `load_state_dict` receives the checkpoint's `data.json` at resume.
    """
    from steel.data.loader import PretrainLoader, check_same_data_on_every_rank

    # The config checks first: a bad model field is one error line, not the end of the resolved-config log.
    # Under torchrun a rank refused here still joins the rendezvous, so the ranks waiting there for it hear why
    # (a node with another config file); they waited until parallel.timeout_minutes, or died in a collective.
    try:
        if make_data is None and not cfg.data.dirs:
            raise ConfigError("data.dirs: list at least one prepared data directory")
        if make_data is not None and cfg.anneal.step is not None:
            raise ConfigError("anneal.step: the annealing switch needs the pretraining data loader")
        model_cfg = build_model_config(cfg.model.config, cfg.model.overrides)
        check_causal_lm(model_cfg)
        if make_data is None:  # a custom data source decides its own row length (its `data:` may be empty)
            check_seq_len_fits_model(model_cfg, cfg.data.seq_len)
            flops_per_token(model_cfg, None, cfg.data.seq_len)  # refuses what it cannot count before the build
        refused = None
    except Exception as e:
        refused = e
    d = init_distributed(cfg.parallel, refused)  # raises on every rank when one was refused
    run_dir = Path(cfg.run_dir)
    config_yaml = dump_yaml(cfg)
    # One process per run dir (a second `steel train` on it is refused); released by fit() at the end,
    # or below if startup fails.
    release_lock = lambda: None  # noqa: E731
    try:
        # Rank 0 alone locks and opens the run log: its refusal (another run holds the dir) stops every rank.
        with fail_together(d):
            if d.is_main:
                check_run_dir_not_left_at_literal_home(run_dir)
                release_lock = dirlock.acquire(run_dir, "steel train")
                ckpt.remove_partial(run_dir)
                setup_run_log(run_dir / "train.log", config_yaml)
            else:
                log.setLevel(logging.WARNING)
                _rank_stderr_handler(d.rank)
        barrier(d)  # remove_partial may put a checkpoint back: every rank lists them after it
        check_run_dir_shared(run_dir, d)  # before any rank lists checkpoints there
        latest = ckpt.latest_checkpoint(run_dir)
        if make_data is None and latest is not None:
            # NOTE: before the other resume checks, which compared SFT's model, seed and data with this config
            # and advised changing them (`set data.seed: 0 again`) for a run that pretraining cannot continue.
            state = ckpt.read_json(latest, "data.json")
            if state.get("kind") == "sft" or "rows_md5" in state:  # SFT states before 2026-12-06 had no kind
                raise ConfigError(f"run_dir: {run_dir} holds an SFT run (its checkpoint {latest}); pretraining "
                                  "needs a run_dir of its own")
        check_same_on_every_rank(rank_agreed_values(cfg, model_cfg.to_dict(), latest), d, RANKS_AGREE_HINT)
        if latest is not None:
            check_model_shapes_at_resume(model_cfg, latest)
        elif d.is_main:
            warn_hf_weights_unused(cfg.model.config, cfg.model.init_seed)
        torch.manual_seed(cfg.model.init_seed)
        model = build_model(model_cfg)
        check_stock_model_is_causal(model, model_cfg)
        fpt = flops_per_token(model_cfg, model, cfg.data.seq_len)
        log_model(model, fpt)
        log_global_batch(cfg, d)
        if d.is_main:
            warn_warmup_covers_run(cfg.optim, cfg.max_steps)
        model = parallelize(model, cfg.parallel, d)
        optimizer = build_optimizer(model, cfg.optim, d.device, master_weights=cfg.parallel.param_dtype == "bf16")

        if make_data is not None:
            data = make_data(cfg, d)
        else:
            # A directory listed twice (or passed to --add-data while in data.dirs) is read once.
            dirs = list({Path(x).resolve(): x for x in cfg.data.dirs + ([] if latest else list(add_data))}.values())
            # Every rank reads its own data dirs (node-local copies): one rank's refusal (a copy missing or
            # damaged on its node) stops every rank with it, not in check_same_data_on_every_rank's collective.
            with fail_together(d):
                # At a resume, `--add-data` dirs are also where registered chunks are looked up: appended data
                # that moved is found at the new path given again (chunks are identified by MD5, not by path).
                data = PretrainLoader(
                    dirs, cfg.data.seq_len, cfg.micro_batch,
                    seed=cfg.data.seed, rank=d.rank, world_size=d.world_size, weights=cfg.data.weights,
                    verify=cfg.data.verify, lookup_dirs=[*cfg.anneal.dirs, *(add_data if latest else [])],
                    resume=latest is not None,  # a pair of dirs of one input the run drew from: judged at load
                )
                check_model_fits_data(model_cfg, data.tokenizer)
            if latest is None:  # `--add-data` at the start: remembered (absolute) like one given at a resume
                # by resolved path, as add_data records them: `--add-data D --add-data D/` was recorded twice
                data.extra_dirs = list(dict.fromkeys(str(Path(x).resolve()) for x in add_data))
        if make_data is None and d.is_main:
            warn_eos_differs(model_cfg, data.tokenizer)
            warn_vocab_far_above_tokenizer(model_cfg, data.tokenizer, sum(p.numel() for p in model.parameters()))
        with fail_together(d):  # rank 0 alone opens W&B (and writes its run id)
            metrics = MetricsLogger(run_dir, d.is_main, cfg.log.tensorboard, cfg.log.wandb, cfg.log.wandb_project,
                                    to_dict(cfg))

        def on_step(step: int) -> None:
            a = cfg.anneal
            if a.step is not None and step >= a.step and "anneal" not in data.phases:
                # Each rank reads its own copy of anneal.dirs again (per node; startup scanned them): one gone
                # or changed since stops every rank with its error, not the others in the next collective (a
                # gloo "Connection closed by peer" traceback; NCCL: a hang).
                with fail_together(d, f"at the annealing switch (step {step + 1})"):
                    trainer.state.anneal = switch_to_anneal(cfg, data)
                check_same_data_on_every_rank(data, d.device)  # each rank scanned anneal.dirs itself
                if make_data is None and d.is_main:  # the mixture the switch made (train.log said only its count)
                    log_mixture(data)

        save_extra = {"config_yaml": config_yaml, "model_config": model_cfg.to_dict()}
        trainer = Trainer(cfg, model, optimizer, data, d, metrics, fpt, save_extra, on_step=on_step)
        if latest is not None:
            log.info("resuming from %s", latest)
            data_state, train_state = ckpt.read_json(latest, "data.json"), ckpt.read_json(latest, "train_state.json")
            if make_data is None:
                check_resume_config(cfg, latest, data_state, train_state)
            warn_resume_changes(cfg, latest, train_state["step"], data_state, model_cfg.to_dict(), d)
            ckpt.load_checkpoint(latest, model, optimizer, d)
            apply_optim_config(optimizer, cfg.optim)
            # Every rank restores its data from its own copies (registered chunks looked up in its data dirs,
            # its `--add-data` dirs): one rank's refusal stops every rank with it, not in the data check's
            # collective (a gloo "Connection closed by peer" traceback on the others; NCCL: a hang).
            with fail_together(d):
                data.load_state_dict(data_state)
                if add_data:
                    if not hasattr(data, "add_data"):
                        raise ConfigError("--add-data: this data source does not take appended data")
                    added = data.add_data(list(add_data))
                    warn_add_data_before_replace(cfg, data, add_data, added, d)
            trainer.state.load_state_dict(train_state)
        if make_data is None:  # after the resume: dirs added at an earlier resume count too
            check_same_data_on_every_rank(data, d.device)  # each rank scanned the data dirs itself
            # Each rank reads its own copies of the dirs (anneal.dirs are per node): a refusal on some ranks
            # stops every rank with it, before rank 0 writes anything.
            with fail_together(d):
                check_weights_name_sources(cfg.data.weights,
                                           [*cfg.data.dirs, *add_data, *cfg.anneal.dirs, *data.extra_dirs])
                if latest is not None:
                    check_registered_weights(cfg, data)
                if cfg.anneal.step is not None and "anneal" not in data.phases:
                    scan_anneal_dirs(cfg, data)  # what would stop the run at the switch stops it now
        if make_data is None and d.is_main:
            log_mixture(data)
        # Rank 0 alone writes these: its failure (a full disk) stops every rank with it.
        with fail_together(d):
            metrics.truncate(trainer.state.step)  # a fresh start (step 0) begins a new metrics file
            if d.is_main:  # only once accepted: a refused config must not replace the record of the run
                write_run_config(run_dir, config_yaml)
                if make_data is None:
                    save_run_tokenizer(run_dir, [*dirs, *data.extra_dirs])
        trainer.release_lock = release_lock
        return trainer
    except BaseException:  # refused or failed before training: the run dir is free again
        release_lock()
        raise


def log_mixture(data) -> None:
    """One line with each source's share of an epoch's samples (at start, resume and `--add-data`): a mixture
    aimed at (Steel-LLM's ~80% Chinese / 20% English and code) is set with weights, whose effect on windows
    nothing else showed."""
    mix = data.mixture()
    total = sum(mix.values())
    if total:
        log.info("data: each epoch draws %d samples (%s tokens): %s", total, f"{total * data.seq_len:,}",
                 ", ".join(f"{name} {100 * n / total:.1f}% ({n})" for name, n in mix.items()))


def fit(cfg: TrainConfig, add_data: list[str] = (), make_data=None) -> int:
    trainer = main(cfg, add_data, make_data)
    try:
        status = trainer.train()
        log.info("training %s at step %d (%d tokens, %d skipped steps)", status, trainer.state.step,
                 trainer.state.tokens, trainer.state.skipped)
    finally:
        trainer.metrics.close()
        destroy(trainer.d)
        trainer.release_lock()
    return 0
