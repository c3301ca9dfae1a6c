"""Fixtures of the transformers-API tests (tiny configurations: tests/hf/tiny_hf_config.py)."""

from __future__ import annotations

import pytest

from tests.optional import require_package


@pytest.fixture
def transformers_module():
    return require_package("transformers")
