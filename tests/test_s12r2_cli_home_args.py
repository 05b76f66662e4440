"""`~` in every path argument of `steel eval`, `generate`, `chat`, `export` and `model` is the home directory,
also where a shell leaves it as it is (`--model=~/m`, a quoted "~/my model"): taken literally, it named ./~/m."""

from __future__ import annotations

from steel.cli import build_parser

CASES = [
    (["eval", "mc", "--model=~/m", "--tokenizer=~/t", "--config=~/c.yaml", "--data=~/d", "--out=~/o.json"],
     {"model": "m", "tokenizer": "t", "config": "c.yaml", "data": "d", "out": "o.json"}),
    (["eval", "ppl", "--model=~/m", "--tokenizer=~/t", "--config=~/c", "--data=~/d", "--out=~/o"],
     {"model": "m", "tokenizer": "t", "config": "c", "data": ["d"], "out": "o"}),
    (["eval", "contamination", "--data", "~/a", "~/b", "--task", "ceval", "--bench=~/bench", "--tokenizer=~/t",
      "--out=~/o"], {"data": ["a", "b"], "bench": "bench", "tokenizer": "t", "out": "o"}),
    (["generate", "--model=~/m", "--tokenizer=~/t", "--prompt", "x"], {"model": "m", "tokenizer": "t"}),
    (["chat", "--model=~/m", "--tokenizer=~/t"], {"model": "m", "tokenizer": "t"}),
    (["export", "~/src", "~/out", "--tokenizer=~/t"], {"src": "src", "out": "out", "tokenizer": "t"}),
    (["model", "info", "~/m.yaml"], {"spec": "m.yaml"}),
    (["model", "check-causal", "~/run"], {"spec": "run"}),
    (["train", "~/c.yaml", "--add-data=~/x", "--add-data", "~/y"], {"config": "c.yaml", "add_data": ["x", "y"]}),
    (["plot", "~/r", "--out=~/p.png"], {"run_dir": "r", "out": "p.png"}),
    (["sft", "~/s.yaml"], {"config": "s.yaml"}),
]


def test_path_arguments_expand_home(tmp_path, monkeypatch):
    home = tmp_path / "home"
    monkeypatch.setenv("HOME", str(home))
    parser = build_parser()
    for argv, want in CASES:
        args = vars(parser.parse_args(argv))
        got = {k: args[k] for k in want}
        assert got == {k: [f"{home}/{x}" for x in v] if isinstance(v, list) else f"{home}/{v}"
                       for k, v in want.items()}, argv
