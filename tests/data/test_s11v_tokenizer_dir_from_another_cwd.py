"""A relative `tokenizer:` found beside the config (702e676) is found again by `steel train` from its directory.

`cd proj/..; steel data prepare proj/data.yaml` with `tokenizer: tok` (proj/tok) records the spec `proj/tok`,
relative to prepare's working directory. `steel train` run from proj/ (where the config's own `tok` is) looked
for proj/proj/tok, DATA/../proj/tok and DATA/proj/tok, found none, and the run got no tokenizer (generate,
eval and export then needed --tokenizer). The manifest now also records the directory made absolute.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

from steel.config import from_dict
from steel.data.config import DataConfig
from steel.data.prepare import prepare
from steel.data.tokenize import tokenizer_dir_for

LOG = logging.getLogger("test.steel.data.s11v")


def test_relative_tokenizer_found_from_the_configs_directory_later(tmp_path, qwen_tokenizer_dir, monkeypatch):
    proj = tmp_path / "proj"
    (proj / "raw").mkdir(parents=True)
    (proj / "raw" / "a.jsonl").write_text(json.dumps({"text": "长江是中国最长的河流，流经十一个省份。"},
                                                     ensure_ascii=False) + "\n", encoding="utf-8")
    shutil.copytree(qwen_tokenizer_dir, proj / "tok")
    cfg = from_dict(DataConfig, {"root": "raw", "tokenizer": "tok", "workers": 0, "dedup": {"near": False},
                                 "sources": [{"name": "web", "path": ["a.jsonl"]}]})
    monkeypatch.chdir(tmp_path)
    m = prepare(cfg, Path("runs/data"), config_path="proj/data.yaml", log=LOG, quiet=True)
    assert m["tokenizer"]["spec"] == str(Path("proj/tok"))
    assert tokenizer_dir_for("runs/data") is not None  # from prepare's directory: as before
    monkeypatch.chdir(proj)  # where `tok` is the config's own spelling
    notes: list[str] = []
    found = tokenizer_dir_for("../runs/data", notes=notes)
    assert found is not None and found.resolve() == (proj / "tok").resolve(), notes
    assert m["tokenizer"]["dir"] == str(tmp_path / "proj" / "tok")
    # the fingerprint still rules: another tokenizer at that path is not taken
    (proj / "tok" / "tokenizer.json").write_text("{}", encoding="utf-8")
    assert tokenizer_dir_for("../runs/data", notes=notes) is None
