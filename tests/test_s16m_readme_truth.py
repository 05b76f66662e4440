"""README.md is checked against the code (session 16, M): the commands, options, config snippets and repo paths
it names must exist.

- (a) every `steel <cmd> [<sub>]` in a fenced block or an inline code span is a command of steel.cli's parser;
- (b) every `--option` of such a command line (and of the `# options: ...` comments under it) is one of that
  command's options; an inline `--option` in prose is one of the commands its section (heading) or paragraph
  names, or, where those name none, of some steel command or of the outside tool it is listed for;
  `--set KEY=...` keys are fields of that command's config;
- (c) every YAML block is a config (data / train / sft / model) that the real loader builds, each `# or` part of
  a block on its own; a block headed `# configs/x.yaml` shows that file's values; the block README calls "every
  field, with its default" holds every field at its default; a `# ... default V` comment gives the code's
  default; a `key: v  # a | b | c` comment lists exactly the values the loader takes; `# also:` comments under
  a model config name SteelConfig fields; an inline `a.b: value` whose first key is a training config section
  resolves through TrainConfig (or SftConfig), and an inline `key: value` names a field of some config
  (partial on purpose, but a misspelled key is none of them);
- (d) every repo path (configs/, bench/, scripts/, src/steel/, tests/) exists (a glob matches a file), and every
  `make TARGET` is a Makefile target;
- (e) every `steel.a.b` Python name exists, with the keywords its call shows; a python block's imports too;
- (f) every `STEEL_*` variable is one steel's source reads; the filters table has a row per registered filter, each
  parameter at its default; a usage line's `[--opt 2048]` is the parser's default; torchrun's options are those
  of torch's own parser. A command line is judged up to its first shell operator (`| tee log`, `> out`, `&&`).

A README that states a wrong thing on purpose (an example of a refused command line) lists it in INTENDED, which
excuses it in prose only (quoted as refused; a code block shows what to run), and the test checks that each of those is still refused, so the list cannot hide a real mistake.
"""

from __future__ import annotations

import argparse
import ast
import contextlib
import copy
import dataclasses
import io
import re
import shlex
import typing
from functools import cache
from pathlib import Path

import pytest

from steel.config import ConfigError, from_dict
from steel.config import load_yaml as _load_yaml

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"

# Wrong on purpose in the README (shown as what is refused): item -> why it is there.
INTENDED = {
    "steel export --model": "the refused command line whose usage message the README quotes",
    "steel export --out": "the refused command line whose usage message the README quotes",
    "steel trian": "the misspelled command the README says is refused on every rank",
    "configs/model/x.yaml": "the file named by a quoted error message",
    "configs/x.yaml": "the file named by a quoted error message",
    "--set lr": "a section's field at the top level, refused with a hint the README quotes",
    "--set weight": "a source's field at the top level, refused with a hint the README quotes",
    "model.hiden_size": "a stock config's misspelled field, in the error line the README quotes",
}
# Options of tools other than steel that the README shows in prose (torchrun's come from its own parser).
OUTSIDE_OPTIONS = {
    "pip": {"--index-url", "--no-deps", "-e"},
    "pytest": {"-q", "-k", "-p", "-x", "-m", "--timeout"},  # --timeout: pytest-timeout's
}
# Inline `key: value` keys that are no config field of steel's: a tokenizer_config.json key, a stock BERT config's
# field, log/message formats (run log header's `launch:`).
OTHER_KEYS = {"add_bos_token", "usage", "source", "Answer", "launch", "is_decoder"}


# ---- the real parsers and schemas ----------------------------------------------------------------------------

def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for a in parser._actions:
        if isinstance(a, argparse._SubParsersAction):
            return dict(a.choices)
    return {}


def _options(parser: argparse.ArgumentParser) -> set[str]:
    return {o for a in parser._actions for o in a.option_strings}


@cache
def _root() -> argparse.ArgumentParser:
    from steel.cli import build_parser

    return build_parser()


@cache
def _all_steel_options() -> frozenset[str]:
    out: set[str] = set()
    todo = [_root()]
    while todo:
        p = todo.pop()
        out |= _options(p)
        todo.extend(_subparsers(p).values())
    return frozenset(out)


@cache
def _torchrun_options() -> frozenset[str]:
    from torch.distributed.run import get_args_parser

    return frozenset(_options(get_args_parser()))


@cache
def _script_options(path: str) -> frozenset[str]:
    """A bench/ or scripts/ Python file's argparse options, read from its source (its parser is built in main())."""
    tree = ast.parse((ROOT / path).read_text())
    out = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Call) and getattr(node.func, "attr", "") == "add_argument":
            out |= {a.value for a in node.args if isinstance(a, ast.Constant) and str(a.value).startswith("-")}
    return frozenset(out)


def _eval_classes() -> list[type]:
    from steel.eval.mc import McOptions
    from steel.eval.ppl import PplOptions

    return [McOptions, PplOptions]


def _config_classes() -> dict[str, type]:
    from steel.data.config import DataConfig
    from steel.sft.train import SftConfig
    from steel.train.config import TrainConfig

    return {"data": DataConfig, "train": TrainConfig, "sft": SftConfig}


@cache
def _model_fields() -> frozenset[str]:
    from steel.model import _COMMON_KEYS, _steel_fields

    return frozenset(_steel_fields()) | frozenset(_COMMON_KEYS) | {"model_type"}


def _dataclass_of(tp: typing.Any) -> type | None:
    for t in (tp, *typing.get_args(tp)):
        if dataclasses.is_dataclass(t):
            return t
        for u in typing.get_args(t):  # list[SourceConfig]
            if dataclasses.is_dataclass(u):
                return u
    return None


@cache
def _all_config_keys() -> frozenset[str]:
    from steel.data.filters import FILTERS

    keys: set[str] = set(_model_fields())
    todo = [*_config_classes().values(), *_eval_classes(), *FILTERS.values()]
    seen = set()
    while todo:
        cls = todo.pop()
        if cls in seen:
            continue
        seen.add(cls)
        hints = typing.get_type_hints(cls)
        for f in dataclasses.fields(cls):
            keys.add(f.name)
            if (sub := _dataclass_of(hints[f.name])) is not None:
                todo.append(sub)
    return frozenset(keys | _kernel_keys())


@cache
def _kernel_keys() -> frozenset[str]:
    from steel.model.configuration_steel import SteelConfig

    return frozenset(SteelConfig(kernels="all").kernels)


