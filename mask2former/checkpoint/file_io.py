"""Reading checkpoint files (.pth / .pt / .pkl) and writing files atomically."""

import io
import logging
import os
import pickle
import re
import tempfile
from collections.abc import Callable, Mapping
from typing import IO, Any

import numpy as np
import torch

logger = logging.getLogger(__name__)

_SAFE_BUILTINS = ("set", "frozenset", "complex", "slice", "bytearray")


def _describe(obj: Any) -> str:
    if isinstance(obj, Mapping):
        keys = list(obj)[:8]
        kinds = sorted({type(v).__name__ for v in obj.values()})
        return f"a dict with keys {keys}{' ...' if len(obj) > 8 else ''} and values of {kinds}"
    return f"a {type(obj).__name__}"


def _is_tensor_dict(obj: Any) -> bool:
    return isinstance(obj, Mapping) and all(
        isinstance(v, (torch.Tensor, np.ndarray)) for v in obj.values()
    )


class UntrustedCheckpointError(ValueError):
    """A checkpoint file that needs more than tensors, arrays, numbers, strings and
    containers to be read; loading it could run code from the file."""


TRUST_ENV_VAR = "MASK2FORMER_TRUST_CHECKPOINTS"

# What a model-zoo .pkl may name: numpy arrays and scalars (numpy 1 and 2 module names, and
# the encoder that protocol-2 pickles use for their bytes), torch tensors pickled with plain
# pickle (the original Swin converter writes those), and plain containers.
_PICKLE_GLOBALS = {
    *(
        (f"numpy.{core}.{module}", name)
        for core in ("core", "_core")
        for module, name in (
            ("multiarray", "_reconstruct"),
            ("multiarray", "scalar"),
            ("numeric", "_frombuffer"),
        )
    ),
    ("numpy", "ndarray"),
    ("numpy", "dtype"),
    ("_codecs", "encode"),
    ("collections", "OrderedDict"),
    ("torch._utils", "_rebuild_tensor_v2"),
    ("torch._utils", "_rebuild_parameter"),
    *((builtins, name) for builtins in ("builtins", "__builtin__") for name in _SAFE_BUILTINS),
}


def _storage_from_bytes(data: bytes) -> Any:
    # torch pickles a storage as torch.save bytes, which it reloads with weights_only=False.
    return torch.load(io.BytesIO(data), map_location="cpu", weights_only=True)


