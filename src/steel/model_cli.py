"""`steel model info|check-causal CONFIG_OR_DIR`.

It lives outside `steel.model` because importing that package loads torch and transformers, and
`steel` builds every command's parser at start-up.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from steel.cli import UserError, home_path


def register(subparsers: argparse._SubParsersAction) -> None:
    p = subparsers.add_parser("model", help="inspect model configs: parameters, FLOPs, causality")
    sub = p.add_subparsers(dest="model_command", metavar="SUBCOMMAND", required=True)

    info = sub.add_parser("info", help="parameter counts per part and true training FLOPs per token")
    info.add_argument("spec", metavar="CONFIG_OR_DIR", type=home_path,
                      help="YAML file, name in configs/model/, HF model dir, or Steel run or checkpoint dir "
                           "(its model_config.json)")
    info.add_argument("--seq-len", type=int, default=2048, help="sequence length for the FLOPs (default 2048)")
    info.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                      help="override a config field, e.g. --set ffn_type=soft_moe_causal (repeatable)")
    info.set_defaults(func=cmd_info)

    cc = sub.add_parser("check-causal", help="perturb tokens after t, report the logit change at positions <= t")
    cc.add_argument("spec", metavar="CONFIG_OR_DIR", type=home_path,
                    help="HF model dir, Steel run dir (its latest checkpoint) or checkpoint dir (their "
                         "weights), or a config (random init, see --init-std; with a directory, its config)")
    cc.add_argument("--seq-len", type=int, default=32, help="tokens per probe sequence (default 32)")
    cc.add_argument("--positions", type=int, default=0,
                    help="probe this many evenly spaced t (default 0 = every t < seq-len - 1)")
    cc.add_argument("--batch", type=int, default=2, help="sequences per probe (default 2)")
    cc.add_argument("--seed", type=int, default=0)
    cc.add_argument("--init-std", type=float, default=None,
                    help="random init only: initializer_range (the config's default 0.02 makes the MoE branch, "
                         "hence the leak, tiny; 0.2 shows it at the scale of a trained model's)")
    cc.add_argument("--rtol", type=float, default=None, help="leak tolerance, times max(1, max |logit|) "
                    "(default: steel.model.causality.DEFAULT_RTOL = 1e-6)")
    cc.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                    help="override a config field (repeatable)")
    cc.set_defaults(func=cmd_check_causal)


def _fmt(n: float) -> str:
    for unit, div in (("G", 1e9), ("M", 1e6), ("K", 1e3)):
        if abs(n) >= div:
            return f"{n / div:.3f}{unit}"
    return f"{n:.0f}"


def cmd_info(args: argparse.Namespace) -> int:
    from steel.model import load_model_config
    from steel.model.flops import flops_per_token, parameter_counts

    spec = args.spec
    if Path(spec).is_dir() and not (Path(spec) / "config.json").is_file():
        # A Steel run or checkpoint directory, as check-causal and every other model command take: its
        # model_config.json (it was "not an HF model directory (no config.json)").
        from steel.infer.load import checkpoint_model_config, resolve_checkpoint

        ckpt = resolve_checkpoint(Path(spec))
        if ckpt is None:
            raise UserError(f"{spec}: neither an HF model directory (config.json) nor a Steel run/checkpoint "
                            "directory (checkpoints/step-N/ or model_config.json)")
        spec = checkpoint_model_config(ckpt)
    config = load_model_config(spec, args.overrides)
    if args.seq_len <= 0:
        raise UserError(f"--seq-len must be > 0 (got {args.seq_len})")
    try:
        params = parameter_counts(config)
        flops = flops_per_token(config, args.seq_len)
    except ValueError as e:  # a stock routed-MoE config: its FLOPs are not modelled
        raise UserError(f"{args.spec}: {e}") from None
    name = getattr(config, "ffn_type", None)
    print(f"model: {config.model_type}" + (f" (ffn_type={name})" if name else ""))
    print("parameters:")
    for part in ("embedding", "attention", "ffn", "norms", "lm_head", "other", "total", "non_embedding"):
        if params[part] or part in ("total", "non_embedding"):
            print(f"  {part:<15}{params[part]:>16,}  {_fmt(params[part]):>9}")
    print(f"training FLOPs per token at seq_len {args.seq_len} (forward + backward):")
    print(f"  {'true':<22}{flops['true']:>18,.0f}  {_fmt(flops['true']):>9}")
    for part in ("attention", "ffn", "lm_head"):
        print(f"    {part:<20}{3 * flops[part]:>18,.0f}  {_fmt(3 * flops[part]):>9}")
    print(f"  {'6N (all params)':<22}{flops['six_n']:>18,.0f}  {_fmt(flops['six_n']):>9}"
          f"  = {flops['six_n'] / flops['true']:.2f} x true")
    print(f"  {'6N (non-embedding)':<22}{flops['six_n_non_embedding']:>18,.0f}  "
          f"{_fmt(flops['six_n_non_embedding']):>9}  = {flops['six_n_non_embedding'] / flops['true']:.2f} x true")
    return 0


def cmd_check_causal(args: argparse.Namespace) -> int:
    import torch

    from steel.model import build_model, load_model_config
    from steel.model.causality import DEFAULT_RTOL, check_causal

    rtol = DEFAULT_RTOL if args.rtol is None else args.rtol
    if args.seq_len < 2:
        raise UserError(f"--seq-len must be >= 2 (got {args.seq_len})")
    # A negative --positions or a --batch < 1 was a traceback from inside the probe; a negative --rtol
    # reported every model, a causal one included, as leaking.
    for flag, value, low in (("--positions", args.positions, 0), ("--batch", args.batch, 1), ("--rtol", rtol, 0)):
        if value < low:
            raise UserError(f"{flag} must be >= {low} (got {value})")
    path = Path(args.spec)
    spec = args.spec
    ckpt = None
    if path.is_dir() and not (path / "config.json").is_file():
        # A Steel run or checkpoint directory, as every other model command takes (steel.infer.load).
        from steel.infer.load import model_from_checkpoint, resolve_checkpoint

        ckpt = resolve_checkpoint(path)
        if ckpt is None:
            raise UserError(f"{path}: neither an HF model directory (config.json) nor a Steel run/checkpoint "
                            "directory (checkpoints/step-N/ or model_config.json)")
        spec = model_from_checkpoint(ckpt).config if args.overrides or args.init_std is not None else None
    has_weights = path.is_dir() and (any(path.glob("*.safetensors")) or any(path.glob("*.bin")))
    if ckpt is not None and spec is None:
        model = model_from_checkpoint(ckpt).float()
        source = f"weights of {ckpt}"
    elif ckpt is None and has_weights and not args.overrides and args.init_std is None:
        from transformers import AutoModelForCausalLM

        model = AutoModelForCausalLM.from_pretrained(path, dtype=torch.float32)
        source = f"weights of {path}"
    else:
        # `is not None`: --init-std 0 was dropped, and the probe ran at the config's 0.02
        overrides = list(args.overrides) + ([f"initializer_range={args.init_std}"] if args.init_std is not None else [])
        torch.manual_seed(args.seed)
        model = build_model(load_model_config(spec, overrides))
        source = f"random init (initializer_range={model.config.initializer_range})"
    vocab = model.config.vocab_size
    positions = None
    if args.positions:
        k = min(args.positions, args.seq_len - 1)
        positions = sorted({round(i * (args.seq_len - 2) / max(k - 1, 1)) for i in range(k)})
    r = check_causal(model, vocab, seq_len=args.seq_len, batch=args.batch, positions=positions, seed=args.seed,
                     rtol=rtol)
    ffn = getattr(model.config, "ffn_type", model.config.model_type)
    print(f"{ffn}: {source}, seq_len {args.seq_len}, {len(r.per_t)} positions probed")
    print(f"  max |logit change| at positions <= t: {r.max_leak:.3e} at t={r.worst_t} "
          f"(max |logit| {r.logit_scale:.3e}, relative {r.max_leak / max(r.logit_scale, 1e-30):.3e})")
    print("  by probe (later tokens replaced by): "
          + ", ".join(f"{name} tokens {leak:.3e}" for name, leak in r.per_probe.items()))
    verdict = "LEAKS the future" if r.leaks else ("causal" if r.max_leak == 0 else "causal within float noise")
    print(f"  {verdict} (tolerance {r.tolerance:.1e} = rtol {rtol:g} x max(1, max |logit|))")
    return 1 if r.leaks else 0
