"""`steel tokenizer qwen|train`: build Qwen's tokenizer offline, or train a byte-level BPE."""

from __future__ import annotations

import argparse

from steel.cli import home_path


def register(subparsers) -> None:
    p = subparsers.add_parser("tokenizer", help="build Qwen's tokenizer offline, or train a byte-level BPE")
    sub = p.add_subparsers(dest="tokenizer_command", metavar="SUBCOMMAND", required=True)

    q = sub.add_parser("qwen", help="rebuild Qwen's tokenizer (151,646 ids) from dashscope's qwen.tiktoken")
    q.add_argument(
        "out_dir",
        metavar="OUT_DIR",
        type=home_path,
        help="directory to write tokenizer.json, tokenizer_config.json, qwen.tiktoken",
    )
    q.add_argument(
        "--ranks", default=None, type=home_path, help="rank file to use instead of dashscope/resources/qwen.tiktoken"
    )
    q.add_argument(
        "--default-system", default=None, help="system message the chat template inserts when none is given"
    )
    q.add_argument(
        "--overwrite", action="store_true",
        help="replace another tokenizer (or other files) in OUT_DIR (refused otherwise; the same Qwen build is kept)",
    )
    q.set_defaults(func=_qwen)

    t = sub.add_parser(
        "train", help="train a byte-level BPE (Qwen's pre-tokenizer and special tokens) on your corpus"
    )
    t.add_argument(
        "--input",
        nargs="+",
        type=home_path,
        required=True,
        metavar="PATH",
        help="jsonl/jsonl.zst/jsonl.gz/txt files or directories",
    )
    t.add_argument(
        "--vocab-size",
        type=int,
        required=True,
        help="total ids, the 3 special tokens included (they come last)",
    )
    t.add_argument("--out", required=True, metavar="OUT_DIR", type=home_path, help="directory to write the tokenizer to")
    t.add_argument("--min-frequency", type=int, default=2, help="a pair must occur this often to be merged")
    t.add_argument(
        "--limit-docs", type=int, default=None,
        help="train on N documents (all, if there are fewer) spread evenly over the inputs, and within a "
        "directory over its files (one holding fewer leaves its share to the others)",
    )
    t.add_argument("--field", default="text", help="JSON field holding the text (jsonl inputs)")
    t.add_argument(
        "--overwrite", action="store_true", help="replace the files of a non-empty OUT_DIR (refused otherwise)"
    )
    t.set_defaults(func=_train)


def _qwen(args: argparse.Namespace) -> int:
    import filecmp
    import os
    import tempfile
    from pathlib import Path

    from steel.tokenizer.qwen import HF_TOKENIZER_EXTRAS, QWEN_SPECIAL_IDS, build_qwen_tokenizer
    from steel.tokenizer.train import check_out_dir

    target = Path(args.out_dir)
    if not args.overwrite and target.is_dir() and any(target.iterdir()):
        # Rebuilding the same tokenizer into its own directory is harmless (the build is deterministic);
        # anything else there (a trained BPE that data was prepared with) would be replaced silently.
        with tempfile.TemporaryDirectory() as tmp:
            fresh = build_qwen_tokenizer(tmp, ranks_path=args.ranks, default_system=args.default_system)
            same = all((target / f.name).is_file() and filecmp.cmp(f, target / f.name, shallow=False)
                       for f in Path(fresh).iterdir())
        # transformers also reads these: beside the same files, they make another tokenizer
        same = same and not any(os.path.lexists(target / name) for name in HF_TOKENIZER_EXTRAS)
        if same:
            print(f"{target}: already holds this Qwen tokenizer, nothing to do")
            return 0
    check_out_dir(args.out_dir, args.overwrite, what="OUT_DIR")
    out = build_qwen_tokenizer(args.out_dir, ranks_path=args.ranks, default_system=args.default_system)
    from tokenizers import Tokenizer

    tok = Tokenizer.from_file(str(Path(out) / "tokenizer.json"))  # what was written (`--ranks` may be another file)
    specials = ", ".join(f"{k}={tok.token_to_id(k)}" for k in QWEN_SPECIAL_IDS)
    print(
        f"wrote Qwen tokenizer to {out} ({tok.get_vocab_size():,} ids; {specials}; eos/pad <|endoftext|>, "
        "chat turns end with <|im_end|>)"
    )
    return 0


def _train(args: argparse.Namespace) -> int:
    import time

    from steel.tokenizer.train import train_tokenizer

    start = time.perf_counter()
    read: dict = {}
    tok = train_tokenizer(
        args.input,
        args.out,
        args.vocab_size,
        args.min_frequency,
        args.limit_docs,
        args.field,
        overwrite=args.overwrite,
        read=read,
    )
    n = tok.get_vocab_size()
    note = (
        ""
        if n == args.vocab_size
        else f" (asked {args.vocab_size}: the corpus has no more pairs above --min-frequency)"
    )
    files = f"{read['files']:,}" + (f" of the {read['of_files']:,}" if read["files"] < read["of_files"] else "")
    print(
        f"wrote a byte-level BPE with {n:,} ids{note} to {args.out} in {time.perf_counter() - start:.1f} s, "
        f"trained on {read['documents']:,} documents from {files} files; "
        f"<|endoftext|>={n - 3}, <|im_start|>={n - 2}, <|im_end|>={n - 1}"
    )
    return 0
