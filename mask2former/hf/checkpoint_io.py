"""Read and write transformers-style weight files: ``model.safetensors`` (optionally sharded
with ``model.safetensors.index.json``) or ``pytorch_model.bin``; find them in a local folder
or the Hugging Face Hub cache; the loading keywords transformers users pass (``torch_dtype``,
``device_map``, ``revision``, ...). ``safetensors`` and ``huggingface_hub`` are optional
dependencies, imported when used."""

from __future__ import annotations

import json
import logging
import os
import re
from dataclasses import dataclass
from typing import Any

import torch

logger = logging.getLogger(__name__)

CONFIG_NAME = "config.json"
SAFE_WEIGHTS_NAME = "model.safetensors"
SAFE_WEIGHTS_INDEX_NAME = "model.safetensors.index.json"
WEIGHTS_NAME = "pytorch_model.bin"
# "name" or "org/name", as the Hub spells repository ids.
_REPO_ID = re.compile(r"[\w][\w.-]*(/[\w][\w.-]*)?")
_HUB_KEYS = ("revision", "cache_dir", "local_files_only", "token", "force_download")
# accelerate's placement strategies, which split a model over several devices.
_SPLITTING_DEVICE_MAPS = ("auto", "balanced", "balanced_low_0", "sequential")


def _safetensors():
    try:
        import safetensors.torch
    except ImportError as e:
        raise ImportError(
            "reading or writing model.safetensors needs the 'safetensors' package "
            "(pip install safetensors, or the package's [hf] extra)"
        ) from e
    return safetensors.torch


def require_safetensors() -> None:
    """Raise before ``save_pretrained`` writes anything when ``safetensors`` is missing, as
    transformers does (it never fell back to ``pytorch_model.bin`` on its own).

    Raises:
        ImportError: saying what to install, or how to write ``pytorch_model.bin`` instead.
    """
    try:
        import safetensors.torch  # noqa: F401
    except ImportError as e:
        raise ImportError(
            "save_pretrained(safe_serialization=True) writes model.safetensors and needs the "
            "'safetensors' package: pip install safetensors (or the package's [hf] extra); "
            f"or pass safe_serialization=False to write {WEIGHTS_NAME}"
        ) from e


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


def _hub_file(repo_id: str, filename: str, hub_kwargs: dict[str, Any]) -> str | None:
    """Local path of ``filename`` of a Hub repository (downloaded or from the cache), or None
    when the repository has no such file or, offline, the cache does not hold it."""
    from huggingface_hub import hf_hub_download
    from huggingface_hub.errors import EntryNotFoundError

    try:
        return hf_hub_download(repo_id, filename, **hub_kwargs)
    except EntryNotFoundError:  # also its subclass for "not in the cache" when offline
        return None


def _is_hub_id(path: str) -> bool:
    """Whether ``path`` (not an existing file or folder) reads as a Hub repository id."""
    return not os.path.exists(path) and _REPO_ID.fullmatch(path) is not None


def _require_huggingface_hub(repo_id: str) -> None:
    try:
        import huggingface_hub  # noqa: F401
    except ImportError as e:
        raise ImportError(
            f"{repo_id!r} is not a local folder; loading it as a Hub model id needs the "
            "'huggingface_hub' package (pip install huggingface_hub, or the package's [hf] "
            "extra)"
        ) from e


def pop_hub_kwargs(kwargs: dict[str, Any]) -> dict[str, Any]:
    """Take ``huggingface_hub``'s download keywords (``revision``, ``cache_dir``,
    ``local_files_only``, ``token``, ``force_download``) out of ``kwargs``."""
    return {key: kwargs.pop(key) for key in _HUB_KEYS if key in kwargs}


def resolve_pretrained_file(
    name_or_path: str | os.PathLike, filename: str, **hub_kwargs: Any
) -> str:
    """``filename`` inside a local folder, a local file path as given, or ``filename`` of the
    Hub repository ``name_or_path`` (through the cache; enough when offline).

    Local paths are returned unchecked: callers name what they looked for.

    Raises:
        FileNotFoundError: the Hub repository (or, offline, the cache) has no ``filename``.
        ImportError: a Hub id without ``huggingface_hub`` installed.
    """
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        return os.path.join(path, filename)
    if not _is_hub_id(path):
        return path
    _require_huggingface_hub(path)
    found = _hub_file(path, filename, hub_kwargs)
    if found is None:
        raise FileNotFoundError(
            f"Hub model {path!r}: no {filename} in the repository or, offline "
            "(HF_HUB_OFFLINE=1 / local_files_only=True), in the Hugging Face cache "
            "(HF_HUB_CACHE)"
        )
    return found


