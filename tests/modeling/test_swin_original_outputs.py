"""Swin numerically: our backbone with the same weights gives the recorded outputs of the
original implementation (swin_original_outputs.json, written by record_swin_original.py)."""

import json
from pathlib import Path

import pytest
import torch

from mask2former.modeling.backbone import D2SwinTransformer
from tests.modeling.record_swin_original import SETTINGS, fill_weights, swin_input

FIXTURE = Path(__file__).resolve().parent / "swin_original_outputs.json"


@pytest.fixture(scope="module")
def recorded():
    return json.loads(FIXTURE.read_text())["settings"]


@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_swin_equals_the_original(recorded, name):
    setting = SETTINGS[name]
    model = D2SwinTransformer(
        pretrain_img_size=setting["pretrain_img_size"],
        embed_dim=setting["embed_dim"],
        depths=setting["depths"],
        num_heads=setting["num_heads"],
        window_size=setting["window_size"],
        ape=setting["ape"],
        drop_path_rate=0.0,
    ).eval()
    # Same names, shapes and order, so that fill_weights gives both the same weights.
    ours = [[k, list(v.shape)] for k, v in model.state_dict().items()]
    assert ours == recorded[name]["state_dict"]
    fill_weights(model)
    with torch.no_grad():
        outputs = model(swin_input(setting["input_size"]))
    assert sorted(outputs) == sorted(recorded[name]["outputs"])
    for key, expected in recorded[name]["outputs"].items():
        want = torch.tensor(expected["values"]).view(expected["shape"])
        assert want.abs().amax() > 0.1, key  # a live feature map
        torch.testing.assert_close(outputs[key], want, rtol=1e-5, atol=1e-5)
