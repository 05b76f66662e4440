"""`steel plot RUN_DIR`: loss and learning-rate curves from metrics.jsonl as a PNG."""

from __future__ import annotations

from pathlib import Path

from steel.train.metrics import read_metrics


def plot_run(run_dir: str | Path, out: str | Path | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    path = Path(run_dir) / "metrics.jsonl"
    if not path.is_file():  # a mistyped RUN_DIR read as a run that had logged nothing yet
        raise ValueError(f"{path}: not found (RUN_DIR is the run_dir of a `steel train` run)")
    records = [r for r in read_metrics(run_dir) if r.get("loss") is not None]
    if not records:
        raise ValueError(f"{path}: no logged steps to plot")
    steps = [r["step"] for r in records]
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(8, 6), sharex=True)
    ax1.plot(steps, [r["loss"] for r in records], lw=1)
    ax1.set_ylabel("train loss")
    ax1.grid(alpha=0.3)
    ax2.plot(steps, [r["lr"] for r in records], lw=1, color="tab:orange")
    ax2.set_ylabel("learning rate")
    ax2.set_xlabel("step")
    ax2.grid(alpha=0.3)
    fig.suptitle(str(run_dir))
    fig.tight_layout()
    out = Path(out) if out else Path(run_dir) / "curves.png"
    if not out.suffix:  # matplotlib adds ".png" to a name without one: print the file that is written
        out = out.with_name(out.name + ".png")
    try:
        out.parent.mkdir(parents=True, exist_ok=True)  # as `steel eval --out` does
        fig.savefig(out, dpi=100)
    except (OSError, ValueError) as e:  # a file in the way, an unknown format: matplotlib's message omits the file
        raise ValueError(f"{out}: cannot write the plot ({getattr(e, 'strerror', None) or e})") from None
    finally:
        plt.close(fig)
    return out
