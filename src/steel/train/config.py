"""`steel train` configuration: YAML mapped onto these dataclasses (see configs/train/*.yaml)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from steel.config import ConfigError, expand_home


@dataclass
class ModelSection:
    config: Any = "tiny"  # model spec: a name in configs/model/, a YAML path, an HF dir, or a mapping
    overrides: dict[str, Any] = field(default_factory=dict)  # fields of the model config to change
    init_seed: int = 0  # torch seed for the initial weights

    def __post_init__(self) -> None:
        expand_home(self, "config")  # (a YAML path or an HF dir; no preset name starts with `~`)


@dataclass
class DataSection:
    dirs: list[str] = field(default_factory=list)  # prepared data dirs (`steel data prepare` output)
    seq_len: int = 2048  # tokens per sample (windows of seq_len + 1 tokens)
    seed: int = 1234  # key of the data order (a permutation per epoch); fixed for the life of a run_dir
    weights: dict[str, float] = field(default_factory=dict)  # per-source weights overriding the manifests'
    verify: bool = True  # hash every chunk's head/tail at start (refuses changed chunks)

    def __post_init__(self) -> None:
        expand_home(self, "dirs")

    def validate(self) -> None:
        if self.seq_len < 1:
            raise ConfigError("data.seq_len: must be >= 1")
        # The loader refused a negative weight only after the model was built, naming the data dir, not the field.
        for name, w in self.weights.items():
            if w < 0:
                raise ConfigError(f"data.weights.{name}: must be >= 0, got {w}")


@dataclass
class AnnealSection:
    """The annealing switch: checked at startup; at a resume it may be added or moved while it is ahead
    (then honoured exactly), and is fixed once it happened (a change is a ConfigError)."""

    step: int | None = None  # optimizer step at which the mixture switches; null = no annealing phase
    dirs: list[str] = field(default_factory=list)  # data dirs of the annealing mixture (replace: may be in the run already)
    mode: Literal["replace", "mix"] = "replace"  # replace the rest of the epoch (and later epochs), or mix with it

    def __post_init__(self) -> None:
        expand_home(self, "dirs")

    def validate(self) -> None:
        if self.step is not None and (self.step < 0 or not self.dirs):
            raise ConfigError("anneal.step: needs step >= 0 and anneal.dirs")


@dataclass
class OptimSection:
    lr: float = 3e-4  # peak learning rate
    min_lr: float = 3e-5  # learning rate at the end of the decay
    weight_decay: float = 0.1  # AdamW decay (not on norms and biases: tensors with < 2 dims)
    betas: list[float] = field(default_factory=lambda: [0.9, 0.95])  # AdamW betas
    eps: float = 1e-8  # AdamW epsilon
    grad_clip: float = 1.0  # max global grad norm; 0 = no clipping (the norm is still logged)
    schedule: Literal["cosine", "wsd", "constant"] = "cosine"  # cosine (Steel's) or warmup-stable-decay (MiniCPM's)
    warmup_steps: int = 100  # linear warmup to lr: step s < warmup_steps uses lr (s + 1) / warmup_steps
    decay_steps: int = 0  # wsd: length of the final decay to min_lr (default: 10% of max_steps)

    def validate(self) -> None:
        # Each message names the field at fault: `decay_steps: -3` was reported as optim.warmup_steps, `lr: 0`
        # as optim.min_lr.
        if self.lr <= 0:
            raise ConfigError(f"optim.lr: must be > 0, got {self.lr}")
        if not 0 <= self.min_lr <= self.lr:
            raise ConfigError(f"optim.min_lr: need 0 <= min_lr <= lr ({self.lr}), got {self.min_lr}")
        for name in ("warmup_steps", "decay_steps"):
            if getattr(self, name) < 0:
                raise ConfigError(f"optim.{name}: must be >= 0, got {getattr(self, name)}")
        if len(self.betas) != 2:
            raise ConfigError("optim.betas: two numbers")
        # AdamW's own checks raised them as tracebacks at startup (betas, eps), or not at all (weight_decay)
        if not all(0 <= b < 1 for b in self.betas):
            raise ConfigError(f"optim.betas: each must be in [0, 1), got {list(self.betas)}")
        if self.eps <= 0:
            raise ConfigError(f"optim.eps: must be > 0, got {self.eps}")
        if self.weight_decay < 0:
            raise ConfigError(f"optim.weight_decay: must be >= 0, got {self.weight_decay}")
        if self.grad_clip < 0:
            raise ConfigError("optim.grad_clip: must be >= 0 (0 = no clipping)")


@dataclass
class ParallelSection:
    # auto: fsdp when WORLD_SIZE > 1 (ddp where FSDP2 cannot run on the device: CPU on torch 2.6), else none
    mode: Literal["auto", "none", "ddp", "fsdp"] = "auto"
    dtype: Literal["auto", "bf16", "fp32"] = "auto"  # autocast dtype (auto: bf16 on CUDA, fp32 on CPU); master weights fp32
    # fp32: fp32 parameters (+ autocast of `dtype`). bf16: bf16 parameters and gradients, no autocast, fp32
    # master weights and AdamW state in the optimizer (steel.train.master_adamw); modes none and ddp.
    param_dtype: Literal["fp32", "bf16"] = "fp32"
    compile: bool = False  # torch.compile the model
    activation_checkpointing: bool = False  # recompute each decoder layer in backward
    # How long a collective may wait (init_process_group's timeout). NCCL's own default is 10 minutes, less than
    # rank 0 may take to write a 1B checkpoint to a slow shared file system while the others wait at a barrier.
    timeout_minutes: float = 30.0

    def validate(self) -> None:
        if not 0 < self.timeout_minutes <= 7 * 24 * 60:  # larger overflowed a C int in init_process_group
            raise ConfigError(f"parallel.timeout_minutes: must be > 0 and at most a week (10080), got {self.timeout_minutes}")
        if self.param_dtype == "bf16" and self.mode == "fsdp":
            raise ConfigError(
                "parallel.param_dtype: bf16 parameters are for modes none and ddp; under fsdp, dtype: bf16 already "
                "computes in bf16 from fp32 sharded master weights (FSDP2 MixedPrecisionPolicy)")
        if self.param_dtype == "bf16" and self.dtype == "fp32":
            raise ConfigError("parallel.dtype: fp32 computation contradicts param_dtype: bf16 (bf16 parameters)")


@dataclass
class CheckpointSection:
    every: int = 1000  # save every N steps (and at the end, and on SIGTERM/SIGINT)
    keep: int = 3  # keep the newest K checkpoints
    # Save and stop once the process has run this long (0 = no limit; counted from the process's start). For a
    # job with a time limit: set it a checkpoint's save time (and a step) under the limit. A save after
    # SIGTERM under torchrun has 30 s before its SIGKILL, too short for a 1B model's checkpoint.
    stop_after_minutes: float = 0.0

    def validate(self) -> None:
        for name in ("every", "keep"):
            if getattr(self, name) < 1:
                raise ConfigError(f"checkpoint.{name}: must be >= 1")
        if not self.stop_after_minutes >= 0:
            raise ConfigError(f"checkpoint.stop_after_minutes: must be >= 0 (0 = no limit), got {self.stop_after_minutes}")


@dataclass
class LogSection:
    every: int = 10  # log metrics every N steps
    tensorboard: bool = True  # RUN_DIR/tb
    wandb: bool = False  # log to Weights & Biases (set WANDB_MODE=offline to stay offline)
    wandb_project: str = "steel"
    progress: bool = True  # progress bar with ETA (when stderr is a terminal)

    def validate(self) -> None:
        if self.every < 1:
            raise ConfigError("log.every: must be >= 1")


def validate_loop_counts(cfg) -> None:
    """The loop's counters (shared by the pretraining and SFT configs) must be >= 1, the run dir named."""
    for name in ("max_steps", "micro_batch", "grad_accum", "max_nonfinite"):
        if getattr(cfg, name) < 1:
            raise ConfigError(f"{name}: must be >= 1")
    if not str(cfg.run_dir).strip():  # '' wrote checkpoints/, tb/, train.log into the current directory
        raise ConfigError("run_dir: must not be empty")


@dataclass
class TrainConfig:
    run_dir: str = "runs/train"  # checkpoints, metrics.jsonl, tb/, train.log; rerunning resumes from here
    max_steps: int = 1000  # optimizer steps
    micro_batch: int = 8  # samples per rank per forward
    grad_accum: int = 1  # micro-batches per optimizer step (global batch = micro_batch x grad_accum x world)
    max_nonfinite: int = 5  # consecutive steps with a non-finite loss/grad norm that stop the run
    model: ModelSection = field(default_factory=ModelSection)
    data: DataSection = field(default_factory=DataSection)
    anneal: AnnealSection = field(default_factory=AnnealSection)
    optim: OptimSection = field(default_factory=OptimSection)
    parallel: ParallelSection = field(default_factory=ParallelSection)
    checkpoint: CheckpointSection = field(default_factory=CheckpointSection)
    log: LogSection = field(default_factory=LogSection)

    def __post_init__(self) -> None:
        expand_home(self, "run_dir")

    def validate(self) -> None:
        validate_loop_counts(self)
