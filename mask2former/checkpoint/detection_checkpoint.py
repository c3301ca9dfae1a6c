"""``DetectionCheckpointer``: save/resume training state and load detectron2 checkpoints, on
fvcore's ``Checkpointer`` as in detectron2."""

import logging
import os
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from fvcore.common.checkpoint import Checkpointer
from torch import nn

from mask2former.checkpoint.c2_model_loading import align_and_update_state_dicts
from mask2former.checkpoint.file_io import read_checkpoint, write_atomically
from mask2former.checkpoint.key_report import (
    format_key_list,
    format_matched_table,
    format_shape_table,
)
from mask2former.utils import comm

logger = logging.getLogger(__name__)

LAST_CHECKPOINT_FILE = "last_checkpoint"
# Short-hand prefix used by the original configs' MODEL.WEIGHTS.
_DETECTRON2_PREFIX = "detectron2://"
_DETECTRON2_URL = "https://dl.fbaipublicfiles.com/detectron2/"
# Buffers that are rebuilt from the config and are absent from older checkpoints.
_IGNORED_MISSING_BUFFERS = ("pixel_mean", "pixel_std")


@dataclass
class IncompatibleKeys:
    """What did not load cleanly in the last :meth:`DetectionCheckpointer.load`.

    Attributes:
        missing_keys: model keys that received no value.
        unexpected_keys: checkpoint keys that matched no model key.
        incorrect_shapes: ``(model key, checkpoint shape, model shape)`` of skipped tensors.
        matched: model key -> checkpoint key, for every tensor that was loaded.
    """

    missing_keys: list[str] = field(default_factory=list)
    unexpected_keys: list[str] = field(default_factory=list)
    incorrect_shapes: list[tuple[str, tuple[int, ...], tuple[int, ...]]] = field(
        default_factory=list
    )
    matched: dict[str, str] = field(default_factory=dict)


def resolve_weights_path(path: str) -> str:
    """Map ``detectron2://`` paths to their URL and download URLs to a local cache file.

    Args:
        path: local path, ``http(s)://`` URL or ``detectron2://<model zoo path>``.

    Returns:
        A local path (downloading first for URLs).
    """
    if path.startswith(_DETECTRON2_PREFIX):
        path = _DETECTRON2_URL + path[len(_DETECTRON2_PREFIX) :]
    if path.startswith(("http://", "https://")):
        from iopath.common.file_io import HTTPURLHandler, PathManager

        path_manager = PathManager()
        path_manager.register_handler(HTTPURLHandler())
        return path_manager.get_local_path(path)
    return path


def _to_tensor(key: str, value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, np.ndarray):
        return torch.from_numpy(value if value.flags.writeable else value.copy())
    raise ValueError(
        f"Checkpoint entry {key!r} is a {type(value).__name__}; expected a tensor or an array."
    )


