"""`steel <command>`: a thin argparse front end. Each area registers its own subcommands.

An area module exposes `register(subparsers)` which adds its parsers and sets `func` on each; the
function receives the parsed args and returns an exit status. Config problems (`ConfigError`) and
bad input are reported as one line on stderr with exit status 2, never as a traceback.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import os
import sys

from steel import __version__
from steel.config import ConfigError

# Modules that contribute subcommands, in the order `steel --help` lists them.
COMMAND_MODULES = [
    "steel.data.cli",  # steel data prepare|merge|inspect
    "steel.tokenizer.cli",  # steel tokenizer qwen|train
    "steel.model_cli",  # steel model info|check-causal (outside steel.model, whose import loads torch)
    "steel.train.cli",  # steel train, steel plot
    "steel.sft.cli",  # steel sft
    "steel.eval.cli",  # steel eval mc|ppl|contamination
    "steel.infer.cli",  # steel generate, steel chat, steel export
]


class UserError(Exception):
    """Bad input from the user (a file, a flag): printed as one line, exit status 2."""


# What the running command has finished and put in place (`done_so_far`), for the line of a Ctrl-C or SIGTERM that
# comes after it. NOTE: a prepare interrupted right after its output was moved into OUT printed a bare
# "steel: interrupted", and the user ran hours of preparation again for an output that was complete (session 16).
_done: list[str] = []


def done_so_far(note: str) -> None:
    """The running command's result is complete and in place; `note` says what and where. A Ctrl-C or SIGTERM after
    this ends the command as before (status 130: it stopped there), with the line `steel: interrupted after NOTE`."""
    _done.append(note)


def home_path(value: str) -> str:
    """argparse `type=` of a path argument: `~` is the home directory, also where a shell leaves it as it is
    (`--add-data=~/d`, a quoted "~/my data"); taken literally, it named (or created) ./~/d."""
    return os.path.expanduser(value)


class _Parser(argparse.ArgumentParser):
    """argparse's parser (every subcommand's too: subparsers take their parent's class), whose argument error of a
    command that starts ranks together (`set_defaults(startup_exchange=True)`: train, sft) reaches the other
    ranks under torchrun.

    NOTE: argparse printed the error and exited (status 2) before any config was read: under torchrun that rank
    ended alone (a typo in one node's command line) and the others waited for it until
    parallel.timeout_minutes. It now joins their startup exchange, so they stop with `rank N stopped at startup:
    steel train: <the error>`; it waits there for them as a refused rank does. So does `--help` (its exit 0).
    """

    told_command = False  # `main` sets it on the parsed command's parser for an error of that command's line

    def _exchange(self) -> bool:
        """Whether this parser's command starts ranks together and this process is one of several."""
        exchange = self.told_command or self.get_default("startup_exchange")
        return bool(exchange) and os.environ.get("WORLD_SIZE", "").strip() not in ("", "1")

    def error(self, message: str):
        if self._exchange():
            self.print_usage(sys.stderr)
            sys.stderr.write(f"{self.prog}: error: {message}\n")  # argparse's lines, before the wait
            sys.stderr.flush()
            self._tell_the_others(f"{self.prog}: {message}")
            self.exit(2)
        super().error(message)

    def exit(self, status: int = 0, message: str | None = None):
        # NOTE: `--help` (argparse's help action: the help printed, then exit(0)) ended this rank alone too,
        # and the others waited for it until parallel.timeout_minutes.
        if status == 0 and self._exchange():
            if message:
                sys.stderr.write(message)
                message = None
            sys.stdout.flush()
            self._tell_the_others(f"{self.prog}: --help: this rank printed the help instead of running")
        super().exit(status, message)

    @staticmethod
    def _tell_the_others(refusal: str) -> None:
        """Join the startup exchange as a refused rank: the others stop with `rank N stopped at startup:
        REFUSAL`; returns once they have read it."""
        from steel.train.distributed import report_setup_error

        with contextlib.suppress(UserError):  # raised again once told: this rank has printed its own lines
            report_setup_error(UserError(refusal))


def build_parser() -> argparse.ArgumentParser:
    parser = _Parser(prog="steel", description="Steel: pretrain a Chinese-first LLM from scratch.")
    parser.add_argument("--version", action="version", version=f"steel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as e:
            # Only tolerate the area module itself being absent (an area not built yet), never a missing dependency.
            if e.name is None or not (name == e.name or name.startswith(e.name + ".")):
                raise
            continue
        module.register(sub)
    return parser


def _command_parser(parser: argparse.ArgumentParser, args: argparse.Namespace) -> argparse.ArgumentParser:
    """The parser of the deepest command `args` names (`steel eval mc`'s), or `parser` when none."""
    while True:
        sub = next((a for a in parser._actions if isinstance(a, argparse._SubParsersAction)), None)
        name = getattr(args, sub.dest, None) if sub is not None else None
        if name not in (sub.choices if sub is not None else {}):
            return parser
        parser = sub.choices[name]


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extras = parser.parse_known_args(argv)
    if extras:  # parse_args's own check: the parsed command says whether the ranks hear of it
        # NOTE: with the command's usage (argparse reports them on the root parser: `steel export --model R --out
        # H` printed `usage: steel [-h] [--version] COMMAND ...`, nothing of the `src out` that export takes).
        command = _command_parser(parser, args)
        command.told_command = bool(getattr(args, "startup_exchange", False))
        command.error(f"unrecognized arguments: {' '.join(extras)}")
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    from steel.runlog import command_ended, log_error_to_run_logs, quiet_hf_progress_bars, run_log_handlers

    # STEEL_NO_PROGRESS or stderr not a terminal: transformers' and huggingface_hub's bars too, in every command
    quiet_hf_progress_bars(command=True)
    # The run log files this command opens (a handler left attached by an earlier command of the same
    # process is not this command's log) get the error that ends it, as the last line.
    before = [h for _, h in run_log_handlers()]  # the handlers themselves (held, so no id is reused)

    def to_run_log(message: str, exc_info=None) -> None:
        new = [(lg, h) for lg, h in run_log_handlers() if not any(h is b for b in before)]
        log_error_to_run_logs(message, new, exc_info)

    def to_stderr(line: str) -> None:
        # NOTE: one write, newline included: print() writes the text and the newline apart, and under torchrun
        # the ranks' identical errors interleaved on the shared stderr ("steel: error: A steel: error: B\n\n").
        sys.stderr.write(line + "\n")
        sys.stderr.flush()

    _done.clear()
    try:
        return int(args.func(args) or 0)
    except (ConfigError, UserError) as e:
        to_stderr(f"steel: error: {e}")
        to_run_log(f"steel: error: {e}")
        return 2
    except KeyboardInterrupt:
        line = "steel: interrupted" + (f" after {_done[-1]}" if _done else "")
        to_stderr(line)
        to_run_log(line)
        return 130
    except BrokenPipeError:  # `steel ... | head`: the reader left; stop quietly, as other tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at exit's flush
        return 141
    except OSError as e:
        # A path that is not a directory, a read-only or full disk: one line naming the file, not a
        # traceback (STEEL_TRACEBACK=1 shows it), exit status 1: the run failed.
        if os.environ.get("STEEL_TRACEBACK"):
            to_run_log(f"steel: error: {e}", e)
            raise
        to_stderr(f"steel: error: {e} (STEEL_TRACEBACK=1 shows where)")
        to_run_log(f"steel: error: {e} (STEEL_TRACEBACK=1 shows where)")
        return 1
    except Exception as e:  # a bug: the traceback goes to stderr as before, and into the run log too
        to_run_log(f"steel: error: {type(e).__name__}: {e}", e)
        raise
    finally:
        _done.clear()
        _leave_process_group()
        command_ended()


def _leave_process_group() -> None:
    """A command that ends with the process group still up (train/sft refused or failed at startup: only a
    finished fit() destroys it) leaves it, so the rank exits cleanly: a gloo rank that exited with it up
    could abort at interpreter exit ("terminate called without an active exception"), its exit status 2
    turned into a SIGABRT under torchrun. A later command in the same single process (no torchrun) works;
    under torchrun a process runs one distributed command (a second one cannot rendezvous again)."""
    dist = sys.modules.get("torch.distributed")
    if dist is None or not dist.is_available():
        return
    joined = dist.is_initialized() or os.environ.get("WORLD_SIZE", "1") not in ("", "1")
    if joined:
        from steel.train.distributed import destroy, free_process_groups

        destroy()
        free_process_groups()


if __name__ == "__main__":
    # NOTE: run as `python -m steel.cli` (the torchrun launch) this file is `__main__`, a second copy of
    # the module: command modules import `steel.cli` and raise *its* UserError, which this copy's main()
    # would not catch (a traceback, exit 1). Run the real module's main() instead.
    from steel.cli import main as _main

    sys.exit(_main())
