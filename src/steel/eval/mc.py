"""C-Eval / CMMLU multiple-choice evaluation: readers, prompts, scoring, answer extraction, reports.

Two ways to score a question:
- `logprob`: the benchmark's own harness prompt (header naming the subject, k dev examples, then the
  question ending in `答案：`), prediction = argmax of the model's next-token scores. `letter` scoring
  compares the next-token logits of the tokens "A".."D" (what C-Eval's and CMMLU's own code do);
  `continuation` scoring compares log P(" A" | prompt) as lm-evaluation-harness does (a leading space,
  scored as a continuation, possibly several tokens). The two give different numbers, so results
  carry the variant used.
- `generate`: a chat-style zero-shot prompt (ChatML via the tokenizer's template), greedy decoding,
  and a deterministic answer extractor; an answer without a recognisable letter counts as wrong and
  is reported (Steel-LLM's script fell back to an unseeded random letter there).

Averages: per-category and overall, both macro (mean over subjects: the headline, as CMMLU's and
C-Eval's own scripts publish) and micro (mean over questions, as lm-evaluation-harness groups report).

Shots come from the subject's dev split in file order; with `split="dev"` a question is never among its
own shots (they come from the subject's other dev questions, so at most 4 of CMMLU's 5).

Tokens: prompts get the special tokens the tokenizer puts before a text by default (Llama's BOS, as
CMMLU's `tokenizer(prompt)` and C-Eval's Llama evaluator do; Qwen's tokenizer adds none), and the
letters "A".."D" are the tokens they are after the prompt's last line ("答案：A" minus "答案："), which
for SentencePiece-style tokenizers is not the token of "A" alone ("▁A").

Context limit: a k-shot prompt that does not fit the model's `max_position_embeddings` (plus the
reply's room in generate mode) loses its earliest examples one at a time until it fits (MMLU-style;
CMMLU's own gen_prompt drops the longest examples first); the result counts those questions
(`fewer_shots`) and each question's dump says how many shots it got. A question that does not fit even
0-shot is an error: scoring a truncated or over-long prompt would be a silently wrong number.

Causality: a model whose FFN mixes positions (Steel soft-MoE v2/v3) reads later tokens of its input.
Letter scoring and one-token continuations read nothing after the prompt, so they are what the model
delivers; a continuation of several tokens is scored teacher-forced and is optimistic: a warning says
so, and the result carries `"causal": false` for such a model.
"""

from __future__ import annotations

import csv
import io
import json
import re
import time
import warnings
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal, TypeVar

import torch

from steel.cli import UserError
from steel.config import ConfigError
from steel.eval.subjects import (
    CEVAL_CATEGORIES,
    CEVAL_HARD,
    CEVAL_SUBJECTS,
    CMMLU_CATEGORIES,
    CMMLU_SUBJECTS,
)
from steel.infer.load import accepts, max_positions, mixes_positions

LETTERS = ("A", "B", "C", "D")
Task = Literal["ceval", "cmmlu"]
DEFAULT_SPLIT = {"ceval": "val", "cmmlu": "test"}
# Which average the benchmarks publish: the mean over subjects. CMMLU's src/mp_utils.py get_results
# averages the per-subject accuracies (`np.mean(list(all_acc.values()))`, each category likewise over
# its subjects); C-Eval's paper defines Average over subjects (OpenCompass does the same). Only
# lm-evaluation-harness groups (weight_by_size) report the question-weighted micro average. Both are
# always written; compare with the one the table you compare with uses.
HEADLINE_AVERAGE = "macro"
AVERAGES = {
    "macro": "mean over subjects, as CMMLU's and C-Eval's own scripts publish",
    "micro": "mean over questions, as lm-evaluation-harness groups report",
}


@dataclass
class Question:
    subject: str
    question: str
    choices: tuple[str, str, str, str]
    answer: str | None  # "A".."D"; None where the split has no public answers (C-Eval test)
    where: str  # "file:line" of the row, for error messages and the per-question dump
    explanation: str = ""


# ---------------------------------------------------------------------------------------------------
# Readers


def _csv_rows(path: Path) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """Header and (line number, row) pairs; line numbers are physical lines (quoted fields may span lines)."""
    try:
        raw = path.read_bytes()  # benchmark files are small; decoding it whole tells the bad line exactly
    except OSError as e:
        raise UserError(f"{path}: cannot read ({e.strerror})") from None
    raw = raw.removeprefix(b"\xef\xbb\xbf")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        raise UserError(f"{path}:{line}: invalid UTF-8 ({e.reason})") from None
    with io.StringIO(text, newline="") as f:
        reader = csv.reader(f)
        try:
            header = next(reader)
        except StopIteration:
            raise UserError(f"{path}: empty file (expected a header row)") from None
        except csv.Error as e:
            raise UserError(f"{path}:1: bad CSV ({e})") from None
        rows = []
        try:
            line = reader.line_num + 1
            for row in reader:
                rows.append((line, row))
                line = reader.line_num + 1
        except csv.Error as e:
            raise UserError(f"{path}:{reader.line_num}: bad CSV ({e})") from None
    return header, rows


