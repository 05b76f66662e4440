"""Tiny stand-ins shared by tests/eval, tests/infer and tests/sft (their conftest.py files import this).

- `tiny_tokenizer_dir`: a byte-level BPE tokenizer (256 byte tokens, a few merges, the Qwen specials
  and a ChatML chat template) saved as an HF fast tokenizer: any text, Chinese included, round-trips.
- `tiny_llama_dir`: a 2-layer stock `LlamaForCausalLM` over that vocabulary, saved with save_pretrained.
- `short_llama_dir`: the same model declaring `max_position_embeddings: 256` (context-limit tests);
  `position_log` records the largest RoPE position every forward computes, for any Llama/Steel model.
Evaluation and generation must work on any HF causal LM directory, so a stock model is the reference.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

CHATML_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>\\n' }}"
    "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]


def build_byte_tokenizer(out_dir: Path, merges: list[tuple[str, str]] = (("Ġ", "A"), ("Ġ", "B"))):
    """Byte-level BPE over the 256 byte symbols; `merges` make e.g. " A" one token (as in Qwen's vocab)."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    alphabet = pre_tokenizers.ByteLevel.alphabet()
    vocab = {ch: i for i, ch in enumerate(sorted(alphabet))}
    for a, b in merges:
        vocab[a + b] = len(vocab)
    tok = Tokenizer(models.BPE(vocab=vocab, merges=list(merges)))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True)
    tok.decoder = decoders.ByteLevel()
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, eos_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.add_special_tokens({"additional_special_tokens": SPECIALS[1:]})
    fast.chat_template = CHATML_TEMPLATE
    fast.save_pretrained(str(out_dir))
    return fast


def build_metaspace_tokenizer(out_dir: Path | None = None, extra: tuple[str, ...] = (), eos: bool = False):
    """A SentencePiece-style tokenizer as Llama-2, Mistral, Yi and Baichuan have: Unigram pieces with a
    Metaspace pre-tokenizer (prepend_scheme "first": "A" alone is "▁A", after "答案：" it is "A") and a
    post-processor that puts BOS (and with `eos`, EOS after) around a text by default. Characters it has
    no piece for are `<unk>`. `extra` adds pieces, scored so that they win (e.g. "：A")."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    chars = "以下是中国关于考试的单项选择题请出其正确答案直接给选项题目计算机网络高历史例甲乙丙丁说法哪：，。.\n0123456789"
    pieces = ["<unk>", "<s>", "</s>", "▁", *"ABCD", "▁A", "▁B", "▁C", "▁D", *dict.fromkeys(chars)]
    vocab = [(t, 0.0) for t in pieces[:3]] + [(t, -2.0 if len(t) == 1 else -1.0) for t in pieces[3:]]
    vocab += [(t, 0.0) for t in extra]
    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=False))
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    tok.decoder = decoders.Metaspace(replacement="▁", prepend_scheme="first", split=False)
    single = "<s> $A </s>" if eos else "<s> $A"
    tok.post_processor = processors.TemplateProcessing(
        single=single, pair=f"{single} $B", special_tokens=[("<s>", 1), ("</s>", 2)]
    )
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<s>", eos_token="</s>", unk_token="<unk>")
    if out_dir is not None:
        fast.save_pretrained(str(out_dir))
    return fast


def build_tiny_llama(vocab_size: int, seed: int = 0, max_positions: int = 512):
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    cfg = LlamaConfig(
        vocab_size=vocab_size,
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=max_positions,
        tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(cfg)
    # NOTE: the default init (std 0.02) gives near-uniform logits; a larger head makes greedy choices
    # well separated so cached/uncached and batched/unbatched comparisons test real differences.
    with torch.no_grad():
        model.lm_head.weight.normal_(0, 1.0)
    return model.eval()


@pytest.fixture(scope="session")
def tiny_tokenizer_dir(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("tiny_tokenizer")
    build_byte_tokenizer(d)
    return d


@pytest.fixture(scope="session")
def tiny_llama_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    d = tmp_path_factory.mktemp("tiny_llama")
    model = build_tiny_llama(len(tok))
    model.save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


SHORT_CONTEXT = 256


@pytest.fixture(scope="session")
def short_llama_dir(tmp_path_factory, tiny_tokenizer_dir) -> Path:
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    d = tmp_path_factory.mktemp("short_llama")
    build_tiny_llama(len(tok), max_positions=SHORT_CONTEXT).save_pretrained(str(d))
    tok.save_pretrained(str(d))
    return d


@pytest.fixture
def position_log(monkeypatch) -> list[int]:
    """The largest position id of every RoPE computation (Llama's and Steel's rotary embedding) while
    the test runs: a context-limit check that does not trust the code under test."""
    from transformers.models.llama.modeling_llama import LlamaRotaryEmbedding

    from steel.model.modeling_steel import SteelRotaryEmbedding

    seen: list[int] = []
    for cls in (LlamaRotaryEmbedding, SteelRotaryEmbedding):
        orig = cls.forward

        def forward(self, x, position_ids, _orig=orig):
            seen.append(int(position_ids.max()))
            return _orig(self, x, position_ids)

        monkeypatch.setattr(cls, "forward", forward)
    return seen


BOS_PROMPT = "以下是中国关于考试的单项选择题"


@torch.no_grad()
def greedy_text(model, tok, bos: bool, prompt: str = BOS_PROMPT, n: int = 6) -> str:
    """A greedy loop of plain forwards over `prompt`'s ids, with or without the tokenizer's BOS first: the
    reference the BOS-lineage tests hold `steel generate` to."""
    ids = ([tok.bos_token_id] if bos else []) + tok.encode(prompt, add_special_tokens=False)
    new = []
    for _ in range(n):
        nxt = int(model(torch.tensor([ids + new])).logits[0, -1].argmax())
        if nxt == tok.eos_token_id:
            break
        new.append(nxt)
    return tok.decode(new, skip_special_tokens=True)


def steel_generate(model_dir, capsys, prompt: str = BOS_PROMPT) -> tuple[str, str]:
    """`steel generate` greedy, 6 new tokens on the CPU: (stdout without its newline, stderr)."""
    from steel.cli import main as steel_main

    capsys.readouterr()
    assert steel_main(["generate", "--model", str(model_dir), "--prompt", prompt, "--temperature", "0",
                       "--max-new-tokens", "6", "--device", "cpu"]) == 0
    got = capsys.readouterr()
    return got.out.removesuffix("\n"), got.err


def write_csv(path: Path, header: list[str], rows: list[list[str]]) -> Path:
    import csv

    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


def write_json(path: Path, obj) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(obj, ensure_ascii=False), encoding="utf-8")
    return path


_TINY_FP: list[str] = []


def tiny_fingerprint() -> str:
    """The tokenizer fingerprint of `build_byte_tokenizer()` (every tiny model here uses it): what the
    manifest of data tokenized with it records, so that eval's tokenizer checks accept the test data."""
    if not _TINY_FP:
        import tempfile

        from steel.tokenizer.engine import fingerprint

        with tempfile.TemporaryDirectory() as d:
            build_byte_tokenizer(Path(d))
            _TINY_FP.append(fingerprint(json.loads((Path(d) / "tokenizer.json").read_text(encoding="utf-8"))))
    return _TINY_FP[0]
