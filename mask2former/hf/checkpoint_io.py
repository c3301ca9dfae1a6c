"""Read and write transformers-style weight files: ``model.safetensors`` (optionally sharded
with ``model.safetensors.index.json``) or ``pytorch_model.bin``. ``safetensors`` is an
optional dependency, imported when used."""

from __future__ import annotations

import json
import os

import torch

SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"


def _safetensors():
    try:
        import safetensors.torch
    except ImportError as e:
        raise ImportError(
            "reading or writing model.safetensors needs the 'safetensors' package "
            "(pip install safetensors, or the package's [hf] extra)"
        ) from e
    return safetensors.torch


def load_safetensors(path: str | os.PathLike) -> dict[str, torch.Tensor]:
    """All tensors of one ``.safetensors`` file, on CPU."""
    return _safetensors().load_file(str(path), device="cpu")


def save_safetensors(state_dict: dict[str, torch.Tensor], path: str | os.PathLike) -> None:
    """Write contiguous, unshared copies of the tensors with transformers' ``format`` tag."""
    tensors = {name: tensor.detach().contiguous().clone() for name, tensor in state_dict.items()}
    _safetensors().save_file(tensors, str(path), metadata={"format": "pt"})


def load_weights_dir(directory: str | os.PathLike) -> dict[str, torch.Tensor]:
    """State dict from a ``save_pretrained`` directory (single, sharded or ``.bin``).

    Raises:
        FileNotFoundError: naming the directory and the file names looked for.
    """
    single = os.path.join(directory, SAFE_WEIGHTS_NAME)
    if os.path.isfile(single):
        return load_safetensors(single)
    index = os.path.join(directory, SAFE_WEIGHTS_INDEX_NAME)
    if os.path.isfile(index):
        with open(index, encoding="utf-8") as f:
            shards = sorted(set(json.load(f)["weight_map"].values()))
        state_dict: dict[str, torch.Tensor] = {}
        for shard in shards:
            state_dict.update(load_safetensors(os.path.join(directory, shard)))
        return state_dict
    bin_file = os.path.join(directory, WEIGHTS_NAME)
    if os.path.isfile(bin_file):
        return torch.load(bin_file, map_location="cpu", weights_only=True)
    raise FileNotFoundError(
        f"no weights in {directory}: expected {SAFE_WEIGHTS_NAME}, {SAFE_WEIGHTS_INDEX_NAME} "
        f"or {WEIGHTS_NAME}"
    )