def _resolve_key(cls: type, dotted: str) -> str | None:
    """None when `dotted` (`optim.lr`, `model.overrides.vocab_size`, `data.datasets[0].count`) is a field path of
    `cls`; else the first segment that is not."""
    node: typing.Any = cls
    for part in re.sub(r"\[\d+\]", "", dotted).split("."):
        if part.isdigit():  # `sources.0.weight`: a list item
            continue
        if node == "model":  # model.overrides.<model config field>
            return None if part in _model_fields() else part
        if node is None:
            return None  # below a free-form mapping
        fields = {f.name: f for f in dataclasses.fields(node)}
        if part not in fields:
            return part
        tp = typing.get_type_hints(node)[part]
        sub = _dataclass_of(tp)
        if sub is not None:
            node = sub
        elif part == "overrides":
            node = "model"
        else:
            node = None
    return None



@cache
def _parsed_yaml(text: str) -> typing.Any:
    return _load_yaml(text)


def load_yaml(text: str) -> typing.Any:
    """steel's YAML reader, each text parsed once: the planted-mistake tests read the same blocks ~45 times."""
    return copy.deepcopy(_parsed_yaml(text))


# ---- the README, read ------------------------------------------------------------------------------------------

@dataclasses.dataclass
class Line:
    no: int
    text: str
    fence: str | None  # the fence's language ("" for a bare fence), None outside fences
    heading_cmds: tuple[str, ...]  # the `steel ...` commands the enclosing headings name
    spans: list[str] = dataclasses.field(default_factory=list)  # inline code spans opening on this line (outside
    # fences; one that goes on over the next lines of its paragraph is joined with spaces)


def _lines(text: str) -> list[Line]:
    out, fence, headings = [], None, {}
    for no, raw in enumerate(text.split("\n"), 1):
        if raw.startswith("```"):
            fence = raw[3:].strip() if fence is None else None
            continue
        if fence is None and (m := re.match(r"(#{1,4}) ", raw)):
            level = len(m.group(1))
            headings = {k: v for k, v in headings.items() if k < level}
            headings[level] = tuple(_commands_in_heading(raw))
        cmds = tuple(c for v in headings.values() for c in v)
        out.append(Line(no, raw, fence, cmds))
    para: list[Line] = []
    for line in [*out, Line(0, "", "", ())]:
        if line.fence is None and line.text.strip():
            para.append(line)
            continue
        text = "\n".join(ln.text for ln in para)
        for m in re.finditer(r"`([^`]+)`", text):
            para[text[: m.start()].count("\n")].spans.append(" ".join(m.group(1).split("\n")))
        para = []
    return out


def _commands_in_heading(heading: str) -> list[str]:
    cmds = []
    for span in re.findall(r"`([^`]+)`", heading):
        if re.fullmatch(r"(?:bench|scripts)/\S+\.py", span):
            cmds.append(span)
        if span.startswith("steel "):
            # `steel data prepare | merge | inspect`: each of the alternatives
            path, alts = [], []
            for w in span.replace(" | ", "|").split()[1:]:
                if not re.fullmatch(r"[a-z][a-z|-]*", w):
                    break
                if "|" in w:
                    alts = w.split("|")
                    break
                path.append(w)
            cmds += [" ".join([*path, a]) for a in alts] if alts else [" ".join(path)]
    return cmds


def _leaf(words: list[str]) -> tuple[argparse.ArgumentParser | None, list[str], str | None]:
    """(the parser of the deepest command `words` names, the words used, the first wrong command word or None)."""
    parser, used = _root(), []
    for w in words:
        subs = _subparsers(parser)
        if not subs:
            break
        if w not in subs:
            if re.fullmatch(r"[a-z][a-z-]*", w) and (not used or _takes_only_commands(parser)):
                return None, used, w
            break
        parser = subs[w]
        used.append(w)
    return parser, used, None


def _takes_only_commands(parser: argparse.ArgumentParser) -> bool:
    """Whether a word after this command must be one of its subcommands (it takes no positional of its own)."""
    return not any(not a.option_strings for a in parser._actions if not isinstance(a, argparse._SubParsersAction))


_OPT = re.compile(r"(?<![\w-])(--[a-z][a-z0-9_-]*|-[a-zA-Z])(?![\w-])")
_CMD_START = re.compile(r"(?:^|&&\s*|;\s*|\|\s*|\(\s*|^(?:[A-Z_]+=\S*\s+)+)(?:\S*/)?steel\s+(?=[a-z-])")
_TORCHRUN_STEEL = re.compile(r"-m\s+steel\.cli\s+(?=[a-z])")
_CONFIG_OF = {"train": "train", "sft": "sft", "data prepare": "data"}


class Problems(list):
    def add(self, no: int, what: str) -> None:
        self.append(f"README.md:{no}: {what}")


def _split_words(s: str) -> list[str]:
    """The words of a command line up to its first shell operator (`| tee log`, `> out`, `2>&1`, `&&`, `;`, `&`):
    what follows is another program's."""
    try:
        words = shlex.split(s)
    except ValueError:
        words = s.split()
    for i, w in enumerate(words):
        if re.match(r"\d*>|<$|[|&;]", w):
            return words[:i]
        if w.endswith(";"):
            return [*words[:i], w[:-1]]
    return words


