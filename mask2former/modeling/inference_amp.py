"""Reduced-precision inference (``TEST.AMP.*``): which autocast dtype runs the network.

The network (backbone, pixel decoder, transformer decoder) runs under ``torch.autocast`` in the
chosen dtype; its outputs are cast back to float32 before post-processing, whose thresholds,
argmaxes and mask products are precision-sensitive. The deformable-attention op runs in float32
under autocast (see ``mask2former.layers.ms_deform_attn``).
"""

from __future__ import annotations

import contextlib

import torch

__all__ = ["AMP_DTYPES", "inference_autocast", "inference_dtype_from_config", "parse_amp_dtype"]

# TEST.AMP.DTYPE value -> torch dtype.
AMP_DTYPES: dict[str, torch.dtype] = {"bfloat16": torch.bfloat16, "float16": torch.float16}
# float16 autocast on CPU is slow and lacks kernels for several ops; bfloat16 is the CPU choice.
_CPU_DTYPES = (torch.bfloat16,)


def parse_amp_dtype(name: str) -> torch.dtype:
    """``TEST.AMP.DTYPE`` -> torch dtype.

    Raises:
        ValueError: ``name`` is not one of ``AMP_DTYPES``.
    """
    if name not in AMP_DTYPES:
        raise ValueError(f"TEST.AMP.DTYPE must be one of {sorted(AMP_DTYPES)}, got {name!r}")
    return AMP_DTYPES[name]


def _check_device(device_type: str, dtype: torch.dtype) -> None:
    if device_type not in ("cpu", "cuda"):
        raise ValueError(
            f"TEST.AMP.ENABLED needs a cpu or cuda model, got device type {device_type!r}"
        )
    if device_type == "cpu" and dtype not in _CPU_DTYPES:
        raise ValueError(
            f"TEST.AMP.DTYPE={str(dtype).removeprefix('torch.')!r} is not supported on the CPU; "
            "use 'bfloat16' there ('float16' needs CUDA)"
        )


def inference_dtype_from_config(cfg) -> torch.dtype | None:
    """The autocast dtype of ``cfg.TEST.AMP`` for a model on ``cfg.MODEL.DEVICE``, or None when
    ``TEST.AMP.ENABLED`` is off.

    Raises:
        ValueError: unknown ``TEST.AMP.DTYPE``, or float16 on a CPU ``MODEL.DEVICE``.
    """
    if not cfg.TEST.AMP.ENABLED:
        return None
    dtype = parse_amp_dtype(cfg.TEST.AMP.DTYPE)
    _check_device(torch.device(cfg.MODEL.DEVICE).type, dtype)
    return dtype


def inference_autocast(
    device_type: str, dtype: torch.dtype | None
) -> contextlib.AbstractContextManager:
    """``torch.autocast(device_type, dtype)``, or a no-op context when ``dtype`` is None.

    Raises:
        ValueError: float16 on the CPU, or a device type autocast is not used on.
    """
    if dtype is None:
        return contextlib.nullcontext()
    _check_device(device_type, dtype)
    return torch.autocast(device_type=device_type, dtype=dtype)
