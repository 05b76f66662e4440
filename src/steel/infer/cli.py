"""`steel generate`, `steel chat`, `steel export`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from steel.cli import UserError, home_path
from steel.config import ConfigError


def add_model_args(p: argparse.ArgumentParser) -> None:
    """--model/--tokenizer/--device/--dtype, shared by generate, chat and every `steel eval` command."""
    p.add_argument(
        "--model", required=True, type=home_path, help="HF model directory, Steel run directory or checkpoint directory"
    )
    p.add_argument("--tokenizer", default=None, type=home_path, help="tokenizer directory (default: the model's own)")
    p.add_argument("--device", default=None, help="cpu, cuda, cuda:1 ... (default: cuda when available)")
    p.add_argument(
        "--dtype", default=None, choices=["float32", "bfloat16", "float16"], help="default: as saved"
    )


def _add_sampling_args(p: argparse.ArgumentParser) -> None:
    # NOTE: the defaults are the help's: a model's generation_config.json sampling values are not used.
    p.add_argument("--max-new-tokens", type=int, default=256, help="default: %(default)s")
    p.add_argument("--temperature", type=float, default=0.7, help="0 = greedy (default: %(default)s)")
    p.add_argument("--top-k", type=int, default=0, help="0 = off (default: %(default)s)")
    p.add_argument("--top-p", type=float, default=1.0, help="1 = off (default: %(default)s)")
    p.add_argument(
        "--repetition-penalty", type=float, default=1.0,
        help="> 1 discourages repeats (HF/CTRL rule; default: %(default)s)"
    )
    p.add_argument("--seed", type=int, default=None, help="default: none (a random seed)")


def register(subparsers) -> None:
    p = subparsers.add_parser("generate", help="generate text from a prompt (streamed)")
    add_model_args(p)
    _add_sampling_args(p)
    p.add_argument("--prompt", required=True, help="the prompt text ('-' reads stdin)")
    p.add_argument(
        "--chat", action="store_true", help="wrap the prompt as one ChatML user turn (for SFT models)"
    )
    p.add_argument("--system", default=None, help="system prompt (with --chat)")
    p.set_defaults(func=cmd_generate)

    p = subparsers.add_parser("chat", help="interactive multi-turn chat (ChatML, streamed)")
    add_model_args(p)
    _add_sampling_args(p)
    p.add_argument("--system", default=None, help="system prompt")
    p.add_argument(
        "--max-context",
        type=int,
        default=None,
        help="tokens of context: history + reply (default and maximum: the model's max positions); "
        "the oldest turns are dropped to fit, replies get --max-new-tokens of room (at most half)",
    )
    p.set_defaults(func=cmd_chat)

    p = subparsers.add_parser(
        "export", help="write a plain HF directory (safetensors, modeling files, tokenizer)"
    )
    p.add_argument("src", type=home_path, help="Steel run directory, checkpoint directory or HF model directory")
    p.add_argument("out", type=home_path, help="output directory")
    p.add_argument("--tokenizer", default=None, type=home_path, help="tokenizer directory (default: found beside the model)")
    p.add_argument(
        "--dtype",
        default=None,
        choices=["float32", "bfloat16", "float16"],
        help="weights dtype (default: as saved)",
    )
    p.add_argument("--overwrite", action="store_true",
                   help="replace an earlier export in OUT as a whole (any other non-empty directory is refused)")
    p.add_argument(
        "--stock",
        action="store_true",
        help="a dense (ffn_type swiglu) Steel model as transformers' Qwen2/Llama class: no custom code",
    )
    p.set_defaults(func=cmd_export)


def _sampling(args):
    from steel.infer.generate import SamplingOptions

    opts = SamplingOptions(
        args.max_new_tokens, args.temperature, args.top_k, args.top_p, args.repetition_penalty, args.seed
    )
    try:
        opts.validate()
    except ConfigError as e:
        raise UserError(f"--{str(e).replace('_', '-')}") from None
    return opts


def resolve_device(arg: str | None) -> str:
    """`--device`, checked before a model is loaded (a bad one failed in `.to(device)` with a traceback)."""
    import torch

    if arg is None:
        return "cuda" if torch.cuda.is_available() else "cpu"
    try:
        dev = torch.device(arg)
    except RuntimeError:
        raise UserError(f"--device {arg}: not a device (cpu, cuda, cuda:1, ...)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise UserError(f"--device {arg}: CUDA is not available here")
        if dev.index is not None and dev.index >= torch.cuda.device_count():
            raise UserError(f"--device {arg}: this machine has {torch.cuda.device_count()} CUDA device(s)")
    return arg


def _load(args):
    """(model, tokenizer). `steel chat` and `generate --chat` prompt with the tokenizer's chat template: a
    tokenizer without one is refused here, before a large model is loaded (chat failed at the first message)."""
    from steel.infer.load import load_model, load_tokenizer

    device = resolve_device(args.device)
    tokenizer = load_tokenizer(args.model, args.tokenizer)  # first: a bad --tokenizer is refused in a second
    func = getattr(args, "func", None)
    chat = "steel chat" if func is cmd_chat else "steel generate --chat" if getattr(args, "chat", False) else None
    if chat and not getattr(tokenizer, "chat_template", None):
        where = f"--tokenizer {args.tokenizer}" if args.tokenizer else f"{args.model}'s tokenizer"
        raise UserError(
            f"{chat}: {where} has no chat template (tokenizer_config.json chat_template): nothing says how to "
            "render the turns (a stock base model's tokenizer often has none); continue text with `steel generate "
            "--prompt`, or chat with a model from `steel sft` or `steel export` (their tokenizers carry ChatML's)"
        )
    return load_model(args.model, device, args.dtype), tokenizer


def cmd_generate(args) -> int:
    from steel.infer.generate import TextStream, chat_prompt_ids, generate_reply
    from steel.infer.load import max_positions

    opts = _sampling(args)
    if args.system is not None and not args.chat:
        raise UserError("--system: needs --chat (a plain prompt is continued as text, without a chat template)")
    from steel.infer.chat import not_utf8

    try:
        prompt = sys.stdin.read() if args.prompt == "-" else args.prompt
    except UnicodeDecodeError as e:  # stdin decoded strictly (a UTF-8 locale) holding other bytes
        raise UserError(f"--prompt -: stdin is not {e.encoding} text (byte 0x{e.object[e.start]:02X}); "
                        "convert it first, e.g. iconv -f gbk -t utf-8") from None
    # `echo | steel generate --prompt -` said "--prompt: empty prompt": the prompt was stdin's, which held none.
    empty_prompt = "--prompt -: empty prompt (stdin held no text)" if args.prompt == "-" else "--prompt: empty prompt"
    if args.prompt == "-" and not args.chat:
        # NOTE: the line end `echo` or a file's last line adds: kept, `echo 钢铁是 | steel generate --prompt -`
        # continued "钢铁是\n" (a new line), not the sentence `--prompt 钢铁是` continues. One only, as a file
        # holds it (--chat normalizes the prompt as steel chat does its lines).
        prompt = prompt[:-2] if prompt.endswith("\r\n") else prompt[:-1] if prompt.endswith("\n") else prompt
    for flag, text in (("--prompt", prompt), ("--system", args.system)):
        if text and (why := not_utf8(text)) is not None:
            raise UserError(f"{flag}: {why}")
    model, tok = _load(args)
    if args.chat:
        from steel.infer.chat import input_normalizer

        # As `steel chat` (a prompt from stdin ends with a newline SFT never trained on).
        normalize = input_normalizer()
        system, prompt = normalize(args.system) if args.system else None, normalize(prompt)
        if not prompt:
            raise UserError(empty_prompt)
        msgs = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": prompt}]
        ids = chat_prompt_ids(tok, msgs)
    else:
        from steel.eval.cli import no_bos_for
        from steel.eval.mc import special_prefix

        ids = tok.encode(prompt, add_special_tokens=False)
        if not ids:
            raise UserError(empty_prompt)
        # A text starts as the tokenizer starts one (Llama's BOS; nothing for Qwen's), as `eval mc` scores
        # it: a model trained with BOS before every text continues a prompt without it poorly. A model Steel
        # trained from the start read none (prepared chunks hold no BOS): none for it either.
        if not no_bos_for(Path(args.model), tok, "steel generate"):
            ids = special_prefix(tok) + ids
    limit = max_positions(model)
    if limit is not None and len(ids) >= limit:
        what = "--prompt (with the chat template and --system)" if args.chat else "--prompt"
        raise UserError(
            f"{what}: {len(ids)} tokens, but the model's max_position_embeddings is {limit}; "
            f"a prompt must be under {limit} tokens to leave room for a reply"
        )
    reply = generate_reply(model, tok, ids, opts, TextStream(tok))
    sys.stdout.write("\n")
    if reply.stop_reason == "max_positions":
        print(
            f"steel generate: stopped at the model's max_position_embeddings ({limit} tokens: "
            f"{len(ids)} prompt + {len(reply.tokens)} new) before --max-new-tokens {opts.max_new_tokens}",
            file=sys.stderr,
        )
    return 0


def cmd_chat(args) -> int:
    from steel.infer.chat import run_chat
    from steel.infer.load import max_positions

    opts = _sampling(args)
    if args.max_context is not None and args.max_context < 2:  # before a large model is loaded
        raise UserError(f"--max-context {args.max_context}: must be >= 2")
    model, tok = _load(args)
    limit = max_positions(model)
    if args.max_context is not None:
        if limit is not None and args.max_context > limit:
            raise UserError(
                f"--max-context {args.max_context}: exceeds the model's max_position_embeddings {limit}"
            )
    max_context = args.max_context or limit or 2048
    return run_chat(model, tok, opts, args.system, max_context)


def cmd_export(args) -> int:
    import json

    from steel.infer.export import PROVENANCE, export

    notes: list[str] = []
    out = export(args.src, args.out, args.tokenizer, args.dtype, args.overwrite, stock=args.stock, notes=notes)
    for note in notes:
        print(f"steel: note: {note}", file=sys.stderr)
    source = json.loads((out / PROVENANCE).read_text(encoding="utf-8"))
    what = f" (checkpoint {source['checkpoint']}, step {source['step']})" if source["checkpoint"] else ""
    print(f"exported {args.src}{what} -> {out}")
    return 0
