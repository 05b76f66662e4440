"""`steel data prepare` on a source that read records and kept none.

Before, such a source silently left the mix and prepare exited 0 (a ShareGPT file under the default alpaca
layout, a CSV under a wrong `text_field`: every record `missing_field`, "wrote 0 chunks, 0 tokens"). Now:
every record rejected is an error, naming the source, its reasons and the fields to check, and the previous
output stays as it was; a source that filters or dedup emptied is a warning; an unsharded output of no
token is an error; a shard in which a source has no file says nothing. `steel data inspect` reports such
a manifest (an older Steel's) as a problem.
"""

from __future__ import annotations

import json
import logging
import shutil
from pathlib import Path

import pytest

from steel.cli import UserError, main
from steel.config import dump_yaml, from_dict
from steel.data.config import DataConfig
from steel.data.merge import merge
from steel.data.prepare import STAGING, prepare

LOG = logging.getLogger("test.steel.data.s11r")
DOCS = ["钢铁是怎样炼成的，第一章讲的是少年时代。", "The quick brown fox jumps over the lazy dog again.",
        "第三篇文章：长江是中国最长的河流，流经十一个省份。"]


def write_inputs(d: Path) -> None:
    d.mkdir(parents=True, exist_ok=True)
    (d / "good.jsonl").write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in DOCS),
                                  encoding="utf-8")
    (d / "stories.csv").write_text("title,content\n" + "".join(f"t{i},\"故事 {i}: {t}\"\n" for i, t in enumerate(DOCS)),
                                   encoding="utf-8")
    conv = [{"conversations": [{"from": "human", "value": f"问题{i}"}, {"from": "gpt", "value": f"回答{i}"}]}
            for i in range(4)]
    (d / "sharegpt.json").write_text(json.dumps(conv, ensure_ascii=False), encoding="utf-8")


def config(root: Path, sources: list[dict], **extra) -> DataConfig:
    return from_dict(DataConfig, {"root": str(root), "workers": 0, "sources": sources,
                                  "dedup": {"near": False}, **extra})


GOOD = {"name": "good", "path": ["good.jsonl"]}
CSV_WRONG_FIELD = {"name": "stories", "path": ["stories.csv"], "text_field": "text"}  # the column is `content`


def run(cfg: DataConfig, out: Path, enc, **kw) -> dict:
    return prepare(cfg, out, encoder=enc, log=LOG, quiet=True, **kw)


def test_every_record_rejected_is_an_error_and_keeps_the_previous_output(tmp_path, enc):
    write_inputs(tmp_path / "raw")
    out = tmp_path / "out"
    run(config(tmp_path / "raw", [GOOD, dict(CSV_WRONG_FIELD, text_field="content")]), out, enc)
    before = (out / "manifest.json").read_bytes()
    files = sorted(p.name for p in out.iterdir())
    with pytest.raises(UserError) as e:
        run(config(tmp_path / "raw", [GOOD, CSV_WRONG_FIELD]), out, enc)
    msg = str(e.value)
    assert "source 'stories': all 3 records rejected (missing_field 3)" in msg
    assert "text_field" in msg and "good" not in msg.split(";")[0]
    assert (out / "manifest.json").read_bytes() == before  # the previous output, untouched
    assert sorted(p.name for p in out.iterdir()) == files and not (out / STAGING).exists()


def test_chat_source_under_the_default_layout_names_chat_layout(tmp_path, enc):
    write_inputs(tmp_path / "raw")
    src = {"name": "sg", "kind": "chat", "path": ["sharegpt.json"]}  # no chat_layout: alpaca
    with pytest.raises(UserError, match=r"source 'sg': all 4 records rejected \(missing_field 4\); check its "
                                        r"chat_layout \(default: alpaca\), fields"):
        run(config(tmp_path / "raw", [GOOD, src]), tmp_path / "out", enc)
    assert not (tmp_path / "out" / "manifest.json").exists()
    # the right layout: kept
    m = run(config(tmp_path / "raw", [GOOD, dict(src, chat_layout="sharegpt")]), tmp_path / "out", enc)
    assert m["sources"]["sg"]["kept"] == 4


