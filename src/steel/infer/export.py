"""`steel export RUN_DIR|MODEL_DIR OUT_DIR`: a plain Hugging Face directory anyone can load.

The output holds `config.json` (with `auto_map` for Steel's model type), `model.safetensors`, Steel's
`configuration_steel.py` + `modeling_steel.py`, the tokenizer files with the ChatML chat template,
and `generation_config.json` (stop at `<|im_end|>` or `<|endoftext|>`). It loads with
`AutoModelForCausalLM.from_pretrained(OUT_DIR, trust_remote_code=True)` where Steel is not installed
(LLaMA-Factory, TRL, vLLM users), with the same logits as the source (tested in a subprocess).
The tokenizer's `model_max_length` is the model's `max_position_embeddings`. With `--stock`, a dense
Steel model is written as transformers' own Qwen2/Llama class instead, with no custom code at all.
OUT is written whole or not at all (written apart, then moved in); an existing OUT stays the same
directory (its files replaced); `--overwrite` replaces an earlier export as a whole and refuses any
other non-empty directory.

NOTE: transformers >= 5 `AutoTokenizer.from_pretrained(OUT_DIR)` always reads `config.json` first, and
its `auto_map.AutoConfig` (custom code, needed by AutoModelForCausalLM) makes it ask "Do you wish to run
the custom code? [y/N]" where Steel is not imported (it falls back to the plain config after an answer,
15 s or a closed stdin). Pass `trust_remote_code=True` as for the model, or load the tokenizer as
`PreTrainedTokenizerFast.from_pretrained(OUT_DIR)`; the tokenizer itself has no custom code.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
from pathlib import Path

import torch

from steel import __version__
from steel.cli import UserError
from steel.infer.generate import stop_token_ids, token_count
from steel.infer.load import (
    PROVENANCE,
    load_model,
    load_tokenizer,
    max_positions,
    resolve_model,
)
from steel.runlog import quiet_hf_progress_bars
from steel.tokenizer.qwen import make_tokenizer_config_portable

# Qwen's ChatML, used when the tokenizer carries no chat template of its own.
CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
STEEL_MODEL_FILES = ("configuration_steel.py", "modeling_steel.py")


def export(
    src: str | Path,
    out: str | Path,
    tokenizer: str | Path | None = None,
    dtype: str | None = None,
    overwrite: bool = False,
    stock: bool = False,
    notes: list[str] | None = None,
) -> Path:
    """Write the export; `stock`: a dense Steel model as transformers' own Qwen2/Llama class
    (`stock_model`), which needs no custom code. Lines for the user are appended to `notes`."""
    src, out = Path(src), Path(out)
    _refuse_training_dir(src, out)
    _refuse_output(out, overwrite)
    tok = load_tokenizer(src, tokenizer)
    load_from, source = resolve_model(src)  # a run dir's newest checkpoint, chosen once
    model = load_model(load_from, "cpu", dtype)
    cfg = model.config
    _untie_config(model, src, notes)
    if getattr(cfg, "model_type", None) == "steel":
        # Kernels other than the torch reference live in steel.kernels, which the export must not need.
        cfg.kernels = {}
        if stock:
            model = stock_model(model, src, notes if notes is not None else [])
            cfg = model.config
    elif stock and notes is not None:
        notes.append(f"--stock: {src} is a transformers {type(model).__name__} already; exported as it is")
    if len(tok) > cfg.vocab_size:
        raise UserError(
            f"{src}: tokenizer has {len(tok)} tokens but the model's vocab_size is {cfg.vocab_size}"
        )
    if not getattr(tok, "chat_template", None):
        tok.chat_template = CHATML_TEMPLATE
    limit = max_positions(model)
    if limit is not None:
        # The source tokenizer's own value (Qwen's 32768, or "no limit") is not this model's context:
        # truncation=True and pipelines read model_max_length.
        tok.model_max_length = limit
    stops = stop_token_ids(tok)
    if tok.pad_token_id is None:
        tok.pad_token = tok.convert_ids_to_tokens(stops[-1]) if stops else tok.eos_token
    gen = model.generation_config
    gen.eos_token_id = stops or gen.eos_token_id
    gen.pad_token_id = tok.pad_token_id
    # Sampling defaults for chat (users override them); greedy evaluation sets do_sample=False itself.
    gen.do_sample, gen.temperature, gen.top_p, gen.repetition_penalty = True, 0.7, 0.8, 1.05
    gen.max_new_tokens = 512
    # Rows past the tokenizer (Qwen's padding; a vocab_size set above a tokenizer of one's own) have no text: HF's
    # generate sampled them (decode gave "" or raised), `steel generate` never does (`generate_ids`). The logits
    # stay the model's; generate is told to skip those ids. NOTE: as single-token `bad_words_ids`, a bias vector
    # built at the first step and added each step (0.07-0.3 ms/step on a loaded 2-core CPU for 290 or 23,936 ids of
    # 151,936, 2-6 or 260-450 ms once per generate call); `suppress_tokens` runs torch.isin of every row against
    # the list each step, 56-203 ms/step there (bench/export_suppress_tokens.py).
    # A source's own entries stay, but for single ids past this tokenizer and an earlier export's list (an export's
    # export: its list was of the tokenizer it had, which --tokenizer may replace): the run of single ids it put
    # last, ending at the last row. NOTE: kept, that run banned the ids a larger tokenizer added (tool tokens in
    # Qwen's padding rows) from HF's generate.
    have = token_count(tok)
    listed = list(gen.bad_words_ids or [])
    last = cfg.vocab_size - 1
    while listed and listed[-1] == [last]:
        listed.pop()
        last -= 1
    kept = [w for w in listed if not (len(w) == 1 and w[0] >= have)]
    gen.bad_words_ids = kept + [[i] for i in range(have, cfg.vocab_size)] or None
    from steel.train.trainer import UNUSED_VOCAB_ROWS_MIN, UNUSED_VOCAB_SHARE_MIN  # (steel train's warning's)

    gap = cfg.vocab_size - have
    if notes is not None and gap > UNUSED_VOCAB_ROWS_MIN and gap > UNUSED_VOCAB_SHARE_MIN * cfg.vocab_size:
        # NOTE: the list grows with the gap and HF handles it in Python at every generate call (at 145,936 ids:
        # 3.8 MB of JSON, 0.43-0.57 s to copy the config and ~0.6 s to build the mask per call on a loaded 2-core
        # CPU, bench/export_suppress_tokens.py); padding (Qwen's 290 rows) stays below `steel train`'s bounds.
        notes.append(f"the model has {gap:,} rows past the tokenizer's {have:,} ids ({100 * gap / cfg.vocab_size:.0f}%):"
                     f" generation_config.json lists them as bad_words_ids, so HF's generate never picks one, and HF "
                     "copies that list and builds its mask from it at every generate call (at 145,936 ids about 1 s "
                     "per call on CPU; an engine that restricts ids itself can drop the entry); a model trained with "
                     f"model.overrides.vocab_size near its tokenizer's ({-(-have // 64) * 64}) has none of this")

    # A model Steel trained from the start never read a BOS (prepared chunks and SFT rows hold none): the
    # export's tokenizer puts none first either, and the record says so, so a copy taken away from its run
    # (a --stock export is a plain Llama/Qwen2 to every loader) is not given one its embedding never trained.
    from steel.eval.cli import trained_without_bos
    from steel.eval.mc import special_prefix

    no_bos = trained_without_bos(src)
    bos_tokens = [str(t) for t in tok.convert_ids_to_tokens(special_prefix(tok))] if no_bos else []

    # Where the weights came from: a run dir's step is nowhere else in the export (config.json is the model's).
    provenance = {
        "source": os.path.abspath(src),
        "checkpoint": source["checkpoint"] and os.path.abspath(source["checkpoint"]),
        "step": source["step"],
        **({"exported_from": source["exported_from"]} if "exported_from" in source else {}),  # an export's export
        "steel": __version__,
        # Read by `steel eval` / `generate` (steel.eval.cli.trained_without_bos) where `checkpoint` is gone.
        "trained_without_bos": no_bos,
    }

    def write(d: Path) -> None:
        quiet_hf_progress_bars()  # "Writing model shards"
        model.save_pretrained(str(d))
        (d / PROVENANCE).write_text(json.dumps(provenance, indent=1) + "\n", encoding="utf-8")
        tok.save_pretrained(str(d))
        make_tokenizer_config_portable(d, tok.chat_template)  # older transformers load the tokenizer too
        if no_bos:
            _drop_bos(d, bos_tokens, src, notes)
        # NOTE: safetensors >= 0.8 writes through a temp file made 0600 (safetensors#782): the weights get the
        # mode of config.json (the umask's), or another user (a vLLM service account) cannot read them.
        mode = (d / "config.json").stat().st_mode
        for f in d.glob("*.safetensors"):
            f.chmod(mode)
        if getattr(cfg, "model_type", None) == "steel":
            _check_remote_code(d)

    _write_whole(out, write)
    return out


# An HF model directory has a config and weights; an export writes no subdirectory.
WEIGHT_FILES = ("model.safetensors", "model.safetensors.index.json", "pytorch_model.bin", "pytorch_model.bin.index.json")
# Inside an existing OUT: the new export while it is written, and the earlier one's files while the new ones go in.
_STAGING, _REPLACED = ".steel-export-", ".steel-replaced-"


def _staging(p: Path) -> bool:
    """One of `_write_whole`'s own directories (left inside OUT by a run killed while writing)."""
    return p.name.startswith((_STAGING, _REPLACED)) and p.is_dir() and not p.is_symlink()


