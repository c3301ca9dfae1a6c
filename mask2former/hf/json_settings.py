"""Reading and writing the transformers-style JSON settings files (config, image processor).

One helper for both ``Mask2FormerConfig`` and ``Mask2FormerImageProcessor``: find the file (a
``save_pretrained`` directory, the file, or a Hub id), parse it with errors that name the file,
check its keys against the declared fields, and write it back in transformers' layout (indent 2,
sorted keys).
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Collection, Mapping
from typing import Any

from mask2former.hf.checkpoint_io import pop_hub_kwargs, resolve_pretrained_file

logger = logging.getLogger(__name__)


def settings_file(path: str | os.PathLike, file_name: str, kwargs: dict[str, Any]) -> str:
    """``file_name`` in a local directory, a local file path, or ``file_name`` of a Hub
    repository (through huggingface_hub's cache); the Hub options (``revision``,
    ``cache_dir``, ...) are taken out of ``kwargs``.

    Raises:
        FileNotFoundError: naming the file and the three forms ``path`` may take.
    """
    json_file = resolve_pretrained_file(path, file_name, **pop_hub_kwargs(kwargs))
    if not os.path.isfile(json_file):
        raise FileNotFoundError(
            f"{json_file} not found: expected a local directory with {file_name}, a path to it "
            "or a Hub model id"
        )
    return json_file


def read_json(json_file: str | os.PathLike) -> dict[str, Any]:
    """The JSON object in ``json_file``; a ValueError names the file when it is not one."""
    with open(json_file, encoding="utf-8") as f:
        try:
            values = json.load(f)
        except json.JSONDecodeError as e:
            raise ValueError(f"{json_file}: not valid JSON ({e})") from e
    if not isinstance(values, dict):
        raise ValueError(f"{json_file}: expected a JSON object, got {type(values).__name__}")
    return values


def to_json_string(values: Mapping[str, Any]) -> str:
    """transformers' layout: indent 2, sorted keys, a final newline."""
    return json.dumps(values, indent=2, sort_keys=True) + "\n"


def write_json(json_file: str | os.PathLike, values: Mapping[str, Any]) -> None:
    with open(json_file, "w", encoding="utf-8") as f:
        f.write(to_json_string(values))


def save_directory_file(save_directory: str | os.PathLike, file_name: str) -> str:
    """``save_directory/file_name``, creating the directory; refuses an existing file."""
    if os.path.isfile(save_directory):
        raise ValueError(f"save_directory {save_directory} is a file, expected a directory")
    os.makedirs(save_directory, exist_ok=True)
    return os.path.join(save_directory, file_name)


def split_known(
    values: Mapping[str, Any],
    fields: Collection[str],
    ignored: Collection[str],
    owner: str,
) -> dict[str, Any]:
    """The entries of ``values`` that are ``fields``; ``ignored`` keys are dropped.

    Args:
        values: keys read from a file or given as keyword arguments.
        fields: the declared settings.
        ignored: keys transformers writes that configure nothing here (versions, names).
        owner: what is being configured, for the error message.

    Raises:
        TypeError: a key is neither a field nor ignored (a typo, or a setting this
            implementation does not have); the message lists the valid names.
    """
    unknown = sorted(set(values) - set(fields) - set(ignored))
    if unknown:
        raise TypeError(f"{owner}: unknown settings {unknown}; valid settings: {sorted(fields)}")
    dropped = sorted(set(values) & set(ignored))
    if dropped:
        logger.debug("%s: not used: %s", owner, dropped)
    return {key: value for key, value in values.items() if key in fields}
