"""Host-device synchronisations of a training step: a constant per optimizer step, none per micro-batch or layer.

On a GPU every value read back to the host (`.item()`, `bool(t)`, `float(t)`, `int(t)`, an `if` on a tensor,
`nonzero`, data-dependent output shapes) waits for the queued kernels, and the GPU idles while the host
queues the next ones: one per micro-batch or per layer would cost MFU at 1B scale. On CPU the same reads
go through aten ops a dispatch mode sees, so they are counted here without a GPU. torch's optimizer step
is not counted: on CPU its (unfused) AdamW keeps the step count on the host by design; the fused CUDA
AdamW the trainer uses on GPUs reads nothing back.
"""

from __future__ import annotations

import collections
import traceback

import pytest
import torch
from torch.utils._python_dispatch import TorchDispatchMode, _disable_current_modes

from steel.config import load_config
from steel.model import build_model, load_model_config
from steel.train.config import TrainConfig
from steel.train.trainer import main

# aten ops that read a device value back to the host (or size their output by one) on CUDA
SYNC_OPS = {"_local_scalar_dense", "is_nonzero", "nonzero", "masked_select", "bincount", "_unique2",
            "unique_dim", "unique_consecutive", "equal"}


class CountSyncs(TorchDispatchMode):
    """Counts the aten ops that synchronise with the device; `Tensor.tolist` (which reads a CPU tensor
    without an aten op); and tensors made from host data (`torch.tensor(x, device=...)`, `as_tensor`):
    on a GPU that copy is a blocking one. Each by where it was called (file:line)."""

    def __init__(self):
        super().__init__()
        self.where: collections.Counter[str] = collections.Counter()
        self._saved: dict = {}

    def _record(self, name: str) -> None:
        frames = [f for f in traceback.extract_stack()[:-2] if "/torch/" not in f.filename]
        self.where[f"{name} at {frames[-1].filename.rsplit('/', 2)[-1]}:{frames[-1].lineno}"] += 1

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        name = func.__name__.split(".")[0]
        if name in SYNC_OPS or (name == "repeat_interleave" and (kwargs or {}).get("output_size") is None):
            self._record(name)
        return func(*args, **(kwargs or {}))

    def __enter__(self):
        def counting(owner, name, check):
            original = self._saved[(owner, name)] = getattr(owner, name)

            def wrapper(*args, **kwargs):
                if check(*args, **kwargs):
                    self._record(name)
                return original(*args, **kwargs)

            setattr(owner, name, wrapper)

        counting(torch.Tensor, "tolist", lambda *a, **k: True)
        for name in ("tensor", "as_tensor", "asarray"):
            counting(torch, name, lambda data, *a, **k: not isinstance(data, torch.Tensor))
        return super().__enter__()

    def __exit__(self, *exc):
        for (owner, name), original in self._saved.items():
            setattr(owner, name, original)
        return super().__exit__(*exc)

    @property
    def total(self) -> int:
        return sum(self.where.values())


class RandomRows:
    """A data source of random rows, each holding a few EOS-ended documents."""

    def __init__(self, micro_batch: int, seq_len: int, seed: int = 0):
        self.g = torch.Generator().manual_seed(seed)
        self.shape = (micro_batch, seq_len)

    def next_batch(self) -> dict:
        ids = torch.randint(1, 256, self.shape, generator=self.g)
        ids = ids.masked_fill(torch.rand(self.shape, generator=self.g) < 0.1, 0)  # EOS (tiny.yaml's eos_token_id)
        return {"input_ids": ids, "labels": ids.clone()}

    def state_dict(self) -> dict:
        return {}

    def load_state_dict(self, state: dict) -> None:
        pass


def syncs_per_step(tmp_path, grad_accum: int, layers: int, steps: int = 2, **model) -> CountSyncs:
    cfg = load_config(TrainConfig, None, [
        f"run_dir={tmp_path / f'run-{grad_accum}-{layers}'}", "micro_batch=2", f"grad_accum={grad_accum}",
        "data.seq_len=16", "log.tensorboard=false", "log.progress=false", "max_steps=10",
        'model.config=tiny', f"model.overrides={{vocab_size: 256, num_hidden_layers: {layers}, "
        + "".join(f"{k}: {v}, " for k, v in model.items()) + "}",
    ])
    trainer = main(cfg, make_data=lambda cfg, d: RandomRows(cfg.micro_batch, cfg.data.seq_len))
    try:
        step = trainer.optimizer.step

        def uncounted_step(*a, **k):
            with _disable_current_modes():
                return step(*a, **k)

        trainer.optimizer.step = uncounted_step
        trainer.train_step()  # warm-up: lazily built state is not what a step costs
        with CountSyncs() as counted:
            for _ in range(steps):
                trainer.train_step()
                trainer._stop_requested()
        counted.where = collections.Counter({k: v // steps for k, v in counted.where.items()})
        return counted
    finally:
        trainer.metrics.close()
        trainer.release_lock()


@pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")  # tiny.yaml is soft_moe_v3
@pytest.mark.parametrize("model", [{}, {"document_mask": "true", "ffn_type": "swiglu"}], ids=["plain", "docmask"])
def test_syncs_do_not_grow_with_micro_batches_or_layers(tmp_path, model):
    """NOTE: transformers' `create_causal_mask` tests given `position_ids` for packed sequences with an `if` on
    a tensor (`find_packed_sequence_indices`): Steel passed its default 0..T-1 positions, one sync per
    micro-batch (stock HF models still do, inside transformers)."""
    base = syncs_per_step(tmp_path, grad_accum=1, layers=2, **model)
    more_micro = syncs_per_step(tmp_path, grad_accum=4, layers=2, **model)
    more_layers = syncs_per_step(tmp_path, grad_accum=4, layers=4, **model)
    assert more_micro.where == base.where, (base.where, more_micro.where)
    assert more_layers.where == base.where, (base.where, more_layers.where)


@pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")
def test_one_process_reads_the_device_once_per_optimizer_step(tmp_path):
    """Loss, gradient norm and target count come back together, once, before the update (the non-finite check
    needs them); the stop check of a single process reads nothing. It read four values one by one, the last
    ones after the update (waiting for the whole optimizer step with nothing queued behind it)."""
    counted = syncs_per_step(tmp_path, grad_accum=2, layers=2)
    assert counted.total == 1, counted.where


@pytest.mark.filterwarnings("ignore::steel.model.SteelCausalityWarning")
@pytest.mark.parametrize("ffn_type", ["soft_moe_causal", "swiglu", "soft_moe_v3"])
def test_document_mask_forward_syncs(ffn_type):
    """A document-masked training forward + backward of packed rows: soft_moe_causal reads back only the
    number of (document, chunk) groups, which sizes its tensors; the other FFNs read nothing back. Before,
    the EOS ids were copied from the host each forward (torch.isin wants a tensor) and torch.bincount
    (which reads the min and max of its input back on CUDA) counted each document's tokens."""
    cfg = load_model_config("tiny", [f"ffn_type={ffn_type}", "document_mask=true", "moe_chunk_size=3"])
    model = build_model(cfg).train()
    ids = RandomRows(3, 24, seed=1).next_batch()["input_ids"]
    with CountSyncs() as counted:
        model(input_ids=ids, shift_labels=ids, loss_reduction="sum").loss.backward()
    expected = ["_local_scalar_dense"] if ffn_type == "soft_moe_causal" else []
    assert [k.split()[0] for k in counted.where.elements()] == expected, counted.where