def read_questions(path: str | Path, task: Task, subject: str, need_answer: bool = True) -> list[Question]:
    """Read one subject CSV in the benchmark's released layout.

    CMMLU: `,Question,A,B,C,D,Answer` (first column an unnamed row index).
    C-Eval: `id,question,A,B,C,D,answer[,explanation]` (test split: no answer column).
    """
    path = Path(path)
    header, rows = _csv_rows(path)
    cols = [h.strip() for h in header]
    if task == "cmmlu":
        want = ["Question", "A", "B", "C", "D"]
        ans_col = "Answer"
    else:
        want = ["question", "A", "B", "C", "D"]
        ans_col = "answer"
    missing = [c for c in want if c not in cols]
    if missing:
        raise UserError(f"{path}:1: not a {task} CSV, missing column(s) {missing} (header: {cols})")
    # C-Eval's test answers are not released (its test files have no answer column, or an empty one). Only a
    # test file gets the advice: a val or dev file without answers is damaged, and scoring --split val is no way out.
    test_file = task == "ceval" and path.name.endswith("_test.csv")
    hint = "; C-Eval's test answers are not public: score --split val" if test_file else ""
    if need_answer and ans_col not in cols:
        raise UserError(f"{path}:1: no '{ans_col}' column (answers are needed to score this split{hint})")
    idx = {c: cols.index(c) for c in cols if c}
    out = []
    for line, row in rows:
        if not row or all(not c.strip() for c in row):
            continue
        if len(row) != len(cols):
            raise UserError(f"{path}:{line}: expected {len(cols)} fields, got {len(row)}")
        answer = None
        if ans_col in idx:
            answer = row[idx[ans_col]].strip().upper()
            if not answer and not need_answer:
                # NOTE: the C-Eval test split as the HF `ceval/ceval-exam` dataset gives it (and a CSV written
                # from it) has an empty answer column: no answers, as in the release's files without one.
                answer = None
            elif not answer:
                raise UserError(f"{path}:{line}: empty '{ans_col}' (answers are needed to score this split{hint})")
            elif answer not in LETTERS:
                raise UserError(f"{path}:{line}: answer {row[idx[ans_col]]!r} is not one of A/B/C/D")
        q = row[idx[want[0]]]
        choices = tuple(row[idx[L]] for L in LETTERS)
        expl = row[idx["explanation"]] if "explanation" in idx else ""
        out.append(Question(subject, q, choices, answer, f"{path}:{line}", expl))
    return out


def subject_file(task: Task, data_dir: Path, split: str, subject: str) -> Path:
    if task == "cmmlu":
        return data_dir / split / f"{subject}.csv"
    return data_dir / split / f"{subject}_{split}.csv"


def list_subjects(task: Task, data_dir: Path, split: str) -> list[str]:
    """Subjects that have a file for `split`, sorted (the evaluation order, so reruns are identical)."""
    d = data_dir / split
    if not d.is_dir():
        raise UserError(f"{d}: no '{split}' split directory in {data_dir}")
    if task == "cmmlu":
        names = [p.stem for p in d.glob("*.csv")]
    else:
        suffix = f"_{split}"
        names = [p.stem[: -len(suffix)] for p in d.glob(f"*{suffix}.csv")]
    if not names:
        raise UserError(f"{d}: no {task} subject files for split '{split}'")
    return sorted(names)


@dataclass
class SubjectInfo:
    name_zh: str
    categories: tuple[str, ...]


def subject_table(task: Task, data_dir: Path | None = None) -> dict[str, SubjectInfo]:
    """Built-in table, updated from `subject_mapping.json` in the data directory when there is one.

    Both mapping layouts are read: C-Eval's `{subject: [English, Chinese, category]}` and the CMMLU
    layout `{subject: {"name_zh", "categories", ...}}`. An `[English, Chinese]` entry (clinical_medicine
    in one C-Eval revision) keeps the built-in category; a subject with none is counted in the overall
    averages only.
    """
    if task == "ceval":
        table = {k: SubjectInfo(zh, (cat,)) for k, (_en, zh, cat) in CEVAL_SUBJECTS.items()}
    else:
        table = {k: SubjectInfo(zh, cats) for k, (zh, cats) in CMMLU_SUBJECTS.items()}
    mapping = data_dir / "subject_mapping.json" if data_dir is not None else None
    if mapping is not None and mapping.is_file():
        try:
            data = json.loads(mapping.read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError) as e:
            raise UserError(f"{mapping}: cannot read subject table ({e})") from None
        for k, v in data.items():
            if isinstance(v, list) and len(v) in (2, 3):
                cats = (str(v[2]),) if len(v) == 3 else (table[k].categories if k in table else ())
                table[k] = SubjectInfo(str(v[1]), cats)
            elif isinstance(v, dict) and "name_zh" in v and "categories" in v:
                table[k] = SubjectInfo(str(v["name_zh"]), tuple(v["categories"]))
            else:
                raise UserError(
                    f"{mapping}: entry {k!r} is neither [en, zh, category], [en, zh] nor {{name_zh, categories}}"
                )
    return table


# ---------------------------------------------------------------------------------------------------
# Prompts


def format_question(task: Task, q: Question, answer: str | None) -> str:
    """One question block of the harness prompt; with `answer` it is a solved few-shot example."""
    if task == "cmmlu":
        # CMMLU's src/mp_utils.py format_example: "题目：" prefix, "答案是：".
        text = "题目：" + q.question
        text += "".join(f"\n{L}. {c}" for L, c in zip(LETTERS, q.choices))
        text += "\n答案是："
    else:
        # C-Eval's reference evaluator: question, options, "答案：".
        text = q.question
        text += "".join(f"\n{L}. {c}" for L, c in zip(LETTERS, q.choices))
        text += "\n答案："
    if answer is not None:
        text += f"{answer}\n\n"
    return text


def harness_header(task: Task, subject_zh: str) -> str:
    if task == "cmmlu":
        return f"以下是关于{subject_zh}的单项选择题，请直接给出正确答案的选项。\n\n"
    return f"以下是中国关于{subject_zh}考试的单项选择题，请选出其中的正确答案。\n\n"


def build_prompt(task: Task, subject_zh: str, dev: list[Question], q: Question, shots: int) -> str:
    """The harness prompt: header, `shots` solved dev examples (in file order), then the question."""
    if not 0 <= shots <= 5:
        raise UserError(f"--shots {shots}: expected 0..5")
    if shots > len(dev):
        raise UserError(f"{q.subject}: {shots} shots asked but the dev split has {len(dev)} examples")
    return (
        harness_header(task, subject_zh)
        + "".join(format_question(task, d, d.answer) for d in dev[:shots])
        + (format_question(task, q, None))
    )


def shot_pool(dev: list[Question], q: Question) -> list[Question]:
    """The dev examples `q` may be shown: its subject's, less `q` itself (`--split dev` scores them)."""
    return [d for d in dev if d.where != q.where]


