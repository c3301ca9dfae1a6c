"""tools/convert_checkpoint.py: transformers directory -> detectron2 files -> back."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys

import torch

from mask2former.hf import Mask2FormerConfig, Mask2FormerForUniversalSegmentation
from mask2former.hf.convert import convert_checkpoint, read_state_dict
from tests.hf.tiny_hf_config import tiny_config_dict

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
SCRIPT = os.path.join(ROOT, "tools", "convert_checkpoint.py")


def _tiny_saved_model(tmp_path):
    torch.manual_seed(0)
    model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**tiny_config_dict(3)))
    model.save_pretrained(tmp_path / "hf")
    return model


def test_cli_converts_to_detectron2_pkl_and_back(tmp_path):
    model = _tiny_saved_model(tmp_path)
    d2_file = str(tmp_path / "model_final.pkl")
    env = dict(os.environ, PYTHONPATH=ROOT)
    subprocess.run(
        [sys.executable, SCRIPT, str(tmp_path / "hf"), d2_file, "--to", "d2"], check=True, env=env
    )
    expected = model.original_state_dict()
    original = read_state_dict(d2_file)
    assert original.keys() == expected.keys()
    assert all(torch.equal(original[name], tensor) for name, tensor in expected.items())
    back = str(tmp_path / "back")
    convert_checkpoint(d2_file, back, to="hf")
    os.replace(tmp_path / "hf" / "config.json", os.path.join(back, "config.json"))
    reloaded = Mask2FormerForUniversalSegmentation.from_pretrained(back).original_state_dict()
    assert all(torch.equal(reloaded[name], tensor) for name, tensor in expected.items())


def test_pth_round_trip_and_error_message(tmp_path, capsys):
    model = _tiny_saved_model(tmp_path)
    convert_checkpoint(str(tmp_path / "hf"), str(tmp_path / "model.pth"), to="d2")
    assert torch.load(tmp_path / "model.pth", weights_only=True)["model"].keys() == (
        model.original_state_dict().keys()
    )
    spec = importlib.util.spec_from_file_location("convert_checkpoint_cli", SCRIPT)
    cli = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(cli)
    torch.save({"model": {"backbone.res2.0.conv1.weight": torch.zeros(1)}}, tmp_path / "r50.pth")
    assert cli.main([str(tmp_path / "r50.pth"), str(tmp_path / "out"), "--to", "hf"]) == 1
    assert "no mapping" in capsys.readouterr().err
