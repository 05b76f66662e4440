"""`steel export RUN_DIR|MODEL_DIR OUT_DIR`: a plain Hugging Face directory anyone can load.

The output holds `config.json` (with `auto_map` for Steel's model type), `model.safetensors`, Steel's
`configuration_steel.py` + `modeling_steel.py`, the tokenizer files with the ChatML chat template,
and `generation_config.json` (stop at `<|im_end|>` or `<|endoftext|>`). It loads with
`AutoModelForCausalLM.from_pretrained(OUT_DIR, trust_remote_code=True)` where Steel is not installed
(LLaMA-Factory, TRL, vLLM users), with the same logits as the source (tested in a subprocess).
The tokenizer's `model_max_length` is the model's `max_position_embeddings`.

NOTE: transformers >= 5 `AutoTokenizer.from_pretrained(OUT_DIR)` always reads `config.json` first, and
its `auto_map.AutoConfig` (custom code, needed by AutoModelForCausalLM) makes it ask "Do you wish to run
the custom code? [y/N]" where Steel is not imported (it falls back to the plain config after an answer,
15 s or a closed stdin). Pass `trust_remote_code=True` as for the model, or load the tokenizer as
`PreTrainedTokenizerFast.from_pretrained(OUT_DIR)`; the tokenizer itself has no custom code.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from steel.cli import UserError
from steel.infer.generate import stop_token_ids
from steel.infer.load import load_model, load_tokenizer, max_positions

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
) -> Path:
    src, out = Path(src), Path(out)
    _refuse_training_dir(src, out)
    if out.exists() and any(out.iterdir()) and not overwrite:
        raise UserError(f"{out}: output directory exists and is not empty (use --overwrite)")
    tok = load_tokenizer(src, tokenizer)
    model = load_model(src, "cpu", dtype)
    cfg = model.config
    if getattr(cfg, "model_type", None) == "steel":
        # Kernels other than the torch reference live in steel.kernels, which the export must not need.
        cfg.kernels = {}
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
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(str(out))
    tok.save_pretrained(str(out))
    if getattr(cfg, "model_type", None) == "steel":
        _check_remote_code(out)
    return out


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
