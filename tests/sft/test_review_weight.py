"""A listed dataset with weight > 0 whose sample rounds to no conversation is an error naming its weight.

`weight: 0.1` on a 3-conversation file gave round(0.3) = 0 conversations: the dataset vanished from the
mixture with only `sampled: 0` in the stats, where a dataset emptied by rejects, filters or seq_len stops
the run.
"""

from __future__ import annotations

import json

import pytest

from steel.config import ConfigError
from steel.sft import data as D


def _cfg(tmp_path, **ds):
    (tmp_path / "c.json").write_text(json.dumps([{"instruction": f"q{i}", "output": f"a{i}"} for i in range(3)]))
    return D.SftDataConfig(root=str(tmp_path), datasets=[D.SftDataset(name="c", path=["c.json"], **ds)])


def test_a_weight_that_samples_nothing_is_an_error(tmp_path):
    with pytest.raises(ConfigError) as e:
        D.build_conversations(_cfg(tmp_path, weight=0.1), {})
    assert str(e.value) == ("data.datasets[0].weight: 0.1 x 3 conversations (c) rounds to none; "
                            "raise it, or set count: N")


@pytest.mark.parametrize("ds, n", [({"weight": 0.2}, 1), ({"weight": 0.0}, 0), ({"count": 0}, 0), ({"count": 4}, 4)])
def test_weights_and_counts_that_sample_as_asked(tmp_path, ds, n):
    stats: dict = {}
    assert len(D.build_conversations(_cfg(tmp_path, **ds), stats)) == n
    assert stats["datasets"]["c"]["sampled"] == n
