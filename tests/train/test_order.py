import numpy as np
import pytest

from steel.data.order import EpochOrder, FeistelPermutation, derive_key


@pytest.mark.parametrize("n", [1, 2, 3, 17, 64, 1000, 4097])
def test_feistel_is_a_bijection(n):
    p = FeistelPermutation(n, key=derive_key(7, n))
    out = p(np.arange(n))
    assert sorted(out.tolist()) == list(range(n))


def test_feistel_depends_on_key_and_is_not_identity():
    n = 1000
    a = FeistelPermutation(n, derive_key(1))(np.arange(n))
    b = FeistelPermutation(n, derive_key(2))(np.arange(n))
    assert not np.array_equal(a, b)
    # A shuffle, not a near-identity: few fixed points (expected ~1 for a random permutation).
    assert (a == np.arange(n)).sum() < 10
    with pytest.raises(IndexError):
        FeistelPermutation(n, 1)(np.array([n]))


def test_appends_lose_and_repeat_nothing():
    """Consume, append twice (merge), finish the epoch: every old and new id exactly once."""
    order = EpochOrder.fresh(0, 500, key=derive_key(0))
    seen = list(order.ids(np.arange(0, 123)))
    order.append(consumed=123, new_base=500, new_count=200, key=derive_key(1))
    seen += list(order.ids(np.arange(123, 400)))
    order.append(consumed=400, new_base=700, new_count=50, key=derive_key(2))
    assert order.length == 750
    seen += list(order.ids(np.arange(400, 750)))
    assert sorted(seen) == list(range(750))
    # Positions consumed before an append keep their ids (recomputed from the state alone).
    again = EpochOrder.from_state(order.state_dict())
    assert np.array_equal(again.ids(np.arange(750)), np.array(seen))
    assert len(order.state_dict()) == 3  # O(appends)


def test_new_samples_are_mixed_into_the_rest():
    order = EpochOrder.fresh(0, 1000, key=derive_key(0))
    order.append(consumed=500, new_base=1000, new_count=500, key=derive_key(1))
    later = order.ids(np.arange(500, 1000))
    # About half of the next 500 are new: the reshuffle spreads them (binomial, sd ~11; 6 sd margin).
    assert 180 < (later >= 1000).sum() < 320


def test_replace_drops_the_rest():
    order = EpochOrder.fresh(0, 100, key=derive_key(0))
    head = order.ids(np.arange(40))
    order.append(consumed=40, new_base=100, new_count=30, key=derive_key(1), replace=True)
    assert order.length == 70
    assert np.array_equal(order.ids(np.arange(40)), head)
    assert sorted(order.ids(np.arange(40, 70)).tolist()) == list(range(100, 130))