def chat_user_message(subject_zh: str, q: Question, cot: bool) -> str:
    """Steel's chat-style prompt for `generate` mode (the question as one user turn)."""
    options = "".join(f"\n{L}. {c}" for L, c in zip(LETTERS, q.choices))
    if cot:
        ask = f"以下是关于{subject_zh}的单项选择题，请先逐步分析，最后以“答案：X”的格式给出正确选项。"
    else:
        ask = f"以下是关于{subject_zh}的单项选择题，请直接给出正确答案的选项。"
    return f"{ask}\n\n{q.question}{options}"


def chat_messages(subject_zh: str, dev: list[Question], q: Question, shots: int, cot: bool) -> list[dict]:
    """Few-shot examples become earlier user/assistant turns answering "答案：X"."""
    msgs = []
    for d in dev[:shots]:
        msgs.append({"role": "user", "content": chat_user_message(subject_zh, d, cot=False)})
        msgs.append({"role": "assistant", "content": f"答案：{d.answer}"})
    msgs.append({"role": "user", "content": chat_user_message(subject_zh, q, cot)})
    return msgs


P = TypeVar("P")


def special_prefix(tokenizer) -> list[int]:
    """The ids the tokenizer puts before a text by default: Llama's BOS, nothing for Qwen's tokenizer.

    NOTE: CMMLU's scripts score `tokenizer(prompt)` and C-Eval's Llama evaluator encodes with bos=True;
    a model trained with BOS scores worse without it. Found by comparing `tokenizer("x")` with
    `tokenizer("x", add_special_tokens=False)`; what a tokenizer appends (an EOS) is left out, since
    the answer comes after the prompt.
    """
    plain = list(tokenizer("x", add_special_tokens=False)["input_ids"])
    full = list(tokenizer("x")["input_ids"])
    for i in range(len(full) - len(plain) + 1):
        if full[i : i + len(plain)] == plain:
            return full[:i]
    return []


def encode_prompt(tokenizer, prompt: str, prefix: list[int] | None = None) -> list[int]:
    """`prompt`'s ids as scored: the tokenizer's default prefix (`special_prefix`), then the text."""
    prefix = special_prefix(tokenizer) if prefix is None else prefix
    return prefix + tokenizer.encode(prompt, add_special_tokens=False)


def scored_positions(tokenizer, prompt: str, scoring: str, prefix: list[int] | None = None) -> int:
    """Positions the model reads to score `prompt`: its tokens with `prefix` (default: the tokenizer's,
    `special_prefix`) (letter scoring), or the longest context + continuation minus the continuation's last
    token (continuation scoring, see score_requests)."""
    prefix = special_prefix(tokenizer) if prefix is None else prefix
    if scoring == "letter":
        return len(encode_prompt(tokenizer, prompt, prefix))
    pairs = [continuation_tokens(tokenizer, prompt, " " + L, prefix) for L in LETTERS]
    return max(len(c) + len(t) - 1 for c, t in pairs)


def fit_shots(
    make: Callable[[list[Question], int], P],
    dev: list[Question],
    shots: int,
    positions: Callable[[P], int],
    limit: int | None,
    q: Question,
    what: str = "",
) -> tuple[P, int]:
    """The prompt `make(examples, k)` with the most shots k <= `shots` whose `positions(prompt)` fit in
    `limit`; the earliest examples are dropped first (MMLU-style; CMMLU's gen_prompt drops the longest
    first, which changes which examples a prompt keeps). -> (prompt, k). A question that does not fit
    0-shot is a UserError naming it."""
    for k in range(shots, -1, -1):
        prompt = make(dev[shots - k : shots], k)
        if limit is None:
            return prompt, k
        n = positions(prompt)
        if n <= limit:
            return prompt, k
    raise UserError(
        f"{q.where}: the 0-shot prompt needs {n} positions{what}, more than the model's "
        f"max_position_embeddings {limit}"
    )


# ---------------------------------------------------------------------------------------------------
# Answer extraction (generate mode). Deterministic; None when no letter can be found.

_LETTER = r"([ABCD])(?![A-Za-z])"  # an upper-case option letter only: "answer is a bit" has no letter
_OPEN = r"\s*[:：]?\s*[\(（【\[]?\s*"
_CUE = _OPEN + r"(?:选项\s*[\(（【\[]?\s*)?"  # "答案是选项C", "答案：选项(C)"
# Statements of the answer -- the last one wins (CoT ends with it; "答案是A。不对，应该选C": C;
# "有人认为答案是A，但分析后本题选B": B):
_EXPLICIT = [
    # "答案是B", "答案：(C)", "正确答案为 D", "答案应该是A", "答案是选项C"
    re.compile(r"答案\s*(?:应该|应|就)?\s*(?:是|为|选)?" + _CUE + _LETTER),
    re.compile(r"(?i:answer)\s*(?:(?i:is))?" + _OPEN + _LETTER),
    # "正确选项是B", "正确的选项为C", "说法正确的是D" (CMMLU's `正确的?选项(是|为) ?([ABCD])`);
    # "不正确的是A" states the answer of a negative question just as well
    re.compile(r"正确的?(?:选项|一项)?\s*(?:应该|应)?\s*(?:是|为)" + _CUE + _LETTER),
    # a concluding choice: "应该选C", "故选B", "所以选项B", "最后选D", "本题选B"
    re.compile(
        r"(?:应该|应|故|所以|因此|最后|最终|综上|本题|此题|该题|这道题|这题)\s*选(?:择|项)?" + _OPEN + _LETTER
    ),
]
# A judgment that one option is right ("C项正确", "选项C正确", "C是正确的"; CMMLU's `([ABCD])(.*?)正确`
# without its reach: "A项错误，C项正确" is C, not A), read when no statement above is found. Not for a
# question asking for the wrong option ("下列说法错误的是"), where the right statements are the wrong answers.
_JUDGED = re.compile(r"(?<![A-Za-z])([ABCD])\s*(?:项|选项)?\s*(?:是|为)?\s*正确")
_NEGATIVE_QUESTION = re.compile(r"错误|不正确|不属于|不符合|不包括|不是")
# A plain choice ("这道题选D", "我选择B"), read only when nothing above is found
# ("答案为C。选择A是常见错误" is C). "选项B" alone names an option ("选项B错误"), it does not choose one.
_CHOICE = re.compile(r"选(?:择)?" + _OPEN + _LETTER)
# A reply opening with the letter as an answer: "B", "B. 腹", "(C)大腿" -- not "A或者B", not a list of
# letters ("A、B、C都不正确，D正确").
_LEADING = re.compile(r"^\s*[\(（【\[]?\s*([ABCD])\s*(?:$|[.．、,，。:：)）】\]\s])")
_LETTER_LIST = re.compile(r"^\s*[ABCD]\s*[、,，和及与]\s*[ABCD](?![A-Za-z])")
_STANDALONE = re.compile(r"(?<![A-Za-z])([ABCD])(?![A-Za-z])")


