"""Reading checkpoint files (.pth / .pt / .pkl) and writing files atomically."""

import logging
import os
import pickle
import tempfile
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np
import torch

logger = logging.getLogger(__name__)


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj)[:8]
        kinds = sorted({type(v).__name__ for v in obj.values()})
        return f"a dict with keys {keys}{' ...' if len(obj) > 8 else ''} and values of {kinds}"
    return f"a {type(obj).__name__}"


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(
        isinstance(v, (torch.Tensor, np.ndarray)) for v in obj.values()
    )


def read_pickle_checkpoint(path: str) -> dict[str, Any]:
    """Read a detectron2 / Detectron1 model-zoo ``.pkl`` file.

    Three layouts are recognised:

    * detectron2: ``{"model": {name: ndarray}, "__author__": ..., ["matching_heuristics"]}``,
      returned as is;
    * Caffe2 / Detectron1: ``{name: ndarray}`` with ``_``-separated blob names (no ``.``),
      optionally under ``"blobs"``; ``*_momentum`` blobs are dropped and the result is marked
      for Caffe2 renaming and suffix matching;
    * a plain ``{name: ndarray}`` with ``.``-separated names, loaded by exact name.

    Args:
        path: local file path.

    Returns:
        dict with a ``"model"`` state dict (values still numpy arrays or tensors).

    Raises:
        ValueError: naming the file and what it holds, if it is none of the above.
    """
    with open(path, "rb") as f:
        data = pickle.load(f, encoding="latin1")  # noqa: S301 (model-zoo format is pickle)
    if isinstance(data, Mapping) and "model" in data and "__author__" in data:
        logger.info("Reading %s, a file from %r.", path, data["__author__"])
        return dict(data)
    if isinstance(data, Mapping) and "blobs" in data:
        data = data["blobs"]
    if not _is_tensor_dict(data):
        raise ValueError(
            f"{path} is not a checkpoint: expected a dict of arrays or a dict with 'model' and "
            f"'__author__', found {_describe(data)}."
        )
    if any("." in key for key in data):
        return {"model": dict(data), "__author__": "unknown"}
    blobs = {k: v for k, v in data.items() if not k.endswith("_momentum")}
    return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}


def read_torch_checkpoint(path: str) -> dict[str, Any]:
    """Read a ``.pth``/``.pt`` file: ``{"model": state_dict, ...}`` or a bare state dict.

    Only tensors, numbers, strings and containers are unpickled (``weights_only=True``).

    Args:
        path: local file path.

    Returns:
        dict with a ``"model"`` state dict and any extra saved entries.

    Raises:
        ValueError: naming the file and what it holds, if it is not a checkpoint.
    """
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        raise ValueError(
            f"{path} could not be read as a tensor checkpoint (weights_only=True): {e}"
        ) from e
    if isinstance(data, Mapping) and "model" in data:
        if not _is_tensor_dict(data["model"]):
            raise ValueError(
                f"{path} is not a checkpoint: its 'model' entry is {_describe(data['model'])}; "
                "expected a dict of tensors."
            )
        return dict(data)
    if _is_tensor_dict(data) and len(data) > 0:
        return {"model": dict(data)}
    raise ValueError(
        f"{path} is not a checkpoint: expected a dict of tensors or a dict with a 'model' "
        f"state dict, found {_describe(data)}."
    )


def read_checkpoint(path: str) -> dict[str, Any]:
    """Read any supported checkpoint file by its extension (``.pkl`` or torch format).

    Raises:
        FileNotFoundError: naming ``path`` if it is not a file.
        ValueError: naming ``path`` and what it holds, if it is not a checkpoint.
    """
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file {path} does not exist.")
    if path.endswith(".pkl"):
        return read_pickle_checkpoint(path)
    return read_torch_checkpoint(path)


def write_atomically(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file so that ``path`` either keeps its old content or holds the full new one.

    The content goes to a temporary file in the same directory, which is flushed, synced and
    then renamed over ``path``; on any error the temporary file is removed.

    Args:
        path: destination file.
        write: callback that writes the content into the given binary file object.
    """
    directory = os.path.dirname(os.path.abspath(path))
    fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp_path, path)
    except BaseException:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        raise
