"""`steel eval mc|ppl|contamination`."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from steel.cli import UserError
from steel.infer.cli import add_model_args, resolve_device


def register(subparsers) -> None:
    ev = subparsers.add_parser(
        "eval", help="evaluate a model: multiple choice (C-Eval/CMMLU), perplexity, contamination"
    )
    sub = ev.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND")

    p = sub.add_parser("mc", help="C-Eval / CMMLU multiple-choice accuracy")
    add_model_args(p)
    p.add_argument("--task", required=True, choices=["ceval", "cmmlu"])
    p.add_argument(
        "--data",
        required=True,
        help="benchmark directory as released (dev/, val/ or test/, subject_mapping.json)",
    )
    p.add_argument("--split", default=None, help="default: val for ceval, test for cmmlu")
    p.add_argument("--shots", type=int, default=5, help="few-shot examples from dev/ (0..5)")
    p.add_argument("--mode", default="logprob", choices=["logprob", "generate"])
    p.add_argument(
        "--scoring",
        default="letter",
        choices=["letter", "continuation"],
        help="logprob mode: next-token logit of 'A'..'D' (benchmarks' code) or log P(' A') continuation (lm-eval-harness)",
    )
    p.add_argument("--cot", action="store_true", help="generate mode: explain step by step, then answer")
    p.add_argument(
        "--max-new-tokens", type=int, default=32, help="generate mode (CoT raises it to at least 512)"
    )
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--subjects", default=None, help="comma-separated subset (default: all in the split)")
    p.add_argument("--limit", type=int, default=None, help="at most N questions per subject")
    p.add_argument(
        "--out",
        default=None,
        help="JSON result file; a .md table and a .questions.jsonl are written beside it",
    )
    p.set_defaults(func=cmd_mc)

    p = sub.add_parser("ppl", help="perplexity over prepared chunks (a steel data prepare output)")
    add_model_args(p)
    p.add_argument("--data", required=True, help="DATA_DIR with manifest.json and chunk files")
    p.add_argument(
        "--seq-len",
        type=int,
        default=None,
        help="tokens per window (default: 1024, or the model's max_position_embeddings when smaller)",
    )
    p.add_argument(
        "--max-tokens", type=int, default=None, help="stop after scoring this many tokens (default: all)"
    )
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--out", default=None, help="JSON result file")
    p.set_defaults(func=cmd_ppl)

    p = sub.add_parser("contamination", help="n-gram overlap between training data and benchmark questions")
    p.add_argument(
        "--data",
        required=True,
        nargs="+",
        help="prepared chunk dirs and/or SFT/text files (json, jsonl, jsonl.zst)",
    )
    p.add_argument("--task", required=True, choices=["ceval", "cmmlu"])
    p.add_argument("--bench", required=True, help="benchmark directory as released")
    p.add_argument("--split", default=None, help="default: val for ceval, test for cmmlu")
    p.add_argument("--n", type=int, default=13, help="n-gram length in characters")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="a question is contaminated when this share of its n-grams occurs",
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        help="tokenizer to decode prepared chunks (default: none, chunk dirs then need one)",
    )
    p.add_argument("--out", default=None, help="JSON result file")
    p.set_defaults(func=cmd_contamination)

    ev.set_defaults(func=lambda args: (ev.print_help(), 2)[1])


def cmd_mc(args) -> int:
    import torch

    from steel.eval.mc import McOptions, load_benchmark, markdown_report, run_mc
    from steel.infer.load import load_model, load_tokenizer

    if args.batch_size < 1:
        raise UserError("--batch-size: must be >= 1")
    opts = McOptions(
        task=args.task,
        data=Path(args.data),
        split=args.split,
        shots=args.shots,
        mode=args.mode,
        scoring=args.scoring,
        cot=args.cot,
        max_new_tokens=args.max_new_tokens,
        batch_size=args.batch_size,
        subjects=[s.strip() for s in args.subjects.split(",") if s.strip()] if args.subjects else None,
        limit=args.limit,
    )
    if not 0 <= opts.shots <= 5:
        raise UserError(f"--shots {opts.shots}: expected 0..5")
    load_benchmark(opts)  # bad data fails here, before a large model is loaded
    torch.manual_seed(0)
    tokenizer = load_tokenizer(args.model, args.tokenizer)
    model = load_model(args.model, resolve_device(args.device), args.dtype)
    result = run_mc(model, tokenizer, opts, model_name=str(args.model))
    md = markdown_report(result)
    print(md)
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
        out.with_suffix(".md").write_text(md, encoding="utf-8")
        with out.with_suffix(".questions.jsonl").open("w", encoding="utf-8") as f:
            for d in opts.details:
                f.write(json.dumps(d, ensure_ascii=False) + "\n")
    return 0


def cmd_ppl(args) -> int:
    from steel.eval.ppl import perplexity
    from steel.infer.load import load_model, max_positions

    model = load_model(args.model, resolve_device(args.device), args.dtype)
    seq_len = args.seq_len if args.seq_len is not None else min(1024, max_positions(model) or 1024)
    result = perplexity(model, Path(args.data), seq_len, args.batch_size, args.max_tokens)
    result["model"] = str(args.model)
    print(json.dumps(result, ensure_ascii=False, indent=1))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0


def cmd_contamination(args) -> int:
    from steel.eval.contamination import contamination_report, markdown_contamination

    result = contamination_report(
        [Path(d) for d in args.data],
        args.task,
        Path(args.bench),
        args.split,
        args.n,
        args.threshold,
        args.tokenizer,
    )
    print(markdown_contamination(result))
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        Path(args.out).write_text(json.dumps(result, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    return 0