def _refuse_output(out: Path, overwrite: bool) -> None:
    """OUT must be new, empty or, with `overwrite`, an earlier export, which is replaced as a whole
    (`_write_whole`): a directory with config.json, weights and no subdirectory (so no source model, run
    or repository inside it is deleted with it). Any other directory's files are not ours to replace."""
    if out.exists() and not out.is_dir():
        raise UserError(f"{out}: exists and is not a directory")
    if not out.is_dir() or not any(not _staging(p) for p in out.iterdir()):
        return
    is_export = (out / "config.json").is_file() and any((out / w).is_file() for w in WEIGHT_FILES)
    subdirs = sorted(p.name for p in out.iterdir() if p.is_dir() and not _staging(p))
    why = f"it has subdirectories ({', '.join(subdirs[:3])})" if is_export else "it has no config.json and weights"
    if not overwrite:
        # NOTE: "(use --overwrite)" was said for any directory, and then refused for one that is not an export.
        if is_export and not subdirs:
            raise UserError(
                f"{out}: output directory is not empty: it holds a model (config.json and weights, an earlier "
                "export?); use --overwrite to replace it as a whole"
            )
        raise UserError(
            f"{out}: output directory exists, is not empty and is not an earlier export ({why}); choose another "
            "OUT (a new or empty directory): --overwrite only replaces an earlier export"
        )
    if not is_export or subdirs:
        raise UserError(
            f"{out}: --overwrite replaces an earlier export (an HF model directory) as a whole, and this is not "
            f"one ({why}); export to a new or empty directory"
        )