def _check_command(no: int, cmdline: str, comment: str, probs: Problems, earlier: str = "",
                   quoted: bool = False) -> tuple[str, ...] | None:
    """Check one `steel ...` command line (from after `steel`); returns its command path when it names one.
    `quoted`: in prose, where an INTENDED mistake is excused (a code block's command line is one to run)."""
    intended = INTENDED if quoted else {}
    words = _split_words(cmdline)
    cmd_words = []
    for w in words:
        if not re.fullmatch(r"[a-z][a-z|-]*", w):
            break
        cmd_words.append(w)
    # alternatives `mc|ppl` or a bare `...`: check each alternative as a command
    if any("|" in w for w in cmd_words):
        i = next(i for i, w in enumerate(cmd_words) if "|" in w)
        for alt in cmd_words[i].split("|"):
            _, _, bad = _leaf([*cmd_words[:i], alt])
            if bad is not None:
                probs.add(no, f"`steel {' '.join([*cmd_words[:i], alt])}`: no such command")
        return None
    parser, used, bad = _leaf(cmd_words)
    if bad is not None:
        item = f"steel {' '.join([*used, bad])}"
        if item not in intended:
            probs.add(no, f"`{item}`: no such command")
        return None
    if _subparsers(parser) and not used:
        return None
    name = " ".join(used)
    opts = _options(parser)
    for m in re.finditer(r"\[(--[a-z][\w-]*)[ =](-?\d[\d.e+-]*)\]", cmdline):  # `[--seq-len 2048]`: the default
        default = next((a.default for a in parser._actions if m.group(1) in a.option_strings), None)
        if isinstance(default, (int, float)) and not isinstance(default, bool) and float(m.group(2)) != default:
            probs.add(no, f"`steel {name} [{m.group(1)} {m.group(2)}]`: the default is {default} (an optional part "
                          f"shows the default; an example value goes without brackets)")
    rest = words[len(used):]
    for i, w in enumerate(rest):
        for o in _OPT.findall(w.strip("[]()")) if w.lstrip("[(").startswith("-") else []:
            if o not in opts and f"steel {name} {o}" not in intended:
                probs.add(no, f"`steel {name}`: no option {o}")
        if w.lstrip("[") == "--set" and i + 1 < len(rest):
            _check_set(no, name, rest[i + 1], probs, intended)
    siblings = _subparsers(_leaf(used[:-1])[0]) if used else {}
    comment = re.sub(r"https?://\S+", "", comment)  # `run.html#--rdzv-conf` is a link, not an option
    for m in _OPT.finditer(comment):
        before = (earlier + " " + comment[: m.start()]).replace("#", " ").split()
        sibling = before[-1] if before else ""
        target = siblings.get(sibling, parser)  # `... a merge --allow-missing` under `data inspect`
        if m.group(1) not in _options(target):
            probs.add(no, f"`steel {name}` (comment): no option {m.group(1)}")
    return tuple(used)


def _check_set(no: int, command: str, item: str, probs: Problems, intended: dict[str, str]) -> None:
    key = item.split("=", 1)[0].strip("'\"[")
    if not re.fullmatch(r"[a-z_][\w.\[\]]*", key) or key in ("key", "KEY"):
        return  # KEY=VALUE
    if command == "model info":
        if key.split(".")[0] not in _model_fields():
            probs.add(no, f"`steel model info --set {key}`: no such model config field")
        return
    kind = _CONFIG_OF.get(command)
    if kind is None or f"--set {key}" in intended:
        return
    bad = _resolve_key(_config_classes()[kind], key)
    if bad is not None:
        probs.add(no, f"`steel {command} --set {key}`: {bad!r} is no {kind} config field")
    elif kind in ("train", "sft") and "=" in item:
        value = item.split("=", 1)[1]
        if not re.search(r"[A-Z]{2}|\.\.\.|\$", value):  # no placeholder (DIR, N, ..., $VAR)
            _check_training_value(no, key, value, probs)


def _command_spans(line: Line) -> list[tuple[str, str]]:
    """(command line after `steel`, its trailing comment) for each steel command on `line`."""
    out = []
    if line.fence is not None:
        code, _, comment = line.text.partition(" #") if not line.text.lstrip().startswith("#") else ("", "", "")
        for rx in (_CMD_START, _TORCHRUN_STEEL):
            for m in rx.finditer(code):
                out.append((code[m.end():], comment))
    else:
        for span in line.spans:
            m = re.match(r"(?:[A-Z_]+=\S*\s+)*(?:\S*/)?steel\s+(?=[a-z-])", span)
            if m:
                out.append((span[m.end():].split(":", 1)[0] if ": " in span else span[m.end():], ""))
    return out


def _check_make(lines: list[Line], probs: Problems) -> None:
    targets = set(re.findall(r"^([a-z][\w-]*):", (ROOT / "Makefile").read_text(), re.M))
    for line in lines:
        texts = [line.text.split(" #")[0]] if line.fence is not None else line.spans
        for t in texts:
            for m in re.finditer(r"(?:^|&&\s*|;\s*)make\s+([a-z][\w-]*)", t.strip()):
                if m.group(1) not in targets:
                    probs.add(line.no, f"`make {m.group(1)}`: no such Makefile target")


def readme_problems(text: str) -> list[str]:
    probs = Problems()
    lines = _lines(text)
    _check_make(lines, probs)
    _check_commands(lines, probs)
    _check_prose_options(lines, probs)
    _check_yaml_blocks(lines, probs)
    _check_inline_keys(lines, probs)
    _check_paths(lines, probs)
    _check_python_names(lines, probs)
    _check_environment(lines, probs)
    _check_filter_table(lines, probs)
    return list(probs)


_FILTER_TABLE = "| name | parameters (defaults) |"


def _check_filter_table(lines: list[Line], probs: Problems) -> None:
    """The filters table: a row per registered filter, each parameter one of its fields, at the code's default."""
    from steel.data.filters import FILTERS

    at = next((i for i, ln in enumerate(lines) if ln.fence is None and ln.text.startswith(_FILTER_TABLE)), None)
    if at is None:
        probs.add(1, f"no filters table (a row starting {_FILTER_TABLE!r}; renamed? change _FILTER_TABLE)")
        return
    rows = {}
    for ln in lines[at + 2:]:
        if not ln.text.startswith("|"):
            break
        name, params = [c.strip() for c in ln.text.split("|")[1:3]]
        name = name.strip("`")
        rows[name] = ln.no
        if name not in FILTERS:
            probs.add(ln.no, f"`{name}`: no registered filter (steel.data.filters.FILTERS)")
            continue
        fields = {f.name: f for f in dataclasses.fields(FILTERS[name]) if f.name not in ("label", "sources", "kinds")}
        for key, value in re.findall(r"`(\w+): ([^`]*)`", params):
            f = fields.get(key)
            if f is None:
                probs.add(ln.no, f"`{key}`: no parameter of filter {name!r}")
                continue
            default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
            if load_yaml(value) != default:
                probs.add(ln.no, f"`{key}: {value}`: the default of filter {name!r} is {default!r}")
    for name in FILTERS:
        if name not in rows:
            probs.add(lines[at].no, f"filter {name!r} has no row in the filters table")


