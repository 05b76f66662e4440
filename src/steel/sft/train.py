"""`steel sft CONFIG`: supervised fine-tuning with the pretraining Trainer and the SFT data of `data.py`.

`setup()` reads and validates the config, `main()` loads the starting model (a pretraining run or
checkpoint, or any HF directory), builds the token rows and the Trainer, and restores the newest
checkpoint of `run_dir` when there is one; `fit()` trains. Checkpoints, logs, metrics, DDP/FSDP2,
exact resume and SIGTERM saves are the Trainer's, as in pretraining.
"""

from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from steel.config import ConfigError, dump_yaml, expand_home, load_config, to_dict
from steel.sft.data import SftData, SftDataConfig, build_sft_rows, warn_rejections
from steel.train.config import (
    CheckpointSection,
    DataSection,
    LogSection,
    OptimSection,
    ParallelSection,
    TrainConfig,
    validate_loop_counts,
)

log = logging.getLogger("steel")


@dataclass
class SftConfig:
    init: str  # starting model: a pretraining RUN_DIR, a checkpoint dir, or an HF model dir (e.g. a `steel export`)
    tokenizer: str | None = None  # tokenizer dir (default: found beside `init`, as `steel eval` does)
    # Train with a `tokenizer` whose ids differ from those of the tokenizer found beside `init` (e.g. special
    # tokens added in unused embedding rows); without it such a tokenizer is refused (another chat template is not
    # a difference: the ids are compared).
    allow_tokenizer_change: bool = False
    run_dir: str = "runs/sft"  # checkpoints, metrics.jsonl, tb/, train.log, tokenizer/; rerunning resumes
    max_steps: int = 1000  # optimizer steps
    micro_batch: int = 8  # rows per rank per forward
    grad_accum: int = 1  # micro-batches per optimizer step
    max_nonfinite: int = 5  # consecutive non-finite steps that stop the run
    data: SftDataConfig = field(default_factory=SftDataConfig)
    optim: OptimSection = field(
        default_factory=lambda: OptimSection(lr=2e-5, min_lr=2e-6, weight_decay=0.0, warmup_steps=30)
    )
    parallel: ParallelSection = field(default_factory=ParallelSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)

    def __post_init__(self) -> None:
        # NOTE: here, not in `steel sft` alone: trainer_config()'s TrainConfig expands its run_dir itself, so a
        # config built in code (`fit(setup(path))`) with `run_dir: ~/r` wrote its checkpoints into ~/r and its
        # lock, config.yaml, train.log, metrics and tokenizer into ./~/r (and `init: ~/m` "did not exist").
        expand_home(self, "init", "tokenizer", "run_dir")

    def validate(self) -> None:
        validate_loop_counts(self)

    def trainer_config(self) -> TrainConfig:
        """The TrainConfig the Trainer reads (its data section only carries seq_len here)."""
        return TrainConfig(
            run_dir=self.run_dir,
            max_steps=self.max_steps,
            micro_batch=self.micro_batch,
            grad_accum=self.grad_accum,
            max_nonfinite=self.max_nonfinite,
            data=DataSection(dirs=[], seq_len=self.data.seq_len, seed=self.data.seed),
            optim=self.optim,
            parallel=self.parallel,
            checkpoint=self.checkpoint,
            log=self.log,
        )


def setup(config_path: str | None, overrides: list[str] = ()) -> SftConfig:
    cfg = load_config(SftConfig, config_path, overrides)
    if config_path is not None and not Path(cfg.data.root).is_absolute():
        # Dataset paths are relative to data.root, itself relative to the config file unless it exists from the CWD
        # (`.`, the default, is always the config file's directory).
        root = Path(cfg.data.root)
        if not root.exists() or cfg.data.root == ".":
            cfg.data.root = str((Path(config_path).parent / root).resolve())
    return cfg


def read_checkpoint_config(ckpt_dir: Path) -> SftConfig | None:
    """The SftConfig a checkpoint was written with (None if unreadable: nothing to compare with)."""
    try:
        return load_config(SftConfig, ckpt_dir / "config.yaml")
    except (ConfigError, OSError):
        return None


