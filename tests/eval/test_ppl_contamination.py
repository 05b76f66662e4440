"""`steel eval ppl` against a one-window-at-a-time reference; `steel eval contamination` on planted copies."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_mc import make_ceval_dir
from tiny_models import build_tiny_llama, tiny_fingerprint, write_json

from steel.cli import UserError
from steel.cli import main as steel_main
from steel.data.chunks import write_chunk, write_manifest
from steel.eval import contamination as C
from steel.eval.ppl import perplexity, windows


def _fingerprint(tok_dir) -> str:
    from steel.tokenizer.engine import fingerprint

    return fingerprint(json.loads((tok_dir / "tokenizer.json").read_text(encoding="utf-8")))


def _data_dir(root, chunks: dict[str, np.ndarray], vocab: int, fp: str | None = None):
    """A prepared data dir of `chunks`, tokenized (says its manifest) with the tiny test tokenizer by default."""
    fp = fp or tiny_fingerprint()
    root.mkdir(parents=True, exist_ok=True)
    entries = []
    for name, toks in chunks.items():
        write_chunk(root / f"{name}.bin", toks, vocab, fp)
        entries.append({"file": f"{name}.bin", "tokens": len(toks), "md5": "-", "source": name})
    write_manifest(
        root,
        {
            "total_tokens": sum(len(t) for t in chunks.values()),
            "chunks": entries,
            "tokenizer": {"fingerprint": fp, "vocab_size": vocab, "eos_id": 0},
            "sources": {},
            "config": {},
        },
    )
    return root


def test_windows_by_hand():
    assert windows(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert windows(9, 4) == [(0, 4), (4, 8)]  # a 1-token tail predicts nothing


def test_perplexity_matches_reference(tmp_path):
    model = build_tiny_llama(300)
    rng = np.random.default_rng(0)
    chunks = {"a": rng.integers(0, 300, 70), "b": rng.integers(0, 300, 33)}
    d = _data_dir(tmp_path / "data", chunks, 300)
    res = perplexity(model, d, seq_len=16, batch_size=3, advance=lambda n: None)
    nll = {}
    for name, toks in chunks.items():
        total, count = 0.0, 0
        for s, e in windows(len(toks), 16):
            ids = torch.tensor(toks[s:e], dtype=torch.long)[None]
            with torch.no_grad():
                logp = torch.log_softmax(model(ids).logits[0].float(), -1)
            total -= float(logp[torch.arange(e - s - 1), ids[0, 1:]].sum())
            count += e - s - 1
        nll[name] = (total, count)
    # NOTE: fp32, same per-window math, only batching differs: 1e-5 relative covers summation order.
    for name, (total, count) in nll.items():
        assert res["sources"][name]["tokens"] == count
        assert res["sources"][name]["nll"] == pytest.approx(total / count, rel=1e-5)
    all_nll = sum(t for t, _ in nll.values()) / sum(c for _, c in nll.values())
    assert res["ppl"] == pytest.approx(math.exp(all_nll), rel=1e-5)
    assert res["tokens"] == 69 - 4 + 32 - 2 == 95


def test_perplexity_cli_and_bad_manifest(tmp_path, tiny_llama_dir, capsys):
    d = _data_dir(tmp_path / "data", {"a": np.arange(40) % 250}, 261, _fingerprint(tiny_llama_dir))
    out = tmp_path / "ppl.json"
    assert (
        steel_main(
            [
                "eval",
                "ppl",
                "--model",
                str(tiny_llama_dir),
                "--data",
                str(d),
                "--seq-len",
                "8",
                "--out",
                str(out),
                "--device",
                "cpu",
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["tokens"] == 5 * 7
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "manifest.json").write_text("{}")
    assert steel_main(["eval", "ppl", "--model", str(tiny_llama_dir), "--data", str(tmp_path / "bad")]) == 2
    assert "not a Steel data manifest" in capsys.readouterr().err
    # Data of another tokenizer (same vocabulary size) was scored as if its ids were the model's.
    other = _data_dir(tmp_path / "other", {"a": np.arange(40) % 250}, 261, "e" * 64)
    assert steel_main(["eval", "ppl", "--model", str(tiny_llama_dir), "--data", str(other)]) == 2
    assert f"{other}: tokenized with another tokenizer (fingerprint eeeeeeeeeeee...) than the model's" \
        in capsys.readouterr().err
    # A second --data replaced the first without a word.
    assert steel_main(["eval", "ppl", "--model", str(tiny_llama_dir), "--data", str(d), "--data", str(other)]) == 2
    assert "--data: give one data directory (got 2" in capsys.readouterr().err


def test_normalize_and_ngrams():
    assert C.normalize("计算机 网络，OSI（七层）!") == "计算机网络osi七层"
    assert C.ngrams("abcd", 3) == {"abc", "bcd"}
    assert C.ngrams("ab", 3) == {"ab"}


def test_contamination_finds_planted_questions(tmp_path, tiny_tokenizer_dir):
    bench = make_ceval_dir(tmp_path / "ceval")
    # Plant computer_network question 2 (reformatted: spacing and punctuation differ) in an SFT file and
    # high_school_history question 2 in a prepared chunk.
    sft = write_json(
        tmp_path / "sft.json",
        [
            {
                "instruction": "关于 唐朝诗人 的说法, 下列哪项正确?\nA. 唐朝诗人甲 B. 乙 C. 丙 D. 丁",
                "input": "",
                "output": "C",
            },
            {"instruction": "无关的问题", "input": "", "output": "无关的回答"},
        ],
    )
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(str(tiny_tokenizer_dir))
    ids = tok.encode("关于古代货币制度的说法，下列哪项正确古代货币制度甲乙丙丁", add_special_tokens=False) + [
        tok.eos_token_id
    ]
    ids += tok.encode("别的文本", add_special_tokens=False) + [tok.eos_token_id]
    d = _data_dir(tmp_path / "data", {"x": np.array(ids)}, len(tok), _fingerprint(tiny_tokenizer_dir))
    (d / "manifest.json").write_text(
        (d / "manifest.json").read_text().replace('"eos_id": 0', f'"eos_id": {tok.eos_token_id}')
    )
    res = C.contamination_report(
        [sft, d], "ceval", bench, None, n=8, threshold=0.5, tokenizer_dir=tiny_tokenizer_dir
    )
    assert res["subjects"]["computer_network"]["contaminated"] == 1
    assert res["subjects"]["high_school_history"]["contaminated"] == 1
    assert res["overall"] == {"questions": 10, "contaminated": 2, "rate": 0.2}
    assert sorted(f["where"].rsplit("/", 1)[1] for f in res["flagged"]) == [
        "computer_network_val.csv:4",
        "high_school_history_val.csv:4",
    ]
    assert res["training"]["documents"] == 4
    # Other questions share only the template words: partial overlap, below the threshold.
    assert 0 < res["subjects"]["computer_network"]["mean_overlap"] < 1
    # --tokenizer of another tokenizer decoded the ids to other text without a word
    bad = _data_dir(tmp_path / "bad", {"x": np.array(ids)}, len(tok), "e" * 64)
    with pytest.raises(UserError, match=r"tokenized with another tokenizer .* than --tokenizer"):
        C.contamination_report([bad], "ceval", bench, None, n=8, threshold=0.5, tokenizer_dir=tiny_tokenizer_dir)


def test_question_layouts_by_hand():
    layouts = C.question_layouts("问：是什么", ["甲", "乙。"], 3)
    assert layouts == {
        "lettered": {"问是什", "是什么", "什么a", "么a甲", "a甲b", "甲b乙"},
        "plain": {"问是什", "是什么", "什么甲", "么甲乙"},
    }


def test_contamination_finds_copies_with_option_letters(tmp_path):
    """A verbatim copy in the usual "A. x" layout: the letters break every n-gram that crosses two options,
    so the stem-and-options-run-together n-grams alone found half of each question (0.5 < 0.6)."""
    bench = make_ceval_dir(tmp_path / "ceval")
    from steel.eval.mc import read_questions

    qs = read_questions(bench / "val" / "computer_network_val.csv", "ceval", "computer_network")
    copies = [q.question + "？\n" + "\n".join(f"{L}. {c}" for L, c in zip("ABCD", q.choices)) for q in qs]
    path = tmp_path / "copies.jsonl"
    path.write_text("".join(json.dumps({"text": t}, ensure_ascii=False) + "\n" for t in copies), encoding="utf-8")
    res = C.contamination_report([path], "ceval", bench, None, n=8, threshold=0.6)
    assert res["subjects"]["computer_network"]["contaminated"] == len(qs) == 6
    assert res["subjects"]["high_school_history"]["contaminated"] == 0
    assert {(f["overlap"], f["layout"]) for f in res["flagged"]} == {(1.0, "lettered")}
    # The same questions with the letters dropped are found by the plain layout.
    path.write_text(json.dumps([{"q": q.question, "o": list(q.choices)} for q in qs], ensure_ascii=False))
    path = path.rename(tmp_path / "copies.json")
    res = C.contamination_report([path], "ceval", bench, None, n=8, threshold=0.6)
    assert {(f["overlap"], f["layout"]) for f in res["flagged"]} == {(1.0, "plain")}
    assert len(res["flagged"]) == 6


def test_normalize_keeps_exactly_the_alphanumerics():
    """The regex normalisation against the definition it replaced (str.isalnum per character), on every
    code point outside the surrogates, after NFKC and lower-casing."""
    import unicodedata

    text = "".join(chr(c) for c in range(0x20, 0x30000) if not 0xD800 <= c < 0xE000)
    folded = unicodedata.normalize("NFKC", text).lower()
    assert C.normalize(text) == "".join(ch for ch in folded if ch.isalnum())


def _copies(path, qs, layout):
    path.write_text("".join(json.dumps({"text": layout(q)}, ensure_ascii=False) + "\n" for q in qs),
                    encoding="utf-8")
    return path


def test_contamination_finds_reordered_copies_nearby_only(tmp_path):
    """Options shuffled and labelled ①②③④: the joined layouts see the stem's n-grams only (half of
    them here, 0.5 < 0.6); `reordered` finds the stem with every option next to it. The same options far
    from the stem (a long document that quotes the stem) are not a copy."""
    bench = make_ceval_dir(tmp_path / "ceval")
    from steel.eval.mc import read_questions

    qs = read_questions(bench / "val" / "computer_network_val.csv", "ceval", "computer_network")

    def circled(q):
        opts = list(q.choices[1:]) + [q.choices[0]]
        return q.question + "\n" + "\n".join(f"{c}{o}" for c, o in zip("①②③④", opts))

    res = C.contamination_report([_copies(tmp_path / "c.jsonl", qs, circled)], "ceval", bench, None, n=8,
                                 threshold=0.6)
    assert len(res["flagged"]) == len(qs) == 6
    for f in res["flagged"]:
        assert f["layout"] == "reordered" and f["overlaps"]["reordered"] == 1.0
        assert f["overlaps"]["plain"] < 0.6 and f["overlaps"]["lettered"] < 0.6

    def far(q):
        return circled(q).replace("\n", "。" + "无关的叙述。" * 400, 1)

    res = C.contamination_report([_copies(tmp_path / "f.jsonl", qs, far)], "ceval", bench, None, n=8,
                                 threshold=0.6)
    assert res["flagged"] == []
    res = C.contamination_report([_copies(tmp_path / "s.jsonl", qs, lambda q: q.question)], "ceval", bench,
                                 None, n=8, threshold=0.5)
    # The stem alone: half of the plain layout, and named as partial by every layout's share.
    assert {(f["layout"], f["overlaps"]["plain"], f["overlaps"]["reordered"]) for f in res["flagged"]} == {
        ("plain", 0.5, 0.0)
    }


def test_contamination_finds_reordered_copies_of_short_stems(tmp_path):
    """A stem shorter than n has no n-gram of its own: `reordered` looks for it whole, with every option
    near it (1,308 of the 7,703 CMMLU test stems are under 13 characters). Not for a short stem whose
    options are short too (under 2 n characters in all): "是"/"否" are next to any stem."""
    from test_mc import CEVAL_HEADER_VAL
    from tiny_models import write_csv

    bench = make_ceval_dir(tmp_path / "ceval")
    long_opts = ["光合作用需要光照条件", "牛顿第一定律描述惯性", "唐朝诗人李白号青莲居士", "水的沸点与气压有关"]
    write_csv(bench / "val" / "computer_network_val.csv", CEVAL_HEADER_VAL,
              [["0", "哪项正确？", *long_opts, "A"], ["1", "下列正确的是", "是", "否", "对", "错", "A"]])

    def found(text: str) -> list[tuple[str, str, float]]:
        path = tmp_path / "t.jsonl"
        path.write_text(json.dumps({"text": text}, ensure_ascii=False) + "\n", encoding="utf-8")
        res = C.contamination_report([path], "ceval", bench, "val", n=13, threshold=0.5)
        return [(f["where"].rsplit(":", 1)[1], f["layout"], f["overlap"]) for f in res["flagged"]]

    rotated = long_opts[1:] + long_opts[:1]
    assert found("哪项正确？\n" + "\n".join(f"{c}{o}" for c, o in zip("①②③④", rotated))) == [("2", "reordered", 1.0)]
    assert found("\n".join(f"选项{c}：{o}" for c, o in zip("ABCD", rotated)) + "\n问：哪项正确") == [("2", "reordered", 1.0)]
    # (the options apart, so that no n-gram of the joined layouts crosses two of them)
    assert found("哪项正确？" + "无关的叙述。" * 100 + "无关".join(rotated)) == []  # the options far from the stem
    assert found("哪项正确？" + "无关".join(rotated[:3]) + "无关水的沸点") == []  # one option missing
    assert found("下列正确的是：①否 ②是 ③错 ④对") == []  # too little text to tell a copy


def test_text_file_is_read_in_pieces(tmp_path, monkeypatch):
    """A .txt is read in pieces cut after a line's end (one document each), so memory does not grow with the
    file; each piece begins with the previous one's last TXT_OVERLAP characters (no n-gram across a cut is
    lost); a copy inside a piece is found as before."""
    bench = make_ceval_dir(tmp_path / "ceval")
    monkeypatch.setattr(C, "TXT_PIECE_CHARS", 100)
    monkeypatch.setattr(C, "TXT_OVERLAP", 20)
    lines = ["无关的叙述第%d行。\n" % i for i in range(60)]
    lines[30] = "关于唐朝诗人的说法，下列哪项正确？A. 唐朝诗人甲 B. 乙 C. 丙 D. 丁\n"
    path = tmp_path / "big.txt"
    path.write_text("".join(lines), encoding="utf-8")
    pieces = list(C.training_texts([path]))
    assert pieces[0] + "".join(p[20:] for p in pieces[1:]) == "".join(lines)
    assert len(pieces) > 5 and all(p.endswith("\n") for p in pieces) and max(map(len, pieces)) <= 100 + 20 + 40
    res = C.contamination_report([path], "ceval", bench, None, n=8, threshold=0.9)
    assert res["training"]["documents"] == len(pieces)
    # One long line (no newline at all): cut inside, the next piece repeating the cut's last characters, so
    # a copy across a cut is still found and no piece grows with the line.
    monkeypatch.setattr(C, "TXT_OVERLAP", 40)
    line = "无关" * 45 + "关于唐朝诗人的说法，下列哪项正确？A. 唐朝诗人甲 B. 乙 C. 丙 D. 丁" + "无关" * 100
    path.write_text(line, encoding="utf-8")
    pieces = list(C.training_texts([path]))
    assert len(pieces) > 3 and max(len(p) for p in pieces) <= 100 + 40
    assert pieces[0] + "".join(p[40:] for p in pieces[1:]) == line
    res = C.contamination_report([path], "ceval", bench, None, n=8, threshold=1.0)
    assert [f["where"].rsplit("/", 1)[1] for f in res["flagged"]] == ["computer_network_val.csv:4"]
    (tmp_path / "x.parquet").write_bytes(b"PAR1\x00\x15")
    with pytest.raises(UserError, match=r"x.parquet: binary .parquet files are not read here"):
        list(C.training_texts([tmp_path / "x.parquet"]))
    assert [(f["where"].rsplit("/", 1)[1], f["layout"]) for f in res["flagged"]] == [
        ("computer_network_val.csv:4", "lettered")
    ]


def test_contamination_cli_errors(tmp_path, capsys):
    bench = make_ceval_dir(tmp_path / "ceval")
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"a": 1}\n{broken\n')
    assert (
        steel_main(["eval", "contamination", "--data", str(bad), "--task", "ceval", "--bench", str(bench)])
        == 2
    )
    assert "bad.jsonl:2: invalid JSON" in capsys.readouterr().err
    # Invalid UTF-8 and corrupt compressed files: one error line naming the file, exit status 2.
    undecodable = tmp_path / "latin1.txt"
    undecodable.write_bytes("caf\u00e9 text".encode("latin-1"))
    notzst = tmp_path / "corrupt.jsonl.zst"
    notzst.write_bytes(b"not zstd data")
    notgz = tmp_path / "corrupt.jsonl.gz"
    notgz.write_bytes(b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xffgarbage")
    for path, message in ((undecodable, "latin1.txt: invalid UTF-8"), (notzst, "corrupt.jsonl.zst: read error"),
                          (notgz, "corrupt.jsonl.gz: read error")):
        args = ["eval", "contamination", "--data", str(path), "--task", "ceval", "--bench", str(bench)]
        assert steel_main(args) == 2
        assert message in capsys.readouterr().err
    out = tmp_path / "c.json"
    good = write_json(tmp_path / "g.json", [{"q": "nothing related"}])
    assert (
        steel_main(
            [
                "eval",
                "contamination",
                "--data",
                str(good),
                "--task",
                "ceval",
                "--bench",
                str(bench),
                "--out",
                str(out),
            ]
        )
        == 0
    )
    assert json.loads(out.read_text())["overall"]["contaminated"] == 0