def _write_whole(out: Path, write) -> None:
    """`write(dir)` into a fresh directory, then put its files in OUT: a failure (disk full, Ctrl-C) leaves
    OUT as it was, not a mix of two models' files or weights without a tokenizer; nothing of an earlier
    export stays behind in the new one.

    A new OUT is written beside it and renamed. An existing one (empty, or an earlier export with
    --overwrite) stays the same directory and only its files are replaced: renaming it away broke `export
    ... .` (the shell's directory deleted under it), a mount point (EBUSY), a parent the user cannot write
    to, and the owner and permissions of a directory made for the export. The new export is written inside
    it (`.steel-export-PID/`), then the earlier files are moved aside and the new ones in (renames in one
    directory: a Ctrl-C or error in between puts the earlier ones back).
    """
    pid = os.getpid()
    if not out.is_dir():
        out = Path(os.path.abspath(out))
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.parent / f".{out.name}.export-{pid}"
        shutil.rmtree(tmp, ignore_errors=True)
        try:
            tmp.mkdir()
            write(tmp)
            os.rename(tmp, out)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)
        return
    for p in out.iterdir():
        if _staging(p):  # a killed run's
            shutil.rmtree(p)
    tmp, old = out / f"{_STAGING}{pid}", out / f"{_REPLACED}{pid}"
    try:
        tmp.mkdir()
        write(tmp)
        earlier = [p.name for p in out.iterdir() if p.name != tmp.name]
        old.mkdir()
        # config.json last in, so that a directory without it is never taken for a whole export
        new = sorted((p.name for p in tmp.iterdir()), key=lambda n: n == "config.json")
        moved_aside: list[str] = []
        moved_in: list[str] = []
        try:
            for name in earlier:
                os.rename(out / name, old / name)
                moved_aside.append(name)
            for name in new:
                os.rename(tmp / name, out / name)
                moved_in.append(name)
        except BaseException:
            for name in reversed(moved_in):
                os.rename(out / name, tmp / name)
            for name in reversed(moved_aside):
                os.rename(old / name, out / name)
            raise
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)


