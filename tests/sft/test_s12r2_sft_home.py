"""`~` in `steel sft`'s config paths (init, tokenizer, run_dir, data.root, a dataset's path,
self_cognition.template) and in its CONFIG argument is the home directory, as in `steel data prepare`: it was
taken literally, so `init: ~/models/base` "does not exist", `data.root: ~/sft` became CONFIG_DIR/~/sft,
`run_dir: ~/runs/sft` wrote into ./~/runs/sft, and `steel sft "~/sft.yaml"` could not read its config."""

from __future__ import annotations

import json

import yaml
from sft_runs import write_sft_run

from steel.cli import main as steel
from steel.config import from_dict
from steel.sft import data as D
from steel.sft.train import setup


def test_data_root_and_template_expand_home(tmp_path, monkeypatch, home):
    (home / "sft").mkdir()
    (home / "sft" / "a.json").write_text(json.dumps([{"instruction": "问", "output": "答"}]), encoding="utf-8")
    (home / "id.json").write_text(json.dumps([{"instruction": "你是谁", "output": "我是{{name}}"}]), encoding="utf-8")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "sft.yaml").write_text(yaml.safe_dump({
        "init": "x", "data": {"root": "~/sft", "datasets": [{"name": "a", "path": ["a.json"]}],
                              "self_cognition": {"count": 1, "template": "~/id.json"}}}), encoding="utf-8")
    cfg = setup(str(proj / "sft.yaml"))  # a relative root is taken from the config's dir: ~ is not relative
    assert cfg.data.root == str(home / "sft") and cfg.data.self_cognition.template == str(home / "id.json")
    stats: dict = {}
    mix = D.build_conversations(cfg.data, stats)
    assert sorted(m[1]["content"] for _, m in mix) == ["我是Steel", "答"]
    cfg = setup(str(proj / "sft.yaml"), ["data.root=~/elsewhere"])
    assert cfg.data.root == str(home / "elsewhere")
    # a dataset path of its own (root elsewhere)
    cfg = from_dict(D.SftDataConfig, {"root": str(proj), "datasets": [{"name": "a", "path": ["~/sft/*.json"]}]})
    assert [m[1]["content"] for _, m in D.build_conversations(cfg, {})] == ["答"]
    assert not (tmp_path / "~").exists() and not (proj / "~").exists()


def test_sft_run_with_home_paths(tmp_path, monkeypatch, tiny_tokenizer_dir, home):
    write_sft_run(home, tiny_tokenizer_dir, max_steps=1)  # home/{init, chat.json, sft.yaml}
    cfg = yaml.safe_load((home / "sft.yaml").read_text(encoding="utf-8"))
    cfg.update(init="~/init", tokenizer="~/init", run_dir="~/run")
    cfg["data"]["root"] = "~"
    (home / "sft.yaml").write_text(yaml.safe_dump(cfg, allow_unicode=True), encoding="utf-8")
    assert steel(["sft", "~/sft.yaml"]) == 0  # a quoted "~/sft.yaml"
    run = home / "run"
    saved = yaml.safe_load((run / "checkpoints" / "step-1" / "config.yaml").read_text(encoding="utf-8"))
    assert (saved["init"], saved["tokenizer"], saved["run_dir"], saved["data"]["root"]) == (
        str(home / "init"), str(home / "init"), str(run), str(home))
    # a resume that spells them without `~` is the same run (no "init/tokenizer changed")
    assert steel(["sft", "~/sft.yaml", "--set", "max_steps=2", "--set", f"init={home / 'init'}",
                  "--set", f"tokenizer={home / 'init'}"]) == 0
    assert (run / "checkpoints" / "step-2").is_dir()
    assert not (tmp_path / "~").exists() and not (home / "~").exists()