def test_a_source_its_filter_emptied_is_a_warning(tmp_path, enc, caplog):
    write_inputs(tmp_path / "raw")
    cfg = config(tmp_path / "raw", [GOOD, dict(CSV_WRONG_FIELD, text_field="content")],
                 filters=[{"name": "length", "min_chars": 1000, "sources": ["stories"]}])
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        m = run(cfg, tmp_path / "out", enc)
    assert m["sources"]["stories"]["kept"] == 0 and m["sources"]["good"]["kept"] == 3
    assert json.loads((tmp_path / "out" / "manifest.json").read_text())["sources"]["stories"]["read"] == 3
    warned = [r.getMessage() for r in caplog.records if "kept none" in r.getMessage()]
    assert warned == ["source 'stories': kept none of its 3 records (length 3), it adds nothing to the mix; "
                      "its filters or dedup dropped them all"]


def test_some_rejected_the_rest_filtered_is_a_warning_naming_both(tmp_path, enc, caplog):
    raw = tmp_path / "raw"
    write_inputs(raw)
    with open(raw / "good.jsonl", "a", encoding="utf-8") as f:
        f.write('{"body": "no text field here"}\n')
    cfg = config(raw, [GOOD], filters=[{"name": "length", "min_chars": 1000}])
    with caplog.at_level(logging.WARNING, logger=LOG.name), pytest.raises(UserError, match="no document kept of the 4"):
        run(cfg, tmp_path / "out", enc)  # and the whole output is empty: an error
    warned = [r.getMessage() for r in caplog.records if "kept none" in r.getMessage()]
    assert warned == ["source 'good': kept none of its 4 records (length 3, missing_field 1), it adds nothing to "
                      "the mix; for the 1 rejected, check its text_field, record_path and format"]


def test_an_empty_unsharded_output_is_an_error_a_shard_without_files_is_not(tmp_path, enc, caplog):
    raw = tmp_path / "raw"
    write_inputs(raw)
    (raw / "empty.jsonl").write_text("", encoding="utf-8")
    with pytest.raises(UserError, match="the sources' files hold no records: 0 tokens"):
        run(config(raw, [{"name": "e", "path": ["empty.jsonl"]}]), tmp_path / "o1", enc)
    cfg = config(raw, [GOOD, {"name": "e", "path": ["empty.jsonl"]}])
    assert run(cfg, tmp_path / "o2", enc)["sources"]["e"]["read"] == 0  # an empty file beside others: fine
    # Two files, two shards: each shard reads one source; the other source's read is 0 there, no warning.
    cfg = config(raw, [GOOD, dict(CSV_WRONG_FIELD, text_field="content")])
    with caplog.at_level(logging.WARNING, logger=LOG.name):
        parts = [run(cfg, tmp_path / f"s{i}", enc, shard=(i, 2)) for i in range(2)]
    assert sorted(sum(s["read"] == 0 for s in p["sources"].values()) for p in parts) == [1, 1]
    assert not [r for r in caplog.records if "kept none" in r.getMessage()]
    # A shard whose documents its filter dropped: 0 tokens is no error there (merge needs every shard).
    cfg = config(raw, [GOOD, dict(CSV_WRONG_FIELD, text_field="content")],
                 filters=[{"name": "length", "min_chars": 1000, "sources": ["stories"]}])
    parts = [run(cfg, tmp_path / f"f{i}", enc, shard=(i, 2)) for i in range(2)]
    assert sorted(p["total_tokens"] == 0 for p in parts) == [False, True]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger=LOG.name):  # and the merged output says it
        merge(tmp_path / "merged", [tmp_path / "f0", tmp_path / "f1"], log=LOG)
    assert [r.getMessage() for r in caplog.records if "kept none" in r.getMessage()] == [
        "source 'stories': kept none of its 3 records (length 3), it adds nothing to the mix; its filters or "
        "dedup dropped them all"]


