"""`steel sft CONFIG [--set k=v]`."""

from __future__ import annotations

import argparse

from steel.cli import home_path


def _sft(args: argparse.Namespace) -> int:
    from steel.cli import UserError
    from steel.sft.train import fit, setup
    from steel.train.checkpoint import CheckpointError
    from steel.train.distributed import report_setup_error
    from steel.train.trainer import NonFiniteError

    # (`~` in the config's paths is the home directory: SftConfig and its sections expand it as they are built)
    try:
        cfg = setup(args.config, args.set)
    except Exception as e:  # under torchrun, every rank stops with it (README: "a config error waits for the rendezvous")
        report_setup_error(e)
    try:
        return fit(cfg)
    except (CheckpointError, NonFiniteError) as e:
        raise UserError(str(e)) from None


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "sft", help="supervised fine-tuning on chat data (resumes from RUN_DIR's newest checkpoint)"
    )
    p.add_argument("config", type=home_path, help="SFT config YAML (see configs/sft/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. optim.lr=1e-5 (repeatable)")
    p.set_defaults(func=_sft, startup_exchange=True)  # an argument error reaches the other ranks
