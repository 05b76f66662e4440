"""`steel train CONFIG [--set k=v] [--add-data DIR]` and `steel plot RUN_DIR`."""

from __future__ import annotations

import argparse

from steel.cli import home_path


def _train(args: argparse.Namespace) -> int:
    from steel.cli import UserError
    from steel.data.loader import DataError
    from steel.train.checkpoint import CheckpointError
    from steel.train.distributed import report_setup_error
    from steel.train.trainer import NonFiniteError, fit, setup

    try:
        cfg = setup(args.config, args.set)
    except Exception as e:  # under torchrun, every rank stops with it (README: "a config error waits for the rendezvous")
        report_setup_error(e)
    try:
        return fit(cfg, args.add_data)
    except (DataError, CheckpointError, NonFiniteError) as e:
        raise UserError(str(e)) from None


def _plot(args: argparse.Namespace) -> int:
    from steel.cli import UserError
    from steel.train.plot import plot_run

    try:
        out = plot_run(args.run_dir, args.out)
    except ValueError as e:
        raise UserError(str(e)) from None
    print(out)
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("train", help="pretrain (resumes from RUN_DIR's newest checkpoint)")
    p.add_argument("config", type=home_path, help="train config YAML (see configs/train/)")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override a config field, e.g. optim.lr=1e-3 (repeatable)")
    p.add_argument("--add-data", action="append", default=[], metavar="DIR", type=home_path,
                   help="append a prepared data dir at this resume (merged and reshuffled with the unseen rest; repeatable)")
    p.set_defaults(func=_train, startup_exchange=True)  # an argument error reaches the other ranks
    p = subparsers.add_parser("plot", help="PNG of the loss and LR curves of a run")
    p.add_argument("run_dir", type=home_path)
    p.add_argument("--out", default=None, type=home_path, help="output PNG (default RUN_DIR/curves.png)")
    p.set_defaults(func=_plot)
