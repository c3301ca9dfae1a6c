"""Per-image collection of equally long fields (detectron2's ``Instances``)."""

from __future__ import annotations

import itertools
from typing import Any

import torch


class Instances:
    """Fields of one image's instances, each indexable and of the same length.

    Example: ``inst = Instances((h, w)); inst.gt_classes = torch.tensor([1, 2])``.
    """

    def __init__(self, image_size: tuple[int, int], **fields: Any) -> None:
        self._image_size = (int(image_size[0]), int(image_size[1]))
        self._fields: dict[str, Any] = {}
        for name, value in fields.items():
            self.set(name, value)

    @property
    def image_size(self) -> tuple[int, int]:
        """(height, width)."""
        return self._image_size

    def __setattr__(self, name: str, value: Any) -> None:
        if name.startswith("_"):
            super().__setattr__(name, value)
        else:
            self.set(name, value)

    def __getattr__(self, name: str) -> Any:
        # Private names are never fields; answering them here (e.g. during unpickling, before
        # ``_fields`` exists) would recurse.
        if name.startswith("_"):
            raise AttributeError(name)
        if name not in self._fields:
            raise AttributeError(f"Instances has no field {name!r}; fields: {list(self._fields)}")
        return self._fields[name]

    def set(self, name: str, value: Any) -> None:
        length = len(value)
        if self._fields and len(self) != length:
            raise ValueError(
                f"field {name!r} has length {length}, but the Instances hold {len(self)} entries"
            )
        self._fields[name] = value

    def has(self, name: str) -> bool:
        return name in self._fields

    def remove(self, name: str) -> None:
        del self._fields[name]

    def get(self, name: str) -> Any:
        return self._fields[name]

    def get_fields(self) -> dict[str, Any]:
        return self._fields

    def to(self, *args: Any, **kwargs: Any) -> Instances:
        """Move every field that has ``.to`` (tensors, Boxes, BitMasks)."""
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            if hasattr(value, "to"):
                value = value.to(*args, **kwargs)
            out.set(name, value)
        return out

    def __getitem__(self, item: int | slice | torch.Tensor) -> Instances:
        if isinstance(item, int):
            if item >= len(self) or item < -len(self):
                raise IndexError(f"Instances index {item} out of range for length {len(self)}")
            item = slice(item, None, len(self)) if item >= 0 else slice(item, item + 1 or None)
        out = Instances(self._image_size)
        for name, value in self._fields.items():
            out.set(name, value[item])
        return out

    def __len__(self) -> int:
        for value in self._fields.values():
            return len(value)
        return 0

    def __iter__(self):
        raise NotImplementedError("Instances is not iterable; index it or read its fields")

    @staticmethod
    def cat(instance_lists: list[Instances]) -> Instances:
        """Concatenate Instances of the same image size."""
        if not instance_lists:
            raise ValueError("Instances.cat needs at least one Instances")
        if len(instance_lists) == 1:
            return instance_lists[0]
        image_size = instance_lists[0].image_size
        for inst in instance_lists[1:]:
            if inst.image_size != image_size:
                raise ValueError(f"image sizes differ: {image_size} vs {inst.image_size}")
        out = Instances(image_size)
        for name, first in instance_lists[0]._fields.items():
            values = [inst.get(name) for inst in instance_lists]
            if isinstance(first, torch.Tensor):
                merged = torch.cat(values, dim=0)
            elif isinstance(first, list):
                merged = list(itertools.chain(*values))
            elif hasattr(type(first), "cat"):
                merged = type(first).cat(values)
            else:
                raise ValueError(f"field {name!r} of type {type(first)} cannot be concatenated")
            out.set(name, merged)
        return out

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}: {_describe(v)}" for k, v in self._fields.items())
        return (
            f"Instances(num_instances={len(self)}, image_height={self._image_size[0]}, "
            f"image_width={self._image_size[1]}, fields=[{fields}])"
        )


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"Tensor{tuple(value.shape)}"
    return type(value).__name__
