"""Run logs and progress bars shared by every long-running command.

Every run log opens with the code version, library versions, the machine and the resolved config
(as modded-nanogpt does), so a number in a log can always be traced to what produced it.
"""

from __future__ import annotations

import logging
import os
import platform
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TaskProgressColumn,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from steel import __version__

console = Console(stderr=True)


def git_revision() -> str:
    here = Path(__file__).resolve().parent
    try:
        # NOTE: only a checkout that tracks this very file is Steel's: an installed (non-editable) Steel in a
        # virtualenv inside the user's own repository reported that repository's commit as Steel's version.
        tracked = subprocess.run(["git", "ls-files", "--error-unmatch", "--", Path(__file__).name], cwd=here,
                                 capture_output=True, text=True, timeout=5)
        if tracked.returncode != 0:
            return "unknown"
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"], cwd=here, capture_output=True, text=True, timeout=5
        ).stdout.strip()
        return (rev + ("+dirty" if dirty else "")) if rev else "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def environment_report() -> dict:
    """Versions and machine, as a dict (also written into manifests and checkpoints)."""
    import importlib.metadata as md

    versions = {}
    for pkg in ("torch", "transformers", "tokenizers", "tiktoken", "numpy", "triton"):
        try:
            versions[pkg] = md.version(pkg)
        except md.PackageNotFoundError:
            versions[pkg] = None
    machine = {
        "host": platform.node(),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "cpus": os.cpu_count(),
    }
    try:
        import torch

        if torch.cuda.is_available():
            machine["gpus"] = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
            machine["cuda"] = torch.version.cuda
    except ImportError:
        pass
    return {"steel": __version__, "git": git_revision(), "versions": versions, "machine": machine}


