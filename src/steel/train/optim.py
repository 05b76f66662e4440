"""AdamW with decay only on matrices, and the learning-rate schedules (pure functions of the step)."""

from __future__ import annotations

import math

import torch

from steel.train.config import OptimSection
from steel.train.master_adamw import MasterWeightAdamW


def adamw_fused(device: torch.device) -> bool | None:
    """The AdamW implementation for parameters on `device`: True (fused), or None (torch's default there).

    build_optimizer and a resume (`trainer.apply_optim_config`, which replaces the choice a checkpoint's
    param groups carry) both ask this: fused and unfused AdamW round differently, so a resume that picked another
    implementation than the run it continues was not bit-identical to the uninterrupted run.
    NOTE: fused on the CPU too (torch >= 2.4; fp32, and MasterWeightAdamW's fp32 masters): one step of 56M
    fp32 parameters took 0.036 s where torch's CPU default, a per-tensor for-loop (its foreach kernels are for
    GPUs), took 0.33 s on one thread (`bench/cpu_adamw.py`).
    """
    return True if device.type in ("cuda", "cpu") else None


def build_optimizer(model: torch.nn.Module, cfg: OptimSection, device: torch.device,
                    master_weights: bool = False) -> torch.optim.Optimizer:
    """AdamW over `model`'s parameters; `master_weights`: MasterWeightAdamW (bf16 parameters, fp32 masters)."""
    decay, no_decay = [], []
    for p in model.parameters():
        if p.requires_grad:
            # Norm weights and biases are 1-D: decaying them only shrinks the scales (as nanoGPT/litgpt).
            (decay if p.ndim >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    if master_weights:
        return MasterWeightAdamW(groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps,
                                 fused=bool(adamw_fused(device)))
    return torch.optim.AdamW(
        groups, lr=cfg.lr, betas=tuple(cfg.betas), eps=cfg.eps, fused=adamw_fused(device)
    )


def lr_at(step: int, cfg: OptimSection, max_steps: int) -> float:
    """Learning rate of optimizer step `step` (0-based)."""
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    if cfg.schedule == "constant":
        return cfg.lr
    if cfg.schedule == "cosine":
        span = max(1, max_steps - cfg.warmup_steps)
        t = min(1.0, (step - cfg.warmup_steps) / span)
        return cfg.min_lr + 0.5 * (cfg.lr - cfg.min_lr) * (1 + math.cos(math.pi * t))
    # wsd: hold lr, then decay linearly to min_lr over the last `decay_steps` steps (MiniCPM, arXiv 2404.06395).
    decay = cfg.decay_steps or max(1, max_steps // 10)
    start = max_steps - decay
    if step < start:
        return cfg.lr
    t = min(1.0, (step - start + 1) / decay)
    return cfg.lr + (cfg.min_lr - cfg.lr) * t