def _first_difference(old: Any, new: Any, path: str) -> tuple[str, Any, Any] | None:
    """(dotted path, old value, new value) of the first difference of two config trees (`data.datasets[0].weight`)."""
    if isinstance(old, dict) and isinstance(new, dict):
        for k in [*new, *(k for k in old if k not in new)]:
            found = _first_difference(old.get(k), new.get(k), f"{path}.{k}")
            if found:
                return found
        return None
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        for i, (a, b) in enumerate(zip(old, new)):
            found = _first_difference(a, b, f"{path}[{i}]")
            if found:
                return found
        return None
    return None if old == new else (path, old, new)


def _short(v: Any) -> str:
    r = repr(v)
    return r if len(r) <= 80 else r[:77] + "..."


def check_resume_data(cfg: SftConfig, old: SftConfig | None, ckpt_dir: Path, state: dict, data: SftData,
                      default_system: dict | None = None) -> None:
    """Refuse SFT data that differs from the checkpoint's, naming the field.

    The checkpoint's position (epoch, rows consumed) indexes the rows it was trained on: other rows (a
    changed mixture, seed, seq_len, or edited dataset files) used to resume silently as long as their
    number matched, and the checkpoint's seed overrode a changed `data.seed`.
    """
    old_seed = state.get("seed")
    if old_seed is not None and old_seed != cfg.data.seed:
        raise ConfigError(
            f"data.seed: {old_seed} in the checkpoint {ckpt_dir}, {cfg.data.seed} configured; the mixture sampling "
            f"and row order of a run cannot change mid-run: set data.seed: {old_seed} again, or start a new run "
            f"(another run_dir)"
        )
    rows = len(data.input_ids)
    if state.get("rows") == rows and state.get("rows_md5", data.rows_md5) == data.rows_md5:
        return
    was = f"{state.get('rows')} rows in the checkpoint, {rows} now" if state.get("rows") != rows else "other rows"
    diff = _first_difference(to_dict(old.data), to_dict(cfg.data), "data") if old is not None else None
    if diff is not None:
        where, before, now = diff
        raise ConfigError(
            f"{where}: {_short(before)} in the checkpoint {ckpt_dir}, {_short(now)} configured ({was}); the SFT "
            f"data of a run cannot change mid-run: set it back, or start a new run (another run_dir)"
        )
    # NOTE: since 2026-12-06 the chat template's default system turn is added to conversations without one:
    # a run started before with such a tokenizer gets other rows from the same files.
    also = (f" (or: the tokenizer's chat template adds the system message {default_system['content']!r} to "
            f"{default_system['conversations']:,} conversations without one, which SFT did not before 2026-12-06)"
            if default_system and default_system.get("conversations") else "")
    raise ConfigError(
        f"data.datasets: the dataset files changed since the checkpoint {ckpt_dir} ({was}, same config){also}; the "
        f"SFT data of a run cannot change mid-run: restore the files, or start a new run (another run_dir)"
    )


def tokenizer_fingerprint(tokenizer) -> dict:
    """What a run's token ids depend on: size, special tokens, vocabulary/merges/pre-tokenizer, chat template.

    Hashes of the in-memory tokenizer (not of files, whose layout differs between transformers
    versions), so a tokenizer saved and loaded again has the same fingerprint.
    """

    def sha(text: str) -> str:
        return hashlib.sha256(text.encode("utf-8")).hexdigest()

    backend = getattr(tokenizer, "backend_tokenizer", None)
    model = backend.to_str() if backend is not None else json.dumps(sorted(tokenizer.get_vocab().items()))
    template = getattr(tokenizer, "chat_template", None)
    return {
        "size": len(tokenizer),
        "special tokens": [getattr(tokenizer, f"{k}_token", None) for k in ("bos", "eos", "pad", "unk")]
        + sorted(getattr(tokenizer, "all_special_tokens", [])),
        "vocabulary": sha(model),
        "chat template": sha(json.dumps(template)) if template else None,
    }


