"""`~` in a data config's paths and in the data commands' path arguments is the home directory, as a shell
expands it: it was taken literally, so `path: ~/data/*.jsonl` said "no file matches ROOT/~/data/*.jsonl",
`root: ~/data` and `tokenizer: ~/tok` were not found, and `--out=~/d` (which a shell leaves as it is) wrote
into ./~/d."""

from __future__ import annotations

import json
from pathlib import Path

import yaml

from steel.cli import main as steel_main
from steel.config import from_dict
from steel.data.chunks import read_manifest
from steel.data.config import DataConfig
from steel.data.sources import expand_paths

TEXTS = ["长江是中国最长的河流，流经十一个省份。", "黄河是中国第二长的河流，被称为母亲河。",
         "珠江是中国南方最大的河系，流经广东。", "淮河位于长江与黄河之间，是南北分界线。"]


def _home(tmp_path, monkeypatch) -> Path:
    home = tmp_path / "home"
    (home / "data").mkdir(parents=True)
    for k, pair in enumerate((TEXTS[:2], TEXTS[2:])):
        (home / "data" / f"{'ab'[k]}.jsonl").write_text(
            "".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in pair), encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(tmp_path)  # where a literal `~` would have been looked for (or written to)
    return home


def test_source_paths_and_root_expand_home(tmp_path, monkeypatch):
    home = _home(tmp_path, monkeypatch)
    cfg = from_dict(DataConfig, {"sources": [{"name": "web", "path": ["~/data/*.jsonl"]},
                                             {"name": "one", "path": ["~/data/a.jsonl"]}]})
    root = tmp_path / "elsewhere"
    assert expand_paths(cfg.sources[0], root, 0) == [home / "data" / "a.jsonl", home / "data" / "b.jsonl"]
    assert expand_paths(cfg.sources[1], root, 1) == [home / "data" / "a.jsonl"]
    cfg = from_dict(DataConfig, {"root": "~/data", "sources": [{"name": "web", "path": ["b.jsonl"]}]})
    assert cfg.resolve_root(tmp_path / "proj" / "data.yaml") == home / "data"
    assert expand_paths(cfg.sources[0], cfg.resolve_root(None), 0) == [home / "data" / "b.jsonl"]


def test_home_is_no_pattern(tmp_path, monkeypatch):
    """A home directory holding glob characters is a directory, not a character class (as the root)."""
    home = tmp_path / "u[1]"
    (home / "data").mkdir(parents=True)
    (home / "data" / "a.jsonl").write_text('{"text": "x"}\n', encoding="utf-8")
    monkeypatch.setenv("HOME", str(home))
    cfg = from_dict(DataConfig, {"sources": [{"name": "web", "path": ["~/data/*.jsonl"]}]})
    assert expand_paths(cfg.sources[0], tmp_path, 0) == [home / "data" / "a.jsonl"]


def test_prepare_inspect_merge_with_home_paths(tmp_path, monkeypatch):
    from steel.tokenizer.train import train_tokenizer

    home = _home(tmp_path, monkeypatch)
    train_tokenizer([home / "data"], home / "tok", 300)  # (small: quicker to load than Qwen's)
    (home / "words.txt").write_text("不存在的词\n", encoding="utf-8")
    proj = tmp_path / "proj"
    proj.mkdir()
    (proj / "data.yaml").write_text(yaml.safe_dump({
        "tokenizer": "~/tok", "workers": 0, "dedup": {"near": False},
        "filters": [{"name": "blocklist", "file": "~/words.txt"}],
        "sources": [{"name": "web", "path": ["~/data/*.jsonl"]}]}, allow_unicode=True), encoding="utf-8")
    # `--out=~/full` and a quoted "~/proj.yaml" reach the program with their `~`
    (home / "data.yaml").write_text((proj / "data.yaml").read_text(encoding="utf-8"), encoding="utf-8")
    assert steel_main(["data", "prepare", "~/data.yaml", "--out=~/full"]) == 0
    m = read_manifest(home / "full")
    assert m["sources"]["web"]["kept"] == 4 and m["tokenizer"]["dir"] == str(home / "tok")
    assert not (tmp_path / "~").exists()
    for i in range(2):
        assert steel_main(["data", "prepare", str(proj / "data.yaml"), "--shard", f"{i}/2",
                           "--set", f"output=~/s{i}"]) == 0
    assert steel_main(["data", "merge", "~/merged", "~/s0", "~/s1"]) == 0
    assert read_manifest(home / "merged")["sources"]["web"]["kept"] == 4
    assert steel_main(["data", "inspect", "~/merged"]) == 0
    assert not (tmp_path / "~").exists()
