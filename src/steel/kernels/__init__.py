"""Fused Triton kernels for training, each with a pure-torch reference that is also its CPU fallback.

Ops (one module each): `rms_norm`, `apply_rotary_pos_emb`, `silu_mul`, `fused_linear_cross_entropy`.
Every op takes `impl="auto" | "triton" | "torch"`; see `steel.kernels.dispatch` for the rule
(CUDA -> Triton, CPU -> reference unless the Triton interpreter is explicitly requested).

Model config: `kernels: all` (every fused op), `kernels: none` / `{}` (all references), or a mapping
`{rmsnorm: triton, rope: triton, silu_mul: triton, cross_entropy: fused}` with `torch` to keep an op
unfused. `resolve_kernels` turns any of these into the full mapping; `KERNEL_NAMES[key]` is the name of
the function in this package that implements config key `key`.
"""

from __future__ import annotations

from typing import Any

from steel.config import ConfigError
from steel.kernels.cross_entropy import fused_linear_cross_entropy, fused_linear_cross_entropy_ref
from steel.kernels.dispatch import KernelUnavailable, use_triton
from steel.kernels.rmsnorm import RMSNorm, rms_norm, rms_norm_ref
from steel.kernels.rope import apply_rotary_pos_emb, apply_rotary_pos_emb_ref
from steel.kernels.silu_mul import silu_mul, silu_mul_ref

# config key -> function of this package that the model calls when the key is switched on
KERNEL_NAMES = {
    "rmsnorm": "rms_norm",
    "rope": "apply_rotary_pos_emb",
    "silu_mul": "silu_mul",
    "cross_entropy": "fused_linear_cross_entropy",
}
# config key -> (value meaning "unfused reference", value meaning "fused kernel")
KERNEL_CHOICES = {
    "rmsnorm": ("torch", "triton"),
    "rope": ("torch", "triton"),
    "silu_mul": ("torch", "triton"),
    "cross_entropy": ("torch", "fused"),
}


def resolve_kernels(spec: Any, field: str = "kernels") -> dict[str, str]:
    """`all` | `none` | None | {key: value} -> {key: value} for every key; ConfigError names the bad field."""
    if spec is None or spec == "none":
        return {k: off for k, (off, _) in KERNEL_CHOICES.items()}
    if spec == "all":
        return {k: on for k, (_, on) in KERNEL_CHOICES.items()}
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{field}: want 'all', 'none' or a mapping of {sorted(KERNEL_CHOICES)}, got {spec!r}"
        )
    out = {k: off for k, (off, _) in KERNEL_CHOICES.items()}
    for key, value in spec.items():
        if key not in KERNEL_CHOICES:
            raise ConfigError(f"{field}.{key}: unknown kernel; known: {', '.join(KERNEL_CHOICES)}")
        if value not in KERNEL_CHOICES[key]:
            raise ConfigError(f"{field}.{key}: want one of {KERNEL_CHOICES[key]}, got {value!r}")
        out[key] = value
    return out


__all__ = [
    "KERNEL_CHOICES",
    "KERNEL_NAMES",
    "KernelUnavailable",
    "RMSNorm",
    "apply_rotary_pos_emb",
    "apply_rotary_pos_emb_ref",
    "fused_linear_cross_entropy",
    "fused_linear_cross_entropy_ref",
    "resolve_kernels",
    "rms_norm",
    "rms_norm_ref",
    "silu_mul",
    "silu_mul_ref",
    "use_triton",
]