def check_resume_tokenizer(cfg: SftConfig, old: SftConfig | None, ckpt_dir: Path, run_dir: Path, tokenizer) -> None:
    """Refuse a tokenizer other than the one saved in `run_dir/tokenizer`, naming `tokenizer` or `init`.

    The run's checkpoints were trained on that tokenizer's ids and chat template, and chat, eval and
    export pair them with it: a resume with another one used to replace it before being refused (by
    the data check, which blamed the dataset files).
    """
    from transformers import AutoTokenizer

    saved_dir = run_dir / "tokenizer"
    if not saved_dir.is_dir():
        return  # a run from before the tokenizer was saved there: nothing to compare with
    try:
        saved = AutoTokenizer.from_pretrained(str(saved_dir), trust_remote_code=True)
    except Exception as e:  # noqa: BLE001 - an unreadable record is replaced, as a missing one is saved
        log.warning("resume: the run's tokenizer %s is unreadable (%s); it is replaced", saved_dir, e)
        return
    before, now = tokenizer_fingerprint(saved), tokenizer_fingerprint(tokenizer)
    differs = [k for k in now if before[k] != now[k]]
    if not differs:
        return
    if old is not None and old.tokenizer != cfg.tokenizer:
        field = f"tokenizer: {_short(old.tokenizer)} in the checkpoint {ckpt_dir}, {_short(cfg.tokenizer)} configured"
    elif old is not None and cfg.tokenizer is None and old.init != cfg.init:
        field = (f"init: {_short(old.init)} in the checkpoint {ckpt_dir}, {_short(cfg.init)} configured "
                 "(the tokenizer is found beside init)")
    else:
        where = cfg.tokenizer if cfg.tokenizer is not None else f"the tokenizer found beside init {cfg.init}"
        field = f"tokenizer: {where} changed since the checkpoint {ckpt_dir}"
    what = ", ".join(f"{k} {before[k]} -> {now[k]}" if k == "size" else k for k in differs)
    raise ConfigError(
        f"{field}; it differs from the run's tokenizer {saved_dir} ({what}), on which its checkpoints were "
        f"trained: set it back, or start a new run (another run_dir)"
    )


def row_lengths(input_ids: torch.Tensor, eos: int) -> torch.Tensor:
    """(B,) the positions of each row that hold conversations: the rest is EOS padding (`data.make_rows`).

    Every conversation ends with `<|im_end|>`, a newline and one EOS, and rows are right-padded with EOS, so
    a row's data ends one position after its last non-EOS token.
    """
    T = input_ids.shape[1]
    last = T - 1 - (input_ids != eos).flip(1).int().argmax(1)  # last non-EOS position (rows are never all EOS)
    return (last + 2).clamp(max=T)


class SftBatches(SftData):
    """SftData whose batches also carry `lengths`, so the trainer's `tokens` and `tokens_per_s` count the
    positions of conversations (prompts included), not only the trained ones, nor padding (MFU and
    `computed_per_s` count the padding too: it is computed)."""

    def __init__(self, *args, eos: int, **kwargs):
        super().__init__(*args, **kwargs)
        self.eos = eos

    def next_batch(self) -> dict[str, torch.Tensor]:
        batch = super().next_batch()
        batch["lengths"] = row_lengths(batch["input_ids"], self.eos)
        return batch


def _load_tokenizer(cfg: SftConfig, load_tokenizer):
    """The run's tokenizer; a wrong `init` or `tokenizer` is a ConfigError naming the field.

    NOTE: `load_tokenizer` serves commands with a `--tokenizer` flag: a `tokenizer:` directory without
    tokenizer files raised transformers' ValueError (a traceback), a missing one huggingface_hub's "Repo id
    must be in the form 'repo_name'", and its hint for an init without a tokenizer is that flag.
    """
    from steel.cli import UserError

    if not Path(cfg.init).exists():
        raise ConfigError(f"init: {cfg.init} does not exist")
    if cfg.tokenizer is None:
        try:
            return load_tokenizer(cfg.init, None)
        except UserError as e:
            raise ConfigError(f"init: {str(e).removesuffix('; pass --tokenizer DIR')}; set tokenizer: DIR") from None
    if not Path(cfg.tokenizer).is_dir():
        raise ConfigError(f"tokenizer: {cfg.tokenizer} is not a directory")
    if not any((Path(cfg.tokenizer) / f).is_file() for f in ("tokenizer.json", "tokenizer_config.json")):
        raise ConfigError(f"tokenizer: {cfg.tokenizer} holds no tokenizer (no tokenizer.json or tokenizer_config.json)")
    try:
        return load_tokenizer(cfg.init, cfg.tokenizer)
    except Exception as e:  # noqa: BLE001 - transformers raises OSError, ValueError, KeyError... for a non-tokenizer dir
        why = " ".join(str(e).split())
        why = why if len(why) <= 300 else why[:297] + "..."
        raise ConfigError(f"tokenizer: {cfg.tokenizer}: cannot load its tokenizer ({type(e).__name__}: {why})") from None


