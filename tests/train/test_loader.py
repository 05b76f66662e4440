import json

import numpy as np
import pytest
from train_fixtures import make_data_dir

from steel.data.chunks import read_chunk, write_chunk
from steel.data.loader import DataError, PretrainLoader, num_windows

T = 16


def all_windows(loader):
    """Every (virtual) sample of the registry, read directly from the chunk files: the reference."""
    out = {}
    for c, rec in enumerate(loader.chunks):
        _, toks = read_chunk(rec.file)
        for v in range(rec.count):
            w = v * num_windows(rec.tokens, T) // rec.count
            out[int(loader._offsets[c]) + v] = np.asarray(toks[w * T : w * T + T + 1], dtype=np.int64)
    return out


def test_batches_are_windows_of_the_chunks(data_dir):
    ld = PretrainLoader([data_dir], seq_len=T, micro_batch=4, seed=3)
    ref = all_windows(ld)
    assert ld.total == sum(num_windows(n, T) for n in (1000, 777, 1500))
    for _ in range(5):
        b = ld.next_batch()
        assert b["input_ids"].shape == (4, T) and b["shift_labels"].shape == (4, T)
        for row, i in enumerate(ld.last_ids):
            assert np.array_equal(b["input_ids"][row].numpy(), ref[int(i)][:-1])
            assert np.array_equal(b["shift_labels"][row].numpy(), ref[int(i)][1:])


def test_one_epoch_sees_every_sample_once_then_reshuffles(data_dir):
    ld = PretrainLoader([data_dir], seq_len=T, micro_batch=1, seed=0)
    n = ld.total
    first = [int(ld.next_batch() and ld.last_ids[0]) for _ in range(n)]
    assert sorted(first) == list(range(n)) and ld.epoch == 1
    second = [int(ld.next_batch() and ld.last_ids[0]) for _ in range(n)]
    assert sorted(second) == list(range(n)) and second != first


def test_ranks_interleave_the_global_order(data_dir):
    one = PretrainLoader([data_dir], seq_len=T, micro_batch=4, seed=5)
    ranks = [PretrainLoader([data_dir], seq_len=T, micro_batch=2, seed=5, rank=r, world_size=2) for r in (0, 1)]
    for _ in range(10):
        one.next_batch()
        parts = [(r.next_batch(), r.last_ids) for r in ranks]
        merged = np.empty(4, dtype=np.int64)
        merged[0::2], merged[1::2] = parts[0][1], parts[1][1]
        assert np.array_equal(merged, one.last_ids)


def test_resume_is_exact_and_state_is_small_json(data_dir):
    a = PretrainLoader([data_dir], seq_len=T, micro_batch=3, seed=1)
    for _ in range(7):
        a.next_batch()
    state = json.loads(json.dumps(a.state_dict()))
    b = PretrainLoader([data_dir], seq_len=T, micro_batch=3, seed=1)
    b.load_state_dict(state)
    for _ in range(40):  # runs across an epoch boundary
        x, y = a.next_batch(), b.next_batch()
        assert np.array_equal(a.last_ids, b.last_ids)
        assert all(np.array_equal(x[k].numpy(), y[k].numpy()) for k in x)


def test_resume_with_another_world_size_resplits(data_dir):
    one = PretrainLoader([data_dir], seq_len=T, micro_batch=4, seed=2)
    for _ in range(3):
        one.next_batch()
    state = one.state_dict()
    ranks = [PretrainLoader([data_dir], seq_len=T, micro_batch=2, seed=2, rank=r, world_size=2) for r in (0, 1)]
    for r in ranks:
        r.load_state_dict(state)
    one.next_batch()
    for r in ranks:
        r.next_batch()
    assert sorted(np.concatenate([r.last_ids for r in ranks]).tolist()) == sorted(one.last_ids.tolist())


