"""``CfgNode``: fvcore's config node, reading the original YAML files without unsafe loading.

Several original Mask2Former YAML files compute a value with a PyYAML tag, e.g.::

    MIN_SIZE_TRAIN: !!python/object/apply:eval ["[int(x * 0.1 * 640) for x in range(5, 21)]"]

detectron2 loads such files with ``yaml.unsafe_load``, which runs any code. Here the tag is
handled by a safe loader that evaluates only small arithmetic expressions (numbers, names
from a short whitelist of builtins, arithmetic, lists/tuples and comprehensions), so the
files load unchanged and without arbitrary code execution.
"""

import ast
import copy
import difflib
import logging
import os
from typing import Any

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _FvcoreCfgNode
from yacs.config import _check_and_coerce_cfg_value_type

logger = logging.getLogger(__name__)

_EVAL_TAG = "tag:yaml.org,2002:python/object/apply:eval"
_EVAL_BUILTINS = {
    "int": int,
    "float": float,
    "round": round,
    "range": range,
    "min": min,
    "max": max,
    "len": len,
    "list": list,
    "tuple": tuple,
}
_ALLOWED_NODES = (
    ast.Expression,
    ast.Constant,
    ast.Name,
    ast.Load,
    ast.Store,
    ast.List,
    ast.Tuple,
    ast.ListComp,
    ast.comprehension,
    ast.Call,
    ast.BinOp,
    ast.UnaryOp,
    ast.operator,
    ast.unaryop,
)


def evaluate_expression(expression: str) -> Any:
    """Evaluate a small arithmetic expression from a config file.

    Args:
        expression: e.g. ``"[int(x * 0.1 * 640) for x in range(5, 21)]"``.

    Returns:
        The value of the expression.

    Raises:
        ValueError: if the expression uses anything beyond numbers, arithmetic, lists,
            tuples, comprehensions and the builtins in ``_EVAL_BUILTINS``.
    """
    tree = ast.parse(expression, mode="eval")
    bound_names = {
        target.id
        for node in ast.walk(tree)
        if isinstance(node, ast.comprehension)
        for target in ast.walk(node.target)
        if isinstance(target, ast.Name)
    }
    for node in ast.walk(tree):
        if not isinstance(node, _ALLOWED_NODES):
            raise ValueError(
                f"Config expression {expression!r} uses {type(node).__name__}; only numbers, "
                "arithmetic, lists, tuples, comprehensions and the builtins "
                f"{sorted(_EVAL_BUILTINS)} are allowed."
            )
        if isinstance(node, ast.Name) and node.id not in _EVAL_BUILTINS.keys() | bound_names:
            raise ValueError(
                f"Config expression {expression!r} uses the name {node.id!r}; expected one of "
                f"{sorted(_EVAL_BUILTINS)} or a comprehension variable."
            )
        if isinstance(node, ast.Call) and not isinstance(node.func, ast.Name):
            raise ValueError(f"Config expression {expression!r} calls a non-builtin.")
    code = compile(tree, "<config expression>", "eval")
    return eval(code, {"__builtins__": dict(_EVAL_BUILTINS)})  # noqa: S307 (AST-checked)


class _ConfigLoader(yaml.SafeLoader):
    """SafeLoader that also understands the ``!!python/object/apply:eval`` tag."""


def _construct_eval(loader: yaml.SafeLoader, node: yaml.Node) -> Any:
    args = loader.construct_sequence(node)
    if len(args) != 1 or not isinstance(args[0], str):
        raise yaml.constructor.ConstructorError(
            None,
            None,
            f"expected one string argument for {_EVAL_TAG}, got {args!r}",
            node.start_mark,
        )
    return evaluate_expression(args[0])


_ConfigLoader.add_constructor(_EVAL_TAG, _construct_eval)


class ConfigError(ValueError):
    """A config file or override that cannot be used (the message names file and key)."""


class ConfigKeyError(ConfigError, KeyError):
    """A config key that does not exist (also a ``KeyError``, as in yacs/detectron2)."""

    def __str__(self) -> str:
        # KeyError would print the message with quotes around it.
        return str(self.args[0]) if self.args else ""


class UnsafeConfigTagError(ConfigError, yaml.constructor.ConstructorError):
    """A YAML tag that only ``yaml.unsafe_load`` understands (it could run code)."""

    def __init__(self, message: str) -> None:
        ValueError.__init__(self, message)

    def __str__(self) -> str:
        return str(self.args[0])