def ids_fingerprint(tokenizer) -> str:
    """The fingerprint of what maps text to ids (`steel.tokenizer.engine.fingerprint`, as in a data manifest and
    `steel.data.tokenize.dir_fingerprint`); not the chat template or the special-tokens map."""
    from steel.tokenizer.engine import fingerprint

    backend = getattr(tokenizer, "backend_tokenizer", None)
    if backend is not None:
        return fingerprint(json.loads(backend.to_str()))
    return hashlib.sha256(json.dumps(sorted(tokenizer.get_vocab().items())).encode("utf-8")).hexdigest()


def check_init_tokenizer(cfg: SftConfig, tokenizer) -> None:
    """Refuse a `tokenizer` whose ids are not those of the tokenizer found beside `init` (the one its weights were
    trained with): every id would mean other text to the model. It was accepted silently whenever it fit in the
    vocabulary. An init without a tokenizer of its own leaves nothing to compare: accepted. For a fresh start: a
    resume is held to the run's own tokenizer (`check_resume_tokenizer`).
    """
    from steel.infer.load import find_tokenizer_dir, load_tokenizer

    if cfg.tokenizer is None or cfg.allow_tokenizer_change:
        return
    try:
        init_dir = find_tokenizer_dir(Path(cfg.init), None)
        init_tok = load_tokenizer(cfg.init, init_dir)
    except Exception:  # noqa: BLE001 - none found (UserError) or unreadable: nothing to compare with
        return
    want, got = ids_fingerprint(init_tok), ids_fingerprint(tokenizer)
    if want == got:
        return
    raise ConfigError(
        f"tokenizer: {cfg.tokenizer} (fingerprint {got[:12]}..., {len(tokenizer)} tokens) is not the tokenizer of "
        f"init {cfg.init} ({init_dir}: fingerprint {want[:12]}..., {len(init_tok)} tokens), whose ids its weights "
        "were trained on: the same ids would "
        "mean other text; leave tokenizer unset to use init's, or set allow_tokenizer_change: true if the change is "
        "deliberate (e.g. special tokens added in unused embedding rows)"
    )


