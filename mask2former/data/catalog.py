"""Global catalogs of datasets (name -> loader) and their metadata (name -> Metadata).

The builtin datasets (COCO, ADE20K, Cityscapes, Mapillary Vistas, demo) are known to both
catalogs without a call, as in detectron2, but nothing runs at import: every lookup first
brings the builtin registrations in line with the dataset root (see
:func:`mask2former.data.datasets.builtin.sync_builtin`), which reads no dataset file.
"""

from __future__ import annotations

import difflib
import logging
from collections import UserDict
from collections.abc import Callable, Iterator
from typing import Any

logger = logging.getLogger(__name__)

__all__ = ["DatasetCatalog", "Metadata", "MetadataCatalog", "UnknownDatasetError"]


class UnknownDatasetError(KeyError, ValueError):
    """A dataset name that is not registered (a ``KeyError`` as in detectron2, and a
    ``ValueError`` since the name is a bad argument)."""

    def __str__(self) -> str:
        # KeyError would print the message with quotes around it.
        return str(self.args[0]) if self.args else ""


def _sync_builtins() -> None:
    # Imported here: the builtin registrations import this module.
    from mask2former.data.datasets.builtin import sync_builtin

    sync_builtin()


def _release_builtin(name: str) -> bool:
    from mask2former.data.datasets.builtin import release_builtin

    return release_builtin(name)


class _BuiltinAwareDict(UserDict):
    """``UserDict`` whose read access first syncs the builtin registrations."""

    def __contains__(self, name: object) -> bool:
        _sync_builtins()
        return name in self.data

    def __getitem__(self, name: str) -> Any:
        _sync_builtins()
        return self.data[name]

    def __iter__(self) -> Iterator[str]:
        _sync_builtins()
        return iter(self.data)

    def __len__(self) -> int:
        _sync_builtins()
        return len(self.data)

    def list(self) -> list[str]:
        """Names of all registered entries (builtins included)."""
        return list(self)

    def remove(self, name: str) -> None:
        """Drop ``name``."""
        _sync_builtins()
        self.data.pop(name)


class _DatasetCatalog(_BuiltinAwareDict):
    """Maps a dataset name to a zero-argument function returning ``list[dict]`` records."""

    def register(self, name: str, func: Callable[[], list[dict]]) -> None:
        """Register ``func`` under ``name``.

        A builtin dataset of the same name is replaced (with its metadata).

        Raises:
            TypeError: ``func`` is not callable.
            ValueError: ``name`` is already registered by the user.
        """
        if not callable(func):
            raise TypeError(f"DatasetCatalog.register({name!r}, func): func must be callable")
        if name in self and not _release_builtin(name):
            raise ValueError(f"Dataset {name!r} is already registered in DatasetCatalog")
        self.data[name] = func

    def get(self, name: str) -> list[dict]:  # type: ignore[override]
        """Call the loader registered under ``name`` and return its records.

        Raises:
            UnknownDatasetError: ``name`` is not registered (the message lists close matches).
        """
        if name not in self:
            close = difflib.get_close_matches(str(name), self.data.keys(), n=5, cutoff=0.6)
            hint = f" Did you mean: {', '.join(close)}?" if close else ""
            raise UnknownDatasetError(
                f"Dataset {name!r} is not registered.{hint} Register your own with "
                "DatasetCatalog.register(name, func) or register_coco_instances/_panoptic. "
                f"Registered datasets: {', '.join(sorted(self.data))}"
            )
        return self.data[name]()

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


class _MetadataCatalog(_BuiltinAwareDict):
    """Maps a dataset name to its :class:`Metadata`, created empty on first access."""

    def get(self, name: str) -> Metadata:  # type: ignore[override]
        """The metadata of ``name`` (created empty if missing)."""
        if not name:
            raise ValueError("MetadataCatalog.get(name): name must be a non-empty string")
        _sync_builtins()
        meta = self.data.get(name)
        if meta is None:
            meta = self.data[name] = Metadata(name=name)
        return meta

    def __str__(self) -> str:
        return f"MetadataCatalog(registered metadata: {', '.join(self.keys())})"

    __repr__ = __str__


MetadataCatalog = _MetadataCatalog()
