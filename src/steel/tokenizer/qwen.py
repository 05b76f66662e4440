"""Rebuild Steel's tokenizer, Qwen's byte-level BPE vocabulary, offline from its rank file.

Qwen publishes its vocabulary as a tiktoken rank file (`qwen.tiktoken`: one `base64(token_bytes) rank`
per line, 151,643 lines). The PyPI package `dashscope` ships that file under `dashscope/resources/`;
we locate it WITHOUT importing `dashscope` (installing it with `pip install --no-deps dashscope` is
enough) and write a Hugging Face fast tokenizer directory:

    OUT_DIR/tokenizer.json         byte-level BPE + Qwen's pre-tokenizer regex + 3 special tokens
    OUT_DIR/tokenizer_config.json  eos/pad = <|endoftext|>, ChatML chat template
    OUT_DIR/chat_template.jinja    (transformers 5 keeps the template in its own file)
    OUT_DIR/qwen.tiktoken          the rank file itself, so `steel.tokenizer.engine` can use tiktoken

Special tokens follow the rank file: `<|endoftext|>`=151643 (EOS between pretraining documents, also
the pad token), `<|im_start|>`=151644, `<|im_end|>`=151645 (a chat turn ends with it; generation in
chat must stop at `<|im_end|>`, not only at EOS). The vocabulary has 151,646 ids.
"""

from __future__ import annotations

import base64
import importlib.util
import json
import os
import shutil
import site
import stat
import sys
import tempfile
from pathlib import Path

from tokenizers import Tokenizer

from steel.cli import UserError

RANKS_FILE = "qwen.tiktoken"  # the name the rank file carries inside dashscope and inside OUT_DIR
# NOTE: Qwen's pattern differs from GPT-4's cl100k pattern in `\p{N}` (one digit per piece, not `\p{N}{1,3}`).
QWEN_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
ENDOFTEXT = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = (ENDOFTEXT, IM_START, IM_END)  # ids follow the last rank, in this order
QWEN_SPECIAL_IDS = {ENDOFTEXT: 151643, IM_START: 151644, IM_END: 151645}
QWEN_NUM_RANKS = 151643
# Every file `build_qwen_tokenizer` writes: a directory without one of them is an interrupted build.
QWEN_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", RANKS_FILE)
# What transformers also reads as part of a tokenizer directory, and Steel does not write: left by another
# tokenizer in OUT_DIR, they would override ours (a special_tokens_map.json's eos "</s>" became a new id past
# the vocabulary while `load_encoder` still ended documents with <|endoftext|>). Removed when a build replaces
# a directory.
HF_TOKENIZER_EXTRAS = ("special_tokens_map.json", "added_tokens.json", "chat_template.json", "additional_chat_templates")
PARTIAL_SUFFIX = ".partial-"  # `.NAME.partial-XXXX`: a build in progress (or killed) beside NAME
OLD_SUFFIX = ".old-"  # `.NAME.old-XXXX`: the directory a build replaced, until it is deleted


def scratch_dir(target: Path, suffix: str) -> Path:
    """A new empty sibling of `target` for building (PARTIAL_SUFFIX) or setting aside (OLD_SUFFIX) it."""
    return Path(tempfile.mkdtemp(dir=target.parent, prefix=f".{target.name}{suffix}"))


def scratch_dirs(target: Path) -> list[Path]:
    """The `scratch_dir`s of `target` that exist: left by a killed build or swap."""
    return [p for suffix in (PARTIAL_SUFFIX, OLD_SUFFIX) for p in target.parent.glob(f".{target.name}{suffix}*")]


def chatml_template(default_system: str | None = None) -> str:
    """Qwen's ChatML Jinja template: `<|im_start|>{role}\\n{content}<|im_end|>\\n` per message.

    With `default_system`, a conversation that does not open with a system message gets one (as Qwen1.5
    does with "You are a helpful assistant."); `add_generation_prompt` appends `<|im_start|>assistant\\n`.
    """
    head = ""
    if default_system is not None:
        if "'" in default_system or "{" in default_system or "\\" in default_system:
            raise UserError(
                f"default system message {default_system!r} must not contain quotes, braces or backslashes"
            )
        head = (
            "{% if loop.first and message['role'] != 'system' %}"
            "{{ '<|im_start|>system\\n" + default_system + "<|im_end|>\\n' }}{% endif %}"
        )
    return (
        "{% for message in messages %}"
        + head
        + "{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] "
        "+ '<|im_end|>' + '\\n' }}{% endfor %}"
        "{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
    )