def _check_environment(lines: list[Line], probs: Problems) -> None:
    """Every `STEEL_...` variable README names is one steel's source reads."""
    source = "\n".join(f.read_text() for f in sorted((ROOT / "src" / "steel").rglob("*.py")))
    for line in lines:
        for var in sorted(set(re.findall(r"\bSTEEL_[A-Z][A-Z0-9_]*\b", line.text))):
            if not re.search(rf"\b{var}\b", source):
                probs.add(line.no, f"`{var}`: no environment variable steel reads (none in src/steel)")


def _check_commands(lines: list[Line], probs: Problems) -> None:
    last: tuple[str, ...] | None = None
    earlier = ""  # the comment text above, under the same command
    joined: list[tuple[int, str]] = []  # (first line, text) with `\` continuations joined
    for line in lines:
        if joined and joined[-1][1].endswith("\\") and line.fence is not None:
            no, t = joined[-1]
            joined[-1] = (no, t[:-1] + " " + line.text.strip())
            continue
        joined.append((line.no, line.text if line.fence is not None else ""))
    text_of = dict(joined)
    for line in lines:
        if line.fence is None:
            last = None
            for cmdline, comment in _command_spans(line):
                _check_command(line.no, cmdline, comment, probs, quoted=True)
            continue
        if line.no not in text_of:
            continue
        full = Line(line.no, text_of[line.no], line.fence, line.heading_cmds)
        stripped = full.text.strip()
        if not stripped:
            last = None
            continue
        if stripped.startswith("#"):  # a comment line under a command: its options are that command's
            if last is not None and stripped != "# options":  # (or a sibling's it names: `a merge --allow-missing`)
                _check_command(line.no, " ".join(last), stripped, probs, earlier)
                earlier += " " + stripped
            continue
        earlier = full.text.partition(" #")[2]
        spans = _command_spans(full)
        last = None
        for cmdline, comment in spans:
            last = _check_command(line.no, cmdline, comment, probs) or last
            _check_parses(line.no, cmdline, probs)
        _check_torchrun(full, probs)
        if not spans:
            _check_other_tool(full, probs)


def _check_torchrun(line: Line, probs: Problems) -> None:
    """`torchrun --opt ... -m steel.cli ...` (or `python -m steel.launch`, which takes torchrun's arguments): the
    options before the program are torchrun's (its own parser's)."""
    code = line.text.split(" #", 1)[0]
    m = re.search(r"(?:^|&&\s*|;\s*|\s)(?:torchrun|python3? -m steel\.launch)\s(.*)", code)
    if not m:
        return
    for w in _split_words(m.group(1)):
        if w in ("-m", "--module") or not w.startswith("-"):
            if w in ("-m", "--module") or re.match(r"[\w./-]+\.py$", w):
                break  # the program and its own arguments
            continue
        opt = w.split("=", 1)[0]
        if opt not in _torchrun_options():
            probs.add(line.no, f"`torchrun`: no option {opt}")


def _check_parses(no: int, cmdline: str, probs: Problems) -> None:
    """A whole command line in a fence (its `[optional ...]` parts left out) is one steel's parser takes."""
    if "..." in cmdline or re.search(r"\w\|\w", cmdline):
        return  # a usage pattern, not a command line
    words = _split_words(re.sub(r"\[[^\[\]]*\]", "", re.sub(r"\[[^\[\]]*\]", "", cmdline)).split(" <")[0])
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try:
            _root().parse_args(words)
        except SystemExit as e:
            if e.code:
                probs.add(no, f"`steel {cmdline.strip()}`: {err.getvalue().strip().splitlines()[-1]}")


def _check_other_tool(line: Line, probs: Problems) -> None:
    """`python bench/x.py --opt`: the script's options."""
    code = line.text.split(" #", 1)[0]
    m = re.search(r"python3?\s+((?:bench|scripts)/\S+\.py)(.*)", code)
    if m and (ROOT / m.group(1)).is_file():
        known = _script_options(m.group(1))
        for w in _split_words(m.group(2)):
            for o in _OPT.findall(w) if w.startswith("-") else []:
                if o not in known:
                    probs.add(line.no, f"`{m.group(1)}`: no option {o}")


def _check_prose_options(lines: list[Line], probs: Problems) -> None:
    para_cmds: list[str] = []
    for line in lines:
        if line.fence is not None:
            continue
        if not line.text.strip():
            para_cmds = []
            continue
        for span in line.spans:
            m = re.match(r"(?:\S*/)?steel\s+([a-z][a-z -]*)", span)
            if m:
                para_cmds.append(m.group(1).strip())
                continue
            m = re.match(r"(?:python3?\s+)?((?:bench|scripts)/\S+\.py)", span)
            if m:
                para_cmds.append(m.group(1))
                _check_other_tool(Line(line.no, "python " + span, "", ()), probs)
                continue
            if not span.startswith("-") or not (opts := _OPT.findall(span.split("=", 1)[0].split(" ", 1)[0])):
                continue
            opt = opts[0]
            if opt == "--set" and (m := re.match(r"--set\s+'?([a-z_][\w.\[\]]*)=", span)) and m.group(1) not in ("key", "a.b"):
                key = m.group(1)
                if key.split(".")[0] not in _model_fields() and f"--set {key}" not in INTENDED and all(
                        _resolve_key(c, key) is not None for c in _config_classes().values()):
                    probs.add(line.no, f"`--set {key}`: no field of any config")
                elif any(_resolve_key(_config_classes()[k], key) is None for k in ("train", "sft")):
                    value = span.split("=", 1)[1].strip("'")
                    if not re.search(r"[A-Z]{2}|\.\.\.|\$|\s", value):  # no placeholder (DIR, N, ..., $VAR)
                        _check_training_value(line.no, key, value, probs)
            context = [*line.heading_cmds, *para_cmds]
            if _option_known(opt, context, line.text):
                continue
            named = ", ".join(f"`{c}`" if c.endswith(".py") else f"`steel {c}`" for c in context)
            probs.add(line.no, f"`{opt}`: no option of {named or 'any command'}, nor of torchrun (another tool's? "
                               f"add it to OUTSIDE_OPTIONS in {Path(__file__).name})")


def _option_known(opt: str, context: list[str], text: str) -> bool:
    heads = re.findall(r"`((?:bench|scripts)/[\w/]+\.py)`", text)
    for c in context:
        if c.endswith(".py"):
            if (ROOT / c).is_file() and opt in _script_options(c):
                return True
            continue
        parser, _, bad = _leaf(c.split())
        if bad is None and parser is not None and opt in _options(parser):
            return True
    if any(opt in _script_options(h) for h in heads if (ROOT / h).is_file()):
        return True
    if opt in _all_steel_options():
        return True  # named in prose about another command (`steel train` refuses ... `--add-data`)
    if any(opt in _script_options(str(p.relative_to(ROOT))) for p in sorted((ROOT / "bench").glob("*.py"))):
        return True  # a bench script's, in its figures' paragraph
    return opt in _torchrun_options() or any(opt in v for v in OUTSIDE_OPTIONS.values())


