"""Mutation audit of the training loader's order (session 13, H4): tests that kill mutations the rest of the
suite let pass, against independent references (every epoch a permutation of the sample ids, batches that
tile the stream of epochs without loss or repeat)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from steel.data.chunks import head_tail_md5, write_chunk, write_manifest
from steel.data.loader import PretrainLoader

T = 8
VOCAB, EOS = 300, 0


def data_dir(path: Path, sizes: list[int], seed: int = 0, prefix: str = "c") -> Path:
    path.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    chunks = []
    for i, n in enumerate(sizes):
        toks = rng.integers(1, VOCAB, size=n)
        toks[-1] = EOS
        name = f"{prefix}-{i:05d}.bin"
        write_chunk(path / name, toks, VOCAB, "fp")
        chunks.append({"file": name, "tokens": n, "md5": head_tail_md5(path / name), "source": "web"})
    write_manifest(path, {"total_tokens": sum(sizes), "chunks": chunks,
                          "tokenizer": {"fingerprint": "fp", "vocab_size": VOCAB, "eos_id": EOS},
                          "sources": {"web": {"read": 0, "kept": 0, "filtered": {}, "rejected": {}, "weight": 1.0,
                                              "kind": "text"}}, "config": {}})
    return path


def test_a_batch_that_straddles_an_epoch_end_continues_the_next_epoch_where_it_spilled(tmp_path):
    # 3 chunks of 8k+1 tokens: (k windows each) 5 + 7 + 11 = 23 samples; micro-batches of 3 never end on an
    # epoch boundary. Over 4 epochs the drawn ids, cut into epochs of 23, must each be a permutation of
    # [0, 23): a batch that runs into the next epoch has used that epoch's first positions, which the
    # next batch must not draw again (nor skip any).
    ld = PretrainLoader([data_dir(tmp_path / "d", [8 * 5 + 1, 8 * 7 + 1, 8 * 11 + 1])], seq_len=T, micro_batch=3,
                        seed=4)
    assert ld.total == 23
    drawn = []
    for _ in range(23 * 4 // 3 + 1):
        ld.next_batch()
        drawn += ld.last_ids.tolist()
    for e in range(4):
        assert sorted(drawn[23 * e : 23 * (e + 1)]) == list(range(23)), f"epoch {e}"
    assert ld.epoch == 4 and ld.consumed == len(drawn) - 4 * 23


def test_a_down_weighted_chunk_samples_windows_spread_over_the_whole_chunk(tmp_path):
    # README: a chunk with s windows and weight w contributes round(w * s) virtual samples, virtual v reading
    # window v * s // round(w * s). At w = 0.5 a 10-window chunk gives 5 samples: windows 0, 2, 4, 6, 8 (not
    # its first half only); at w = 2.0, 20 samples: each window twice, in order.
    d = data_dir(tmp_path / "d", [T * 10 + 1])
    toks = np.fromfile(d / "c-00000.bin", dtype="<u2")[64:]  # 128-byte header, uint16 ids (vocab 300)
    assert len(toks) == T * 10 + 1
    for weight, windows in ((0.5, [0, 2, 4, 6, 8]), (2.0, [k // 2 for k in range(20)]), (0.3, [0, 3, 6])):
        ld = PretrainLoader([d], seq_len=T, micro_batch=1, weights={"web": weight})
        assert ld.total == len(windows)
        got = ld.read_samples(np.arange(len(windows)))
        want = np.stack([toks[w * T : w * T + T + 1] for w in windows]).astype(np.int64)
        assert np.array_equal(got, want), weight


def test_the_epoch_permutation_does_not_correlate_position_and_sample_id():
    # A uniform random permutation of n has corr(position, id) ~ N(0, 1/n): |corr| < 0.1 is > 7 standard
    # deviations at n >= 5000. Sample ids are chunk-major (a source's chunks are contiguous ids), so a
    # correlated order draws the sources in runs. Sizes of odd and even bit length (the Feistel halves).
    from steel.data.order import FeistelPermutation, derive_key

    for n in (5000, 20000, 1 << 14, 3 * 1024 + 1):
        for seed in range(3):
            y = FeistelPermutation(n, derive_key(seed, 0, 0))(np.arange(n))
            assert sorted(y.tolist()) == list(range(n))
            assert abs(np.corrcoef(np.arange(n), y)[0, 1]) < 0.1, (n, seed)