def resolve_pretrained_dir(name_or_path: str | os.PathLike, **hub_kwargs: Any) -> str:
    """A local folder with ``config.json`` and the weights: ``name_or_path`` itself when it is
    a folder, else the Hub snapshot folder of the repository id ``name_or_path``.

    Hub files come through ``huggingface_hub``'s cache (``HF_HUB_CACHE``), so with
    ``HF_HUB_OFFLINE=1`` (or ``local_files_only=True``) a populated cache is enough.

    Args:
        name_or_path: a ``save_pretrained`` folder or a Hub id such as ``"org/name"``.
        **hub_kwargs: see :func:`pop_hub_kwargs`.

    Raises:
        FileNotFoundError: neither a folder nor a repository id, or no config / weights in
            the repository (or, offline, in the cache).
        ImportError: a Hub id without ``huggingface_hub`` installed.
    """
    path = os.fspath(name_or_path)
    if os.path.isdir(path):
        return path
    if not _is_hub_id(path):
        raise FileNotFoundError(
            f"{path} is not a directory: from_pretrained takes a save_pretrained folder or a "
            "Hugging Face Hub model id ('org/name')"
        )
    config_file = resolve_pretrained_file(path, CONFIG_NAME, **hub_kwargs)
    # Safetensors first, as transformers; hf_hub_download puts every file of one revision
    # into the same snapshot folder, which load_weights_dir then reads.
    if _hub_file(path, SAFE_WEIGHTS_NAME, hub_kwargs) is None:
        index = _hub_file(path, SAFE_WEIGHTS_INDEX_NAME, hub_kwargs)
        if index is not None:
            with open(index, encoding="utf-8") as f:
                for shard in sorted(set(json.load(f)["weight_map"].values())):
                    if _hub_file(path, shard, hub_kwargs) is None:
                        raise FileNotFoundError(f"Hub model {path!r}: shard {shard} missing")
        elif _hub_file(path, WEIGHTS_NAME, hub_kwargs) is None:
            raise FileNotFoundError(
                f"Hub model {path!r}: none of {SAFE_WEIGHTS_NAME}, {SAFE_WEIGHTS_INDEX_NAME}, "
                f"{WEIGHTS_NAME} in the repository or, offline, in the Hugging Face cache"
            )
    return os.path.dirname(config_file)


def _as_dtype(value: Any) -> torch.dtype:
    if isinstance(value, torch.dtype):
        return value
    dtype = getattr(torch, value, None) if isinstance(value, str) else None
    if not isinstance(dtype, torch.dtype):
        raise ValueError(
            f"torch_dtype: expected a torch.dtype, its name ('bfloat16') or 'auto', got {value!r}"
        )
    return dtype


def _as_device(device_map: Any) -> torch.device:
    """The one device a ``device_map`` names; transformers' splitting maps are refused."""
    if isinstance(device_map, dict):
        if set(device_map) != {""}:
            raise ValueError(
                "device_map: a per-module map places parts of the model on different devices, "
                "which Mask2Former does not do; pass one device (device_map='cuda:0' or "
                f"{{'': 'cuda:0'}}), got {device_map!r}"
            )
        device_map = device_map[""]
    if device_map in _SPLITTING_DEVICE_MAPS:
        raise ValueError(
            f"device_map={device_map!r} lets accelerate split a model over the available "
            "devices, which Mask2Former does not do; pass one device, e.g. device_map='cuda:0' "
            "or 'cpu' (or call model.to(device))"
        )
    try:
        return torch.device(device_map)
    except (RuntimeError, TypeError) as e:
        raise ValueError(
            f"device_map: expected a device ('cpu', 'cuda:0', 0, torch.device) or "
            f"{{'': device}}, got {device_map!r}"
        ) from e


@dataclass
class PretrainedLoadOptions:
    """The loading keywords of transformers' ``from_pretrained`` that are not config fields.

    Attributes:
        hub_kwargs: ``revision``, ``cache_dir``, ``local_files_only``, ``token``,
            ``force_download`` (for a Hub id).
        dtype: ``torch_dtype`` / ``dtype``: a torch.dtype, its name, "auto" (the config's
            ``torch_dtype`` / ``dtype``, else the checkpoint's floating-point dtype) or None
            (float32, as transformers 4).
        device: the device ``device_map`` names, or None (CPU).
    """

    hub_kwargs: dict[str, Any]
    dtype: torch.dtype | str | None = None
    device: torch.device | None = None

    @classmethod
    def pop_from(cls, kwargs: dict[str, Any]) -> PretrainedLoadOptions:
        """Take the loading keywords out of ``kwargs`` (the rest are config overrides)."""
        hub_kwargs = pop_hub_kwargs(kwargs)
        if "torch_dtype" in kwargs and "dtype" in kwargs:
            raise ValueError("pass torch_dtype or dtype (its newer name), not both")
        dtype = kwargs.pop("torch_dtype", kwargs.pop("dtype", None))
        if dtype is not None and dtype != "auto":
            dtype = _as_dtype(dtype)
        device_map = kwargs.pop("device_map", None)
        device = None if device_map is None else _as_device(device_map)
        return cls(hub_kwargs=hub_kwargs, dtype=dtype, device=device)

    def resolve_dtype(self, config: Any, state_dict: dict[str, torch.Tensor]) -> torch.dtype | None:
        """The dtype to cast the model to; "auto" reads the config, then the weights."""
        if self.dtype != "auto":
            return self.dtype
        for name in ("torch_dtype", "dtype"):
            value = getattr(config, name, None)
            if value is not None:
                return _as_dtype(value)
        for tensor in state_dict.values():
            if tensor.is_floating_point():
                return tensor.dtype
        return None

    def place(self, model: torch.nn.Module, dtype: torch.dtype | None) -> torch.nn.Module:
        """Cast ``model`` to ``dtype`` and move it to the mapped device (each when given)."""
        if dtype is not None:
            logger.info("Casting the model to %s", dtype)
            model = model.to(dtype)
        return model if self.device is None else model.to(self.device)