def _yaml_parts(block: list[Line]) -> list[tuple[int, str]]:
    """A block split at its `# or ...` comment lines (alternatives of the same keys)."""
    parts, cur, start = [], [], block[0].no if block else 0
    for ln in block:
        if re.match(r"#\s*or\b", ln.text.strip()):
            parts.append((start, "\n".join(cur)))
            cur, start = [], ln.no + 1
            continue
        cur.append(ln.text)
    parts.append((start, "\n".join(cur)))
    return parts


def _yaml_kind(data: dict, text: str) -> str | None:
    if "configs/model/" in text.split("\n", 2)[0] or "model_type" in data or set(data) <= _model_fields():
        return "model"
    if "init" in data:
        return "sft"
    if "sources" in data:
        return "data"
    if "run_dir" in data or "max_steps" in data:
        return "train"
    return None


def _check_yaml_blocks(lines: list[Line], probs: Problems) -> None:

    blocks: list[list[Line]] = []
    text_of = {ln.no: ln.text for ln in lines if ln.fence is None}  # the prose just above a block
    for line in lines:
        if line.fence == "yaml":
            if not blocks or blocks[-1][-1].no != line.no - 1:
                blocks.append([])
            blocks[-1].append(line)
    for block in blocks:
        for start, text in _yaml_parts(block):
            try:
                data = load_yaml(text)
            except Exception as e:  # noqa: BLE001 - a YAML error is the finding
                probs.add(start, f"YAML block does not parse: {e}")
                continue
            kind = _yaml_kind(data or {}, text)
            if kind is None:
                probs.add(start, f"YAML block is no config steel knows (keys {sorted(data)}): a ```yaml block is "
                                 "read as a steel config; show other YAML in a bare ``` fence")
                continue
            try:
                _load(kind, data)
            except (ConfigError, ValueError, TypeError) as e:
                probs.add(_line_of(str(e), start, text), f"{kind} config YAML block: {e}")
                continue
            _check_choices(kind, start, text, probs)
            before = " ".join(text_of.get(no, "") for no in range(block[0].no - 4, block[0].no))
            _check_shown_values(kind, start, text, before, probs)
        _check_also(block, probs)


def _load(kind: str, data: dict) -> None:
    from steel.model import load_model_config

    if kind == "model":
        load_model_config(data)
    else:
        from_dict(_config_classes()[kind], data)


def _defaults(kind: str) -> dict:
    from steel.config import to_dict

    required = {"sft": {"init": "-"}, "data": {"sources": [{"name": "a", "path": ["a"]}]}}.get(kind, {})
    return to_dict(from_dict(_config_classes()[kind], required))


def _key_paths(text: str) -> list[tuple[int, str, str]]:
    """(row, dotted key, comment) for each `key: value  # comment` row of a block mapping (not in a list)."""
    out, stack = [], []  # stack: (indent, key)
    for i, row in enumerate(text.split("\n")):
        m = re.match(r"( *)(\w+):(?: (.*?))?(?:\s+#\s*(.*))?$", row)
        if not m or row.lstrip().startswith(("#", "-")):
            continue
        indent = len(m.group(1))
        stack = [(n, k) for n, k in stack if n < indent]
        stack.append((indent, m.group(2)))
        out.append((i, ".".join(k for _, k in stack), m.group(4) or ""))
    return out


def _at(tree: typing.Any, dotted: str) -> typing.Any:
    for k in dotted.split("."):
        if not isinstance(tree, dict) or k not in tree:
            return KeyError
        tree = tree[k]
    return tree


def _check_shown_values(kind: str, start: int, text: str, before: str, probs: Problems) -> None:
    """A block headed `# configs/x.yaml` shows that file's values; one README calls "every field, with its
    default" holds every field at the code's default; a `# ... default V` comment gives the code's default."""
    data, rows = load_yaml(text), _key_paths(text)
    if (m := re.match(r"#\s*(configs/[\w/.-]+\.yaml)\s*$", text.split("\n", 1)[0])) and (ROOT / m.group(1)).is_file():
        from steel.config import read_yaml

        real = read_yaml(ROOT / m.group(1))
        for i, key, _ in rows:
            if _at(data, key) != _at(real, key):
                probs.add(start + i, f"`{key}: {_at(data, key)}`: {m.group(1)} has {_at(real, key)!r}")
    if kind == "model":
        return
    defaults = _defaults(kind)
    if "Every field, with its default" in before:
        for i, key, _ in rows:
            if not isinstance(_at(data, key), dict) and _at(data, key) != _at(defaults, key):
                probs.add(start + i, f"`{key}: {_at(data, key)}`: the default is {_at(defaults, key)!r}")
        shown = {key for _, key, _ in rows}

        def walk(tree: dict, prefix: str = "") -> None:
            for k, v in tree.items():
                if f"{prefix}{k}" not in shown:
                    probs.add(start, f"`{prefix}{k}`: a {kind} config field the block of every field leaves out")
                elif isinstance(v, dict) and v:
                    walk(v, f"{prefix}{k}.")

        walk(defaults)
    for i, key, comment in rows:
        m = re.search(r"(?<!own )\bdefault:?\s+(-?[\d.e+]+|true|false|null)(?=[);,\s]|$)", comment)
        if m and _at(defaults, key) is not KeyError and load_yaml(m.group(1)) != _at(defaults, key):
            probs.add(start + i, f"`{key}`: README says default {m.group(1)}, the code's is {_at(defaults, key)!r}")


def _choices(comment: str) -> list[str]:
    """`# a | b (note) | c. More` -> [a, b, c] (one word: no list)."""
    out, rest = [], comment.lstrip("# ")
    while m := re.match(r"([\w.]+)(?:\s*\([^)]*\))?\s*", rest):
        out.append(m.group(1).rstrip("."))  # `none.` ends a sentence
        rest = rest[m.end():]
        if not rest.startswith("|"):
            break
        rest = rest[1:].lstrip()
    return out if len(out) > 1 else []