def main(cfg: SftConfig):
    from steel import dirlock
    from steel.infer.load import is_hf_dir, load_model, load_tokenizer, resolve_checkpoint
    from steel.train import checkpoint as ckpt
    from steel.train.distributed import check_same_on_every_rank, fail_together, init_distributed
    from steel.train.trainer import (
        RANKS_AGREE_HINT,
        check_run_dir_not_left_at_literal_home,
        check_seq_len_fits_model,
    )

    d = init_distributed(cfg.parallel)
    run_dir = Path(cfg.run_dir)
    config_yaml = dump_yaml(cfg)
    # The tokenizer and the model first: a bad init or a seq_len beyond the model's limit is refused before
    # anything is written and before the whole mixture is read and tokenized. Each rank reads its own config
    # and init: one rank's refusal stops every rank with it (the others died in their next collective).
    with fail_together(d):
        tokenizer = _load_tokenizer(cfg, load_tokenizer)
        if ckpt.latest_checkpoint(run_dir) is None:  # a resume is held to the run's own tokenizer instead
            check_init_tokenizer(cfg, tokenizer)
        if not getattr(tokenizer, "chat_template", None):
            # NOTE: SFT renders ChatML; a tokenizer without a chat template (an HF init's) gets ChatML's, saved
            # with the run, so `steel chat`, `eval mc --chat` and the export prompt as the model was trained
            # (they refused the run's tokenizer: no chat template).
            from steel.tokenizer.qwen import chatml_template

            tokenizer.chat_template = chatml_template()
            # logged by rank 0 once its run log is open (it went to stderr only, bare, from every process)
            template_note = (f"tokenizer {getattr(tokenizer, 'name_or_path', '') or ''} has no chat template: the "
                             "run's tokenizer gets ChatML's, the format SFT trains")
        else:
            template_note = None
        # The checkpoint a run-dir init resolves to is fixed here, loaded and logged: the run may go on writing
        # newer ones.
        init_from = Path(cfg.init) if is_hf_dir(Path(cfg.init)) else (resolve_checkpoint(Path(cfg.init))
                                                                      or Path(cfg.init))
        model = load_model(init_from, "cpu", None)
        check_seq_len_fits_model(model.config, cfg.data.seq_len,
                                 raise_hint=f"start from a model with a longer context (init: {cfg.init})")
    # Before the data is read and tokenized (minutes for a large mixture): a stock init with the default
    # packing was refused only then. The ranks agree on what it depends on first: a rank whose config alone
    # asked for packing (another config file on its node, another init) raised alone, and the others died in
    # their next collective (a gloo traceback; a hang under NCCL) instead of every rank naming what differs.
    check_same_on_every_rank({"data.packing": cfg.data.packing, "init model_type": model.config.model_type}, d,
                             RANKS_AGREE_HINT)
    if cfg.data.packing and getattr(model.config, "model_type", None) != "steel":
        raise ConfigError("data.packing: document masking of packed rows needs Steel's model "
                          f"(this is {model.config.model_type!r}); set data.packing: false")
    # One process per run dir; released by fit() at the end, or below if startup fails. Rank 0 alone locks: its
    # refusal (another run holds the dir) stops every rank.
    release_lock = lambda: None  # noqa: E731
    try:
        with fail_together(d):
            if d.is_main:
                check_run_dir_not_left_at_literal_home(run_dir)
                release_lock = dirlock.acquire(run_dir, "steel sft")
        return _main_locked(cfg, d, run_dir, config_yaml, tokenizer, model, release_lock, template_note, init_from)
    except BaseException:
        release_lock()
        raise


# Fields that may name other paths on other nodes: what they lead to is compared instead (the rows built from
# the data, tokenizer and self-cognition template; the model config loaded from `init`).
SFT_PER_NODE_FIELDS = ("run_dir", "init", "tokenizer", "data.root", "data.datasets", "data.self_cognition.template",
                       "log")


def check_ranks_agree(cfg: SftConfig, model_config: dict, latest: Path | None, input_ids: torch.Tensor,
                      labels: torch.Tensor, d, init_from: Path | None = None) -> None:
    """Every rank was given the same config, loaded the same model config, built the same rows and resumes the
    same checkpoint, or every rank stops naming what differs (as `steel train` does).

    NOTE: every rank builds the rows itself from its own config file and data; another `optim.lr` on one
    node drifted the DDP replicas apart silently, another data copy trained other rows on that rank.
    """
    from steel.train.distributed import check_same_on_every_rank
    from steel.train.trainer import RANKS_AGREE_HINT, rank_agreed_values

    if d.world_size == 1:
        return
    values = rank_agreed_values(cfg, model_config, latest, SFT_PER_NODE_FIELDS)
    h = hashlib.sha256()
    for t in (input_ids, labels):
        h.update(str((t.dtype, tuple(t.shape))).encode())
        h.update(t.contiguous().numpy().data)  # no copy of the rows
    values["sft rows sha256"] = h.hexdigest()[:16]
    # A fresh start takes its weights from the checkpoint `init` resolved to on each rank: a pretraining run that
    # wrote a newer one between the ranks' reads would start them from different weights.
    resolved = latest is None and init_from is not None and Path(init_from) != Path(cfg.init)
    values["init checkpoint"] = Path(init_from).name if resolved else None
    check_same_on_every_rank(values, d, RANKS_AGREE_HINT.replace("in run_dir", "in run_dir, and the same data"))