def _yaml_error_message(filename: str, error: yaml.YAMLError) -> str:
    mark = getattr(error, "problem_mark", None)
    where = f", line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
    detail = getattr(error, "problem", None) or str(error)
    context, context_mark = getattr(error, "context", None), getattr(error, "context_mark", None)
    if context:
        started = f" that starts at line {context_mark.line + 1}" if context_mark else ""
        detail += f" ({context}{started})"
    hint = (
        " Python tags run code; pass allow_unsafe=True only for files you trust."
        if isinstance(error, yaml.constructor.ConstructorError)
        else ""
    )
    return f"Config file {filename}{where}: invalid YAML: {detail}.{hint}"


def _encoding_error_message(filename: str) -> str:
    """Where a config file stops being UTF-8 text (the YAML reader's offsets are per chunk)."""
    with open(filename, "rb") as f:
        raw = f.read()
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as e:
        line = raw[: e.start].count(b"\n") + 1
        return (
            f"Config file {filename}, line {line}: byte 0x{raw[e.start]:02x} is not UTF-8 "
            f"({e.reason}); save the file as UTF-8."
        )
    return f"Config file {filename} is not UTF-8 text; save the file as UTF-8."


def _all_keys(node: _FvcoreCfgNode, prefix: str = "") -> list[str]:
    keys = []
    for key, value in node.items():
        keys.append(prefix + key)
        if isinstance(value, _FvcoreCfgNode):
            keys.extend(_all_keys(value, prefix + key + "."))
    return keys


def _unknown_key_error(root: _FvcoreCfgNode, full_key: str, node: Any) -> ConfigKeyError:
    candidates = [k for k in _all_keys(root) if not full_key.startswith(k + ".")]
    close = difflib.get_close_matches(full_key, candidates, n=3, cutoff=0.75)
    level = sorted(node.keys()) if isinstance(node, _FvcoreCfgNode) else []
    hint = f" Did you mean {' or '.join(close)}?" if close else f" Keys at that level: {level}"
    return ConfigKeyError(f"Config key {full_key!r} does not exist.{hint}")


def _check_mergeable(
    other: _FvcoreCfgNode, node: _FvcoreCfgNode, root: _FvcoreCfgNode, key_list: list[str]
) -> None:
    """The checks of yacs' merge (existing keys, compatible types), with errors that name the
    key, suggest close keys and say which type is expected."""
    for key, raw in other.items():
        full_key = ".".join([*key_list, key])
        if key not in node:
            if node.is_new_allowed() or root.key_is_deprecated(full_key):
                continue
            if root.key_is_renamed(full_key):
                root.raise_key_rename_error(full_key)
            raise _unknown_key_error(root, full_key, node)
        value, default = node._decode_cfg_value(copy.deepcopy(raw)), node[key]
        if isinstance(value, _FvcoreCfgNode) and isinstance(default, _FvcoreCfgNode):
            _check_mergeable(value, default, root, [*key_list, key])
            continue
        if isinstance(default, _FvcoreCfgNode):
            raise ConfigError(
                f"Config key {full_key} is a section with keys {sorted(default.keys())}; got "
                f"{value!r}, {_a(type(value).__name__)}. Set one of its keys, e.g. "
                f"{full_key}.{sorted(default.keys())[0]}."
            )
        try:
            _check_and_coerce_cfg_value_type(value, default, key, full_key)
        except ValueError as e:
            raise ConfigError(
                f"Config key {full_key} expects {_a(type(default).__name__)} (default: "
                f"{default!r}); got {value!r}, {_a(type(value).__name__)}."
            ) from e


def _a(noun: str) -> str:
    return f"an {noun}" if noun[0] in "aeiou" else f"a {noun}"


def _merge_dict_into(source: dict[str, Any], target: dict[str, Any], filename: str) -> None:
    """Recursively merge ``source`` into ``target``; values of ``source`` win."""
    for key, value in source.items():
        if isinstance(value, dict) and key in target:
            if not isinstance(target[key], dict):
                raise KeyError(
                    f"{filename}: key {key!r} is a mapping but its _BASE_ value is {target[key]!r}."
                )
            _merge_dict_into(value, target[key], filename)
        else:
            target[key] = value


