"""Shared fixtures: a tiny demo dataset generated once per test session."""

import pytest

from mask2former.data.datasets.demo_files import generate_demo_dataset


@pytest.fixture(scope="session")
def demo_root(tmp_path_factory):
    """Folder of a small demo dataset (8 train, 4 val images)."""
    return generate_demo_dataset(str(tmp_path_factory.mktemp("demo") / "demo_shapes"), 8, 4)
