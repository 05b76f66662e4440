"""AdamW for low-precision (bf16) model parameters, with fp32 master weights and fp32 AdamW state.

The model holds bf16 parameters, so forward and backward read them directly (no autocast casts, half
the gradient memory and traffic of fp32 parameters); the update is done in fp32 on master copies kept
in the optimizer state and rounded back into the bf16 parameters. Memory per parameter: 2 (bf16
weight) + 2 (bf16 gradient) + 4 (fp32 master) + 8 (fp32 exp_avg, exp_avg_sq) = 16 bytes, the same as
fp32 weights + fp32 gradients + AdamW state, and less than fp32 weights under autocast, which also
caches a bf16 copy of every weight between forward and backward (18 bytes).

NOTE (memory): the fp32 gradients the update needs are made one bucket at a time (`bucket_bytes` of
fp32) and each bucket's bf16 gradients are freed at once. Making all fp32 gradients first, as a plain
`torch.optim.AdamW` over the master weights would need, peaks at 2 + 4 + 4 + 8 = 18 bytes per parameter
(by count: not yet measured on a GPU); with buckets the peak is 16 bytes per parameter plus one bucket.

NOTE (numerics): gradients are accumulated over micro-batches in bf16 (8 bits of mantissa), unlike
fp32 parameters under autocast. `clip_grad_norm_` computes the global norm with fp32 accumulation and
applies the clip factor to the fp32 gradient copies, not to the bf16 gradients. Given the same
gradients, every master weight and AdamW moment is bit-identical to `torch.optim.AdamW` on fp32
parameters after `torch.nn.utils.clip_grad_norm_` (tested).

A `torch.optim.Optimizer`: `param_groups` (the schedule writes `lr`), `state_dict`/`load_state_dict`
(state per parameter: `master`, `exp_avg`, `exp_avg_sq`, `step`) and torch.distributed.checkpoint's
`get_state_dict`/`set_state_dict` work as for AdamW.
"""

from __future__ import annotations

import torch
from torch.optim.adamw import adamw as adamw_functional


class MasterWeightAdamW(torch.optim.Optimizer):
    def __init__(self, params, lr: float = 1e-3, betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8,
                 weight_decay: float = 1e-2, fused: bool | None = None, bucket_bytes: int = 256 * 2**20):
        defaults = {"lr": lr, "betas": tuple(betas), "eps": eps, "weight_decay": weight_decay}
        super().__init__(params, defaults)
        self.fused = bool(fused)
        self.bucket_bytes = bucket_bytes
        self._clip_scale: torch.Tensor | None = None  # set by clip_grad_norm_, used by the next step

    def _state(self, p: torch.Tensor) -> dict:
        st = self.state[p]
        if not st:
            st["master"] = p.detach().float().clone()
            st["exp_avg"] = torch.zeros_like(st["master"], memory_format=torch.preserve_format)
            st["exp_avg_sq"] = torch.zeros_like(st["master"], memory_format=torch.preserve_format)
            # as torch.optim.AdamW: a CPU float32 scalar, on the parameter's device when fused
            st["step"] = torch.zeros((), dtype=torch.float32, device=p.device if self.fused else "cpu")
        return st

    @torch.no_grad()
    def clip_grad_norm_(self, max_norm: float) -> torch.Tensor:
        """Global L2 norm of the gradients (fp32 accumulation), returned as clip_grad_norm_ does; the clip
        factor min(1, max_norm / (norm + 1e-6)) is applied to the fp32 gradient copies in the next step."""
        grads = [p.grad for g in self.param_groups for p in g["params"] if p.grad is not None]
        if not grads:
            return torch.zeros(())
        norms = torch._foreach_norm(grads, 2, dtype=torch.float32)
        total = torch.linalg.vector_norm(torch.stack(norms), 2)
        self._clip_scale = (max_norm / (total + 1e-6)).clamp(max=1.0)
        return total

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        scale, self._clip_scale = self._clip_scale, None
        for group in self.param_groups:
            live = [p for p in group["params"] if p.grad is not None]
            start = 0
            while start < len(live):
                end, size = start + 1, 4 * live[start].numel()
                while end < len(live) and size + 4 * live[end].numel() <= self.bucket_bytes:
                    size += 4 * live[end].numel()
                    end += 1
                self._step_bucket(group, live[start:end], scale)
                start = end
        return loss

    def _step_bucket(self, group: dict, params: list[torch.Tensor], scale: torch.Tensor | None) -> None:
        states = [self._state(p) for p in params]
        grads = []
        for p in params:
            grads.append(p.grad.float())
            p.grad = None  # the bf16 gradient is freed as soon as its fp32 copy exists
        if scale is not None:
            torch._foreach_mul_(grads, scale.to(grads[0].device))
        masters = [s["master"] for s in states]
        beta1, beta2 = group["betas"]
        adamw_functional(
            masters, grads, [s["exp_avg"] for s in states], [s["exp_avg_sq"] for s in states], [],
            [s["step"] for s in states], fused=self.fused or None, amsgrad=False, beta1=beta1, beta2=beta2,
            lr=group["lr"], weight_decay=group["weight_decay"], eps=group["eps"], maximize=False,
        )
        torch._foreach_copy_(params, masters)  # round the fp32 masters into the bf16 parameters

    def load_state_dict(self, state_dict: dict) -> None:
        # NOTE: Optimizer.load_state_dict casts every floating state tensor to its parameter's dtype, which
        # would round the fp32 masters and moments to bf16; restore them from the saved ones afterwards.
        saved_ids = [i for g in state_dict["param_groups"] for i in g["params"]]
        params = [p for g in self.param_groups for p in g["params"]]
        super().load_state_dict(state_dict)
        for i, p in zip(saved_ids, params):
            for k, v in state_dict["state"].get(i, {}).items():
                if k != "step":
                    self.state[p][k] = v.to(device=p.device, dtype=torch.float32).clone()
                else:
                    # NOTE: torch.distributed.checkpoint hands 0-d tensors back on the CPU, and Optimizer moves
                    # `step` to the parameter's device only for groups with "fused", which ours lack: the
                    # fused CUDA kernel would read a host pointer. Where _state puts it, as AdamW does.
                    self.state[p][k] = v.to(device=p.device if self.fused else "cpu", dtype=torch.float32)
            if "master" in self.state[p]:
                with torch.no_grad():
                    p.copy_(self.state[p]["master"])  # the parameter is the rounded master