def test_cli_exit_status_and_inspect(tmp_path, qwen_tokenizer_dir, capsys, monkeypatch):
    monkeypatch.setenv("STEEL_NO_PROGRESS", "1")
    raw = tmp_path / "raw"
    write_inputs(raw)
    cfg = tmp_path / "data.yaml"
    body = {"root": str(raw), "tokenizer": str(qwen_tokenizer_dir), "workers": 0, "dedup": {"near": False},
            "sources": [GOOD, CSV_WRONG_FIELD]}
    cfg.write_text(dump_yaml(body), encoding="utf-8")
    out = tmp_path / "out"
    assert main(["data", "prepare", str(cfg), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "steel: error: source 'stories': all 3 records rejected (missing_field 3)" in err
    assert not (out / "manifest.json").exists()
    assert "steel: error: source 'stories'" in (out / "prepare.log").read_text(encoding="utf-8")
    body["sources"] = [GOOD, dict(CSV_WRONG_FIELD, text_field="content")]
    cfg.write_text(dump_yaml(body), encoding="utf-8")
    assert main(["data", "prepare", str(cfg), "--out", str(out)]) == 0
    capsys.readouterr()
    assert main(["data", "inspect", str(out)]) == 0
    assert "problem" not in capsys.readouterr().out
    # A manifest of an older Steel, whose prepare let a source of rejections through
    m = json.loads((out / "manifest.json").read_text(encoding="utf-8"))
    s = m["sources"]["stories"]
    s["rejected"], s["kept"], s["tokens"] = {"missing_field": s["kept"]}, 0, 0
    (out / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    assert main(["data", "inspect", str(out)]) == 1
    assert ("problem: source 'stories': all 3 records rejected (missing_field 3); check its text_field"
            in capsys.readouterr().out)
    s["rejected"], s["filtered"] = {}, {"length": 3}  # filters emptied it: reported, not a problem
    (out / "manifest.json").write_text(json.dumps(m), encoding="utf-8")
    assert main(["data", "inspect", str(out)]) == 0
    assert "warning: source 'stories': kept none of its 3 records (length 3)" in capsys.readouterr().out


# ---- D2: a relative `tokenizer:` is found as `root:` is --------------------------------------------------
def test_relative_tokenizer_is_found_beside_the_config(tmp_path, qwen_tokenizer_dir, monkeypatch):
    proj = tmp_path / "proj"
    write_inputs(proj / "raw")
    shutil.copytree(qwen_tokenizer_dir, proj / "tok" / "q")
    cfg = config(Path("raw"), [GOOD], tokenizer="tok/q")
    cfg.root = "raw"
    monkeypatch.chdir(tmp_path)  # `cd .. && steel data prepare proj/data.yaml`: before, "tok/q: not a tokenizer directory"
    m = prepare(cfg, tmp_path / "out", config_path="proj/data.yaml", log=LOG, quiet=True)
    assert m["tokenizer"]["spec"] == m["config"]["tokenizer"] == str(Path("proj/tok/q"))
    assert m["sources"]["good"]["kept"] == 3


def test_relative_tokenizer_in_the_current_directory_comes_first(tmp_path, qwen_tokenizer_dir, monkeypatch):
    """As root: a path that exists from the current directory is that one (what a config meant before)."""
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "tok").mkdir()  # beside the config: no tokenizer there
    shutil.copytree(qwen_tokenizer_dir, tmp_path / "tok")
    monkeypatch.chdir(tmp_path)
    cfg = config(tmp_path, [GOOD], tokenizer="tok")
    assert cfg.resolve_tokenizer("proj/data.yaml") == "tok"
    assert config(tmp_path, [GOOD]).resolve_tokenizer("proj/data.yaml") == "qwen"


@pytest.mark.parametrize("case", ["missing", "missing_no_config", "no_tokenizer_json", "a_file"])
def test_tokenizer_errors_name_the_field_and_the_path(tmp_path, monkeypatch, case):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "proj").mkdir()
    (tmp_path / "proj" / "empty").mkdir()
    (tmp_path / "proj" / "f").write_text("x")
    spec = {"missing": "tok/q", "missing_no_config": "tok/q", "no_tokenizer_json": "empty", "a_file": "f"}[case]
    cfg = config(tmp_path, [GOOD], tokenizer=spec)
    with pytest.raises(Exception) as e:
        cfg.resolve_tokenizer(None if case == "missing_no_config" else "proj/data.yaml")
    expected = {
        "missing": "tokenizer: neither tok/q (from the current directory) nor proj/tok/q (from the config file's "
                   "directory) exists; give a tokenizer directory (holding tokenizer.json) or `qwen`",
        "missing_no_config": "tokenizer: tok/q does not exist; give a tokenizer directory (holding tokenizer.json) "
                             "or `qwen`",
        "no_tokenizer_json": "tokenizer: proj/empty is not a tokenizer directory (no tokenizer.json)",
        "a_file": "tokenizer: proj/f is not a directory",
    }[case]
    assert str(e.value) == expected
    with pytest.raises(Exception, match=r"^tokenizer: "):  # before any work: nothing staged in OUT
        prepare(cfg, tmp_path / "out", config_path=None if case == "missing_no_config" else "proj/data.yaml",
                log=LOG, quiet=True)
    assert not (tmp_path / "out" / STAGING).exists()
