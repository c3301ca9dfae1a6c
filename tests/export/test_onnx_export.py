"""ONNX export: standard ops only, onnx.checker, onnxruntime outputs equal PyTorch's."""

from __future__ import annotations

import json

import pytest
import torch

from mask2former.export import ExportableNetwork, export_model
from tests.export.conftest import relative_error
from tests.optional import require_package

TOLERANCE = 1e-4


def run_onnxruntime(path, image: torch.Tensor) -> list:
    onnxruntime = require_package("onnxruntime")
    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(["pred_logits", "pred_masks"], {"image": image.numpy()})


def assert_matches_pytorch(model, path, image: torch.Tensor) -> None:
    with torch.no_grad():
        expected = ExportableNetwork(model)(image)
    actual = run_onnxruntime(path, image)
    for name, got, want in zip(("pred_logits", "pred_masks"), actual, expected):
        assert got.shape == tuple(want.shape), name
        assert relative_error(got, want) < TOLERANCE, name


def test_demo_model_onnx_is_standard_ops_and_matches_pytorch(demo_onnx):
    onnx = require_package("onnx")
    cfg, model, path = demo_onnx
    graph = onnx.load(str(path)).graph
    domains = {node.domain for node in graph.node}
    op_types = {node.op_type for node in graph.node}
    assert domains <= {"", "ai.onnx"}, domains  # no custom-domain op
    assert "GridSample" in op_types  # MSDeformAttn through the reference
    assert [i.name for i in graph.input] == ["image"]
    assert [o.name for o in graph.output] == ["pred_logits", "pred_masks"]
    torch.manual_seed(3)
    assert_matches_pytorch(model, path, torch.rand(1, 3, 160, 224) * 255)

    metadata = json.loads(path.with_suffix(".json").read_text())
    assert (metadata["height"], metadata["width"], metadata["opset"]) == (160, 224, 17)
    assert metadata["class_names"] == ["circle", "square", "triangle", "sky", "ground"]
    assert metadata["thing_ids"] == [0, 1, 2]
    assert metadata["overlap_threshold"] == cfg.MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD


def input_dims(path) -> list:
    """The ``image`` input's dimensions: ints where fixed, names where dynamic."""
    onnx = require_package("onnx")
    dims = onnx.load(str(path)).graph.input[0].type.tensor_type.shape.dim
    return [dim.dim_param or dim.dim_value for dim in dims]


@pytest.mark.parametrize("name", ["tiny_r18_model", "tiny_swin_model"])
def test_tiny_models_dynamic_onnx_runs_other_batches_and_sizes_like_pytorch(
    name, request, tmp_path
):
    require_package("onnx")
    cfg, model = request.getfixturevalue(name)
    path = export_model(
        model, cfg, export_format="onnx", output_dir=tmp_path, height=64, width=96, dynamic=True
    )
    assert input_dims(path) == ["batch", 3, "height", "width"]
    assert json.loads(path.with_suffix(".json").read_text())["dynamic"] is True
    torch.manual_seed(4)
    # the example size, then another batch, height and width (portrait, more levels of pixels)
    for batch, height, width in ((1, 64, 96), (3, 128, 64)):
        assert_matches_pytorch(model, path, torch.rand(batch, 3, height, width) * 255)


def test_demo_model_dynamic_onnx_matches_pytorch_at_two_sizes(demo_onnx_dynamic):
    _, model, path = demo_onnx_dynamic
    torch.manual_seed(9)
    for height, width in ((160, 224), (256, 192)):
        assert_matches_pytorch(model, path, torch.rand(1, 3, height, width) * 255)


@pytest.mark.slow
def test_dynamo_exporter_writes_a_dynamic_graph_like_the_traced_one(tiny_r18_model, tmp_path):
    require_package("onnxscript")
    cfg, model = tiny_r18_model
    path = export_model(
        model, cfg, export_format="onnx", output_dir=tmp_path, height=64, width=96, dynamic=True,
        onnx_exporter="dynamo", opset=18,
    )  # fmt: skip
    batch_dim, channels, height_dim, width_dim = input_dims(path)
    assert channels == 3 and all(isinstance(d, str) for d in (batch_dim, height_dim, width_dim))
    torch.manual_seed(10)
    for batch, height, width in ((1, 64, 96), (2, 96, 160)):
        assert_matches_pytorch(model, path, torch.rand(batch, 3, height, width) * 255)


def test_export_refuses_low_opset_and_sizes_off_the_divisibility(tiny_r18_model, tmp_path):
    cfg, model = tiny_r18_model
    with pytest.raises(ValueError, match="opset >= 16"):
        export_model(model, cfg, export_format="onnx", output_dir=tmp_path, opset=15)
    with pytest.raises(ValueError, match="multiples of the size divisibility 32"):
        export_model(model, cfg, export_format="onnx", output_dir=tmp_path, height=70, width=96)
