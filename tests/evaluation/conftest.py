import pytest
from eval_fixtures import register_tiny_panoptic


@pytest.fixture
def tiny_panoptic(tmp_path):
    yield from register_tiny_panoptic(tmp_path)