def _strip_prefix(state_dict: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """Drop ``prefix`` from every key if all keys carry it (DDP / DataParallel checkpoints)."""
    if state_dict and all(key.startswith(prefix) for key in state_dict):
        return {key[len(prefix) :]: value for key, value in state_dict.items()}
    return state_dict


class DetectionCheckpointer(Checkpointer):
    """fvcore's ``Checkpointer`` (as detectron2's) with atomic writes, safe loading, ``.pkl``
    model-zoo files and a key report.

    ``save`` writes ``{save_dir}/{name}.pth`` (model state, one entry per checkpointable,
    extra data) and records its name in ``{save_dir}/last_checkpoint``, both atomically.
    ``load`` reads ``.pth``/``.pt`` files and detectron2 / Caffe2 model-zoo ``.pkl`` files,
    renaming and suffix-matching keys when the file asks for it (``matching_heuristics``),
    skipping tensors of the wrong shape, and logging matched / missing / unexpected keys.
    The outcome of the last load is kept in :attr:`incompatible_keys`. ``resume_or_load``,
    ``has_checkpoint`` and ``get_checkpoint_file`` are fvcore's.

    Args:
        model: the model; a DDP / DataParallel wrapper is unwrapped.
        save_dir: directory for saved checkpoints and ``last_checkpoint`` ("" disables save).
        save_to_disk: whether ``save`` writes; ``None`` means only on the main process.
        **checkpointables: objects with ``state_dict()`` / ``load_state_dict()`` (optimizer,
            scheduler, grad scaler, ...), saved and restored under their keyword names.
    """

    def __init__(
        self,
        model: nn.Module,
        save_dir: str = "",
        *,
        save_to_disk: bool | None = None,
        **checkpointables: Any,
    ) -> None:
        super().__init__(
            model,
            save_dir,
            save_to_disk=comm.is_main_process() if save_to_disk is None else save_to_disk,
            **checkpointables,
        )
        # fvcore's own messages ("Loading optimizer from ...") go to this module's logger.
        self.logger = logger
        self.incompatible_keys: IncompatibleKeys | None = None
        self._trusted = False
        self._loading_path = ""

    def add_checkpointable(self, name: str, obj: Any) -> None:
        """Track another object with ``state_dict()`` / ``load_state_dict()`` under ``name``."""
        if name in self.checkpointables or name == "model":
            raise KeyError(f"Checkpointable name {name!r} is already used.")
        if not (hasattr(obj, "state_dict") and hasattr(obj, "load_state_dict")):
            raise TypeError(
                f"Checkpointable {name!r} is a {type(obj).__name__}; expected an object with "
                "state_dict() and load_state_dict()."
            )
        super().add_checkpointable(name, obj)

    # ----------------------------------------------------------------------------- saving
    def save(self, name: str, **extra: Any) -> None:
        """Write the model, every checkpointable and ``extra`` to ``{save_dir}/{name}.pth``.

        Unlike fvcore's, the file appears whole or not at all (a killed process leaves the
        previous checkpoint and ``last_checkpoint`` intact).

        Args:
            name: file name without extension, e.g. ``"model_0004999"``.
            **extra: more picklable data, e.g. ``iteration=4999``.
        """
        if not self.save_dir or not self.save_to_disk:
            return
        clashes = set(extra) & ({"model"} | set(self.checkpointables))
        if clashes:
            raise KeyError(f"Extra data keys {sorted(clashes)} clash with checkpointable names.")
        data: dict[str, Any] = {"model": self.model.state_dict()}
        data.update({key: obj.state_dict() for key, obj in self.checkpointables.items()})
        data.update(extra)

        basename = f"{name}.pth"
        if os.path.basename(basename) != basename:
            raise ValueError(f"Checkpoint name {name!r} must be a plain file name.")
        os.makedirs(self.save_dir, exist_ok=True)
        save_file = os.path.join(self.save_dir, basename)
        self._remove_partial_writes(basename)
        logger.info("Saving checkpoint to %s", save_file)
        write_atomically(save_file, lambda f: torch.save(data, f))
        self.tag_last_checkpoint(basename)

    def _remove_partial_writes(self, basename: str) -> None:
        """Delete temporary files of earlier writes of ``basename`` that a killed process left
        (``write_atomically`` names them ``.{basename}.<random>``)."""
        for name in os.listdir(self.save_dir):
            if name.startswith(f".{basename}."):
                os.remove(os.path.join(self.save_dir, name))
                logger.info("Removed %s, left by an interrupted checkpoint write", name)

    def tag_last_checkpoint(self, basename: str) -> None:
        """Record ``basename`` as the newest checkpoint in ``{save_dir}/last_checkpoint``."""
        write_atomically(
            os.path.join(self.save_dir, LAST_CHECKPOINT_FILE),
            lambda f: f.write(basename.encode("utf-8")),
        )

    # ---------------------------------------------------------------------------- loading
    def load(
        self, path: str, checkpointables: list[str] | None = None, *, trusted: bool = False
    ) -> dict[str, Any]:
        """Load a checkpoint into the model and the named checkpointables.

        Args:
            path: local path, URL or ``detectron2://`` path; "" loads nothing.
            checkpointables: names of checkpointables to restore; ``None`` means all.
            trusted: unpickle objects of any kind from the file (runs code the file names;
                also ``$MASK2FORMER_TRUST_CHECKPOINTS=1``). By default only tensors, arrays,
                numbers, strings and containers are read.

        Returns:
            The checkpoint's remaining entries (e.g. ``iteration``), without ``"model"`` and
            without the restored checkpointables.

        Raises:
            FileNotFoundError: naming ``path`` if it does not exist.
            IsADirectoryError: naming ``path`` if it is a directory.
            UntrustedCheckpointError: naming ``path`` if it needs more than weights.
            ValueError: naming ``path`` if it is truncated, corrupt or not a checkpoint, or
                if none of its tensors fits the model.
            KeyError: naming an unknown checkpointable.
        """
        if not path:
            logger.info("No checkpoint given; the model keeps its initialisation.")
            self.incompatible_keys = None
            return {}
        names = list(self.checkpointables) if checkpointables is None else checkpointables
        unknown = [name for name in names if name not in self.checkpointables]
        if unknown:
            raise KeyError(
                f"Unknown checkpointables {unknown}; registered: {sorted(self.checkpointables)}"
            )
        local_path = resolve_weights_path(path)
        if not os.path.isfile(local_path):
            # fvcore would assert; read_checkpoint names the missing file or the directory.
            read_checkpoint(local_path)
        self._trusted, self._loading_path = trusted, path
        try:
            return super().load(local_path, checkpointables=names)
        finally:
            self._trusted, self._loading_path = False, ""

    def _load_file(self, f: str) -> dict[str, Any]:
        """``{"model": state_dict, ...}`` from a ``.pth``/``.pt`` or ``.pkl`` file, read safely
        unless trusted (see :meth:`load`)."""
        return read_checkpoint(f, trusted=self._trusted)

    def _load_model(self, checkpoint: dict[str, Any]) -> IncompatibleKeys:
        """Load ``checkpoint.pop("model")`` into the model (names matched, shapes checked).

        Raises:
            ValueError: the checkpoint has tensors but none fits the model.
        """
        state_dict = {k: _to_tensor(k, v) for k, v in checkpoint.pop("model").items()}
        num_tensors = len(state_dict)
        state_dict = _strip_prefix(state_dict, "module.")
        model_state = self.model.state_dict()

        if checkpoint.get("matching_heuristics", False):
            state_dict, matched = align_and_update_state_dicts(
                model_state,
                state_dict,
                c2_conversion=checkpoint.get("__author__") == "Caffe2",
            )
        else:
            matched = {key: key for key in state_dict if key in model_state}

        incorrect_shapes = []
        for key in list(state_dict):
            if key not in model_state:
                continue
            checkpoint_shape = tuple(state_dict[key].shape)
            model_shape = tuple(model_state[key].shape)
            if checkpoint_shape != model_shape:
                incorrect_shapes.append((key, checkpoint_shape, model_shape))
                del state_dict[key]
                matched.pop(key, None)

        result = self.model.load_state_dict(state_dict, strict=False)
        missing = self._filter_missing(result.missing_keys, loaded=set(state_dict))
        self.incompatible_keys = IncompatibleKeys(
            missing_keys=sorted(missing),
            unexpected_keys=sorted(result.unexpected_keys),
            incorrect_shapes=incorrect_shapes,
            matched=matched,
        )
        if num_tensors and not matched:
            # Before any checkpointable (optimizer, ...) takes state from a foreign file.
            self._log_incompatible_keys(self.incompatible_keys)
            raise ValueError(
                self._nothing_matched_message(self._loading_path, self.incompatible_keys)
            )
        return self.incompatible_keys

    def _nothing_matched_message(self, path: str, incompatible: IncompatibleKeys) -> str:
        shapes = (
            f" {len(incompatible.incorrect_shapes)} names matched with other shapes:\n"
            + format_shape_table(incompatible.incorrect_shapes[:10])
            if incompatible.incorrect_shapes
            else ""
        )
        return (
            f"No tensor of {path} fits the model ({type(self.model).__name__}): is it a "
            "checkpoint of another architecture or config? Checkpoint keys start with "
            f"{incompatible.unexpected_keys[:3]}, model keys with "
            f"{incompatible.missing_keys[:3]}.{shapes}"
        )

    def _filter_missing(self, missing_keys: list[str], loaded: set[str]) -> list[str]:
        """Drop missing keys that are aliases of a loaded tensor or config-built buffers."""
        names_of: dict[int, set[str]] = {}
        for name, tensor in self.model.state_dict(keep_vars=True).items():
            names_of.setdefault(id(tensor), set()).add(name)
        aliases_loaded = {name for names in names_of.values() if names & loaded for name in names}
        return [
            key
            for key in missing_keys
            if key not in aliases_loaded and key not in _IGNORED_MISSING_BUFFERS
        ]

    def _log_incompatible_keys(self, incompatible: IncompatibleKeys) -> None:
        if incompatible.incorrect_shapes:
            logger.warning(
                "Skipped %d tensors whose shape differs between the checkpoint and the model "
                "(left at their initialisation):\n%s",
                len(incompatible.incorrect_shapes),
                format_shape_table(incompatible.incorrect_shapes),
            )
        if incompatible.matched:
            model_state = self.model.state_dict()
            shapes = {key: tuple(model_state[key].shape) for key in incompatible.matched}
            logger.info("Loaded %d tensors into the model.", len(incompatible.matched))
            logger.debug(
                "Loaded tensors (model <- checkpoint, shape):\n%s",
                format_matched_table(incompatible.matched, shapes),
            )
        if incompatible.missing_keys:
            logger.warning(
                format_key_list(
                    "Model keys missing from the checkpoint (left at their initialisation)",
                    incompatible.missing_keys,
                )
            )
        if incompatible.unexpected_keys:
            logger.warning(
                format_key_list(
                    "Checkpoint keys not used by the model", incompatible.unexpected_keys
                )
            )
