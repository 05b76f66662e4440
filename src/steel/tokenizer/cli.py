"""`steel tokenizer qwen|train`: build Qwen's tokenizer offline, or train a byte-level BPE."""

from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("tokenizer", help="build Qwen's tokenizer offline, or train a byte-level BPE")
    sub = p.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND", required=True)

    q = sub.add_parser("qwen", help="rebuild Qwen's tokenizer (151,646 ids) from dashscope's qwen.tiktoken")
    q.add_argument("out_dir", metavar="OUT_DIR", help="directory to write tokenizer.json, tokenizer_config.json, qwen.tiktoken")
    q.add_argument("--ranks", default=None, help="rank file to use instead of dashscope/resources/qwen.tiktoken")
    q.add_argument("--default-system", default=None, help="system message the chat template inserts when none is given")
    q.set_defaults(func=_qwen)


def _qwen(args: argparse.Namespace) -> int:
    from steel.tokenizer.qwen import QWEN_SPECIAL_IDS, build_qwen_tokenizer

    out = build_qwen_tokenizer(args.out_dir, ranks_path=args.ranks, default_system=args.default_system)
    specials = ", ".join(f"{k}={v}" for k, v in QWEN_SPECIAL_IDS.items())
    print(f"wrote Qwen tokenizer to {out} (151,646 ids; {specials}; eos/pad <|endoftext|>, chat turns end with <|im_end|>)")
    return 0
