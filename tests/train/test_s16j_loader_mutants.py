"""Tests written by a mutation audit of the training data loader (session 16, J). Each kills a deliberate bug
(named in the comment) that the suite let pass, against a reference that does not come from the code under
test: an uninterrupted loader for a resumed one, an offset worked out by hand.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
from test_review3_loader_vocab import corrupt
from train_fixtures import VOCAB, make_data_dir

from steel.data.loader import DataError, PretrainLoader
from steel.data.order import FeistelPermutation, derive_key


def test_a_resume_in_a_later_epoch_draws_what_the_uninterrupted_run_draws(tmp_path):
    # 18 + 12 = 30 samples per epoch, 4 per batch: the state is saved in epoch 1 (batch 10 of it) and the run goes
    # on into epoch 3. Mutants: the epoch left out of the state, or not restored from it: the resumed run shuffled
    # epoch 2 with epoch 1's key (the same order twice) or read the wrong epoch in its position.
    data = make_data_dir(tmp_path / "data", [300, 200])
    a = PretrainLoader([data], seq_len=16, micro_batch=4, seed=4)
    assert a.total == 30
    for _ in range(10):
        a.next_batch()
    assert a.epoch == 1
    state = json.loads(json.dumps(a.state_dict()))
    b = PretrainLoader([data], seq_len=16, micro_batch=4, seed=4)
    b.load_state_dict(state)
    epochs = []
    for _ in range(15):  # 40 + 60 = 100 positions: epoch 3 begins at position 90
        x, y = a.next_batch(), b.next_batch()
        assert np.array_equal(a.last_ids, b.last_ids) and a.epoch == b.epoch
        assert all(np.array_equal(x[k].numpy(), y[k].numpy()) for k in x)
        epochs.append(a.epoch)
    assert epochs[-1] == 3


def test_a_token_id_equal_to_the_vocabulary_size_names_the_file_and_offset(tmp_path):
    # Valid ids are < vocab_size: an id equal to it is past the embedding too (mutants: `>` for `>=` in the batch
    # check or in the search for the bad id, which then found none). The source has weight 2: each window is two
    # virtual samples, v = 2w and 2w + 1, and the message gives the window's token offset w * T (mutant: v * T).
    tokens = 1_500_000  # more than the 2 x 1 MiB the head/tail MD5 hashes: the corruption is not seen at start-up
    data = make_data_dir(tmp_path / "data", [tokens], seed=3, weight=2.0)
    chunk = data / "chunk-00000.bin"
    corrupt(chunk, 750_003, value=VOCAB)
    ld = PretrainLoader([data], 16, 4, seed=0)
    assert ld.chunks[0].count == 2 * ((tokens - 1) // 16)
    ld.read_samples(np.arange(0, 2 * 46_875))  # every window before it reads
    with pytest.raises(DataError) as e:
        ld.read_samples(np.array([5, 2 * 46_875 + 1, 7]))  # window 46,875: tokens 750,000 .. 750,016
    assert str(e.value).startswith(
        f"{chunk}: token id {VOCAB} at token offset 750003 (in the sample at offset 750000) is >= the chunk's "
        f"vocabulary size {VOCAB}")


def test_an_append_is_ordered_by_a_fresh_permutation_keyed_by_its_segment(tmp_path):
    # steel.data.order: appending M samples after k of the epoch's L positions starts a segment of (L - k) + M
    # positions; its position j is u = Q(j), the old order's position k + u when u < L - k, else new sample
    # base + u - (L - k), with Q a fresh permutation keyed by (seed, epoch, segment index). The reference is built
    # from FeistelPermutation and derive_key. Mutant: every segment keyed as the epoch's first one.
    data = make_data_dir(tmp_path / "a", [300, 200])
    extra = make_data_dir(tmp_path / "b", [250], seed=1, prefix="more")
    ld = PretrainLoader([data], seq_len=16, micro_batch=4, seed=9)
    for _ in range(3):
        ld.next_batch()
    length, k, base = ld.order.length, ld.consumed, ld.total
    old = ld.order.ids(np.arange(length))
    added = ld.add_data([extra])
    assert (length, k, base, added) == (30, 12, 30, 15)
    n = length - k + added
    u = FeistelPermutation(n, derive_key(9, 0, 1))(np.arange(n))
    want = np.where(u < length - k, old[np.minimum(k + u, length - 1)], base + u - (length - k))
    assert np.array_equal(ld.global_ids(k, n), want)
    assert sorted(want.tolist()) == sorted([*old[k:].tolist(), *range(base, base + added)])  # nothing lost or repeated