def test_append_at_resume_loses_and_repeats_nothing(tmp_path):
    """Count every sample id over an epoch interrupted by two appends (a new dir, then files added)."""
    d1 = make_data_dir(tmp_path / "d1", [900, 700], seed=1)
    d2 = make_data_dir(tmp_path / "d2", [800], seed=2, source="books", prefix="b")
    ld = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9)
    n1 = ld.total
    seen = [int(ld.next_batch() and ld.last_ids[0]) for _ in range(40)]
    state = ld.state_dict()
    ld = PretrainLoader([d1, d2], seq_len=T, micro_batch=1, seed=9)  # d2 newly listed at resume
    ld.load_state_dict(state)
    n2 = ld.total
    assert n2 > n1
    seen += [int(ld.next_batch() and ld.last_ids[0]) for _ in range(30)]
    make_data_dir(tmp_path / "d3", [600], seed=3, prefix="c")
    state = ld.state_dict()
    ld = PretrainLoader([d1, d2], seq_len=T, micro_batch=1, seed=9)
    ld.load_state_dict(state)
    ld.add_data([tmp_path / "d3"])  # --add-data
    n3 = ld.total
    assert len(ld.state_dict()["segments"]) == 3
    while ld.epoch == 0:
        seen.append(int(ld.next_batch() and ld.last_ids[0]))
    assert len(seen) == n3 and sorted(seen) == list(range(n3))
    # New samples arrive mixed among the old ones, not all at the end.
    new_pos = [i for i, s in enumerate(seen) if s >= n1]
    assert new_pos[0] < len(seen) - (n3 - n1)


def test_duplicate_chunk_refused_naming_both_files(tmp_path):
    d1 = make_data_dir(tmp_path / "d1", [500, 400], seed=1)
    d2 = make_data_dir(tmp_path / "d2", [300], seed=1)
    # Copy d1's second chunk into d2 under another name: same content, same head/tail MD5.
    (d2 / "copy.bin").write_bytes((d1 / "chunk-00001.bin").read_bytes())
    man = json.loads((d2 / "manifest.json").read_text())
    man["chunks"].append({**json.loads((d1 / "manifest.json").read_text())["chunks"][1], "file": "copy.bin"})
    (d2 / "manifest.json").write_text(json.dumps(man))
    with pytest.raises(DataError, match=r"copy\.bin.*same head/tail MD5.*chunk-00001\.bin"):
        PretrainLoader([d1, d2], seq_len=T, micro_batch=1)
    # Also when the copy is appended later to a run that registered the original, on any rank (the
    # registry is global: a copy sharded to another rank's share is still caught).
    for rank in (0, 1):
        ld = PretrainLoader([d1], seq_len=T, micro_batch=1, rank=rank, world_size=2)
        with pytest.raises(DataError, match=r"copy\.bin.*chunk-00001\.bin"):
            ld.add_data([d2])


def test_changed_chunk_refused_at_resume(tmp_path):
    d = make_data_dir(tmp_path / "d", [500, 400], seed=1)
    ld = PretrainLoader([d], seq_len=T, micro_batch=2)
    ld.next_batch()
    state = ld.state_dict()
    # Rewrite a chunk (same name, same size, other tokens) and its manifest entry, as a re-run of prepare would.
    make_data_dir(d, [500, 400], seed=2)
    with pytest.raises(DataError, match=r"chunk-0000[01]\.bin: chunk changed since it was registered"):
        PretrainLoader([d], seq_len=T, micro_batch=2).load_state_dict(state)
    # Rewritten behind the manifest's back: caught by the file hash.
    make_data_dir(d, [500, 400], seed=1)
    write_chunk(d / "chunk-00001.bin", np.ones(400, dtype=np.int64), 256, "test-tokenizer-v1")
    with pytest.raises(DataError, match=r"chunk-00001\.bin: chunk does not match its manifest MD5"):
        PretrainLoader([d], seq_len=T, micro_batch=2)


def test_mixed_tokenizers_refused(tmp_path):
    d1 = make_data_dir(tmp_path / "d1", [500])
    d2 = make_data_dir(tmp_path / "d2", [500], seed=4, fingerprint="other")
    with pytest.raises(DataError, match="d2.*fingerprint.*differs"):
        PretrainLoader([d1, d2], seq_len=T, micro_batch=1)


def test_mixture_weights_scale_samples_per_epoch(tmp_path):
    d1 = make_data_dir(tmp_path / "d1", [T * 10 + 1], seed=1, source="web", weight=0.5)
    d2 = make_data_dir(tmp_path / "d2", [T * 10 + 1], seed=2, source="books", weight=2.0)
    ld = PretrainLoader([d1, d2], seq_len=T, micro_batch=1)
    assert [c.count for c in ld.chunks] == [5, 20]
    ld = PretrainLoader([d1, d2], seq_len=T, micro_batch=1, weights={"web": 1.0})
    assert [c.count for c in ld.chunks] == [10, 20]
    # Each books window appears exactly twice per epoch.
    ids = [int(ld.next_batch() and ld.last_ids[0]) for _ in range(30)]
    windows = [tuple(ld.read_samples(np.array([i]))[0]) for i in ids if i >= 10]
    assert len(windows) == 20 and all(windows.count(w) == 2 for w in windows)