def find_qwen_ranks() -> Path:
    """Path of `dashscope/resources/qwen.tiktoken` without importing (executing) `dashscope`."""
    candidates: list[Path] = []
    try:
        # find_spec on a top-level name only locates the package; nothing of it is executed.
        spec = importlib.util.find_spec("dashscope")
    except (ImportError, ValueError):
        spec = None
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) for p in spec.submodule_search_locations]
    roots = list(sys.path) + site.getsitepackages() + [site.getusersitepackages()]
    candidates += [Path(p) / "dashscope" for p in roots if p]
    for pkg in candidates:
        path = pkg / "resources" / RANKS_FILE
        if path.is_file():
            return path
    raise UserError(
        f"cannot find dashscope/resources/{RANKS_FILE} (Qwen's rank file); install it with "
        "`pip install --no-deps dashscope` or pass --ranks PATH"
    )


def read_ranks(path: str | Path) -> dict[bytes, int]:
    """Parse a tiktoken rank file (`base64 rank` per line) strictly; errors name file and line.

    NOTE: we do not use `tiktoken.load.load_tiktoken_bpe`: it caches by the *path's* hash in the temp dir,
    so a different file at the same path would silently load stale ranks.
    """
    path = Path(path)
    ranks: dict[bytes, int] = {}
    with open(path, "rb") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            parts = line.split()
            try:
                if len(parts) != 2:
                    raise ValueError("expected `base64 rank`")
                token, rank = base64.b64decode(parts[0], validate=True), int(parts[1])
            except ValueError as e:
                raise UserError(f"{path}:{lineno}: bad rank line ({e})") from None
            if token in ranks:
                raise UserError(f"{path}:{lineno}: token {token!r} listed twice")
            ranks[token] = rank
    if sorted(ranks.values()) != list(range(len(ranks))):
        raise UserError(f"{path}: ranks are not exactly 0..{len(ranks) - 1}")
    # Byte-level BPE: text holding a byte that is no token cannot be encoded (HF tokenizers drops it
    # silently, tiktoken panics). A rank file cut at a line boundary passes the checks above but not this.
    missing = [b for b in range(256) if bytes([b]) not in ranks]
    if missing:
        raise UserError(
            f"{path}: not a byte-level BPE rank file: {len(missing)} of the 256 single bytes are not tokens "
            f"(first: {bytes([missing[0]])!r}; a truncated file?)"
        )
    return ranks


def build_fast_tokenizer(ranks: dict[bytes, int], pattern: str = QWEN_PATTERN) -> Tokenizer:
    """A HF `tokenizers` byte-level BPE equivalent to tiktoken over `ranks`, specials appended after the ranks.

    NOTE: this is what transformers' `TikTokenConverter` builds, written out here because its way of
    reading the ranks changed within transformers 5 (5.0 reads a path with tiktoken, later versions call an
    overridable loader); the result is byte-identical to the converter's (tests/tokenizer check the ids
    against tiktoken on real text).
    """
    from tokenizers import AddedToken, Regex, decoders, pre_tokenizers, processors
    from tokenizers.models import BPE

    from steel.tokenizer.engine import bytes_to_unicode

    byte_char = bytes_to_unicode()

    def to_str(b: bytes) -> str:
        return "".join(byte_char[x] for x in b)

    # Merges ordered by the merged token's rank (each token's own splits by their pieces' ranks); with
    # `ignore_merges` a pre-token that is itself in the vocabulary is one id: exactly tiktoken's rule.
    vocab, merges = {}, []
    for token, rank in ranks.items():
        vocab[to_str(token)] = rank
        if len(token) == 1:
            continue
        local = [(token[:i], token[i:], rank) for i in range(1, len(token))
                 if token[:i] in ranks and token[i:] in ranks]
        merges.extend(sorted(local, key=lambda x: (ranks[x[0]], ranks[x[1]])))
    merges.sort(key=lambda x: x[2])
    tok = Tokenizer(BPE(vocab, [(to_str(a), to_str(b)) for a, b, _ in merges], fuse_unk=False))
    tok.model.ignore_merges = True
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    tok.add_special_tokens([AddedToken(t, normalized=False, special=True) for t in SPECIAL_TOKENS])
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    for i, name in enumerate(SPECIAL_TOKENS):
        assert tok.token_to_id(name) == len(ranks) + i, (name, tok.token_to_id(name))
    return tok


def save_tokenizer_dir(tok: Tokenizer, out_dir: str | Path, default_system: str | None = None) -> Path:
    """Write `tok` as a transformers fast-tokenizer directory with eos/pad and the ChatML template."""
    from transformers import PreTrainedTokenizerFast

    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for name in HF_TOKENIZER_EXTRAS:  # another tokenizer's; what save_pretrained writes below is ours
        stale = out_dir / name
        if stale.is_dir() and not stale.is_symlink():
            shutil.rmtree(stale)
        elif stale.exists() or stale.is_symlink():
            stale.unlink()
    hf = PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=ENDOFTEXT,  # pretraining separator; chat turns end with <|im_end|>
        pad_token=ENDOFTEXT,
        bos_token=None,
        unk_token=None,
        clean_up_tokenization_spaces=False,
        model_max_length=32768,
        chat_template=chatml_template(default_system),
    )
    hf.save_pretrained(str(out_dir))
    make_tokenizer_config_portable(out_dir, chatml_template(default_system))
    return out_dir


