"""tools/export_model.py from the command line, as a user runs it."""

from __future__ import annotations

import json

from tests.cli_helpers import finish_cli, start_cli
from tests.optional import require_package
from tests.tiny_config import BASE_CONFIG, tiny_opts


def test_export_model_cli_writes_onnx_and_metadata(tmp_path):
    require_package("onnx")
    args = ["--config-file", BASE_CONFIG, "--format", "onnx", "--output", str(tmp_path)]
    args += ["--height", "64", "--width", "96", "--opset", "16", *tiny_opts()]
    output = finish_cli(start_cli("tools/export_model.py", args))
    assert "Exported" in output
    assert (tmp_path / "model.onnx").stat().st_size > 0
    metadata = json.loads((tmp_path / "model.json").read_text())
    assert metadata["config_file"] == BASE_CONFIG
    assert (metadata["height"], metadata["width"], metadata["opset"]) == (64, 96, 16)
    assert metadata["num_classes"] == 5 and metadata["thing_ids"] == [0, 1, 2]