@pytest.fixture
def data_dir(tmp_path):
    return make_data_dir(tmp_path / "data", [1000, 777, 1500])


def test_replace_with_reuse_registers_chunks_again(tmp_path):
    """An annealing phase (`replace`) may draw again from chunks already in the run: new ids, same windows."""
    d1 = make_data_dir(tmp_path / "d1", [900, 700], seed=1)
    hq = make_data_dir(tmp_path / "hq", [500], seed=2, source="hq", prefix="hq")
    ld = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9)
    n1 = ld.total
    for _ in range(10):
        ld.next_batch()
    with pytest.raises(ValueError, match="reuse=True needs replace=True"):
        ld.add_data([d1, hq], reuse=True)
    assert ld.total == n1 and ld.phases == []  # refused before any change
    added = ld.add_data([d1, hq], replace=True, phase="anneal", reuse=True)
    assert added == n1 + num_windows(500, T) and ld.total == n1 + added and ld.phases == ["anneal"]
    assert [c.md5 for c in ld.chunks[2:4]] == [c.md5 for c in ld.chunks[:2]]  # registered a second time
    ids = np.arange(n1)
    assert np.array_equal(ld.read_samples(ids + n1), ld.read_samples(ids))
    state = ld.state_dict()
    resumed = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9, lookup_dirs=[hq])
    resumed.load_state_dict(state)
    assert resumed.total == ld.total
    # The rest of this epoch and the next draw from the ids from the switch on, each once.
    for _ in range(2):
        epoch, seen = ld.epoch, []
        while ld.epoch == epoch:
            b = ld.next_batch()
            assert np.array_equal(b["input_ids"].numpy(), resumed.next_batch()["input_ids"].numpy())
            seen.append(int(ld.last_ids[0]))
        assert sorted(seen) == list(range(n1, ld.total))
    # Without reuse, a chunk of the run is skipped (the same file): the phase would hold hq's samples only.
    ld = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9)
    assert ld.add_data([d1, hq], replace=True) == num_windows(500, T)


def test_after_a_replace_switch_new_chunks_of_the_data_dirs_stay_out(tmp_path, caplog):
    # They joined the annealing phase and every later epoch ("from the switch on, the run draws only from
    # the annealing chunks").
    d1 = make_data_dir(tmp_path / "d1", [900, 700], seed=1)
    hq = make_data_dir(tmp_path / "hq", [500], seed=2, source="hq", prefix="hq")
    ld = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9, lookup_dirs=[hq])
    for _ in range(5):
        ld.next_batch()
    ld.add_data([hq], replace=True, phase="anneal")
    state = ld.state_dict()
    make_data_dir(tmp_path / "d1b", [800], seed=3, source="late", prefix="late")
    (tmp_path / "d1b" / "late-00000.bin").rename(d1 / "late-00000.bin")  # a file added to a listed dir
    m = json.loads((d1 / "manifest.json").read_text())
    m["chunks"] += json.loads((tmp_path / "d1b" / "manifest.json").read_text())["chunks"]
    (d1 / "manifest.json").write_text(json.dumps(m))
    resumed = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9, lookup_dirs=[hq])
    with caplog.at_level("WARNING", logger="steel"):
        resumed.load_state_dict(state)
    assert resumed.total == ld.total and "1 new chunks in the data dirs" in caplog.text
    for _ in range(2):  # the rest of this epoch and the next: hq only
        epoch, seen = resumed.epoch, []
        while resumed.epoch == epoch:
            resumed.next_batch()
            seen.append(int(resumed.last_ids[0]))
        assert set(seen) <= set(range(ld.active_base, ld.total))


