"""Augmentations: random policies that produce a deterministic :class:`Transform`.

An augmentation reads the attributes named in ``input_args`` from an :class:`AugInput`, returns
a transform, and the input applies that transform to its image, label map and boxes together,
so the returned transform can then be replayed on other annotations (panoptic PNGs, polygons).
Random numbers come from NumPy's global generator, like detectron2, so a seeded worker gives the
same draws.
"""

from __future__ import annotations

import numpy as np
from fvcore.transforms.transform import Transform, TransformList

__all__ = ["AugInput", "Augmentation", "AugmentationList", "apply_augmentations"]


class AugInput:
    """Image (H, W[, C]) with optional ``sem_seg`` (H, W) and ``boxes`` (N, 4) XYXY.

    Args:
        image: uint8 or float array.
        sem_seg: label map transformed with nearest interpolation.
        boxes: float boxes in absolute XYXY coordinates.
    """

    def __init__(
        self,
        image: np.ndarray,
        *,
        sem_seg: np.ndarray | None = None,
        boxes: np.ndarray | None = None,
    ) -> None:
        if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
            raise ValueError(
                f"AugInput expects an (H, W) or (H, W, C) numpy image, got {type(image).__name__}"
                f" with shape {getattr(image, 'shape', None)}"
            )
        self.image = image
        self.sem_seg = sem_seg
        self.boxes = boxes

    def transform(self, tfm: Transform) -> None:
        """Apply ``tfm`` in place to every field that is set."""
        self.image = tfm.apply_image(self.image)
        if self.sem_seg is not None:
            self.sem_seg = tfm.apply_segmentation(self.sem_seg)
        if self.boxes is not None:
            self.boxes = tfm.apply_box(self.boxes)


class Augmentation:
    """Base class: subclasses implement ``get_transform(*args)`` for ``input_args``."""

    input_args: tuple[str, ...] = ("image",)

    def get_transform(self, *args: np.ndarray) -> Transform:
        raise NotImplementedError

    def __call__(self, aug_input: AugInput) -> Transform:
        args = []
        for name in self.input_args:
            value = getattr(aug_input, name, None)
            if value is None:
                raise ValueError(
                    f"{type(self).__name__} needs the input field {name!r}, which is not set"
                )
            args.append(value)
        tfm = self.get_transform(*args)
        aug_input.transform(tfm)
        return tfm

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class _FixedTransform(Augmentation):
    """Wraps an already-deterministic :class:`Transform` (e.g. ColorAugSSDTransform)."""

    def __init__(self, tfm: Transform) -> None:
        self.tfm = tfm

    def get_transform(self, image: np.ndarray) -> Transform:
        return self.tfm

    def __repr__(self) -> str:
        return repr(self.tfm)


class AugmentationList(Augmentation):
    """Applies augmentations (or plain transforms) in order; returns their TransformList."""

    def __init__(self, augs: list[Augmentation | Transform]) -> None:
        self.augs = [a if isinstance(a, Augmentation) else _FixedTransform(a) for a in augs]

    def __call__(self, aug_input: AugInput) -> TransformList:
        return TransformList([aug(aug_input) for aug in self.augs])

    def __repr__(self) -> str:
        return f"AugmentationList[{', '.join(repr(a) for a in self.augs)}]"


def apply_augmentations(
    augmentations: list[Augmentation | Transform], inputs: AugInput | np.ndarray
) -> tuple[AugInput | np.ndarray, TransformList]:
    """Apply ``augmentations`` to an :class:`AugInput` (in place) or to a bare image.

    Returns:
        The transformed input (the image itself for a bare image) and the TransformList.
    """
    image_only = isinstance(inputs, np.ndarray)
    aug_input = AugInput(inputs) if image_only else inputs
    tfms = AugmentationList(augmentations)(aug_input)
    return (aug_input.image if image_only else aug_input), tfms