class _RefusedGlobal(pickle.UnpicklingError):
    pass


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only the globals in ``_PICKLE_GLOBALS``."""

    def find_class(self, module: str, name: str) -> Any:
        if (module, name) == ("torch.storage", "_load_from_bytes"):
            return _storage_from_bytes
        if (module, name) not in _PICKLE_GLOBALS:
            raise _RefusedGlobal(f"{module}.{name}")
        return super().find_class(module, name)


def _trusted(trusted: bool) -> bool:
    return trusted or os.environ.get(TRUST_ENV_VAR, "") == "1"


def _untrusted_error(path: str, what: str) -> UntrustedCheckpointError:
    return UntrustedCheckpointError(
        f"{path} needs {what} to be read, which could run code from the file; only tensors, "
        "arrays, numbers, strings and containers are read from checkpoints. If you trust the "
        f"file, load it with trusted=True or set {TRUST_ENV_VAR}=1."
    )


def _other_kind_of_file(path: str) -> str | None:
    """What a file that is no checkpoint at all holds, from its first bytes (None: unknown,
    or empty, as an interrupted download leaves it)."""
    with open(path, "rb") as f:
        head = f.read(64)
    stripped = head.lstrip()
    if stripped[:1] in (b"{", b"["):
        return f"holds JSON text (it starts with {stripped[:1].decode()!r})"
    if head.startswith((b"\x89PNG", b"\xff\xd8\xff", b"GIF8")):
        return "is an image"
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError:  # binary; also a text cut inside a character, rare enough
        return None
    if text and all(c.isprintable() or c in "\r\n\t" for c in text):
        return f"holds text (it starts with {text[:20]!r})"
    return None


def _corrupt_error(path: str, error: BaseException) -> ValueError:
    size = os.path.getsize(path)
    kind = _other_kind_of_file(path)
    if kind is not None:
        return ValueError(
            f"{path} ({size} bytes) is not a checkpoint: it {kind}; expected a .pth file "
            "(torch.save) or a model-zoo .pkl."
        )
    return ValueError(
        f"{path} ({size} bytes) is truncated or corrupt and cannot be read as a checkpoint "
        f"({type(error).__name__}: {error}); download or copy it again."
    )


def _unpickle(path: str, trusted: bool) -> Any:
    # The user vouches for a trusted file, so the plain unpickler may run what it names.
    unpickler = pickle.Unpickler if trusted else _RestrictedUnpickler  # noqa: S301
    with open(path, "rb") as f:
        try:
            return unpickler(f, encoding="latin1").load()
        except _RefusedGlobal as e:
            raise _untrusted_error(path, f"the Python object {e}") from e
        except (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError) as e:
            # What a damaged pickle stream raises (bad opcode, short read, bad arguments).
            raise _corrupt_error(path, e) from e


def read_pickle_checkpoint(path: str, *, trusted: bool = False) -> dict[str, Any]:
    """Read a detectron2 / Detectron1 model-zoo ``.pkl`` file.

    Only numpy arrays, torch tensors, numbers, strings and containers are unpickled unless
    the file is trusted (``trusted=True`` or ``$MASK2FORMER_TRUST_CHECKPOINTS=1``).
    Three layouts are recognised:

    * detectron2: ``{"model": {name: ndarray}, "__author__": ..., ["matching_heuristics"]}``,
      returned as is;
    * Caffe2 / Detectron1: ``{name: ndarray}`` with ``_``-separated blob names (no ``.``),
      optionally under ``"blobs"``; ``*_momentum`` blobs are dropped and the result is marked
      for Caffe2 renaming and suffix matching;
    * a plain ``{name: ndarray}`` with ``.``-separated names, loaded by exact name.

    Args:
        path: local file path.
        trusted: unpickle anything (runs code the file names; only for files you trust).

    Returns:
        dict with a ``"model"`` state dict (values still numpy arrays or tensors).

    Raises:
        UntrustedCheckpointError: naming the file and the object it needs.
        ValueError: naming the file, if it is truncated, corrupt or not a checkpoint.
    """
    data = _unpickle(path, _trusted(trusted))
    if isinstance(data, Mapping) and "model" in data and "__author__" in data:
        logger.info("Reading %s, a file from %r.", path, data["__author__"])
        return dict(data)
    if isinstance(data, Mapping) and "blobs" in data:
        data = data["blobs"]
    if not _is_tensor_dict(data):
        raise ValueError(
            f"{path} is not a checkpoint: expected a dict of arrays or a dict with 'model' and "
            f"'__author__', found {_describe(data)}."
        )
    if any("." in key for key in data):
        return {"model": dict(data), "__author__": "unknown"}
    blobs = {k: v for k, v in data.items() if not k.endswith("_momentum")}
    return {"model": blobs, "__author__": "Caffe2", "matching_heuristics": True}


def load_torch_file(path: str, *, trusted: bool = False) -> Any:
    """``torch.load`` on the CPU with ``weights_only=True`` unless the file is trusted
    (``trusted=True`` or ``$MASK2FORMER_TRUST_CHECKPOINTS=1``).

    Raises:
        UntrustedCheckpointError: naming the file and the object it needs.
        ValueError: naming the file, if it is truncated or corrupt.
    """
    trusted = _trusted(trusted)
    try:
        return torch.load(path, map_location="cpu", weights_only=not trusted)
    except pickle.UnpicklingError as e:
        # torch's weights-only unpickler names a refused global; anything else is damage.
        refused = re.search(r"unsupported (?:global: )?global (\S+)", str(e), re.IGNORECASE)
        if refused:
            raise _untrusted_error(path, f"the Python object {refused.group(1)}") from e
        raise _corrupt_error(path, e) from e
    except (RuntimeError, EOFError, ValueError) as e:
        # torch.load: RuntimeError for a damaged zip archive, EOFError for an empty file.
        raise _corrupt_error(path, e) from e


def read_torch_checkpoint(path: str, *, trusted: bool = False) -> dict[str, Any]:
    """Read a ``.pth``/``.pt`` file: ``{"model": state_dict, ...}`` or a bare state dict.

    Only tensors, numbers, strings and containers are unpickled (``weights_only=True``)
    unless the file is trusted (``trusted=True`` or ``$MASK2FORMER_TRUST_CHECKPOINTS=1``).

    Args:
        path: local file path.
        trusted: load with ``weights_only=False`` (runs code the file names).

    Returns:
        dict with a ``"model"`` state dict and any extra saved entries.

    Raises:
        UntrustedCheckpointError: naming the file, if it needs more than weights.
        ValueError: naming the file, if it is truncated, corrupt or not a checkpoint.
    """
    data = load_torch_file(path, trusted=trusted)
    if isinstance(data, Mapping) and "model" in data:
        if not _is_tensor_dict(data["model"]):
            raise ValueError(
                f"{path} is not a checkpoint: its 'model' entry is {_describe(data['model'])}; "
                "expected a dict of tensors."
            )
        return dict(data)
    if _is_tensor_dict(data) and len(data) > 0:
        return {"model": dict(data)}
    raise ValueError(
        f"{path} is not a checkpoint: expected a dict of tensors or a dict with a 'model' "
        f"state dict, found {_describe(data)}."
    )


def read_checkpoint(path: str, *, trusted: bool = False) -> dict[str, Any]:
    """Read any supported checkpoint file by its extension (``.pkl`` or torch format).

    Args:
        path: local file path.
        trusted: read pickled objects of any kind (only for files you trust).

    Raises:
        IsADirectoryError: naming ``path`` if it is a directory.
        FileNotFoundError: naming ``path`` if it does not exist.
        UntrustedCheckpointError: naming ``path``, if it needs more than weights.
        ValueError: naming ``path`` and what it holds, if it is not a readable checkpoint.
    """
    if os.path.isdir(path):
        raise IsADirectoryError(
            f"Checkpoint file {path} is a directory; expected a .pth or .pkl file (a "
            "transformers folder converts with tools/convert_checkpoint.py)."
        )
    if not os.path.isfile(path):
        raise FileNotFoundError(f"Checkpoint file {path} does not exist.")
    if path.endswith(".pkl"):
        return read_pickle_checkpoint(path, trusted=trusted)
    return read_torch_checkpoint(path, trusted=trusted)


class _ErrorRecordingFile:
    """A binary file that remembers the first ``OSError`` its writes raised.

    ``torch.save`` turns a failed write (disk full, file too large) into a RuntimeError
    without the errno ("unexpected pos ..."); the recorded error says what happened.
    """

    def __init__(self, file: IO[bytes]):
        self._file = file
        self.error: OSError | None = None

    def write(self, data: Any) -> int:
        try:
            return self._file.write(data)
        except OSError as e:
            self.error = self.error or e
            raise

    def flush(self) -> None:
        try:
            self._file.flush()
        except OSError as e:
            self.error = self.error or e
            raise

    def __getattr__(self, name: str) -> Any:
        return getattr(self._file, name)


def _write_error(path: str, error: OSError) -> OSError:
    """The same kind of OSError (errno kept), saying which file and what is left of it."""
    message = (
        f"{error.strerror or error}: could not write {path} (its previous content, if any, is "
        "untouched); free space on that file system or choose a writable directory"
    )
    return OSError(error.errno, message) if error.errno is not None else OSError(message)


def write_atomically(path: str, write: Callable[[IO[bytes]], None]) -> None:
    """Write a file so that ``path`` either keeps its old content or holds the full new one.

    The content goes to a temporary file in the same directory, which is flushed, synced and
    then renamed over ``path``; on any error the temporary file is removed.

    Args:
        path: destination file.
        write: callback that writes the content into the given binary file object.

    Raises:
        OSError: of the failure's kind (``PermissionError``, errno ``ENOSPC``, ``EFBIG``...),
            naming ``path``, when the directory is not writable or the write fails;
            ``path`` keeps its previous content.
    """
    directory = os.path.dirname(os.path.abspath(path))
    try:
        fd, tmp_path = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=directory)
    except OSError as e:
        raise _write_error(path, e) from e
    try:
        with os.fdopen(fd, "wb") as raw_file:
            f = _ErrorRecordingFile(raw_file)
            try:
                write(f)  # type: ignore[arg-type]
                f.flush()
            except Exception as e:
                if f.error is None or e is f.error:
                    raise
                raise f.error from e
            os.fsync(raw_file.fileno())
        os.replace(tmp_path, path)
    except BaseException as e:
        if os.path.exists(tmp_path):
            os.remove(tmp_path)
        if isinstance(e, OSError):
            raise _write_error(path, e) from e
        raise