def extract_answer(text: str, choices: tuple[str, ...] | None = None, question: str = "") -> str | None:
    """The option letter a generated answer commits to, or None.

    Order: an explicit statement ("答案是X", "答案是选项X", "Answer: X", "正确选项是X", "应该选X",
    "本题选X"; the last one wins), a plain choice ("选X", the last one), a letter opening the reply ("B. 腹",
    "(C)"), a judgment "X项正确" (the last one; skipped when `question` asks for the wrong option), a
    single distinct stand-alone letter anywhere, the one option whose full text the reply quotes. Only
    upper-case letters count, and never inside English words ("As an AI"); "选项X" only mentions an option.
    """
    # The statement whose letter comes last in the reply, whichever pattern found it ("答案是A。不对，应该选C": C).
    explicit = [(m.start(1), m.group(1)) for pat in _EXPLICIT for m in pat.finditer(text)]
    if explicit:
        return max(explicit)[1]
    chosen = _CHOICE.findall(text)
    if chosen:
        return chosen[-1]
    m = _LEADING.match(text)
    if m and not _LETTER_LIST.match(text):
        return m.group(1)
    # NOTE: after the choice and the opening letter: "C。因为A项正确的前提不成立" answers C, and its
    # explanation judges another option.
    if not _NEGATIVE_QUESTION.search(question):
        judged = _JUDGED.findall(text)
        if judged:
            return judged[-1]
    letters = set(_STANDALONE.findall(text))
    if len(letters) == 1:
        return letters.pop()
    if choices is not None and not letters:
        quoted = [L for L, c in zip(LETTERS, choices) if c.strip() and c.strip() in text]
        if len(quoted) == 1:
            return quoted[0]
    return None


# ---------------------------------------------------------------------------------------------------
# Model scoring


def left_pad(seqs: list[list[int]], pad_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, T) ids and attention mask with the sequences right-aligned, so position -1 is every row's last."""
    T = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), T), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), T), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, T - len(s) :] = torch.tensor(s, dtype=torch.long)
        mask[i, T - len(s) :] = 1
    return ids, mask


def check_ids_fit(model, ids: torch.Tensor) -> None:
    """One error line for a `--tokenizer` that is not the model's (an id past its embeddings), before the
    forward fails with `IndexError: index out of range in self` (a device-side assert on CUDA)."""
    from steel.infer.generate import check_prompt_ids

    check_prompt_ids(model, [int(ids.max())] if ids.numel() else [])


def pads_leak(model) -> bool:
    """True where left padding would change a row's outputs: a position-mixing FFN (Steel soft-MoE v2/v3)
    from a modeling file older than its padding mask (`soft_moe_masks_padding`, an old export's remote code)."""
    return mixes_positions(model) and not getattr(model, "soft_moe_masks_padding", False)


@torch.no_grad()
def last_logits(model, seqs: list[list[int]], n_last: int, pad_id: int) -> torch.Tensor:
    """Logits at the last `n_last` positions of each sequence: (B, n_last, V), float32.

    NOTE: the LM head is computed only there (`logits_to_keep`, which HF causal LMs and Steel's model
    accept): with a 150k vocabulary the head over every position would dominate time and memory.
    Left padding puts every row's last token at -1; position ids restart at 0 on the first real token.
    Steel's soft-MoE v2/v3 mix positions but keep pads out of their slots; a directory exported by an
    older Steel carries a modeling file whose slots took the pads in: its rows run one by one.
    """
    if len(seqs) > 1 and len({len(s) for s in seqs}) > 1 and pads_leak(model):
        return torch.cat([last_logits(model, [s], n_last, pad_id) for s in seqs], dim=0)
    device = next(model.parameters()).device
    ids, mask = left_pad(seqs, pad_id)
    check_ids_fit(model, ids)
    ids, mask = ids.to(device), mask.to(device)
    kwargs = {"input_ids": ids, "attention_mask": mask, "use_cache": False}
    if accepts(model, "position_ids"):
        kwargs["position_ids"] = (mask.cumsum(-1) - 1).clamp(min=0)
    if accepts(model, "logits_to_keep"):
        kwargs["logits_to_keep"] = n_last
    logits = model(**kwargs).logits[:, -n_last:, :].float()  # (B, n_last, V)
    # The scores of NaN logits pick a letter by argmax's NaN rule: a benchmark figure without a word.
    check_finite_logits(model, logits)
    return logits


def check_finite_logits(model, logits: torch.Tensor) -> None:
    """One error line naming the dtype where `logits` hold NaN or +inf (-inf is a token ruled out)."""
    if bool((torch.isnan(logits) | torch.isposinf(logits)).any()):  # one read-back
        dtype = str(getattr(model, "dtype", "?")).removeprefix("torch.")
        raise UserError(f"the model's logits are not finite (NaN or inf) with the model in {dtype}: its activations "
                        "overflow or its weights are not finite (float16 overflows for many models trained in "
                        "bfloat16: try --dtype bfloat16 or float32)")