def _drop_bos(d: Path, bos_tokens: list[str], src: Path, notes: list[str] | None) -> None:
    """The saved tokenizer in `d` of a model trained without BOS, without the `bos_tokens` it put before a text:
    taken out of tokenizer.json's post-processor (what every loader, vLLM too, applies by default; nothing it
    appends changes), and tokenizer_config.json says `add_bos_token: false` and `add_eos_token` as it appends the
    EOS or not. Checked by loading it back; the user is told either way.
    NOTE: transformers 4's LlamaTokenizerFast (GemmaTokenizerFast...) rebuilds the post-processor from these
    two, defaulting to true and false: without them the LlamaTokenizer class that transformers 5 keeps for a Llama
    tokenizer (writing neither flag) got the BOS back there (4.46 checked by hand), an export of the export too
    (`bos_tokens` empty: the flags are written again); transformers 5 and PreTrainedTokenizerFast read only
    tokenizer.json's."""
    from transformers import AutoTokenizer

    from steel.eval.mc import special_prefix

    tj = d / "tokenizer.json"
    if bos_tokens and tj.is_file():
        data = json.loads(tj.read_text(encoding="utf-8"))
        data["post_processor"] = _without_prefix(data.get("post_processor"), bos_tokens)
        tj.write_text(json.dumps(data, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
    tc = d / "tokenizer_config.json"
    cfg = json.loads(tc.read_text(encoding="utf-8"))
    if not bos_tokens and cfg.get("tokenizer_class") in ("PreTrainedTokenizerFast", "TokenizersBackend"):
        return  # (a tokenizer that never put a BOS first, read from tokenizer.json alone: nothing to say)
    tok = AutoTokenizer.from_pretrained(str(d), trust_remote_code=True)
    plain, full = tok("x", add_special_tokens=False)["input_ids"], tok("x")["input_ids"]
    cfg["add_bos_token"] = False
    if full[: len(plain)] == plain and full[len(plain) :] in ([], [tok.eos_token_id]):
        cfg["add_eos_token"] = len(full) > len(plain)
    tc.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    if not bos_tokens or notes is None:
        return
    left = special_prefix(AutoTokenizer.from_pretrained(str(d), trust_remote_code=True))
    names = " ".join(bos_tokens)
    if left:
        notes.append(f"{src} was trained by Steel from the start (no {names} before its texts), but the exported "
                     f"tokenizer still puts {names} first and could not be changed: encode prompts with "
                     "add_special_tokens=False (steel eval/generate leave it out themselves)")
    else:
        notes.append(f"{src} was trained by Steel from the start (no {names} before its texts): the exported "
                     f"tokenizer puts no {names} first either")


def _without_prefix(pp, names: list[str]):
    """A tokenizers post-processor (its JSON) without the special tokens `names` (in this order) right before a
    sequence ($A, $B). Only there: a BOS that is also the EOS (one token put around a text) stays after $A."""
    if not isinstance(pp, dict):
        return pp
    if pp.get("type") == "Sequence":
        return {**pp, "processors": [_without_prefix(p, names) for p in pp.get("processors") or []]}
    if pp.get("type") != "TemplateProcessing":
        return pp  # (Bert/Roberta's [CLS]: checked by _drop_bos's reload)
    out = dict(pp)
    n = len(names)
    for key in ("single", "pair"):
        pieces = pp.get(key) or []
        ids = [(p.get("SpecialToken") or {}).get("id") if isinstance(p, dict) else None for p in pieces]
        drop: set[int] = set()
        for i, piece in enumerate(pieces):
            if isinstance(piece, dict) and "Sequence" in piece and n and i >= n and ids[i - n : i] == names:
                drop.update(range(i - n, i))
        out[key] = [p for i, p in enumerate(pieces) if i not in drop]
    return out


def _untie_config(model, src: Path, notes: list[str] | None) -> None:
    """`tie_word_embeddings: false` in the export of a model whose config says tied but whose lm_head is not
    its embedding (loading left them apart: an HF init so saved, SFT of one). Said tied, vLLM and llama.cpp's
    converter use the embedding as the head, and --stock built a tied stock class whose lm_head values overwrote
    the embedding (refused as "computes other logits"); every load warned."""
    cfg = model.config
    inp, out = model.get_input_embeddings(), model.get_output_embeddings()
    if not getattr(cfg, "tie_word_embeddings", False) or inp is None or out is None or out.weight is inp.weight:
        return
    cfg.tie_word_embeddings = False
    if notes is not None:
        notes.append(f"{src}: its config says tie_word_embeddings but its lm_head differs from its embedding; "
                     "exported with tie_word_embeddings: false (both weights kept)")


def stock_model(model, src: Path, notes: list[str]):
    """The same network as transformers' own class: Qwen2ForCausalLM (bias on q/k/v, none on o_proj, as
    Steel's `attention_bias: true`) or LlamaForCausalLM (`attention_bias: false`: no bias at all). Only a
    dense `ffn_type: swiglu` Steel model is that network; the parameter names are the same. vLLM, SGLang
    and llama.cpp's converter know these classes; no `trust_remote_code`.

    The two are run on a probe sequence before anything is written: a mapping that dropped a config
    field (RoPE scaling, head_dim, activation) gives logits far apart, not a silently different model.
    """
    import transformers

    cfg = model.config
    if cfg.ffn_type != "swiglu":
        raise UserError(
            f"{src}: --stock: ffn_type {cfg.ffn_type} has no transformers architecture (only ffn_type swiglu is "
            "Qwen2/Llama); export without --stock (Steel's model files, loaded with trust_remote_code=True)"
        )
    common = dict(
        vocab_size=cfg.vocab_size,
        hidden_size=cfg.hidden_size,
        intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_hidden_layers,
        num_attention_heads=cfg.num_attention_heads,
        num_key_value_heads=cfg.num_key_value_heads,
        head_dim=cfg.head_dim,
        hidden_act=cfg.hidden_act,
        max_position_embeddings=cfg.max_position_embeddings,
        initializer_range=cfg.initializer_range,
        rms_norm_eps=cfg.rms_norm_eps,
        rope_parameters=dict(cfg.rope_parameters),
        attention_dropout=cfg.attention_dropout,
        tie_word_embeddings=cfg.tie_word_embeddings,
        bos_token_id=cfg.bos_token_id,
        eos_token_id=cfg.eos_token_id,
        pad_token_id=cfg.pad_token_id,
    )
    if cfg.attention_bias:
        new_cfg, cls = transformers.Qwen2Config(**common, use_sliding_window=False), transformers.Qwen2ForCausalLM
    else:
        new_cfg = transformers.LlamaConfig(**common, attention_bias=False, mlp_bias=False)
        cls = transformers.LlamaForCausalLM
    new_cfg.head_dim = cfg.head_dim  # Qwen2Config has no such field; Qwen2's attention reads it if set
    dtype = next(model.parameters()).dtype
    new = cls(new_cfg)  # fp32
    new.load_state_dict(model.state_dict(), strict=True)  # bf16/fp16 weights upcast exactly
    new.generation_config = model.generation_config
    new.eval()
    # The probe runs both in fp32: in bf16 one rounding per op (eps 2^-8) hid a dropped RoPE base, which moved
    # the logits of a freshly initialised model (the hardest case: near-uniform attention) by 0.4% of their
    # largest value. A probe without EOS ids: with document_mask Steel restarts attention after one, the
    # stock class does not.
    ref = model if dtype == torch.float32 else copy.deepcopy(model).float()
    eos = cfg.eos_token_id if isinstance(cfg.eos_token_id, list) else [cfg.eos_token_id]
    allowed = torch.tensor([i for i in range(min(cfg.vocab_size, 4096)) if i not in eos])
    probe = allowed[torch.randint(len(allowed), (1, min(32, cfg.max_position_embeddings)),
                                  generator=torch.Generator().manual_seed(0))]
    with torch.no_grad():
        want, got = ref(input_ids=probe).logits, new(input_ids=probe).logits
    del ref
    # The same weights and operations, maybe in another order: fp32 rounding (bit-equal on CPU in the tests).
    scale = want.abs().max().item()
    if not (got - want).abs().max().item() <= 1e-4 * scale:
        raise UserError(
            f"{src}: --stock: {cls.__name__} computes other logits than the Steel model on a probe (max "
            f"difference {(got - want).abs().max().item():.4g}, logits up to {scale:.4g}); export without --stock"
        )
    from steel.infer.load import cast_parameters

    cast_parameters(new, dtype)  # parameters only: RoPE's inv_freq stays fp32, as in the source
    if cfg.document_mask:
        notes.append(
            f"document_mask: {cls.__name__} attends across EOS (id {eos}) inside one sequence; inputs without "
            "one (a prompt, a chat) give the same logits"
        )
    return new


def _refuse_training_dir(src: Path, out: Path) -> None:
    """OUT may not be a run or checkpoint directory, nor the source: an HF config.json written into a run
    makes every later load take it for an HF model and ignore newer checkpoints (and --overwrite would
    rewrite weights the source model may still be reading)."""
    if not out.exists():
        return
    if (out / "checkpoints").is_dir():
        raise UserError(
            f"{out}: output is a Steel run directory (it has checkpoints/); export to another directory"
        )
    if (out / "model_config.json").is_file() or (out / "train_state.json").is_file():
        raise UserError(f"{out}: output is a Steel checkpoint directory; export to another directory")
    if src.exists() and out.resolve() == src.resolve():
        raise UserError(f"{out}: output is the source model directory; export to another directory")


def _check_remote_code(out: Path) -> None:
    """save_pretrained copies the model files when SteelForCausalLM is registered for auto classes;
    make sure they and `auto_map` are there, copying the files from steel.model otherwise."""
    import steel.model as steel_model

    here = Path(steel_model.__file__).resolve().parent
    for name in STEEL_MODEL_FILES:
        if not (out / name).is_file():
            shutil.copy2(here / name, out / name)
    config = json.loads((out / "config.json").read_text(encoding="utf-8"))
    if "auto_map" not in config:
        config["auto_map"] = {
            "AutoConfig": "configuration_steel.SteelConfig",
            "AutoModelForCausalLM": "modeling_steel.SteelForCausalLM",
        }
        (out / "config.json").write_text(
            json.dumps(config, indent=2, sort_keys=True) + "\n", encoding="utf-8"
        )
