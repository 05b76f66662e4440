"""`steel eval mc|ppl|contamination`."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path
from typing import Any, TypeVar

from steel.cli import UserError, home_path
from steel.config import ConfigError, from_dict, read_yaml
from steel.infer.cli import add_model_args, resolve_device

T = TypeVar("T")


def register(subparsers) -> None:
    ev = subparsers.add_parser(
        "eval", help="evaluate a model: multiple choice (C-Eval/CMMLU), perplexity, contamination"
    )
    sub = ev.add_subparsers(dest="eval_command", metavar="EVAL_COMMAND")

    p = sub.add_parser("mc", help="C-Eval / CMMLU multiple-choice accuracy")
    add_model_args(p)
    # Defaults are McOptions' (steel/eval/mc.py): a flag left out keeps the --config file's value.
    p.add_argument(
        "--config",
        default=None,
        type=home_path,
        help="YAML with the benchmark fields (see configs/eval/); flags given override it",
    )
    p.add_argument("--task", default=None, choices=["ceval", "cmmlu"], help="required unless in --config")
    p.add_argument(
        "--data",
        default=None,
        type=home_path,
        help="benchmark directory as released (dev/, val/ or test/, subject_mapping.json)",
    )
    p.add_argument("--split", default=None, help="default: val for ceval, test for cmmlu")
    p.add_argument("--shots", type=int, default=None, help="few-shot examples from dev/ (0..5, default 5)")
    p.add_argument("--mode", default=None, choices=["logprob", "generate"], help="default: logprob")
    p.add_argument(
        "--scoring",
        default=None,
        choices=["letter", "continuation"],
        help="logprob mode: next-token logit of 'A'..'D' (benchmarks' code, default) or log P(' A') "
        "continuation (lm-eval-harness)",
    )
    p.add_argument(
        "--cot",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="generate mode: explain step by step, then answer",
    )
    p.add_argument(
        "--max-new-tokens",
        type=int,
        default=None,
        help="generate mode, default 32 (CoT raises it to at least 512)",
    )
    p.add_argument("--batch-size", type=int, default=None, help="default: 8")
    p.add_argument("--subjects", default=None, help="comma-separated subset (default: all in the split)")
    p.add_argument("--limit", type=int, default=None, help="at most N questions per subject")
    p.add_argument(
        "--out",
        default=None,
        type=home_path,
        help="JSON result file; a .md table and a .questions.jsonl are written beside it",
    )
    p.set_defaults(func=cmd_mc)

    p = sub.add_parser("ppl", help="perplexity over prepared chunks (a steel data prepare output)")
    add_model_args(p)
    p.add_argument(
        "--config",
        default=None,
        type=home_path,
        help="YAML with the fields below (see configs/eval/); flags given override it",
    )
    p.add_argument("--data", default=None, action="append", type=home_path,
                   help="DATA_DIR with manifest.json and chunk files (one)")
    p.add_argument(
        "--seq-len",
        type=int,
        default=None,
        help="tokens per window (default: 1024, or the model's max_position_embeddings when smaller)",
    )
    p.add_argument(
        "--max-tokens",
        type=int,
        default=None,
        help="score exactly this many tokens (all the data has, when that is fewer; default: all), shared among "
        "the sources in proportion to their size; each source's windows are taken from its start, the last one "
        "cut to fit",
    )
    p.add_argument("--batch-size", type=int, default=None, help="default: 4")
    p.add_argument("--out", default=None, type=home_path, help="JSON result file")
    p.set_defaults(func=cmd_ppl)

    p = sub.add_parser("contamination", help="n-gram overlap between training data and benchmark questions")
    p.add_argument(
        "--data",
        required=True,
        type=home_path,
        nargs="+",
        help="prepared chunk dirs and/or SFT/text files (.json, .jsonl, .txt; also zstd or gzip compressed)",
    )
    p.add_argument("--task", required=True, choices=["ceval", "cmmlu"])
    p.add_argument("--bench", required=True, type=home_path, help="benchmark directory as released")
    p.add_argument("--split", default=None, help="default: val for ceval, test for cmmlu")
    p.add_argument("--n", type=int, default=13, help="n-gram length in characters (default: %(default)s)")
    p.add_argument(
        "--threshold",
        type=float,
        default=0.5,
        help="a question is contaminated when this share of its n-grams occurs (default: %(default)s)",
    )
    p.add_argument(
        "--tokenizer",
        default=None,
        type=home_path,
        help="tokenizer to decode prepared chunks (default: each chunk dir's tokenizer/, else the tokenizer "
        "it was prepared with, if its fingerprint matches)",
    )
    p.add_argument("--out", default=None, type=home_path, help="JSON result file")
    p.set_defaults(func=cmd_contamination)

    ev.set_defaults(func=lambda args: (ev.print_help(), 2)[1])


def options(cls: type[T], config: str | None, given: dict[str, Any]) -> T:
    """`cls` built from the --config file's fields, overridden by the flags given (`given`: field ->
    flag value, None where the flag was left out), with the project's typed loader (steel.config).

    Errors name their source: a flag (`--shots: must be in 0..5, got 7`), the file
    (`configs/eval/x.yaml: shot: unknown field (known: ...)`), or a field set in neither.
    A relative `data` path in the file is taken from the file's directory unless it exists from here.
    """
    cli = {k: v for k, v in given.items() if v is not None}
    data = read_yaml(config) if config else {}
    if config and isinstance(data.get("data"), str) and "data" not in cli:
        path = Path(os.path.expanduser(data["data"]))  # (`~name` of no user stays a name, as in a shell)
        if not path.is_absolute() and not path.exists():
            path = (Path(config).parent / path).resolve()
        data["data"] = str(path)
    try:
        return from_dict(cls, {**data, **cli})
    except ConfigError as e:
        msg = str(e)
        name = msg.split(":", 1)[0].split(".", 1)[0].split("[", 1)[0]
        flag = "--" + name.replace("_", "-")
        if name in cli:
            raise UserError(f"{flag}{msg[len(name):]}") from None
        if name in data:
            raise ConfigError(f"{config}: {msg}") from None
        if msg.endswith("required field is missing"):
            where = f" or set {name}: in {config}" if config else " (or set it in a --config file)"
            raise UserError(f"{flag} is required{where}") from None
        raise ConfigError(f"{config}: {msg}" if config else msg) from None


def with_source(result: dict, source: dict) -> dict:
    """`result` with the checkpoint and step its model came from (`steel.infer.load.resolve_model`) just after
    `model`: a run dir names no step, and its newest checkpoint changes while training goes on."""
    out = {}
    for k, v in result.items():
        out[k] = v
        if k == "model":
            out.update(source)
    return {**out, **source}


def cmd_mc(args) -> int:
    import torch

    from steel.eval.mc import McOptions, load_benchmark, markdown_report, run_mc
    from steel.infer.load import load_model, load_tokenizer, resolve_model

    subjects = None
    if args.subjects is not None:
        subjects = [s.strip() for s in args.subjects.split(",") if s.strip()]
    given = {
        "task": args.task,
        "data": args.data,
        "split": args.split,
        "shots": args.shots,
        "mode": args.mode,
        "scoring": args.scoring,
        "cot": args.cot,
        "max_new_tokens": args.max_new_tokens,
        "batch_size": args.batch_size,
        "subjects": subjects,
        "limit": args.limit,
    }
    file = read_yaml(args.config) if args.config else {}
    if args.scoring is None and "scoring" in file and (args.mode or file.get("mode")) == "generate":
        if file.get("mode") == "generate":
            # The file contradicts itself (a --mode generate repeating it too): McOptions.validate refuses only a
            # non-default scoring, so `scoring: letter` under the file's generate mode was silently ignored.
            raise ConfigError(f"{args.config}: scoring: only for mode logprob (got mode generate)")
        # A --mode generate overrides the file's logprob mode with what goes with it: cmmlu-5shot.yaml
        # (scoring: letter) is taken, and so is a `scoring: continuation` file (validate refused that one).
        given["scoring"] = McOptions.scoring  # the default: the file's scoring dropped
    opts = options(McOptions, args.config, given)
    if args.scoring is not None and opts.mode != "logprob":  # (the default `letter` cannot say it was given)
        raise UserError(f"--scoring: only for mode logprob (got mode {opts.mode})")
    if args.out and Path(args.out).suffix in (".md", ".jsonl"):  # the table/questions file would replace it
        raise UserError(f"--out {args.out}: give the JSON file (e.g. result.json); the .md table and the "
                        ".questions.jsonl go beside it")
    load_benchmark(opts)  # bad data fails here, before a large model is loaded
    torch.manual_seed(0)
    tokenizer = load_tokenizer(args.model, args.tokenizer)
    device = resolve_device(args.device)
    load_from, source = resolve_model(Path(args.model))
    model = load_model(load_from, device, args.dtype)
    bos = not no_bos_for(Path(args.model), tokenizer, "steel eval mc") if opts.mode == "logprob" else True
    result = with_source(run_mc(model, tokenizer, opts, model_name=str(args.model), bos=bos), source)
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


def trained_without_bos(model: Path, _seen: frozenset = frozenset()) -> bool:
    """Whether the weights at `model` were trained by Steel from the start, so never saw a BOS whatever the
    tokenizer adds: `steel train` starts from random weights and reads prepared chunks (no BOS), and SFT encodes
    without special tokens. Told from what the directories record: a run or checkpoint dir's config.yaml (a
    pretraining run: yes; SFT: its `init`, followed), an export's steel_export.json (its `trained_without_bos`,
    else its checkpoint, followed), else the model_type `steel` (a class only Steel trains) of an HF dir's
    config.json or, where a run's lineage cannot be followed (an SFT init gone), of its model_config.json.
    False when it cannot be told (a stock HF model: its tokenizer's BOS is what it was trained with)."""
    from steel.infer.load import PROVENANCE, _run_bases, _run_config, is_hf_dir, resolve_checkpoint

    key = os.path.abspath(model)
    if key in _seen or len(_seen) > 16:  # an export of itself, a loop of inits
        return False
    seen = _seen | {key}
    try:
        if is_hf_dir(model):
            try:
                rec = json.loads((model / PROVENANCE).read_text(encoding="utf-8"))
            except (OSError, ValueError):
                rec = None
            if isinstance(rec, dict):
                if isinstance(rec.get("trained_without_bos"), bool):  # told at export time: travels with a copy
                    return rec["trained_without_bos"]
                origin = rec.get("exported_from") if isinstance(rec.get("exported_from"), dict) else rec
                src = origin.get("checkpoint") or rec.get("source")
                if isinstance(src, str) and Path(src).exists():
                    return trained_without_bos(Path(src), seen)
            cfg = json.loads((model / "config.json").read_text(encoding="utf-8"))
            return isinstance(cfg, dict) and cfg.get("model_type") == "steel"
        ckpt = resolve_checkpoint(model)
        found = _run_config(ckpt) if ckpt is not None else None
    except (OSError, ValueError, UserError):
        return False
    if ckpt is None:
        return False
    # Where the lineage cannot be followed (no config.yaml; an SFT init deleted or moved), the checkpoint's
    # model type tells as an HF dir's does: an SFT of a stock init keeps the init's (llama, qwen2).
    try:
        steel_type = json.loads((ckpt / "model_config.json").read_text(encoding="utf-8")).get("model_type") == "steel"
    except (OSError, ValueError, AttributeError):
        steel_type = False
    if found is None:
        return steel_type
    run_cfg = found[0]
    if "init" not in run_cfg:  # a pretraining run (SftConfig is the one with `init`)
        return True
    init = run_cfg.get("init")
    if not isinstance(init, str) or not init:
        return steel_type
    for c in [Path(init)] if Path(init).is_absolute() else [b / init for b in _run_bases(ckpt)]:
        if c.exists():
            return trained_without_bos(c, seen)
    return steel_type


def no_bos_for(model: Path, tokenizer, command: str) -> bool:
    """Whether `command` leaves out the BOS `tokenizer` puts before a text (`special_prefix`): for a `model`
    Steel trained from the start (`trained_without_bos`), which never read one at position 0 (its embedding
    row is untrained), so scores and continuations after it are off its training's inputs. Said once on
    stderr when it is left out; a stock model keeps it (C-Eval's and CMMLU's scripts put it first)."""

    from steel.eval.mc import special_prefix

    prefix = special_prefix(tokenizer)
    if not prefix or not trained_without_bos(model):
        return False
    names = tokenizer.convert_ids_to_tokens(prefix)
    print(f"{command}: no {' '.join(map(str, names))} before the prompt: {model} was trained by Steel from the "
          "start, on prepared chunks and SFT rows that hold none (a stock model keeps it)", file=sys.stderr)
    return True


def warn_no_bos(tok_dir: Path, model: Path | None = None) -> None:
    """A warning where the model's tokenizer puts a BOS before every text (Llama, Mistral, Gemma): prepared
    chunks hold none (documents only end with EOS) and `eval ppl` windows start mid-document, so such a model
    is scored on inputs unlike its training's, and its perplexity is worse than lm-evaluation-harness's
    rolling windows (which put the BOS first) report. Steel's and Qwen's tokenizers add nothing: no warning.
    Nor does a `model` Steel trained from the start (`trained_without_bos`): its training held no BOS either."""
    import warnings

    from transformers import AutoTokenizer

    from steel.eval.mc import special_prefix

    if model is not None and trained_without_bos(model):
        return
    try:
        tok = AutoTokenizer.from_pretrained(str(tok_dir), trust_remote_code=True)
    except Exception:  # noqa: BLE001 - unreadable: the fingerprint check above said what it could
        return
    prefix = special_prefix(tok)
    if prefix:
        warnings.warn(
            f"steel eval ppl: the model's tokenizer {tok_dir} puts {tok.convert_ids_to_tokens(prefix)} before a "
            "text, which a model trained so expects first; the windows hold none (prepared chunks carry no BOS), "
            "so this perplexity is worse than that model's with it (lm-evaluation-harness puts it first)",
            stacklevel=2,
        )


def cmd_ppl(args) -> int:
    from steel.data.tokenize import check_tokenizer_matches
    from steel.eval.ppl import PplOptions, perplexity
    from steel.infer.load import find_tokenizer_dir, load_model, max_positions, resolve_model

    if args.data is not None and len(args.data) > 1:  # a second --data replaced the first without a word
        raise UserError(f"--data: give one data directory (got {len(args.data)}: {', '.join(args.data)})")
    given = {
        "data": args.data[0] if args.data else None,
        "seq_len": args.seq_len,
        "max_tokens": args.max_tokens,
        "batch_size": args.batch_size,
    }
    opts = options(PplOptions, args.config, given)
    try:  # data tokenized with another tokenizer than the model's scores other text (vocab sizes may agree)
        tok_dir = find_tokenizer_dir(Path(args.model), args.tokenizer)
    except UserError:
        if args.tokenizer is not None:  # a --tokenizer given but unreadable (a typo) is an error, not "none"
            raise
        tok_dir = None  # nothing to compare with
    if tok_dir is not None and opts.data:
        check_tokenizer_matches(opts.data, tok_dir, "the model's tokenizer")
        warn_no_bos(tok_dir, Path(args.model))
    device = resolve_device(args.device)
    load_from, source = resolve_model(Path(args.model))
    model = load_model(load_from, device, args.dtype)
    limit = max_positions(model)
    seq_len = opts.seq_len if opts.seq_len is not None else min(1024, limit or 1024)
    if args.seq_len is None and opts.seq_len is not None and limit is not None and seq_len > limit:
        # perplexity() names --seq-len, which this value did not come from (configs/eval/ppl-1m.yaml's 1024).
        raise ConfigError(
            f"{args.config}: seq_len: {seq_len} is longer than the model's max_position_embeddings {limit} "
            f"(pass --seq-len {limit} or less, or set seq_len: in the file)"
        )
    result = perplexity(model, Path(opts.data), seq_len, opts.batch_size, opts.max_tokens)
    if opts.max_tokens is not None and result["tokens"] < opts.max_tokens:
        # The figure covers fewer tokens than asked (configs/eval/ppl-1m.yaml's 1M on a small data dir): said, where
        # only the result's `tokens` showed it.
        asked = f"--max-tokens {opts.max_tokens}" if args.max_tokens is not None else \
            f"max_tokens: {opts.max_tokens} ({args.config})"
        print(f"steel eval ppl: {asked} is more than {opts.data} has to score in windows of {seq_len} tokens: "
              f"all its {result['tokens']:,} were scored", file=sys.stderr)
    result["model"] = str(args.model)
    result.update(source)
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