def _check_choices(kind: str, start: int, text: str, probs: Problems) -> None:
    """`key: v  # a | b | c`: the values the loader takes for key are a, b and c (its error lists them)."""
    rows = text.split("\n")
    for i, row in enumerate(rows):
        m = re.match(r"(\s*)(\w+): (\S+)\s+(#.*)", row)
        if not m or not (shown := _choices(m.group(4))):
            continue
        bogus = [*rows[:i], f"{m.group(1)}{m.group(2)}: not-a-choice", *rows[i + 1:]]
        try:
            _load(kind, load_yaml("\n".join(bogus)))
        except (ConfigError, ValueError, TypeError) as e:
            listed = re.search(r"one of [\[(]([^\])]*)[\])]", str(e))
            if listed is None:
                continue
            taken = re.findall(r"'([^']*)'", listed.group(1))
            if sorted(taken) != sorted(shown):
                probs.add(start + i, f"`{m.group(2)}`: README lists {' | '.join(shown)}, the loader takes "
                                     f"{' | '.join(taken)}")
        else:
            probs.add(start + i, f"`{m.group(2)}`: README lists {' | '.join(shown)}, the loader takes anything")


def _check_also(block: list[Line], probs: Problems) -> None:
    """`# also: a (...), b, c: {...}` (and its indented `#   ` lines) under a model config: each a model field."""
    if not any(re.match(r"#\s*configs/model/|model_type:", ln.text) for ln in block):
        return
    in_also = False
    for ln in block:
        m = re.match(r"#\s*also:(.*)", ln.text)
        in_also = bool(m) or (in_also and ln.text.startswith("#   "))
        if not in_also:
            continue
        for item in _top_level_items(m.group(1) if m else ln.text.lstrip("#")):
            key = re.match(r"\s*([a-z_]+)", item)
            if key and key.group(1) not in _model_fields():
                probs.add(ln.no, f"`{key.group(1)}`: no model config field")


def _line_of(error: str, start: int, text: str) -> int:
    """The line of a YAML part that holds the key an error names (`dedup.naer: unknown field`), else its first."""
    path = re.sub(r"^\S*\.ya?ml: ", "", error).split(":", 1)[0].split(" ")[0]
    key = re.sub(r"\[\d+\]", "", path).split(".")[-1]
    for i, t in enumerate(text.split("\n")):
        if re.search(rf"(?:^\s*(?:- )?|[{{,]\s*){re.escape(key)}:", t):
            return start + i
    return start


def _top_level_items(s: str) -> list[str]:
    items, depth, cur = [], 0, ""
    for ch in s:
        depth += ch in "({[" and 1 or (ch in ")}]" and -1 or 0)
        if ch == "," and depth == 0:
            items.append(cur)
            cur = ""
        else:
            cur += ch
    return [*items, cur] if cur.strip() else items


def _check_inline_keys(lines: list[Line], probs: Problems) -> None:
    sections = {"model", "data", "anneal", "optim", "parallel", "checkpoint", "log"}
    for line in lines:
        if line.fence is not None:
            continue
        for span in line.spans:
            m = re.fullmatch(r"([a-z_][\w]*(?:\.[a-z_]\w*|\[\d+\])*):(?: .*)?", span)
            if not m or span.startswith("steel"):
                continue
            key = m.group(1)
            first = key.split(".")[0].split("[")[0]
            if key in INTENDED:
                continue
            if "." in key and first in sections:
                if all(_resolve_key(c, key) is not None for c in (_config_classes()["train"],
                                                                 _config_classes()["sft"])):
                    probs.add(line.no, f"`{key}`: no training (or SFT) config field")
                elif (v := re.fullmatch(r"[^:]*: (\S+)", span)) and not v.group(1).isupper():
                    _check_training_value(line.no, key, v.group(1), probs)
            elif "." not in key and "[" not in key and key not in _all_config_keys() and key not in OTHER_KEYS:
                probs.add(line.no, f"`{key}`: no field of any config (a quoted output or another file's key? add "
                               f"it to OTHER_KEYS in {Path(__file__).name})")


def _check_training_value(no: int, key: str, value: str, probs: Problems) -> None:
    """`optim.schedule: wsd` in prose: a value the training (or SFT) config takes for that field."""
    from steel.config import apply_overrides

    errors = []
    for kind, base in (("train", {}), ("sft", {"init": "-"})):
        cls = _config_classes()[kind]
        try:
            from_dict(cls, apply_overrides(base, [f"{key}={value}"], cls))
            return
        except ConfigError as e:
            errors.append(str(e))
    probs.add(no, f"`{key}: {value}`: refused ({errors[0]})")


_PATH = re.compile(r"(?<![\w./~-])((?:configs|bench|scripts|src/steel|tests)/(?:[\w./*<>-]|\{[\w.,-]*\})*[\w*}])")


def _check_paths(lines: list[Line], probs: Problems) -> None:
    for line in lines:
        for p in _PATH.findall(line.text):
            if "<" in p or (p in INTENDED and line.fence is None):
                continue
            if "{" in p:  # `configs/model/{tiny,steel-1b}.yaml`: each
                head, alts, tail = re.fullmatch(r"([^{]*)\{([^}]*)\}(.*)", p).groups()
                paths = [head + a + tail for a in alts.split(",")]
            else:
                paths = [p]
            for q in paths:
                _check_path(line.no, q, probs)


def _check_path(no: int, p: str, probs: Problems) -> None:
    if any(ch in p for ch in "*?"):
        if not list(ROOT.glob(p)):
            probs.add(no, f"`{p}`: no file matches")
    elif not (ROOT / p).exists():
        probs.add(no, f"`{p}`: no such path in the repo")


def _resolve_name(dotted: str) -> typing.Any:
    """The object `steel.a.b.c` names (modules imported as needed); raises LookupError naming the missing part."""
    import importlib

    parts = dotted.split(".")
    obj, i = importlib.import_module(parts[0]), 1
    while i < len(parts):
        try:
            obj = importlib.import_module(".".join(parts[: i + 1]))
        except ModuleNotFoundError as e:
            if e.name != ".".join(parts[: i + 1]):
                raise
            if not hasattr(obj, parts[i]):
                raise LookupError(parts[i]) from None
            obj = getattr(obj, parts[i])
        i += 1
    return obj


