"""``MODEL.DEVICE`` as a ``torch.device``: the original configs' plain "cuda" falls back to
the CPU on machines without a GPU; a device index that does not exist is an error."""

from __future__ import annotations

import logging

import torch

logger = logging.getLogger(__name__)

__all__ = ["resolve_device"]

_warned: set[str] = set()


def resolve_device(name: str, key: str = "MODEL.DEVICE") -> torch.device:
    """The device ``name`` names, as it can be used on this machine.

    Args:
        name: e.g. "cuda" (detectron2's default), "cuda:1", "cpu", "mps", "meta".
        key: the setting ``name`` came from, for messages.

    Returns:
        ``torch.device(name)``, or the CPU (with one warning per process) when ``name`` is a
        plain "cuda" and CUDA is not available.

    Raises:
        ValueError: ``name`` is not a device, or names a CUDA device this machine lacks.
    """
    try:
        device = torch.device(name)
    except RuntimeError as e:
        raise ValueError(
            f"{key}={name!r} is not a device; expected e.g. 'cuda', 'cuda:0' or 'cpu'."
        ) from e
    if device.type != "cuda":
        return device
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if device.index is None:
        if count > 0:
            return device
        if name not in _warned:
            _warned.add(name)
            logger.warning(
                "%s is %r but CUDA is not available on this machine; running on the CPU "
                "(set %s cpu to silence this warning).",
                key,
                name,
                key,
            )
        return torch.device("cpu")
    if device.index >= count:
        present = f"cuda:0 to cuda:{count - 1}" if count else "no CUDA device"
        raise ValueError(
            f"{key}={name!r} does not exist: this machine has {present}. Set {key} to an "
            "existing device, 'cuda' (the current one) or 'cpu'."
        )
    return device