def test_resume_with_relative_lookup_dirs_and_absolute_appended_ones(tmp_path, monkeypatch):
    # Appended dirs are stored absolute; a relative anneal/--add-data dir named the same dir again and
    # the two were scanned together: "duplicate chunk" at every resume after the switch.
    d1 = make_data_dir(tmp_path / "d1", [900], seed=1)
    make_data_dir(tmp_path / "hq", [500], seed=2, source="hq", prefix="hq")
    monkeypatch.chdir(tmp_path)
    ld = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9, lookup_dirs=["hq"])
    ld.next_batch()
    ld.add_data(["hq"], replace=True, phase="anneal")
    assert ld.extra_dirs == [str((tmp_path / "hq").resolve())]
    resumed = PretrainLoader([d1], seq_len=T, micro_batch=1, seed=9, lookup_dirs=["hq"])
    resumed.load_state_dict(ld.state_dict())
    assert np.array_equal(resumed.next_batch()["input_ids"].numpy(), ld.next_batch()["input_ids"].numpy())


def test_data_that_gives_no_sample_is_reported(tmp_path, caplog):
    """Chunks shorter than seq_len + 1, or whose windows x weight round to 0, give no sample: said at
    registration (start, append), per source, with the tokens no sample reads; the samples do not change."""
    d = tmp_path / "d"
    make_data_dir(d, [T * 10 + 1], seed=1, source="big")
    for k, src in enumerate(["a", "b", "c", "d"]):  # 4 small sources of the same dir, each < T + 1 tokens
        small = make_data_dir(tmp_path / f"small_{src}", [T - 2, T], seed=10 + k, source=src, prefix=src)
        man = json.loads((d / "manifest.json").read_text())
        sm = json.loads((small / "manifest.json").read_text())
        for c in sm["chunks"]:
            (d / c["file"]).write_bytes((small / c["file"]).read_bytes())
        man["chunks"] += sm["chunks"]
        man["sources"] |= sm["sources"]
        (d / "manifest.json").write_text(json.dumps(man))
    with caplog.at_level("INFO", logger="steel"):
        ld = PretrainLoader([d], seq_len=T, micro_batch=1)
    assert ld.total == 10 and [c.count for c in ld.chunks] == [10] + [0] * 8  # ids unchanged
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    for src in "abcd":
        assert any(f"source {src!r} in {d}: 2 of 2 chunks give no sample (2 shorter than seq_len + 1 = {T + 1} "
                   f"tokens); {2 * T - 2} of its {2 * T - 2} tokens are in no sample" in m for m in warned), warned
    assert not any("'big'" in m for m in warned)  # a full source: no tail (10 windows = 161 tokens)

    # A weight that rounds 0.4 x 1 window to 0, and a tail over 1% of a source, appended with --add-data.
    e = make_data_dir(tmp_path / "e", [T + 1], seed=2, source="e", weight=0.4, prefix="e")
    caplog.clear()
    with caplog.at_level("INFO", logger="steel"):
        with pytest.raises(DataError, match=rf"no sample of seq_len \+ 1 = {T + 1} tokens in data dir\(s\) {e} "
                                            r"\(1 chunks, 17 tokens"):
            ld.add_data([e])
    assert ld.total == 10 and ld.extra_dirs == []  # refused before any change
    # At an annealing switch (mid-run) it is a warning: the run's startup checks are where to refuse it.
    mid = PretrainLoader([d], seq_len=T, micro_batch=1)
    caplog.clear()
    with caplog.at_level("INFO", logger="steel"):
        assert mid.add_data([e], replace=True, phase="anneal", reuse=True) == 0
    assert any(f"no sample of seq_len + 1 = {T + 1} tokens in data dir(s) {e}" in r.getMessage()
               for r in caplog.records if r.levelname == "WARNING")
    f = make_data_dir(tmp_path / "f", [T + 1, 2 * T + 9], seed=3, source="f", weight=0.4, prefix="f")
    with caplog.at_level("INFO", logger="steel"):
        assert ld.add_data([f]) == 1  # 0.4 x 1 -> 0, 0.4 x 2 -> 1
    warned = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any(f"source 'f' in {f}: 1 of 2 chunks give no sample (1 whose windows x weight 0.4 rounds to 0); "
               f"{T + 1 + 8} of its {3 * T + 10} tokens" in m for m in warned), warned
    g = make_data_dir(tmp_path / "g", [3 * T - 1], seed=4, source="g", prefix="g")
    caplog.clear()
    with caplog.at_level("INFO", logger="steel"):
        ld.add_data([g])
    assert any(f"source 'g' in {g}: all 1 chunks give samples, but {T - 2} of its {3 * T - 1} tokens"
               in r.getMessage() for r in caplog.records if r.levelname == "WARNING")
    # A whole dir without a sample is refused at the start too, naming it.
    tiny = make_data_dir(tmp_path / "tiny", [T - 2, T], seed=99, source="tiny", prefix="t")
    with pytest.raises(DataError, match=rf"data dir\(s\) {tiny} \(2 chunks, {2 * T - 2} tokens, the longest {T}\)"):
        PretrainLoader([d, tiny], seq_len=T, micro_batch=1)


