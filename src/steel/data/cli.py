"""`steel data prepare | merge | inspect`."""

from __future__ import annotations

import argparse
import os
from pathlib import Path

from steel.cli import UserError, home_path
from steel.config import dump_yaml, load_config


def register(subparsers) -> None:
    data = subparsers.add_parser("data", help="prepare training data: raw sources -> token chunks")
    sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")

    p = sub.add_parser("prepare", help="normalize, filter, dedup and tokenize sources into chunk files")
    p.add_argument("config", type=home_path, help="data config YAML (see configs/data/)")
    p.add_argument("--set", dest="overrides", action="append", default=[], metavar="KEY=VALUE",
                   help="override a config field, e.g. --set root=../shared/data (repeatable)")
    p.add_argument("--out", type=home_path, help="output directory (default: the config's `output`)")
    p.add_argument("--workers", type=int, help="tokenizer worker processes (default: the config's `workers`)")
    p.add_argument("--shard", default="0/1", help="process shard I of N (0-based), e.g. 2/8; then `steel data merge`")
    p.set_defaults(func=cmd_prepare)

    m = sub.add_parser("merge", help="join the outputs of sharded `prepare` runs into one data directory")
    m.add_argument("out", type=home_path, help="output data directory")
    m.add_argument("dirs", nargs="+", type=home_path, help="data directories written by `steel data prepare --shard I/N`")
    m.add_argument("--near", action="store_true",
                   help="also remove near duplicates across shards (one global MinHash-LSH index in memory, "
                        "~1.5 KB per kept document, as an unsharded prepare)")
    m.add_argument("--overwrite", action="store_true",
                   help="replace the previous output in a non-empty OUT (its chunks are deleted; refused otherwise)")
    m.add_argument("--allow-missing", action="store_true",
                   help="merge an incomplete set of shards (refused otherwise: their data would be missing)")
    m.set_defaults(func=cmd_merge)

    i = sub.add_parser("inspect", help="print a data directory's manifest summary")
    i.add_argument("dir", type=home_path, help="data directory (holding manifest.json)")
    i.set_defaults(func=cmd_inspect)
    data.set_defaults(func=lambda args: data.print_help() or 2)


def cmd_prepare(args: argparse.Namespace) -> int:
    from steel.data.config import DataConfig
    from steel.data.prepare import parse_shard, prepare
    from steel.dirlock import dir_lock
    from steel.runlog import setup_run_log

    overrides = list(args.overrides)
    if args.workers is not None:
        overrides.append(f"workers={args.workers}")
    cfg = load_config(DataConfig, args.config, overrides)
    if args.out is not None:  # the resolved config in prepare.log and manifest.json names the directory written
        cfg.output = str(args.out)
    cfg.output = os.path.expanduser(cfg.output)  # (`output: ~/data/web`: the home directory, as `root:`)
    shard = parse_shard(args.shard)
    out = Path(cfg.output)
    # the lock before the log: a refused second prepare must not write into the running one's log
    with dir_lock(out, "steel data prepare"):
        log = setup_run_log(out / ("prepare.log" if shard[1] == 1 else f"prepare.shard{shard[0]}of{shard[1]}.log"),
                            dump_yaml(cfg))
        prepare(cfg, out, config_path=args.config, shard=shard, log=log)
    return 0


def cmd_merge(args: argparse.Namespace) -> int:
    from steel.data.merge import MERGE_LOG, check_not_input, check_out_dir, merge
    from steel.dirlock import dir_lock
    from steel.runlog import setup_run_log

    check_not_input(args.out, args.dirs)  # before the lock and the log go into OUT (an input's directory)
    check_out_dir(args.out, args.overwrite)  # before the log file goes into OUT
    with dir_lock(args.out, "steel data merge"):  # before the log: see cmd_prepare
        log = setup_run_log(Path(args.out) / MERGE_LOG)
        merge(args.out, args.dirs, log=log, near=args.near, overwrite=args.overwrite,
              allow_missing=args.allow_missing)
    return 0