class CfgNode(_FvcoreCfgNode):
    """fvcore ``CfgNode`` whose YAML reader handles ``_BASE_`` and the safe ``eval`` tag."""

    @classmethod
    def load_yaml_with_base(cls, filename: str, allow_unsafe: bool = False) -> dict[str, Any]:
        """Read a YAML file, recursively merged over the file(s) named by its ``_BASE_``.

        Args:
            filename: path of the YAML file; relative ``_BASE_`` paths resolve against its
                directory.
            allow_unsafe: fall back to ``yaml.unsafe_load`` for tags the safe reader does
                not know (runs arbitrary code; only for trusted files).

        Returns:
            The merged content as nested dicts.
        """
        if os.path.isdir(filename):
            raise IsADirectoryError(f"Config file {filename} is a directory; expected a YAML file.")
        with cls._open_cfg(filename) as f:
            try:
                loaded = yaml.load(f, Loader=_ConfigLoader)  # noqa: S506 (SafeLoader subclass)
            except UnicodeDecodeError as e:
                raise ConfigError(_encoding_error_message(filename)) from e
            except yaml.constructor.ConstructorError as e:
                if not allow_unsafe:
                    raise UnsafeConfigTagError(_yaml_error_message(filename, e)) from e
                logger.warning("Loading config %s with yaml.unsafe_load.", filename)
                f.seek(0)
                loaded = yaml.unsafe_load(f)
            except yaml.YAMLError as e:
                raise ConfigError(_yaml_error_message(filename, e)) from e
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise ValueError(
                f"Config file {filename} holds a {type(loaded).__name__}; expected a mapping."
            )
        if BASE_KEY not in loaded:
            return loaded

        base_files = loaded.pop(BASE_KEY)
        if isinstance(base_files, str):
            base_files = [base_files]
        merged: dict[str, Any] = {}
        for base_file in base_files:
            base_file = os.path.expanduser(base_file)
            if not base_file.startswith(("/", "https://", "http://")):
                base_file = os.path.join(os.path.dirname(filename), base_file)
            if os.path.isdir(base_file):
                raise IsADirectoryError(
                    f"Config file {filename}: its {BASE_KEY} {base_files!r} resolves to "
                    f"{os.path.abspath(base_file)}, which is a directory; expected a YAML file."
                )
            if not base_file.startswith(("https://", "http://")) and not os.path.isfile(base_file):
                raise FileNotFoundError(
                    f"Config file {filename}: its {BASE_KEY} file {base_files!r} resolves to "
                    f"{os.path.abspath(base_file)}, which does not exist (relative {BASE_KEY} "
                    "paths are relative to the file that names them)."
                )
            _merge_dict_into(cls.load_yaml_with_base(base_file, allow_unsafe), merged, filename)
        _merge_dict_into(loaded, merged, filename)
        return merged

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        """Merge a YAML file; a name that is no file but a config shipped with the package
        (``coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml``) loads that one."""
        from mask2former.model_zoo import resolve_config_file

        super().merge_from_file(resolve_config_file(cfg_filename), allow_unsafe)

    def merge_from_other_cfg(self, cfg_other: _FvcoreCfgNode) -> None:
        """Merge another config; unknown keys and values of the wrong type are refused.

        Raises:
            ConfigKeyError: naming the key and the closest existing keys.
            ConfigError: naming the key, the expected type and the value given.
        """
        _check_mergeable(cfg_other, self, self, [])
        super().merge_from_other_cfg(cfg_other)

    def merge_from_list(self, cfg_list: list[Any]) -> None:
        """Merge ``["KEY.PATH", value, ...]`` pairs (values as Python literals or strings).

        Raises:
            ValueError: if ``cfg_list`` has an odd length.
            ConfigKeyError: naming the key and the closest existing keys.
            ConfigError: naming the key, the expected type and the value given.
        """
        if len(cfg_list) % 2 != 0:
            raise ValueError(
                f"merge_from_list expects KEY, VALUE pairs; got {len(cfg_list)} items: {cfg_list}"
            )
        for full_key in cfg_list[0::2]:
            node: Any = self
            for part in full_key.split("."):
                if not isinstance(node, _FvcoreCfgNode) or part not in node:
                    raise _unknown_key_error(self, full_key, node)
                node = node[part]
        for full_key, value in zip(cfg_list[0::2], cfg_list[1::2], strict=True):
            nested: Any = value
            for part in reversed(full_key.split(".")):
                nested = {part: nested}
            _check_mergeable(type(self)(nested), self, self, [])
        super().merge_from_list(cfg_list)