def make_tokenizer_config_portable(out_dir: str | Path, chat_template: str | None) -> None:
    """After `save_pretrained`: transformers 5 writes `tokenizer_class: TokenizersBackend` (a class older
    transformers do not have) and keeps the template only in chat_template.jinja; name the portable class and
    embed the template too, so older transformers (and tools that read tokenizer_config.json only) load the
    same tokenizer. A tokenizer saved under its own class (LlamaTokenizer...) keeps it.

    Additional special tokens: transformers 5 writes them as a list, `extra_special_tokens`, which transformers 4
    reads as a dict of named tokens ({"image_token": ...}): a list failed the load (`'list' object has no attribute
    'keys'`, reported as "requires the protobuf library"). They are written as `additional_special_tokens`, which
    transformers 4 reads and transformers 5 takes for `extra_special_tokens`."""
    cfg_path = Path(out_dir) / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    if cfg.get("tokenizer_class") == "TokenizersBackend" and (Path(out_dir) / "tokenizer.json").is_file():
        cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    if isinstance(cfg.get("extra_special_tokens"), list):
        extra = cfg.pop("extra_special_tokens")
        have = cfg.get("additional_special_tokens")
        have = have if isinstance(have, list) else []
        cfg["additional_special_tokens"] = have + [t for t in extra if t not in have]
    if isinstance(chat_template, str) and chat_template:
        cfg["chat_template"] = chat_template
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def build_qwen_tokenizer(
    out_dir: str | Path, ranks_path: str | Path | None = None, default_system: str | None = None
) -> Path:
    """Build Qwen's tokenizer into `out_dir` (see the module docstring); returns `out_dir`.

    Atomic: the files are written to a temporary sibling directory, which is renamed to `out_dir` once
    complete, so an interrupted build leaves `out_dir` as it was (absent, or the previous tokenizer), never
    a half directory that a later run would take for a tokenizer. An existing `out_dir` is replaced as a
    whole; files in it that the build does not write are moved into the new one (HF_TOKENIZER_EXTRAS
    are dropped).
    """
    ranks_path = Path(ranks_path) if ranks_path is not None else find_qwen_ranks()
    if not ranks_path.is_file():
        raise UserError(f"rank file {ranks_path} {'is a directory' if ranks_path.is_dir() else 'does not exist'}")
    ranks = read_ranks(ranks_path)
    tok = build_fast_tokenizer(ranks)
    out_dir = Path(out_dir)
    # A link named as OUT_DIR (to scratch space, say) is kept and the build goes where it points: swapping
    # the link itself failed (rmdir of a link to an empty directory; a relative link moved beside the old
    # files dangled) and left the tokenizer outside the linked directory.
    target = out_dir.resolve() if out_dir.is_symlink() else out_dir
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = scratch_dir(target, PARTIAL_SUFFIX)
    try:
        save_tokenizer_dir(tok, tmp, default_system)
        shutil.copyfile(ranks_path, tmp / RANKS_FILE)
        _install_dir(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out_dir


def _umask() -> int:
    mask = os.umask(0o022)  # NOTE: the only way to read it is to set it; restored at once
    os.umask(mask)
    return mask


def _install_dir(new: Path, out_dir: Path) -> None:
    """Rename the complete directory `new` to `out_dir`, replacing it; entries of the old `out_dir` that
    `new` does not have are moved into it (they were kept when the build wrote into the directory), but
    not HF_TOKENIZER_EXTRAS, which would change the tokenizer."""
    # `new` comes from mkdtemp (mode 0700): give it the mode the directory had, or a plain mkdir's, so the
    # tokenizer stays readable to whoever could read the directory before (another user, a container uid).
    os.chmod(new, stat.S_IMODE(out_dir.stat().st_mode) if out_dir.is_dir() else 0o777 & ~_umask())
    if out_dir.is_dir() and not any(out_dir.iterdir()):
        out_dir.rmdir()
    if not out_dir.exists():
        os.rename(new, out_dir)
        return
    # NOTE: two renames, not one: a kill between them leaves no `out_dir` (rebuilt by the next run) and
    # the old one beside it, never a mix of old and new files.
    old = scratch_dir(out_dir, OLD_SUFFIX)
    os.rename(out_dir, old / "dir")
    os.rename(new, out_dir)
    for p in (old / "dir").iterdir():
        if p.name not in HF_TOKENIZER_EXTRAS and not (out_dir / p.name).exists():
            os.rename(p, out_dir / p.name)
    shutil.rmtree(old, ignore_errors=True)
