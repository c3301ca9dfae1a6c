"""Turn ImageNet-pretrained torchvision ResNet and official Swin weights into detectron2 files.

The output is a pickle ``{"model": {name: ndarray}, "__author__": ..., "matching_heuristics":
True}``, the format ``MODEL.WEIGHTS`` reads for backbone-only initialisation.
"""

from __future__ import annotations

import argparse
import logging
import os
import pickle
import re
from typing import Any

import torch

from mask2former.checkpoint.file_io import load_torch_file

logger = logging.getLogger(__name__)


def _load_state_dict(path: str) -> dict[str, torch.Tensor]:
    if not os.path.isfile(path):
        raise FileNotFoundError(f"input checkpoint {path!r} does not exist")
    obj = load_torch_file(path)
    if isinstance(obj, dict) and "model" in obj and isinstance(obj["model"], dict):
        obj = obj["model"]
    elif isinstance(obj, dict) and "state_dict" in obj and isinstance(obj["state_dict"], dict):
        obj = obj["state_dict"]
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ValueError(f"{path!r} does not hold a state dict of tensors")
    return obj


def torchvision_resnet_name_to_d2(name: str) -> str:
    """``layer1.0.bn1.weight`` -> ``res2.0.conv1.norm.weight``; ``conv1.weight`` -> ``stem...``."""
    if not name.startswith("layer"):
        name = "stem." + name
    name = re.sub(r"layer([1-4])", lambda m: f"res{int(m.group(1)) + 1}", name)
    name = re.sub(r"bn([1-3])", r"conv\1.norm", name)
    name = name.replace("downsample.0", "shortcut").replace("downsample.1", "shortcut.norm")
    return name


def convert_torchvision_resnet(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Rename a torchvision ResNet state dict to detectron2 names; the ``fc`` head is dropped."""
    converted = {}
    for name, tensor in state_dict.items():
        if name.startswith("fc."):
            continue
        new_name = torchvision_resnet_name_to_d2(name)
        logger.info("%s -> %s", name, new_name)
        converted[new_name] = tensor.detach().cpu().numpy()
    return {"model": converted, "__author__": "torchvision", "matching_heuristics": True}


def convert_swin(state_dict: dict[str, torch.Tensor]) -> dict[str, Any]:
    """Keep official Swin names (they already match ``D2SwinTransformer``); drop the head."""
    converted = {
        name: tensor.detach().cpu().numpy()
        for name, tensor in state_dict.items()
        if not name.startswith("head.")
    }
    return {"model": converted, "__author__": "third_party", "matching_heuristics": True}


def write_pickle(obj: dict[str, Any], path: str) -> None:
    """Write atomically: a partial file never replaces a good one."""
    tmp_path = f"{path}.tmp"
    with open(tmp_path, "wb") as f:
        pickle.dump(obj, f)
    os.replace(tmp_path, path)


def convert_file(kind: str, input_path: str, output_path: str) -> int:
    """Convert ``input_path`` (``kind`` = "torchvision" or "swin"); returns the tensor count."""
    converters = {"torchvision": convert_torchvision_resnet, "swin": convert_swin}
    if kind not in converters:
        raise ValueError(f"kind must be one of {sorted(converters)}, got {kind!r}")
    result = converters[kind](_load_state_dict(input_path))
    write_pickle(result, output_path)
    return len(result["model"])


def main(kind: str, description: str, example: str, argv: list[str] | None = None) -> None:
    """Command line shared by ``tools/convert-*-to-d2.py``: ``INPUT OUTPUT``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("input", help=f"{kind} checkpoint, e.g. {example}")
    parser.add_argument("output", help="output .pkl")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    count = convert_file(kind, args.input, args.output)
    print(f"wrote {count} tensors to {args.output}")