def letter_token_ids(tokenizer, context: str, letters=LETTERS) -> list[int]:
    """Each letter's token id after `context` (the prompt's last line, "答案："): encode(context + L)
    minus encode(context).

    NOTE: not encode(L): a SentencePiece-style tokenizer (Metaspace, prepend_scheme "first": Llama-2,
    Mistral, Yi, Baichuan) encodes "A" alone as "▁A", while after "答案：" the model sees "A".
    """
    ctx = tokenizer.encode(context, add_special_tokens=False)
    ids = []
    for L in letters:
        whole = tokenizer.encode(context + L, add_special_tokens=False)
        if whole[: len(ctx)] != ctx:
            raise UserError(
                f"tokenizer: option letter {L!r} merges with the prompt's end {context!r} "
                f"({ctx} -> {whole}); letter scoring needs the letter as a token of its own after it "
                "(try --scoring continuation)"
            )
        t = whole[len(ctx) :]
        if len(t) != 1:
            raise UserError(
                f"tokenizer: option letter {L!r} after {context!r} is {len(t)} tokens, letter scoring needs one"
            )
        ids.append(t[0])
    return ids


def continuation_tokens(
    tokenizer, context: str, continuation: str, prefix: list[int] | None = None
) -> tuple[list[int], list[int]]:
    """lm-evaluation-harness's split: encode(context + continuation) minus the encoded context; the
    context starts with the tokenizer's default prefix (`special_prefix`, Llama's BOS)."""
    prefix = special_prefix(tokenizer) if prefix is None else prefix
    ctx = tokenizer.encode(context, add_special_tokens=False)
    whole = tokenizer.encode(context + continuation, add_special_tokens=False)
    if whole[: len(ctx)] != ctx:
        # The continuation merged with the context's last token; fall back to separate encodes (harness does the same).
        return prefix + ctx, tokenizer.encode(continuation, add_special_tokens=False)
    return prefix + ctx, whole[len(ctx) :]


@dataclass
class ScoreRequest:
    """Score `targets` as the continuation of `context` (token ids); `key` = (question index, option)."""

    key: tuple[int, int]
    context: list[int]
    targets: list[int]


def score_requests(model, requests: list[ScoreRequest], pad_id: int, batch_size: int) -> dict:
    """Sum of log-probabilities of each request's targets, batched by length (longest first). -> {key: float}"""
    order = sorted(
        range(len(requests)), key=lambda i: (-(len(requests[i].context) + len(requests[i].targets)), i)
    )
    out = {}
    for start in range(0, len(order), batch_size):
        batch = [requests[i] for i in order[start : start + batch_size]]
        n = max(len(r.targets) for r in batch)
        # The input is context + targets[:-1]; the last len(targets) positions predict the targets.
        seqs = [r.context + r.targets[:-1] for r in batch]
        # Rows whose target is shorter than n read only their last len(targets) positions.
        logp = torch.log_softmax(last_logits(model, seqs, n, pad_id), dim=-1)  # (B, n, V)
        for b, r in enumerate(batch):
            k = len(r.targets)
            rows = logp[b, n - k :, :]  # (k, V)
            out[r.key] = float(rows.gather(-1, torch.tensor(r.targets, device=rows.device)[:, None]).sum())
    return out


