"""Joint image / label-map / box / polygon transforms and augmentations."""

from fvcore.transforms.transform import (
    BlendTransform,
    HFlipTransform,
    NoOpTransform,
    PadTransform,
    Transform,
    TransformList,
    VFlipTransform,
)

from mask2former.data.transforms.augmentation import (
    AugInput,
    Augmentation,
    AugmentationList,
    apply_augmentations,
)
from mask2former.data.transforms.augmentation_impl import (
    FixedSizeCrop,
    RandomCrop,
    RandomCrop_CategoryAreaConstraint,
    RandomCropCategoryAreaConstraint,
    RandomFlip,
    ResizeScale,
    ResizeShortestEdge,
)
from mask2former.data.transforms.transform import (
    ColorAugSSDTransform,
    CropTransform,
    ResizeTransform,
)

__all__ = [
    "AugInput",
    "Augmentation",
    "AugmentationList",
    "BlendTransform",
    "ColorAugSSDTransform",
    "CropTransform",
    "FixedSizeCrop",
    "HFlipTransform",
    "NoOpTransform",
    "PadTransform",
    "RandomCrop",
    "RandomCropCategoryAreaConstraint",
    "RandomCrop_CategoryAreaConstraint",
    "RandomFlip",
    "ResizeScale",
    "ResizeShortestEdge",
    "ResizeTransform",
    "Transform",
    "TransformList",
    "VFlipTransform",
    "apply_augmentations",
]
