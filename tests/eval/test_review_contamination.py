"""`steel eval contamination`: copies in training text that the reading of the text must not hide."""

from __future__ import annotations

from test_mc import CEVAL_HEADER_VAL, make_ceval_dir
from tiny_models import write_csv

from steel.eval import contamination as C


def test_txt_copy_across_a_piece_cut_is_found(tmp_path, monkeypatch):
    """A .txt is read in pieces cut after a newline; a question copied over several lines (stem, then
    `A. x` lines) that a cut falls inside lost every n-gram across the cut: a short question (all of its
    13-grams cross the stem's end) was not found at all, at any threshold."""
    bench = make_ceval_dir(tmp_path / "ceval")
    write_csv(bench / "val" / "computer_network_val.csv", CEVAL_HEADER_VAL,
              [["0", "下列哪项是哺乳动物", "鲸鱼", "鲨鱼", "金鱼", "章鱼", "A"]])
    copy = "下列哪项是哺乳动物\nA. 鲸鱼\nB. 鲨鱼\nC. 金鱼\nD. 章鱼\n"
    monkeypatch.setattr(C, "TXT_PIECE_CHARS", 64)
    monkeypatch.setattr(C, "TXT_OVERLAP", 24)
    path = tmp_path / "bank.txt"
    missed = []
    for k in range(12):  # the copy at every offset against the cuts
        path.write_text("无关的叙述。\n" * k + copy + "无关的叙述。\n" * 20, encoding="utf-8")
        res = C.contamination_report([path], "ceval", bench, "val", n=13, threshold=1.0)
        if [f["where"].rsplit("/", 1)[1] for f in res["flagged"]] != ["computer_network_val.csv:2"]:
            missed.append(k)
    assert missed == []


def test_jsonl_with_a_huge_integer_is_scanned(tmp_path):
    """A JSON integer of more than 4,300 digits (Python's int() cap) in a field of a training record made
    json.loads raise a plain ValueError: a traceback, the scan over (prepare reads such a record since fa11a3c)."""
    import json

    bench = make_ceval_dir(tmp_path / "ceval")
    write_csv(bench / "val" / "computer_network_val.csv", CEVAL_HEADER_VAL,
              [["0", "下列哪项是哺乳动物而不是鱼类", "鲸鱼", "鲨鱼", "金鱼", "章鱼", "A"]])
    path = tmp_path / "web.jsonl"
    copy = "下列哪项是哺乳动物而不是鱼类 A. 鲸鱼 B. 鲨鱼 C. 金鱼 D. 章鱼"
    path.write_text(json.dumps({"text": "无关"}) + "\n" + '{"id": ' + "9" * 5000 + ', "text": ' + json.dumps(copy) + "}\n",
                    encoding="utf-8")
    res = C.contamination_report([path], "ceval", bench, "val", n=13, threshold=1.0)
    assert [f["where"].rsplit("/", 1)[1] for f in res["flagged"]] == ["computer_network_val.csv:2"]


def test_compressed_file_without_a_compression_suffix_is_scanned(tmp_path):
    """prepare tells a gzip/zstd file by its magic number whatever its name (064201c: `.jsonl` files that
    are zstd); contamination read such a file's compressed bytes as text and refused it as invalid UTF-8."""
    import gzip
    import json

    import zstandard

    bench = make_ceval_dir(tmp_path / "ceval")
    write_csv(bench / "val" / "computer_network_val.csv", CEVAL_HEADER_VAL,
              [["0", "下列哪项是哺乳动物而不是鱼类", "鲸鱼", "鲨鱼", "金鱼", "章鱼", "A"]])
    copy = "下列哪项是哺乳动物而不是鱼类 A. 鲸鱼 B. 鲨鱼 C. 金鱼 D. 章鱼"
    data = (json.dumps({"text": "无关"}) + "\n" + json.dumps({"text": copy}) + "\n").encode()
    for name, blob in [("z.jsonl", zstandard.ZstdCompressor().compress(data)), ("g.jsonl", gzip.compress(data)),
                       ("t.txt", gzip.compress(copy.encode()))]:
        (tmp_path / name).write_bytes(blob)
        res = C.contamination_report([tmp_path / name], "ceval", bench, "val", n=13, threshold=1.0)
        assert [f["where"].rsplit("/", 1)[1] for f in res["flagged"]] == ["computer_network_val.csv:2"], name
