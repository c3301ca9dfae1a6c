"""Global catalogs of datasets (name -> loader) and their metadata (name -> Metadata).

Registration is explicit (see :func:`mask2former.data.datasets.register_builtin`); nothing is
registered at import time.
"""

from __future__ import annotations

import logging
from collections import UserDict
from collections.abc import Callable
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["DatasetCatalog", "Metadata", "MetadataCatalog"]


class _DatasetCatalog(UserDict):
    """Maps a dataset name to a zero-argument function returning ``list[dict]`` records."""

    def register(self, name: str, func: Callable[[], list[dict]]) -> None:
        """Register ``func`` under ``name``.

        Raises:
            TypeError: ``func`` is not callable.
            ValueError: ``name`` is already registered.
        """
        if not callable(func):
            raise TypeError(f"DatasetCatalog.register({name!r}, func): func must be callable")
        if name in self:
            raise ValueError(f"Dataset {name!r} is already registered in DatasetCatalog")
        self[name] = func

    def get(self, name: str) -> list[dict]:  # type: ignore[override]
        """Call the loader registered under ``name`` and return its records."""
        try:
            func = self[name]
        except KeyError as e:
            raise KeyError(
                f"Dataset {name!r} is not registered. Registered datasets: "
                f"{', '.join(sorted(self.keys())) or '(none; call register_builtin())'}"
            ) from e
        return func()

    def list(self) -> list[str]:
        """Names of all registered datasets."""
        return list(self.keys())

    def remove(self, name: str) -> None:
        """Unregister ``name``."""
        self.pop(name)

    def __str__(self) -> str:
        return f"DatasetCatalog(registered datasets: {', '.join(self.keys())})"

    __repr__ = __str__


DatasetCatalog = _DatasetCatalog()


class Metadata:
    """Attribute bag of dataset metadata whose values cannot silently change once set.

    Typical fields: ``thing_classes``, ``thing_colors``, ``stuff_classes``, ``stuff_colors``,
    ``thing_dataset_id_to_contiguous_id``, ``stuff_dataset_id_to_contiguous_id``,
    ``ignore_label``, ``evaluator_type``, ``image_root``, ``json_file``, ``panoptic_root``,
    ``panoptic_json``, ``sem_seg_root``, ``label_divisor``.
    """

    name: str = "N/A"

    def __init__(self, name: str = "N/A", **kwargs: Any) -> None:
        object.__setattr__(self, "name", name)
        self.set(**kwargs)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("__"):
            raise AttributeError(key)
        fields = [k for k in self.__dict__ if k != "name"]
        raise AttributeError(
            f"Attribute {key!r} does not exist in the metadata of dataset {self.name!r}. "
            f"Available keys are {fields}."
        )

    def __setattr__(self, key: str, val: Any) -> None:
        if key in self.__dict__:
            old = self.__dict__[key]
            if old != val:
                raise ValueError(
                    f"Attribute {key!r} in the metadata of {self.name!r} cannot be set to a "
                    f"different value ({val!r}); it is already {old!r}. Use remove() first."
                )
            return
        object.__setattr__(self, key, val)

    def as_dict(self) -> dict[str, Any]:
        """A shallow copy of all fields (including ``name``)."""
        return dict(self.__dict__)

    def set(self, **kwargs: Any) -> Metadata:
        """Set several fields at once; returns self."""
        for k, v in kwargs.items():
            setattr(self, k, v)
        return self

    def get(self, key: str, default: Any = None) -> Any:
        """Field ``key`` or ``default``."""
        return self.__dict__.get(key, default)

    def remove(self, key: str) -> None:
        """Delete field ``key`` (no error if absent)."""
        self.__dict__.pop(key, None)

    def __repr__(self) -> str:
        return f"Metadata({', '.join(f'{k}={v!r}' for k, v in self.__dict__.items())})"


class _MetadataCatalog(UserDict):
    """Maps a dataset name to its :class:`Metadata`, created empty on first access."""

    def get(self, name: str) -> Metadata:  # type: ignore[override]
        """The metadata of ``name`` (created empty if missing)."""
        if not name:
            raise ValueError("MetadataCatalog.get(name): name must be a non-empty string")
        meta = self.data.get(name)
        if meta is None:
            meta = self.data[name] = Metadata(name=name)
        return meta

    def list(self) -> list[str]:
        """Names with metadata."""
        return list(self.keys())

    def remove(self, name: str) -> None:
        """Drop the metadata of ``name``."""
        self.pop(name)

    def __str__(self) -> str:
        return f"MetadataCatalog(registered metadata: {', '.join(self.keys())})"

    __repr__ = __str__


MetadataCatalog = _MetadataCatalog()