def _resume_log_rows(cfg: SftConfig, d, run_dir: Path, latest: Path | None, config_yaml: str, tokenizer,
                     template_note: str | None, init_from: Path | None):
    """The resume checks, the run log (rank 0) and the rows: -> (the checkpoint's config or None, the per-dataset
    stats, input_ids, labels). Per rank, no collective."""
    from steel.runlog import setup_run_log
    from steel.train import checkpoint as ckpt
    from steel.train.trainer import _rank_stderr_handler, warn_warmup_covers_run

    if latest is not None:
        # Before anything is read or logged there: a pretraining run's checkpoint is no SFT position, and
        # its data state gave misleading refusals (its data.seed, then "the dataset files changed").
        kind = ckpt.read_json(latest, "data.json").get("kind", "sft")  # SFT checkpoints before 2026-12-06: none
        if kind != "sft":
            what = "a pretraining" if kind == "pretrain" else f"a {kind!r}"
            raise ConfigError(f"run_dir: {run_dir} holds {what} run (its checkpoint {latest}); an SFT run needs a "
                              "run_dir of its own (its init may be that run)")
    old = read_checkpoint_config(latest) if latest is not None else None
    if latest is not None:  # before the data is built: another tokenizer gives other rows
        check_resume_tokenizer(cfg, old, latest, run_dir, tokenizer)
    if d.is_main:
        setup_run_log(run_dir / "train.log", config_yaml)
        if latest is None and init_from is not None:
            log.info("init: weights from %s", init_from)
        if template_note:
            log.warning("%s", template_note)
        warn_warmup_covers_run(cfg.optim, cfg.max_steps)
    else:
        # NOTE: as `steel train`: no header on the other ranks (unattributed copies of rank 0's, one set per
        # process under torchrun), and their warnings carry their rank.
        log.setLevel(logging.WARNING)
        _rank_stderr_handler(d.rank)

    stats: dict = {}
    input_ids, labels = build_sft_rows(cfg.data, tokenizer, stats)
    if d.is_main:
        warn_rejections(cfg.data, stats)
    # NOTE: a row's first label is never a target (the trainer predicts labels[t + 1] at position t): counted,
    # `loss_on_prompt: true` over-reported one trained token per row.
    trained = int((labels[:, 1:] != -100).sum())
    log.info(
        "sft data: %d rows of %d tokens, %d trained tokens (%.1f%% of positions); per dataset: %s",
        input_ids.shape[0],
        input_ids.shape[1],
        trained,
        100 * trained / labels.numel(),
        json.dumps(stats, ensure_ascii=False),
    )
    return old, stats, input_ids, labels