def _check_python_names(lines: list[Line], probs: Problems) -> None:
    """`steel.a.b` (and `steel.a.f(x, key=...)`: its keywords, its positional count) in inline code, and the names
    a python block imports from steel."""
    import inspect

    for line in lines:
        found = [(m.group(1), m.group(2)) for span in line.spans
                 for m in [re.match(r"(steel(?:\.\w+)+)(?:\((.*)\))?", span)] if m]
        if line.fence == "python" and (m := re.match(r"from (steel(?:\.\w+)*) import (\w+(?:, \w+)*)", line.text)):
            found += [(f"{m.group(1)}.{n}", None) for n in m.group(2).split(", ")]
        for dotted, args in found:
            try:
                obj = _resolve_name(dotted)
            except LookupError as e:
                probs.add(line.no, f"`{dotted}`: no {e.args[0]!r} there")
                continue
            if args is None or not callable(obj):
                continue
            # a keyword must be a parameter; a positional one is a placeholder (`load_tokenizer(dir)`): counted
            params = inspect.signature(obj).parameters
            kinds = [p.kind for p in params.values()]
            items = [i.strip() for i in _top_level_items(args)]
            keywords = [m.group(1) for i in items if (m := re.match(r"(\w+)=", i))]
            positional = [i for i in items if re.fullmatch(r"\w+", i)]
            for k in keywords:
                if k not in params and inspect.Parameter.VAR_KEYWORD not in kinds:
                    probs.add(line.no, f"`{dotted}`: no parameter {k!r}")
            takes = sum(k in (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD) for k in kinds)
            if len(positional) > takes and inspect.Parameter.VAR_POSITIONAL not in kinds:
                probs.add(line.no, f"`{dotted}`: takes {takes} positional arguments, shown with {len(positional)}")


# ---- tests ------------------------------------------------------------------------------------------------------

def test_readme_names_only_real_commands_options_fields_and_paths():
    problems = readme_problems(README.read_text())
    assert not problems, "README.md states what the code does not have:\n" + "\n".join(problems)


def test_intended_mistakes_are_still_refused():
    """Each INTENDED item is really wrong: were it fixed in the code, the README's example would lie."""
    for item in INTENDED:
        if item.startswith("steel "):
            words = item.split()[1:]
            parser, used, bad = _leaf([w for w in words if not w.startswith("-")])
            opts = [w for w in words if w.startswith("-")]
            assert bad is not None or any(o not in _options(parser) for o in opts), item
        elif item.startswith("--set "):
            key = item.split()[1]
            assert all(_resolve_key(c, key) is not None for c in _config_classes().values()), item
        elif item.startswith("model."):
            assert item.split(".")[1] not in _model_fields(), item
        else:
            assert not (ROOT / item).exists(), item
        shown = r"[^`\n]*".join(re.escape(w) for w in item.split())
        assert re.search(shown, README.read_text()), f"{item}: no longer in README.md, drop it"


PLANTED = [
    # (what is replaced, by what, the item the problem must name[, the text whose line it names if not the plant's])
    ("steel data inspect runs/demo/data", "steel data inspekt runs/demo/data", "steel data inspekt"),
    ("--max-new-tokens 200", "--max-new-token 200", "--max-new-token"),
    ("# options: --ranks PATH", "# options: --rank PATH", "--rank"),
    ("  near: true                    # MinHash LSH", "  naer: true", "naer"),
    ("  warmup_steps: 100 ", "  warmup_step: 100 ", "warmup_step"),
    ("  self_cognition: {count: 300,", "  self_cognition: {cuont: 300,", "cuont"),
    ("attention_bias: true            # q/k/v", "attention_bais: true  # q/k/v", "attention_bais"),
    # (the loader's message names the `kernels:` mapping, not the key in it: that is the line named)
    ("  rope: triton ", "  rop: triton ", "rop", "kernels:\n  rmsnorm: triton"),
    ("attention_dropout, attn_implementation", "attention_dropout, attn_implementaton", "attn_implementaton"),
    ("--set model.overrides.vocab_size=6000", "--set model.overides.vocab_size=6000", "overides"),
    ("`parallel.param_dtype: bf16`", "`parallel.param_dtyp: bf16`", "param_dtyp"),
    ("`document_mask: true`", "`document_masking: true`", "document_masking"),
    ("configs/train/tiny-cpu.yaml", "configs/train/tiny_cpu.yaml", "configs/train/tiny_cpu.yaml"),
    ("python bench/gpu_throughput.py --tiny ", "python bench/gpu_throughput.py --tiney ", "--tiney"),
    ("`bench/gpu_throughput.py --tiny` runs", "`bench/gpu_throughput.py --tiney` runs", "--tiney"),
    ("`steel.model.flops.parameter_counts(config)`", "`steel.model.flops.param_counts(config)`", "param_counts"),
    ("`steel.kernels.resolve_kernels(spec, field=", "`steel.kernels.resolve_kernels(spec, name=", "'name'"),
    ("# cosine | wsd (warmup-stable-decay) | constant", "# cosine | wsd (warmup-stable-decay)", "`schedule`"),
    ("# auto | none | ddp | fsdp", "# auto | none | ddp | fsdp | zero3", "`mode`"),
    ("  seq_len: 2048              # samples", "  seq_len: 4096              # samples", "`data.seq_len: 4096`"),
    ("(default 16777216)", "(default 8388608)", "default 8388608"),
    ("hidden_size: 1792\n", "hidden_size: 2048\n", "`hidden_size: 2048`: configs/model/steel-1b.yaml has 1792"),
    ("`optim.schedule: wsd`", "`optim.schedule: wds`", "`optim.schedule: wds`"),
    # (a command continued with `\` is named by its first line)
    ("--set grad_accum=2", "--set grad_accum=two", "`grad_accum: two`", "torchrun --nnodes 4"),
    ("(`--shard I/N`", "(`--shards I/N`", "--shards"),
    ("--vocab-size 6000` puts", "--vocab-sizes 6000` puts", "--vocab-sizes"),
    ("--set max_steps=60 ", "--set max_step=60 ", "max_step"),
    ("--model HF_DIR --chat --system", "--chat --system", "the following arguments are required: --model"),
    ("and run with `make gpu-test`", "and run with `make gpu-tests`", "make gpu-tests"),
    ("[--seq-len 2048] [--set key=value]`", "[--seq-len 4096] [--set key=value]`", "the default is 2048"),
    ("| `max_line_length` |", "| `max_line_len` |", "`max_line_len`: no registered filter"),
    ("`n: 20`, `max_frac: 0.3`", "`n: 13`, `max_frac: 0.3`", "the default of filter 'repeated_ngrams' is 20"),
    ("`STEEL_NO_PROGRESS=1` also", "`STEEL_NOPROGRESS=1` also", "STEEL_NOPROGRESS"),
    ("`--set 'data.dirs=[DIR, ...]'`", "`--set parallel.mode=zero3`", "'zero3' is not one of"),
]


