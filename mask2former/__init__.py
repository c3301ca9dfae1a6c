"""Mask2Former: universal image segmentation with detectron2-style configs and a
transformers-style API."""

from typing import Any

__version__ = "0.1.0"

# transformers-style names, imported on first use so that ``import mask2former`` stays light.
_LAZY_HF_EXPORTS = (
    "Mask2FormerConfig",
    "Mask2FormerModel",
    "Mask2FormerForUniversalSegmentation",
    "Mask2FormerImageProcessor",
)

__all__ = ["__version__", *_LAZY_HF_EXPORTS]


def __getattr__(name: str) -> Any:
    if name in _LAZY_HF_EXPORTS:
        from mask2former import hf

        return getattr(hf, name)
    raise AttributeError(f"module 'mask2former' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted(list(globals()) + list(_LAZY_HF_EXPORTS))
