"""Metrics to `RUN_DIR/metrics.jsonl`, TensorBoard and (optionally) W&B; MFU from a peak-FLOPs table."""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import secrets
import sys
from pathlib import Path

import torch

log = logging.getLogger("steel")

# Dense bf16 tensor-core peak FLOP/s per GPU, by a substring of `torch.cuda.get_device_name()`.
# Most specific names first. Sources: NVIDIA data sheets (dense, without sparsity).
PEAK_FLOPS: list[tuple[str, float]] = [
    ("H100 PCIe", 756e12),
    ("H100 NVL", 835e12),
    # The PCIe and NVL cards of H800/H200 (names "NVIDIA H800 PCIe", "NVIDIA H200 NVL") matched the SXM rows below:
    # 989.4e12, which understated their MFU by 24% and 16%. Data sheets: 1,513 and 1,671 TFLOPS with sparsity.
    ("H800 PCIe", 756e12),
    ("H200 NVL", 835e12),
    # H100 SXM: 132 SMs x 4 tensor cores x 1024 dense bf16 FLOPs/clock x 1.83 GHz boost = 989.4e12
    # (the data sheet's 1,979 TFLOPS is with sparsity); H800 and H200 have the same SMs and clocks.
    ("H100", 989.4e12),  # SXM
    ("H800", 989.4e12),  # Steel's GPU; same compute as H100 SXM (interconnect differs)
    ("H200", 989.4e12),
    ("H20", 148e12),
    ("B200", 2250e12),
    ("A100", 312e12),
    ("A800", 312e12),
    ("L40S", 362e12),
    ("L40", 181e12),
    ("A6000", 155e12),
    ("A10G", 70e12),
    ("L4", 121e12),
    ("RTX 4090", 165e12),
    ("RTX 3090", 71e12),
    ("V100", 125e12),  # fp16
    ("T4", 65e12),  # fp16
]


def peak_flops(device: torch.device) -> tuple[float | None, str]:
    """(peak FLOP/s of one device or None when unknown, device name)."""
    if device.type != "cuda":
        return None, "cpu"
    name = torch.cuda.get_device_name(device)
    for key, value in PEAK_FLOPS:
        if key in name:
            return value, name
    return None, name


def memory_gb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**30
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux, bytes on macOS
    return rss / (2**30 if sys.platform == "darwin" else 2**20)


class MetricsLogger:
    """Writes on rank 0 only; `truncate(step)` drops records after a resumed checkpoint's step."""

    def __init__(self, run_dir: Path, enabled: bool, tensorboard: bool, wandb: bool, wandb_project: str, config: dict):
        self.enabled = enabled
        self.path = Path(run_dir) / "metrics.jsonl"
        self.tb = self.wandb = None
        # The SummaryWriter opens at `truncate(step)` (the resume step is known then) or at the first log.
        self._tb_dir = Path(run_dir) / "tb" if enabled and tensorboard else None
        if not enabled:
            return
        if tensorboard:
            from torch.utils.tensorboard import SummaryWriter  # noqa: F401 (a missing tensorboard fails here)
        if wandb:
            try:
                import wandb as wb
            except ImportError:
                raise RuntimeError("log.wandb: true but wandb is not installed (pip install steel-llm[wandb])") from None
            # One W&B run per run_dir: its id is kept in RUN_DIR/wandb_run_id, so a resume continues the same
            # W&B run (without an id every resume started a new one).
            id_file = Path(run_dir) / "wandb_run_id"
            run_id = id_file.read_text(encoding="utf-8").strip() if id_file.exists() else ""
            if not run_id:
                run_id = secrets.token_hex(4)  # W&B run ids: [a-z0-9], 8 characters as its own
                tmp = id_file.with_suffix(".tmp")
                tmp.write_text(run_id + "\n", encoding="utf-8")
                os.replace(tmp, id_file)
            self.wandb = wb.init(project=wandb_project, dir=str(run_dir), config=config, id=run_id, resume="allow")

    def _open_tb(self, purge_step: int | None = None) -> None:
        if self._tb_dir is None or self.tb is not None:
            return
        from torch.utils.tensorboard import SummaryWriter

        self.tb = SummaryWriter(str(self._tb_dir), purge_step=purge_step)

    def truncate(self, step: int) -> None:
        """Keep only records with `step <= step` (a resume recomputes the later ones).

        TensorBoard's event files are append-only: the writer opens with `purge_step=step + 1`, which makes
        readers drop the points of steps > `step` logged before (a crash after the last checkpoint left them,
        and the curve folded back at the resume).
        """
        if self.tb is not None and self._tb_dir is not None:  # opened by an earlier log: reopen with the purge
            self.tb.close()
            self.tb = None
        self._open_tb(purge_step=step + 1)
        if not self.enabled or not self.path.exists():
            return
        keep = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                if json.loads(line)["step"] <= step:
                    keep.append(line)
            except (json.JSONDecodeError, KeyError):
                break  # a line cut by a crash: everything after it is recomputed
        # NOTE: a temp file renamed over the old one: rewritten in place (emptied at open, then written), a kill
        # in between left metrics.jsonl empty or cut, and the records up to the checkpoint were lost for good.
        tmp = self.path.with_name(self.path.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            # NOTE: the old file's mode (the temp file had the default: a chmod'ed metrics.jsonl was 0644 again)
            os.fchmod(f.fileno(), os.stat(self.path).st_mode & 0o7777)
            f.write("".join(k + "\n" for k in keep))
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, self.path)

    def log(self, step: int, values: dict) -> None:
        if not self.enabled:
            return
        tps, cps = values.get("tokens_per_s", 0.0), values.get("computed_per_s")
        # With padding (SFT without packing) MFU counts the padded positions too, which tok/s leaves out: say so.
        padded = f" ({cps:.0f} computed with padding)" if cps is not None and round(cps) != round(tps) else ""
        log.info(
            "step %d | loss %.4f | lr %.3g | grad norm %.3g | %.0f tok/s%s | MFU %s | mem %.2f GB",
            step, values.get("loss", float("nan")), values.get("lr", float("nan")),
            values.get("grad_norm", float("nan")), tps, padded,
            "unknown" if values.get("mfu") is None else f"{100 * values['mfu']:.1f}%", values.get("mem_gb", 0.0),
        )
        # NOTE: a non-finite float is written as null: json.dumps wrote a bare NaN, which strict JSON readers
        # (jq, JSON.parse) refuse; TensorBoard and W&B below keep the NaN point.
        record = {k: None if isinstance(v, float) and not math.isfinite(v) else v for k, v in values.items()}
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps({"step": step, **record}, allow_nan=False) + "\n")
        self._open_tb()
        for k, v in values.items():
            if isinstance(v, (int, float)) and v is not None:
                if self.tb is not None:
                    self.tb.add_scalar(f"train/{k}", v, step)
        if self.wandb is not None:
            self.wandb.log({k: v for k, v in values.items() if v is not None}, step=step)

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()
        if self.wandb is not None:
            self.wandb.finish()


def read_metrics(run_dir: str | Path) -> list[dict]:
    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():
        return []
    lines = path.read_text(encoding="utf-8").splitlines()
    out = []
    for i, x in enumerate(lines, 1):
        if not x.strip():
            continue
        try:
            out.append(json.loads(x))
        except json.JSONDecodeError:
            if i == len(lines):  # the last line cut by a crash (or being written): the resume rewrites it
                break
            raise ValueError(f"{path}:{i}: not a JSON metrics record") from None
    return out