@pytest.mark.parametrize("old, new, item, named", [(*p, None)[:4] for p in PLANTED], ids=[p[2] for p in PLANTED])
def test_a_planted_mistake_is_named_with_its_line(old, new, item, named):
    text = README.read_text()
    assert old in text, f"the plant's anchor {old!r} left README.md: choose another"
    at = text.index(old)
    no = text[: text.index(named) if named else at].count("\n") + 1
    planted = text[:at] + new + text[at + len(old):]
    problems = readme_problems(planted)
    hits = [p for p in problems if item in p]
    assert hits, f"planted {item!r} not reported; problems: {problems}"
    assert any(p.startswith(f"README.md:{no}: ") for p in hits), (no, hits)


# Paragraphs a writer may add under "Launching on GPUs": (the text, the item its problem names, or None where it
# states nothing wrong and must give no problem).
INSERTED = [
    ("```bash\nsteel train configs/train/tiny-cpu.yaml 2>&1 | tee train.log\n```", None),
    ("```bash\nsteel data inspect runs/demo/data | head -n 20 > top.txt; steel plot runs/demo\n```", None),
    ("```bash\nsteel data inspect runs/demo/data --json | grep -c tokens\n```", "--json"),  # before the pipe: steel's
    ("Two jobs on one node take `--master_port 29501` each (torchrun's).", None),
    ("```\ntorchrun --standalone --nproc_per_node 2 -m steel.cli train configs/train/tiny-cpu.yaml"
     "  # https://pytorch.org/docs/stable/elastic/run.html#--rdzv-conf\n```", None),
    ("```\ntorchrun --standalone --nprocs_per_node 2 -m steel.cli train configs/train/tiny-cpu.yaml\n```",
     "--nprocs_per_node"),
    # INTENDED mistakes are excused where README quotes them as refused, not in a block of commands to run
    ("```bash\nsteel train configs/x.yaml --set lr=1e-3\n```", "'lr' is no train config field"),
    ("```bash\nsteel train configs/x.yaml --set max_steps=5\n```", "`configs/x.yaml`: no such path"),
]


@pytest.mark.parametrize("new, item", INSERTED, ids=[i or f"legit{n}" for n, (_, i) in enumerate(INSERTED)])
def test_an_added_paragraph_is_judged_on_what_it_states(new, item):
    text = README.read_text()
    anchor = "### Launching on GPUs\n"
    no = text[: text.index(anchor)].count("\n") + 1 + 2 + new.startswith("```")  # the heading, a blank line
    problems = readme_problems(text.replace(anchor, f"{anchor}\n{new}\n", 1))
    if item is None:
        assert problems == []
    else:
        assert [p for p in problems if p.startswith(f"README.md:{no}: ") and item in p], problems


def _make_recipe(target: str) -> tuple[list[str], list[str]]:
    """(the target's prerequisites, its recipe lines with the Makefile's variables put in)."""
    text = (ROOT / "Makefile").read_text()
    variables = dict(re.findall(r"^(\w+) [:?]= (.*)$", text, re.M))
    head, _, body = text.partition(f"\n{target}:")
    assert body, f"Makefile: no target {target}"
    prereqs = body.split("\n", 1)[0].split()
    recipe = []
    for raw in body.split("\n")[1:]:
        if not raw.startswith("\t"):
            break
        line = raw.strip()
        for _ in range(3):  # $(STEEL) -> $(VENV)/bin/steel -> .venv/bin/steel
            line = re.sub(r"\$\((\w+)\)", lambda m: variables.get(m.group(1), m.group(0)), line)
        recipe.append(line)
    return prereqs, recipe


def test_the_newcomers_two_commands_are_what_the_makefile_and_setup_do():
    """README's first lines (`make demo`, `make test`) and the demo's stages are what Makefile and setup.sh run."""
    readme = README.read_text()
    first = readme.split("```bash\n", 1)[1].split("```", 1)[0]
    demo_line, test_line = first.strip().split("\n")
    assert demo_line.startswith("make demo ") and test_line.startswith("make test ")
    setup = (ROOT / "scripts" / "setup.sh").read_text()
    pin = re.search(r"torch==([\d.]+)", demo_line).group(1)
    assert f'"torch=={pin}"' in setup and "import torch" in setup  # kept when importable, else this pin
    prereqs, demo = _make_recipe("demo")
    assert prereqs == ["setup"] and "setup.sh" in _make_recipe("$(VENV)/.steel-installed")[1][0]
    shared = re.search(r"on (\S+)$", demo_line).group(1)
    assert re.search(rf"^SHARED \?= {re.escape(shared)}$", (ROOT / "Makefile").read_text(), re.M)
    prereqs, test = _make_recipe("test")
    assert prereqs == ["setup"] and "TRITON_INTERPRET=1" in test_line
    assert len(test) == 1 and test[0].startswith("TRITON_INTERPRET=1 ") and " -m pytest " in test[0]

    # the demo's steps: each recipe line is a steel command its parser takes, in the order README lists them
    stages = []
    for line in demo:
        m = re.match(r"(?:[A-Z_]+=\S+ )*\.venv/bin/steel (.*)", line)
        assert m, f"Makefile demo: {line!r} is no steel command"
        words = shlex.split(m.group(1))
        _root().parse_args(words)  # exits (fails the test) on a wrong command line
        parser, used, _ = _leaf(words)
        # argparse takes a prefix (`--max-new-token`): the recipe spells each option out
        assert all(w in _options(parser) for w in words if w.startswith("--")), line
        stages.append(" ".join(used))
    listed = readme.split("`make demo` runs every stage", 1)[1].split("`make test` runs", 1)[0]
    named = [m for m in re.findall(r"`steel ([a-z][a-z ]*[a-z])`", listed)]
    assert named == stages, (named, stages)
    limit = next(w for w in demo if " eval mc " in w).split("--limit ")[1].split()[0]
    assert f"({limit} questions per subject)" in listed