def _edit_manifest(d, edit):
    man = json.loads((d / "manifest.json").read_text())
    edit(man)
    (d / "manifest.json").write_text(json.dumps(man))


MANIFEST_EDITS = {
    "tokens x3": (lambda m: m["chunks"][1].update(tokens=m["chunks"][1]["tokens"] * 3),
                  r"chunk-00001\.bin: the chunk header says 400 tokens.*says 1200"),
    "tokens -100": (lambda m: m["chunks"][1].update(tokens=m["chunks"][1]["tokens"] - 100),
                    r"chunk-00001\.bin: the chunk header says 400 tokens.*says 300"),
    "fingerprint": (lambda m: m["tokenizer"].update(fingerprint="another-tokenizer"),
                    r"chunk-00000\.bin: the chunk header's tokenizer fingerprint 'test-tokenizer-v1' differs"),
    "vocab": (lambda m: m["tokenizer"].update(vocab_size=1000),
              r"chunk-00000\.bin: the chunk header says vocab size 256.*says 1000"),
}


@pytest.mark.parametrize("edit", list(MANIFEST_EDITS))
def test_manifest_disagreeing_with_chunk_headers_refused(tmp_path, edit):
    fn, message = MANIFEST_EDITS[edit]
    good = make_data_dir(tmp_path / "good", [500, 400], seed=1)
    bad = make_data_dir(tmp_path / "bad", [500, 400], seed=2)
    _edit_manifest(bad, fn)
    with pytest.raises(DataError, match=message):  # fresh start (MD5 checks too: not a MD5 message)
        PretrainLoader([bad], seq_len=T, micro_batch=1)
    with pytest.raises(DataError, match=message):  # even with the MD5 check off
        PretrainLoader([bad], seq_len=T, micro_batch=1, verify=False)
    ld = PretrainLoader([good], seq_len=T, micro_batch=1)
    if edit != "fingerprint":  # (another fingerprint is refused as another tokenizer, before)
        with pytest.raises(DataError, match=message):  # --add-data
            ld.add_data([bad])
    state = ld.state_dict()
    state["extra_dirs"] = [str(bad)]
    with pytest.raises(DataError, match=message):  # resume, the added dir looked up again
        PretrainLoader([good], seq_len=T, micro_batch=1).load_state_dict(state)


def test_long_fingerprint_header_keeps_its_first_64_characters(tmp_path):
    fp = "f" * 40 + "0123456789" * 4
    d = make_data_dir(tmp_path / "d", [500], fingerprint=fp)
    assert read_chunk(d / "chunk-00000.bin")[0].fingerprint == fp[:64]
    assert PretrainLoader([d], seq_len=T, micro_batch=1).tokenizer["fingerprint"] == fp
    _edit_manifest(d, lambda m: m["tokenizer"].update(fingerprint=fp[:64] + "x"))  # same first 64: not seen
    PretrainLoader([d], seq_len=T, micro_batch=1)
    _edit_manifest(d, lambda m: m["tokenizer"].update(fingerprint="g" + fp[1:]))
    with pytest.raises(DataError, match="fingerprint"):
        PretrainLoader([d], seq_len=T, micro_batch=1)


@pytest.mark.parametrize("state", [{"kind": "sft", "seed": 1, "rows_md5": "x"}, {"seed": 1, "rows_md5": "x"}])
def test_an_sft_runs_data_state_is_named_as_such(data_dir, state):
    # `steel train` pointed at an SFT run_dir said "unsupported version/kind None/sft"; SFT states before
    # 2026-12-06 carry no kind (rows_md5 tells them).
    with pytest.raises(DataError, match=r"run_dir holds an SFT run \(steel sft\)"):
        PretrainLoader([data_dir], seq_len=T, micro_batch=2).load_state_dict(state)
