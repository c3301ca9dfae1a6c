"""ExportedPredictor returns what the PyTorch model returns (ONNX and torch.export files)."""

from __future__ import annotations

import pytest
import torch

from mask2former.export import ExportableNetwork, ExportedPredictor, export_model
from tests.export.conftest import relative_error
from tests.optional import require_package


def assert_same_results(actual: dict, expected: dict) -> None:
    """Identical panoptic segments, matched instances, semantic scores within 1e-4."""
    assert actual.keys() == expected.keys()
    assert relative_error(actual["sem_seg"], expected["sem_seg"]) < 1e-4
    segment_map, segments = actual["panoptic_seg"]
    expected_map, expected_segments = expected["panoptic_seg"]
    assert len(expected_segments) > 0
    assert torch.equal(segment_map, expected_map)
    assert [(s["id"], s["category_id"], s["isthing"]) for s in segments] == [
        (s["id"], s["category_id"], s["isthing"]) for s in expected_segments
    ]
    instances, expected_instances = actual["instances"], expected["instances"]
    assert len(instances) == len(expected_instances) > 0
    assert torch.equal(instances.pred_classes, expected_instances.pred_classes)
    torch.testing.assert_close(instances.scores, expected_instances.scores, rtol=1e-4, atol=1e-5)
    # a mask logit within float noise of 0 may flip one pixel
    differing = (instances.pred_masks != expected_instances.pred_masks).float().mean()
    assert differing < 1e-4


def test_onnx_predictor_matches_the_model(demo_onnx):
    require_package("onnxruntime")
    _, model, path = demo_onnx
    torch.manual_seed(5)
    inputs = [
        {"image": torch.randint(0, 256, (3, 160, 224), dtype=torch.uint8)},
        {"image": torch.randint(0, 256, (3, 160, 224), dtype=torch.uint8), "height": 80,
         "width": 112},
    ]  # fmt: skip
    with torch.no_grad():
        expected = model(inputs)
    actual = ExportedPredictor(path)(inputs)
    for got, want in zip(actual, expected):
        assert_same_results(got, want)


def test_onnx_predictor_refuses_images_larger_than_the_exported_size(demo_onnx):
    require_package("onnxruntime")
    predictor = ExportedPredictor(demo_onnx[2])
    with pytest.raises(ValueError, match=r"takes images up to 160x224.*got 192x224"):
        predictor([{"image": torch.zeros(3, 192, 224)}])


def test_torch_export_program_keeps_the_op_and_runs_dynamic_sizes(demo_model, tmp_path):
    from mask2former.layers import _msda_build

    cfg, model = demo_model
    path = export_model(
        model, cfg, export_format="torch_export", output_dir=tmp_path, height=128, width=160,
        dynamic=True,
    )  # fmt: skip
    program = torch.export.load(str(path))
    targets = {str(node.target) for node in program.graph.nodes}
    if _msda_build.load_extension().loaded:
        assert "mask2former.ms_deform_attn_forward.default" in targets
    else:
        assert "aten.grid_sampler_2d.default" in targets
    predictor = ExportedPredictor(path)
    torch.manual_seed(6)
    # sizes other than the example, one of them padded to the divisibility as MaskFormer does
    inputs = [
        {"image": torch.randint(0, 256, (3, 96, 190), dtype=torch.uint8)},
        {"image": torch.randint(0, 256, (3, 70, 120), dtype=torch.uint8)},
    ]
    with torch.no_grad():
        expected = model(inputs)
    for got, want in zip(predictor(inputs), expected):
        assert_same_results(got, want)


def test_openvino_runs_the_onnx_file_like_pytorch(demo_onnx):
    require_package("openvino")  # optional: not in the CI extras
    _, model, path = demo_onnx
    predictor = ExportedPredictor(path, backend="openvino")
    torch.manual_seed(8)
    image = torch.randint(0, 256, (3, 160, 224), dtype=torch.uint8)
    with torch.no_grad():
        expected_logits, expected_masks = ExportableNetwork(model)(image[None].float())
        expected = model([{"image": image}])[0]
    pred_logits, pred_masks = predictor.network(image[None].float())
    assert relative_error(pred_logits, expected_logits) < 1e-3
    assert relative_error(pred_masks, expected_masks) < 1e-3
    result = predictor([{"image": image}])[0]
    assert torch.equal(result["panoptic_seg"][0], expected["panoptic_seg"][0])


def test_openvino_runs_the_dynamic_onnx_file_at_two_sizes(demo_onnx_dynamic):
    require_package("openvino")  # optional: not in the CI extras
    _, model, path = demo_onnx_dynamic
    predictor = ExportedPredictor(path, backend="openvino")
    torch.manual_seed(11)
    for height, width in ((160, 224), (224, 288)):
        image = torch.randint(0, 256, (1, 3, height, width), dtype=torch.uint8).float()
        with torch.no_grad():
            expected = ExportableNetwork(model)(image)
        for got, want in zip(predictor.network(image), expected):
            assert got.shape == want.shape
            assert relative_error(got, want) < 1e-3
    # an image off the size divisibility: padded by the predictor as MaskFormer pads it
    inputs = [{"image": torch.randint(0, 256, (3, 200, 250), dtype=torch.uint8)}]
    with torch.no_grad():
        expected = model(inputs)[0]
    result = predictor(inputs)[0]
    assert torch.equal(result["panoptic_seg"][0], expected["panoptic_seg"][0])
