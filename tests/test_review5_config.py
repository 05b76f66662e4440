"""Review 5 of config.py: the duplicate-key check of the YAML loader and YAML merge keys."""

import pytest
import yaml

from steel.config import ConfigError, read_yaml

# `base` overrides a key of its own merge and is merged by a shallower mapping (`run`), which PyYAML flattens
# (in place, `base` included) before `base` itself is constructed.
NESTED_ANCHOR = """\
common: &common
  lr: 0.1
  wd: 0.0
templates:
  base: &base
    <<: *common
    lr: 1.0
run:
  <<: *base
  steps: 10
"""


def test_merge_override_in_a_nested_anchor_is_no_duplicate(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(NESTED_ANCHOR, encoding="utf-8")
    # the reference: PyYAML's own reading of this valid YAML (no key is repeated in any mapping)
    assert read_yaml(p) == yaml.safe_load(NESTED_ANCHOR)
    assert read_yaml(p)["run"] == {"lr": 1.0, "wd": 0.0, "steps": 10}


def test_a_real_duplicate_in_a_nested_anchor_is_still_refused(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(NESTED_ANCHOR.replace("    lr: 1.0\n", "    lr: 1.0\n    lr: 2.0\n"), encoding="utf-8")
    with pytest.raises(ConfigError, match=r"line 8, column 5: duplicate key 'lr' \(first at line 7\)"):
        read_yaml(p)