def _main_locked(cfg: SftConfig, d, run_dir: Path, config_yaml: str, tokenizer, model, release_lock,
                 template_note: str | None = None, init_from: Path | None = None):
    from steel.tokenizer.qwen import make_tokenizer_config_portable
    from steel.train import checkpoint as ckpt
    from steel.train.distributed import barrier, fail_together, parallelize
    from steel.train.metrics import MetricsLogger
    from steel.train.optim import build_optimizer
    from steel.train.trainer import (
        Trainer,
        apply_optim_config,
        check_run_dir_shared,
        flops_per_token,
        log_global_batch,
        log_model,
        warn_resume_changes,
        write_run_config,
    )

    with fail_together(d):
        if d.is_main:
            ckpt.remove_partial(run_dir)
    barrier(d)  # remove_partial may put a checkpoint back: every rank lists them after it
    check_run_dir_shared(run_dir, d)  # before any rank lists checkpoints there
    # Per rank up to the rows: one rank's refusal (its run log, its data copy) stops every rank with it.
    with fail_together(d):
        latest = ckpt.latest_checkpoint(run_dir)
        old, stats, input_ids, labels = _resume_log_rows(cfg, d, run_dir, latest, config_yaml, tokenizer,
                                                         template_note, init_from)
    check_ranks_agree(cfg, model.config.to_dict(), latest, input_ids, labels, d, init_from)
    if len(tokenizer) > model.config.vocab_size:
        raise ConfigError(
            f"tokenizer: {len(tokenizer)} tokens exceed the model's vocab_size {model.config.vocab_size}"
        )
    if cfg.data.packing:
        # Packed conversations end with EOS: attention and positions restart there (modeling_steel.document_mask).
        model.config.document_mask = True
        model.config.eos_token_id = tokenizer.convert_tokens_to_ids("<|endoftext|>")
    model.train()
    tcfg = cfg.trainer_config()
    fpt = flops_per_token(model.config, model, cfg.data.seq_len)
    # NOTE: as `steel train` logs them: an SFT log said neither the model's size nor the rows per step.
    log_model(model, fpt)
    log_global_batch(tcfg, d)
    model = parallelize(model, cfg.parallel, d)
    optimizer = build_optimizer(model, cfg.optim, d.device, master_weights=cfg.parallel.param_dtype == "bf16")
    data = SftBatches(input_ids, labels, cfg.micro_batch, cfg.data.seed, d.rank, d.world_size,
                      eos=tokenizer.convert_tokens_to_ids("<|endoftext|>"))
    with fail_together(d):  # rank 0 alone opens W&B (and writes its run id)
        metrics = MetricsLogger(
            run_dir, d.is_main, cfg.log.tensorboard, cfg.log.wandb, cfg.log.wandb_project, to_dict(cfg)
        )
    model_config = (model.module if hasattr(model, "module") else model).config.to_dict()
    trainer = Trainer(
        tcfg,
        model,
        optimizer,
        data,
        d,
        metrics,
        fpt,
        {"config_yaml": config_yaml, "model_config": model_config},
    )
    if latest is not None:
        log.info("resuming from %s", latest)
        data_state, train_state = ckpt.read_json(latest, "data.json"), ckpt.read_json(latest, "train_state.json")
        check_resume_data(cfg, old, latest, data_state, data, stats.get("default_system"))
        warn_resume_changes(tcfg, latest, train_state["step"], data_state, model_config, d,
                            old=old.trainer_config() if old is not None else None)
        ckpt.load_checkpoint(latest, model, optimizer, d)
        apply_optim_config(optimizer, cfg.optim)  # the checkpoint's param groups would override the config
        # Each rank draws the epoch's row order with its own torch: a node whose torch draws another order is
        # refused there alone, and that stops every rank with it (as pretraining's data restore): the others
        # died in the next collective (a gloo "Connection closed by peer" traceback; NCCL: a hang).
        with fail_together(d):
            data.load_state_dict(data_state)
        trainer.state.load_state_dict(train_state)
        if "targets" not in train_state:
            log.warning("resume: %s counts only the trained tokens in `tokens` (%d; written before 2026-12-07); "
                        "from step %d on, `tokens` in metrics.jsonl also counts the prompt positions computed",
                        latest, train_state["tokens"], train_state["step"] + 1)
    # Rank 0 alone writes these: its failure (a full disk) stops every rank with it.
    with fail_together(d):
        metrics.truncate(trainer.state.step)
        if d.is_main:  # only once accepted: a refused config must not replace the record of the run
            write_run_config(run_dir, config_yaml)
            tokenizer.save_pretrained(str(run_dir / "tokenizer"))  # so eval/chat/export find it beside the run
            make_tokenizer_config_portable(run_dir / "tokenizer", tokenizer.chat_template)
    torch.manual_seed(cfg.data.seed)
    trainer.release_lock = release_lock
    return trainer


def fit(cfg: SftConfig) -> int:
    from steel.train.distributed import destroy

    trainer = main(cfg)
    try:
        status = trainer.train()
        log.info(
            "sft %s at step %d (%d conversation tokens, padding excluded, %d of them trained, %d skipped steps)",
            status,
            trainer.state.step,
            trainer.state.tokens,
            trainer.state.targets,
            trainer.state.skipped,
        )
    finally:
        trainer.metrics.close()
        destroy(trainer.d)
        trainer.release_lock()
    return 0