def cmd_inspect(args: argparse.Namespace) -> int:
    from rich.console import Console
    from rich.table import Table

    from steel.data.chunks import ChunkFormatError, read_header, read_manifest
    from steel.data.prepare import kept_nothing, manifest_paths

    try:
        m = read_manifest(args.dir)
    except ChunkFormatError as e:
        raise UserError(str(e)) from None
    tok = m["tokenizer"]
    console = Console(width=max(100, Console().width))
    console.print(f"[bold]{args.dir}[/]: {m['total_tokens']:,} tokens in {len(m['chunks'])} chunks; tokenizer "
                  f"{tok.get('engine') or ''} vocab {tok['vocab_size']:,} eos {tok['eos_id']} "
                  f"fingerprint {tok['fingerprint'][:16]}")
    table = Table("source", "kind", "weight", "read", "kept", "filtered", "rejected", "tokens", "chunks")
    per_source_chunks: dict[str, int] = {}
    for c in m["chunks"]:
        per_source_chunks[c.get("source", "?")] = per_source_chunks.get(c.get("source", "?"), 0) + 1
    details = []
    for name, s in m["sources"].items():
        table.add_row(name, s.get("kind", "?"), f"{s.get('weight', 1.0):g}", f"{s['read']:,}", f"{s['kept']:,}",
                      f"{sum(s['filtered'].values()):,}", f"{sum(s['rejected'].values()):,}", f"{s.get('tokens', 0):,}",
                      str(per_source_chunks.get(name, 0)))
        why = [f"{k} {v:,}" for k, v in s["filtered"].items() if v] + [f"{k} {v:,}" for k, v in s["rejected"].items() if v]
        if why:
            details.append(f"  {name}: " + ", ".join(why))
    console.print(table)
    if details:
        print("dropped by filter / rejected, per reason:\n" + "\n".join(details))
    # What `steel data prepare` now refuses (errors: exit status 1 here) or warns about, for a manifest of an
    # older Steel or of a merge
    shard = m.get("shard") or {}
    count, merged = shard.get("count", 1), "merged_shards" in shard
    if merged and len(shard["merged_shards"]) < shard.get("of", 1):
        # `merge --allow-missing`: its accounting is judged as a shard's (a source whose files in the given shards
        # were all rejected was a problem, although the missing shards' files may keep records)
        missing = sorted(set(range(shard["of"])) - set(shard["merged_shards"]))
        print(f"warning: merged {len(shard['merged_shards'])} of {shard['of']} shards (--allow-missing): the data of "
              f"shard(s) {', '.join(map(str, missing))} is not here")
        count = shard["of"]
    empty_errors, empty_warnings = kept_nothing(m["sources"], count, (m.get("inputs") or {}).get("files"),
                                                merged=merged, paths=manifest_paths(m))
    for line in empty_errors:
        print(f"problem: {line}")
    for line in empty_warnings:
        print(f"warning: {line}")
    dd = m.get("dedup", {})
    if dd.get("cross_shard_exact_duplicates") is not None:
        done = "removed" if "cross_shard_exact_removed" in dd else "not removed"
        console.print(f"cross-shard exact duplicates ({done}): {dd['cross_shard_exact_duplicates']:,}")
    if dd.get("cross_shard_near_removed") is not None:
        console.print(f"cross-shard near duplicates (removed): {dd['cross_shard_near_removed']:,}")
    # Every chunk the manifest lists: present, a valid header, the manifest's token count (cheap: headers
    # and sizes only; `steel train` also checks each chunk's head/tail MD5).
    # NOTE: the tokenizer too, as `steel train` checks it (`chunks.check_headers`): a chunk copied in from a
    # data dir of another tokenizer passed here and was refused at the training run's start.
    fp = str(tok["fingerprint"]).encode("ascii", "replace")[:64].decode("ascii")  # what headers keep of it
    problems = []
    for c in m["chunks"]:
        path = Path(args.dir) / c["file"]
        try:
            header = read_header(path)
        except ChunkFormatError as e:
            problems.append(str(e))
            continue
        if header.num_tokens != c["tokens"]:
            problems.append(f"{path}: {header.num_tokens:,} tokens, the manifest says {c['tokens']:,}")
        elif header.fingerprint != fp:
            problems.append(f"{path}: tokenizer fingerprint {header.fingerprint[:16]}..., the manifest's is {fp[:16]}...")
        elif header.vocab_size != int(tok["vocab_size"]):
            problems.append(f"{path}: vocab size {header.vocab_size:,}, the manifest says {int(tok['vocab_size']):,}")
    if problems:
        print(f"{len(problems)} of {len(m['chunks'])} chunks do not match the manifest:\n  " + "\n  ".join(problems))
        return 1
    return 1 if empty_errors else 0
