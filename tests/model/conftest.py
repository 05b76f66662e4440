"""Fixtures for the model tests: tiny Steel configs (CPU, fp32)."""

from __future__ import annotations

import pytest

from steel.model import load_model_config


@pytest.fixture
def tiny_config():
    """tiny_config(**fields) -> SteelConfig built from configs/model/tiny.yaml with fields overridden."""

    def make(**fields):
        return load_model_config("tiny", [f"{k}={v}" for k, v in fields.items()])

    return make