def setup_run_log(log_file: str | Path | None, config_yaml: str | None = None, name: str = "steel") -> logging.Logger:
    """A logger writing to stderr (and `log_file` when given) whose first lines are versions, machine, config."""
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.propagate = False
    for h in list(logger.handlers):
        logger.removeHandler(h)
        h.close()
    fmt = logging.Formatter("%(asctime)s %(levelname)s %(message)s", "%Y-%m-%d %H:%M:%S")
    stream = logging.StreamHandler(sys.stderr)
    stream.setFormatter(fmt)
    logger.addHandler(stream)
    if log_file is not None:
        Path(log_file).parent.mkdir(parents=True, exist_ok=True)
        fh = logging.FileHandler(log_file, encoding="utf-8")
        fh.setFormatter(fmt)
        logger.addHandler(fh)
    env = environment_report()
    logger.info("steel %s (git %s) argv: %s", env["steel"], env["git"], " ".join(sys.argv))
    logger.info("versions: %s", ", ".join(f"{k} {v}" for k, v in env["versions"].items() if v))
    logger.info("machine: %s", ", ".join(f"{k}={v}" for k, v in env["machine"].items()))
    world = os.environ.get("WORLD_SIZE", "1")
    if world != "1":
        # Under torchrun this is rank 0's log: the machine line is rank 0's host only, so without this a
        # multi-process run read as a one-process one (its global batch and tokens/s scale with the world size).
        local = os.environ.get("LOCAL_WORLD_SIZE")
        per_node = ""
        if local and local.isdigit() and world.isdigit() and int(local) > 0:
            nodes = -(-int(world) // int(local))
            per_node = f" ({local} per node, {nodes} node{'s' if nodes != 1 else ''})"
        logger.info("launch: torchrun, %s processes%s; this log is rank %s's", world, per_node,
                    os.environ.get("RANK", "0"))
    if config_yaml is not None:
        logger.info("resolved config:\n%s", config_yaml.rstrip())
    return logger


def run_log_handlers() -> list[tuple[logging.Logger, logging.FileHandler]]:
    """The run log files attached now: (logger, its FileHandler) for every logger that has one."""
    loggers = [logging.getLogger()]
    loggers += [x for x in logging.Logger.manager.loggerDict.values() if isinstance(x, logging.Logger)]
    return [(lg, h) for lg in loggers for h in lg.handlers if isinstance(h, logging.FileHandler)]


def log_error_to_run_logs(message: str, handlers: list[tuple[logging.Logger, logging.FileHandler]],
                          exc_info=None) -> None:
    """Write `message` as an ERROR record to the given run log files only (stderr has it already), then flush.

    The error that stops a command (printed as `steel: error: ...` by `steel.cli`) used to reach stderr
    only: the run's log ended at the last line before it.
    """
    if isinstance(exc_info, BaseException):
        # NOTE: logging reads exc_info as a (type, value, traceback) tuple; the exception itself failed to format
        # ('--- Logging error --- ... not subscriptable' on stderr) and the run log got neither line nor traceback.
        exc_info = (type(exc_info), exc_info, exc_info.__traceback__)
    for lg, h in handlers:
        try:
            record = lg.makeRecord(lg.name, logging.ERROR, __file__, 0, "%s", (message,), exc_info)
            h.handle(record)
            h.flush()
        except Exception:  # a log that cannot be written must not hide the error itself
            pass


_QUIET_HF = False  # in a `steel` command (cli.main) whose stderr is not a terminal


def quiet_hf_progress_bars(command: bool = False) -> None:
    """With STEEL_NO_PROGRESS set, or in a `steel` command (`command`: cli.main) whose stderr is not a
    terminal, transformers' and huggingface_hub's tqdm bars ("Loading weights", "Writing model shards") off for
    the rest of the process, as Steel's own (`progress_bar`) are: `make demo 2>&1 | tee log` kept "Writing
    model shards: 100%|█...|" lines among the log lines.

    NOTE: the switch is process-wide, so library calls (load_model, export) outside a command follow
    STEEL_NO_PROGRESS alone: in a Jupyter notebook stderr is no terminal to rich, yet the bars show there, and
    one load_model call turned them off for the rest of the kernel (downloads included).
    """
    global _QUIET_HF
    if command:
        _QUIET_HF = not console.is_terminal
    if not os.environ.get("STEEL_NO_PROGRESS") and not _QUIET_HF:
        return
    if "transformers" in sys.modules:  # imported already: it read HF_HUB_DISABLE_PROGRESS_BARS then
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # huggingface_hub's too
    else:  # both read it at import: no 0.65 s transformers import for commands that need none
        os.environ["HF_HUB_DISABLE_PROGRESS_BARS"] = "1"


def command_ended() -> None:
    """cli.main's last step: library calls made after a command follow STEEL_NO_PROGRESS alone again in what
    they switch off. The bars a command switched off stay off for the rest of the process (a `steel.cli.main`
    call in a notebook silences them for the kernel): HF_HUB_DISABLE_PROGRESS_BARS, set when transformers is not
    imported yet, is read once at import, after which huggingface_hub cannot turn them back on."""
    global _QUIET_HF
    _QUIET_HF = False


@contextmanager
def progress_bar(description: str, total: float | None, unit: str = "", disable: bool | None = None) -> Iterator:
    """A rich progress bar with ETA; yields `advance(n)`. Disabled when stderr is not a terminal unless forced."""
    if disable is None:
        disable = not console.is_terminal or bool(os.environ.get("STEEL_NO_PROGRESS"))
    if disable:
        yield lambda n=1: None
        return
    columns = [
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        TaskProgressColumn(),
        MofNCompleteColumn() if unit == "" else TextColumn("{task.completed:,.0f}/{task.total:,.0f} " + unit),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    ]
    with Progress(*columns, console=console, transient=False) as prog:
        task = prog.add_task(description, total=total)
        yield lambda n=1: prog.advance(task, n)


class Timer:
    def __init__(self):
        self.start = time.perf_counter()

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.start
