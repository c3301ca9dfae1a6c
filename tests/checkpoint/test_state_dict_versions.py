"""State-dict versions (``_metadata``) of saved checkpoints equal the original's, so that the
original code loads our ``model_final.pth`` without its old-format conversions."""

import logging

import torch
from torch import nn

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.layers.batch_norm import FrozenBatchNorm2d
from mask2former.modeling import build_model
from tests.tiny_config import tiny_cfg

# The original's modules that declare a version: MaskFormerHead and
# MultiScaleMaskedTransformerDecoder (2), detectron2's FrozenBatchNorm2d (3), torch's
# BatchNorm (2); every other module has nn.Module's version 1.
ORIGINAL_VERSIONS = {"sem_seg_head": 2, "sem_seg_head.predictor": 2}


def _expected_version(name, module):
    if name in ORIGINAL_VERSIONS:
        return ORIGINAL_VERSIONS[name]
    if isinstance(module, FrozenBatchNorm2d):
        return 3
    if isinstance(module, nn.modules.batchnorm._BatchNorm):
        return 2
    return 1


def _saved_model(tmp_path):
    torch.manual_seed(0)
    model = build_model(tiny_cfg())
    DetectionCheckpointer(model, save_dir=str(tmp_path)).save("model_final")
    saved = torch.load(tmp_path / "model_final.pth", map_location="cpu", weights_only=False)
    return model, saved["model"]


def test_saved_metadata_has_the_original_versions(tmp_path):
    model, state_dict = _saved_model(tmp_path)
    metadata = state_dict._metadata
    assert any(isinstance(m, FrozenBatchNorm2d) for m in model.modules())
    for name, module in model.named_modules():
        assert metadata[name]["version"] == _expected_version(name, module), name


def test_old_format_head_keys_are_moved_and_current_ones_stay(tmp_path, caplog):
    model, state_dict = _saved_model(tmp_path)
    reference = {k: v.clone() for k, v in state_dict.items()}
    prefix = "sem_seg_head.pixel_decoder."
    # Version-1 layout (no metadata): the pixel decoder's weights directly under the head.
    old = {k.replace(prefix, "sem_seg_head."): v for k, v in reference.items()}
    fresh = build_model(tiny_cfg())
    with caplog.at_level(logging.WARNING):
        incompatible = fresh.load_state_dict(old)
    assert not incompatible.missing_keys and not incompatible.unexpected_keys
    assert "old-format checkpoint" in caplog.text
    for key, value in fresh.state_dict().items():
        assert torch.equal(value, reference[key]), key

    # Today's layout without metadata (a .pkl, a converted file) loads unchanged.
    caplog.clear()
    fresh = build_model(tiny_cfg())
    with caplog.at_level(logging.WARNING):
        fresh.load_state_dict(dict(reference))
    assert "old-format checkpoint" not in caplog.text
    assert all(torch.equal(v, reference[k]) for k, v in fresh.state_dict().items())
