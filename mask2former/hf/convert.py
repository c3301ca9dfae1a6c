"""Convert checkpoint files between transformers' and the original Mask2Former's naming."""

from __future__ import annotations

import logging
import os
import pickle

import torch

from mask2former.checkpoint.file_io import read_checkpoint, write_atomically
from mask2former.hf.checkpoint_io import (
    SAFE_WEIGHTS_NAME,
    load_safetensors,
    load_weights_dir,
    save_safetensors,
)
from mask2former.hf.name_mapping import hf_to_original, original_to_hf

logger = logging.getLogger(__name__)


def read_state_dict(path: str) -> dict[str, torch.Tensor]:
    """Tensors of a ``save_pretrained`` directory, ``.safetensors``, ``.pth``/``.bin`` or
    detectron2 ``.pkl`` file (a ``{"model": ...}`` wrapper is unwrapped)."""
    if os.path.isdir(path):
        return load_weights_dir(path)
    if path.endswith(".safetensors"):
        return load_safetensors(path)
    model = read_checkpoint(path)["model"]
    return {name: torch.as_tensor(value) for name, value in model.items()}


def write_state_dict(state_dict: dict[str, torch.Tensor], path: str) -> str:
    """Write to a directory (as ``model.safetensors``), ``.safetensors``, ``.pkl``
    (detectron2 layout, numpy arrays) or a torch file (``{"model": state_dict}``).

    Returns:
        the file written.
    """
    if os.path.isdir(path) or not os.path.splitext(path)[1]:
        os.makedirs(path, exist_ok=True)
        path = os.path.join(path, SAFE_WEIGHTS_NAME)
    if path.endswith(".safetensors"):
        save_safetensors(state_dict, path)
    elif path.endswith(".pkl"):
        arrays = {name: tensor.detach().cpu().numpy() for name, tensor in state_dict.items()}
        payload = {"model": arrays, "__author__": "mask2former", "matching_heuristics": False}
        write_atomically(path, lambda f: pickle.dump(payload, f))
    else:
        write_atomically(path, lambda f: torch.save({"model": state_dict}, f))
    return path


def convert_checkpoint(source: str, target: str, to: str) -> str:
    """Convert ``source`` to ``to`` ("hf" or "d2") naming and write it to ``target``.

    Raises:
        ValueError: ``to`` is not "hf" or "d2".
        KeyError: the source holds names that are not a Swin Mask2Former's (listed).
    """
    state_dict = read_state_dict(source)
    if to == "hf":
        converted = original_to_hf(state_dict)
    elif to == "d2":
        converted = hf_to_original(state_dict)
    else:
        raise ValueError(f"to: got {to!r}, expected 'hf' or 'd2'")
    written = write_state_dict(converted, target)
    logger.info("converted %d tensors of %s to %s naming: %s", len(converted), source, to, written)
    return written