@torch.no_grad()
def predict_letter_mode(
    model, tokenizer, prompts: list[str], batch_size: int, advance=None, prefix: list[int] | None = None
) -> list[tuple[str, list[float]]]:
    """Benchmark-code scoring: argmax over the next-token logits of "A".."D". -> [(letter, 4 logits)]
    Each prompt starts with `prefix` (default: the tokenizer's, `special_prefix`)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    prefix = special_prefix(tokenizer) if prefix is None else prefix
    enc = [encode_prompt(tokenizer, p, prefix) for p in prompts]
    # The letters' ids after each prompt's last line ("答案："): one lookup per distinct line.
    letters: dict[str, list[int]] = {}
    ids_of = []
    for p in prompts:
        tail = p[p.rfind("\n") + 1 :]
        if tail not in letters:
            letters[tail] = letter_token_ids(tokenizer, tail)
        ids_of.append(letters[tail])
    order = sorted(range(len(enc)), key=lambda i: (-len(enc[i]), i))
    out: list = [None] * len(enc)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        logits = last_logits(model, [enc[i] for i in idx], 1, pad_id)[:, -1, :]  # (B, V)
        for b, i in enumerate(idx):
            scores = logits[b, ids_of[i]]  # (4,)
            # Ties go to the earliest letter (torch.argmax semantics), so reruns agree.
            out[i] = (LETTERS[int(scores.argmax())], scores.tolist())
        if advance is not None:
            advance(len(idx))
    return out


def warn_reads_future(what: str) -> None:
    """One warning that a score read tokens after the ones it predicts (a position-mixing FFN)."""
    from steel.model.modeling_steel import SteelCausalityWarning

    warnings.warn(
        f"steel eval: the model's FFN mixes positions (Steel soft-MoE v2/v3), so a position reads the "
        f"tokens after it: {what} (the result says \"causal\": false; `steel model check-causal` "
        "measures the leak)",
        SteelCausalityWarning,
        stacklevel=3,
    )


@torch.no_grad()
def predict_continuation_mode(
    model, tokenizer, prompts: list[str], batch_size: int, advance=None, prefix: list[int] | None = None
):
    """lm-evaluation-harness scoring: argmax of log P(" X" | prompt), summed over the continuation's tokens.
    Each context starts with `prefix` (default: the tokenizer's, `special_prefix`)."""
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    single: list[tuple[int, list[int], list[int]]] = []  # (question, context, 4 one-token targets)
    requests = []
    prefix = special_prefix(tokenizer) if prefix is None else prefix
    for qi, p in enumerate(prompts):
        split = [continuation_tokens(tokenizer, p, " " + L, prefix) for L in LETTERS]
        if all(len(t) == 1 and c == split[0][0] for c, t in split):
            # NOTE: the usual case (" A" is one token): one forward per question, not four.
            single.append((qi, split[0][0], [t[0] for _c, t in split]))
        else:
            requests += [ScoreRequest((qi, li), c, t) for li, (c, t) in enumerate(split)]
    scores: dict[tuple[int, int], float] = {}
    order = sorted(range(len(single)), key=lambda i: (-len(single[i][1]), i))
    for start in range(0, len(order), batch_size):
        batch = [single[i] for i in order[start : start + batch_size]]
        logp = torch.log_softmax(
            last_logits(model, [c for _q, c, _t in batch], 1, pad_id)[:, -1, :], dim=-1
        )  # (B, V)
        for b, (qi, _c, targets) in enumerate(batch):
            for li, t in enumerate(targets):
                scores[(qi, li)] = float(logp[b, t])
        if advance is not None:
            advance(len(batch))
    if requests and mixes_positions(model):
        warn_reads_future(
            f"{len(requests) // 4} question(s) have a continuation of several tokens (\" A\".. \" D\"), scored "
            "teacher-forced: those scores are optimistic"
        )
    scores.update(score_requests(model, requests, pad_id, batch_size))
    if advance is not None and requests:
        advance(len(requests) // 4)
    out = []
    for qi in range(len(prompts)):
        s = [scores[(qi, li)] for li in range(4)]
        out.append((LETTERS[int(torch.tensor(s).argmax())], s))
    return out


@contextmanager
def _bad_words_set_aside(model):
    """The model's `generation_config.bad_words_ids` set aside for the block, put back after (an error too).
    NOTE: HF deep-copies the model's generation config at every generate call (`_prepare_generation_config`), an
    export's bad_words_ids included, whatever generate is passed: 0.43-0.57 s per call for 145,936 ids (a 6k
    tokenizer in Qwen's 151,936 rows), 14-22 ms for 23,936, on a loaded 2-core CPU (bench/export_suppress_tokens.py).
    TokensOnly masks those rows anyway."""
    config = getattr(model, "generation_config", None)
    listed = getattr(config, "bad_words_ids", None)
    if listed is None:
        yield
        return
    config.bad_words_ids = None
    try:
        yield
    finally:
        config.bad_words_ids = listed


@torch.no_grad()
def predict_generate_mode(
    model, tokenizer, messages: list[list[dict]], max_new_tokens: int, batch_size: int, advance=None
):
    """Greedy chat replies (ChatML via the tokenizer's template), batched with left padding. -> [text]"""
    from transformers import LogitsProcessor, LogitsProcessorList

    from steel.infer.generate import chat_prompt_ids, model_stop_ids, token_count

    class FiniteLogits(LogitsProcessor):
        """`check_finite_logits` on each step's next-token scores (a -inf another processor set is allowed)."""

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            check_finite_logits(model, scores)
            return scores

    n_tokens = token_count(tokenizer)

    class TokensOnly(LogitsProcessor):
        """Only ids the tokenizer has (as `steel generate`): embedding rows past it (Qwen's padding, a model
        vocab_size larger than the tokenizer's) have no text, and a reply of them decoded to nothing."""

        def __call__(self, input_ids: torch.LongTensor, scores: torch.FloatTensor) -> torch.FloatTensor:
            if n_tokens < scores.shape[-1]:
                scores[:, n_tokens:] = float("-inf")
            return scores

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    enc = [chat_prompt_ids(tokenizer, m) for m in messages]
    # The model's own end-of-turn ids too (Gemma's <end_of_turn>, Phi-3's <|end|>), as generate/chat do:
    # past them the model writes a turn of its own, whose letters the extractor would read.
    stops = model_stop_ids(model, tokenizer)
    if pads_leak(model):
        batch_size = 1  # padding would leak into an older export's position-mixing FFN (see last_logits)
    order = sorted(range(len(enc)), key=lambda i: (-len(enc[i]), i))
    out: list = [None] * len(enc)
    with _bad_words_set_aside(model):
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            ids, mask = left_pad([enc[i] for i in idx], pad_id)
            check_ids_fit(model, ids)
            gen = model.generate(
                # NaN logits decode greedily to token 0 over and over: every reply unanswered, a figure without a word
                logits_processor=LogitsProcessorList([FiniteLogits(), TokensOnly()]),
                input_ids=ids.to(device),
                attention_mask=mask.to(device),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                # plain greedy whatever the model directory's generation_config.json says (a Steel export
                # asks for repetition_penalty 1.05: the run dir and its export answered differently)
                repetition_penalty=1.0,
                no_repeat_ngram_size=0,
                # (an export's rows past its tokenizer, its bad_words_ids: TokensOnly masks them; see
                # _bad_words_set_aside)
                bad_words_ids=None,
                eos_token_id=stops,
                pad_token_id=pad_id,
            )
            for b, i in enumerate(idx):
                new = gen[b, ids.shape[1] :].tolist()
                cut = next((j for j, t in enumerate(new) if t in stops), len(new))
                out[i] = tokenizer.decode(new[:cut], skip_special_tokens=True)
            if advance is not None:
                advance(len(idx))
    return out


# ---------------------------------------------------------------------------------------------------
# Running a benchmark and reporting


@dataclass
class McOptions:
    """One benchmark run: the flags of `steel eval mc`, or the fields of a `--config` YAML (configs/eval/)."""

    task: Task  # ceval or cmmlu
    data: Path  # benchmark directory as released (dev/, val/ or test/, subject_mapping.json)
    split: str | None = None  # None: val for C-Eval, test for CMMLU
    shots: int = 5  # few-shot examples from dev/ (0..5); fewer where the model's context is too short
    mode: Literal["logprob", "generate"] = "logprob"
    scoring: Literal["letter", "continuation"] = "letter"  # logprob mode only
    cot: bool = False  # generate mode: explain, then answer
    max_new_tokens: int = 32  # generate mode (CoT raises it to at least 512)
    batch_size: int = 8
    subjects: list[str] | None = None  # None: every subject with a file in the split
    limit: int | None = None  # at most this many questions per subject (quick checks)
    details: list = field(default_factory=list, init=False, repr=False)  # per-question dump, set by run_mc

    def validate(self) -> None:
        if not 0 <= self.shots <= 5:
            raise ConfigError(f"shots: must be in 0..5, got {self.shots}")
        if self.batch_size < 1:
            raise ConfigError(f"batch_size: must be >= 1, got {self.batch_size}")
        if self.max_new_tokens < 1:
            raise ConfigError(f"max_new_tokens: must be >= 1, got {self.max_new_tokens}")
        if self.limit is not None and self.limit < 1:
            raise ConfigError(f"limit: must be >= 1, got {self.limit}")
        if self.subjects is not None and not self.subjects:
            raise ConfigError("subjects: must not be empty (leave it out for every subject)")
        if self.scoring != "letter" and self.mode != "logprob":
            # generate mode reads the reply: the logprob scoring asked for would be silently ignored
            raise ConfigError(f"scoring: only for mode logprob (got mode {self.mode})")
        if self.cot and self.mode != "generate":
            # logprob mode reads the next token after "答案：": there is no reply to reason in
            raise ConfigError(f"cot: needs mode generate (got mode {self.mode})")


def load_benchmark(
    opts: McOptions,
) -> tuple[dict[str, list[Question]], dict[str, list[Question]], dict[str, SubjectInfo]]:
    split = opts.split or DEFAULT_SPLIT[opts.task]
    data = Path(opts.data)
    if not data.is_dir():
        raise UserError(f"--data {data}: not a directory")
    table = subject_table(opts.task, data)
    available = list_subjects(opts.task, data, split)
    subjects = opts.subjects or available
    unknown = [s for s in subjects if s not in available]
    if unknown:
        raise UserError(f"--subjects: no {split} file for {unknown} in {data / split}")
    questions, dev = {}, {}
    for s in subjects:
        if s not in table:
            raise UserError(
                f"{subject_file(opts.task, data, split, s)}: subject '{s}' is in no subject table; add it to {data}/subject_mapping.json"
            )
        qs = read_questions(subject_file(opts.task, data, split, s), opts.task, s)
        if not qs:  # a truncated copy, most likely: it showed as a subject at 0.00 that no average counted
            raise UserError(f"{subject_file(opts.task, data, split, s)}: no questions (only a header)")
        questions[s] = qs[: opts.limit] if opts.limit else qs
        if opts.shots > 0:
            dev_file = subject_file(opts.task, data, "dev", s)
            dev[s] = read_questions(dev_file, opts.task, s)
            # A dev question's shots are the subject's other dev questions (it would show its own answer).
            if split == "dev" and opts.shots > len(dev[s]) - 1:
                raise UserError(
                    f"{dev_file}: --split dev takes each question's shots from the subject's other dev "
                    f"questions; '{s}' has {len(dev[s])}, so --shots {max(len(dev[s]) - 1, 0)} at most "
                    f"(got {opts.shots})"
                )
            # Checked here, before a model loads: generate mode took the few there were and reported
            # --shots; logprob mode failed at the first prompt, naming no file.
            if split != "dev" and opts.shots > len(dev[s]):
                raise UserError(
                    f"{dev_file}: --shots {opts.shots} but '{s}' has {len(dev[s])} dev question(s)"
                )
        else:
            dev[s] = []
    return questions, dev, table


def aggregate(task: Task, per_subject: dict[str, list[bool]], table: dict[str, SubjectInfo]) -> dict:
    subjects = {
        s: {"accuracy": sum(v) / len(v) if v else 0.0, "n": len(v), "correct": sum(v)}
        for s, v in per_subject.items()
    }
    cat_names = (*CEVAL_CATEGORIES, "Hard") if task == "ceval" else CMMLU_CATEGORIES
    # C-Eval's Hard average is over a subset of STEM subjects, whatever subject_mapping.json says.
    cats_of = {
        s: (*table[s].categories, "Hard") if task == "ceval" and s in CEVAL_HARD else table[s].categories
        for s in per_subject
    }
    extra = sorted({c for s in per_subject for c in cats_of[s]} - set(cat_names))
    categories = {}
    for cat in list(cat_names) + extra:
        members = [s for s in per_subject if cat in cats_of[s] and subjects[s]["n"]]
        if not members:
            continue
        correct = sum(subjects[s]["correct"] for s in members)
        n = sum(subjects[s]["n"] for s in members)
        categories[cat] = {
            "macro": sum(subjects[s]["accuracy"] for s in members) / len(members),
            "micro": correct / n,
            "subjects": len(members),
            "n": n,
        }
    scored = [s for s in subjects if subjects[s]["n"]]
    n_total = sum(subjects[s]["n"] for s in scored)
    overall = {
        "macro": sum(subjects[s]["accuracy"] for s in scored) / len(scored) if scored else 0.0,
        "micro": sum(subjects[s]["correct"] for s in scored) / n_total if n_total else 0.0,
    }
    return {"subjects": subjects, "categories": categories, "overall": overall, "n_questions": n_total}


def run_mc(
    model, tokenizer, opts: McOptions, model_name: str = "", progress=None, bos: bool = True
) -> dict:
    """Evaluate and return the JSON-able result (see module docstring for the fields).

    `bos`: logprob prompts start with the tokenizer's default prefix (`special_prefix`, Llama's BOS), as the
    benchmarks' scripts score them; False for a model trained without one (Steel's own, see
    steel.eval.cli.trained_without_bos), whose BOS embedding never trained. The result's `bos` says whether a
    prefix was put first (false also where the tokenizer adds none). Generate mode renders the chat template
    either way (what SFT trained on)."""
    t0 = time.perf_counter()
    prefix = special_prefix(tokenizer) if bos else []
    questions, dev, table = load_benchmark(opts)
    flat = [(s, q) for s in questions for q in questions[s]]
    if opts.mode == "generate" and opts.cot and opts.max_new_tokens < 512:
        opts.max_new_tokens = 512  # an explanation needs room (README: "raised to at least 512")
    preds: list[str | None]
    raw: list = []
    if progress is None:
        from steel.runlog import progress_bar as progress
    limit = max_positions(model)
    shots_used: list[int] = []
    with progress(f"{opts.task} {opts.mode}", total=len(flat), unit="questions") as advance:
        if opts.mode == "logprob":
            prompts = []
            for s, q in flat:
                prompt, k = fit_shots(
                    lambda ex, k, s=s, q=q: build_prompt(opts.task, table[s].name_zh, ex, q, k),
                    shot_pool(dev[s], q),
                    opts.shots,
                    lambda prompt: scored_positions(tokenizer, prompt, opts.scoring, prefix),
                    limit,
                    q,
                )
                prompts.append(prompt)
                shots_used.append(k)
            fn = predict_letter_mode if opts.scoring == "letter" else predict_continuation_mode
            res = fn(model, tokenizer, prompts, opts.batch_size, advance, prefix=prefix)
            preds = [r[0] for r in res]
            raw = [r[1] for r in res]
        else:
            from steel.infer.generate import chat_prompt_ids

            msgs = []
            for s, q in flat:
                m, k = fit_shots(
                    lambda ex, k, s=s, q=q: chat_messages(table[s].name_zh, ex, q, k, opts.cot),
                    shot_pool(dev[s], q),
                    opts.shots,
                    lambda m: len(chat_prompt_ids(tokenizer, m)) + opts.max_new_tokens,
                    limit,
                    q,
                    f" (with --max-new-tokens {opts.max_new_tokens})",
                )
                msgs.append(m)
                shots_used.append(k)
            texts = predict_generate_mode(
                model, tokenizer, msgs, opts.max_new_tokens, opts.batch_size, advance
            )
            preds = [extract_answer(t, q.choices, q.question) for t, (_s, q) in zip(texts, flat)]
            raw = texts
    per_subject: dict[str, list[bool]] = {s: [] for s in questions}
    no_answer: dict[str, int] = {s: 0 for s in questions}
    fewer_shots: dict[str, int] = {s: 0 for s in questions}
    details = []
    for (s, q), p, r, k in zip(flat, preds, raw, shots_used):
        per_subject[s].append(p is not None and p == q.answer)
        if p is None:
            no_answer[s] += 1
        if k < opts.shots:
            fewer_shots[s] += 1
        details.append({"where": q.where, "answer": q.answer, "pred": p, "raw": r, "shots": k})
    result = {
        "task": opts.task,
        "model": model_name,
        "split": opts.split or DEFAULT_SPLIT[opts.task],
        "mode": opts.mode,
        "scoring": (opts.scoring if opts.mode == "logprob" else ("generate-cot" if opts.cot else "generate")),
        "shots": opts.shots,
        # A --limit run scores the first N questions of each subject: a quick check, not the benchmark.
        "limit": opts.limit,
        "dtype": str(getattr(model, "dtype", None)).removeprefix("torch."),  # bf16 and fp32 differ a little
        # Whether logprob prompts started with the tokenizer's BOS (special_prefix); None in generate mode,
        # which renders the chat template.
        "bos": bool(prefix) if opts.mode == "logprob" else None,
        **aggregate(opts.task, per_subject, table),
        # Questions whose prompt lost its earliest examples to fit the model's max positions.
        "fewer_shots": {
            "total": sum(fewer_shots.values()),
            "per_subject": {s: n for s, n in fewer_shots.items() if n},
            "max_positions": limit,
        },
        "headline_average": HEADLINE_AVERAGE,
        # False for a model whose FFN mixes positions: multi-token continuations were read teacher-forced.
        "causal": not mixes_positions(model),
        "seconds": round(time.perf_counter() - t0, 2),
    }
    if opts.mode == "generate":
        result["max_new_tokens"] = opts.max_new_tokens
        result["no_answer"] = {"total": sum(no_answer.values()), "per_subject": no_answer}
    opts.details = details
    return result


def _pct(x: float) -> str:
    return f"{100 * x:.2f}"


def markdown_report(result: dict) -> str:
    """A Markdown summary: overall and per-category (macro and micro), then per subject."""
    pct = _pct
    headline = result["headline_average"]
    other = "micro" if headline == "macro" else "macro"
    head = (
        f"Model: `{result.get('model', '')}`"
        + (f" (checkpoint `{result['checkpoint']}`, step {result['step']})" if result.get("checkpoint") else "")
        + (f" (exported from checkpoint `{result['exported_from']['checkpoint']}`, step "
           f"{result['exported_from']['step']})" if result.get("exported_from") else "")
        + f"; {result['n_questions']} questions, {len(result['subjects'])} subjects. "
        f"Headline: **{pct(result['overall'][headline])}** ({headline}, {AVERAGES[headline]}); "
        f"{other}: {pct(result['overall'][other])} ({AVERAGES[other]})."
    )
    lines = [
        f"## {result['task']} ({result['split']}, {result['shots']}-shot, {result['mode']}/{result['scoring']})",
        "",
        head,
    ]
    if result.get("limit"):
        lines += [
            "",
            f"**Quick check**: the first {result['limit']} questions of each subject only (--limit); "
            "not comparable with published numbers.",
        ]
    lines += [
        "",
        "| category | subjects | questions | macro | micro |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for cat, v in result["categories"].items():
        lines.append(f"| {cat} | {v['subjects']} | {v['n']} | {pct(v['macro'])} | {pct(v['micro'])} |")
    o = result["overall"]
    lines.append(
        f"| **overall** | {len(result['subjects'])} | {result['n_questions']} | {pct(o['macro'])} | {pct(o['micro'])} |"
    )
    fewer = result.get("fewer_shots", {}).get("total", 0)
    if fewer:
        lines += [
            "",
            f"Questions given fewer than {result['shots']} shots to fit the model's "
            f"{result['fewer_shots']['max_positions']} positions (earliest examples dropped): {fewer}.",
        ]
    if "no_answer" in result:
        lines += ["", f"Replies with no recognisable letter (counted wrong): {result['no_answer']['total']}."]
    lines += ["", "| subject | questions | accuracy |", "| --- | ---: | ---: |"]
    for s, v in result["subjects"].items():
        lines.append(f"| {s} | {v['n']} | {pct(v['accuracy'])} |")
    return "\n".join(lines) + "\n"
