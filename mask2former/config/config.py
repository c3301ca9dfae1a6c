"""``CfgNode``: fvcore's config node, reading the original YAML files without unsafe loading.

Several original Mask2Former YAML files compute a value with a PyYAML tag, e.g.::

    MIN_SIZE_TRAIN: !!python/object/apply:eval ["[int(x * 0.1 * 640) for x in range(5, 21)]"]

detectron2 loads such files with ``yaml.unsafe_load``, which runs any code. Here the tag is
handled by a safe loader that evaluates only small arithmetic expressions (numbers, names
from a short whitelist of builtins, arithmetic, lists/tuples and comprehensions), so the
files load unchanged and without arbitrary code execution.
"""

import ast
import logging
import os
from typing import Any

import yaml
from fvcore.common.config import BASE_KEY
from fvcore.common.config import CfgNode as _FvcoreCfgNode

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
        with cls._open_cfg(filename) as f:
            try:
                loaded = yaml.load(f, Loader=_ConfigLoader)  # noqa: S506 (SafeLoader subclass)
            except yaml.constructor.ConstructorError:
                if not allow_unsafe:
                    raise
                logger.warning("Loading config %s with yaml.unsafe_load.", filename)
                f.seek(0)
                loaded = yaml.unsafe_load(f)
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
            _merge_dict_into(cls.load_yaml_with_base(base_file, allow_unsafe), merged, filename)
        _merge_dict_into(loaded, merged, filename)
        return merged

    def merge_from_file(self, cfg_filename: str, allow_unsafe: bool = False) -> None:
        """Merge a YAML file; a name that is no file but a config shipped with the package
        (``coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml``) loads that one."""
        from mask2former.model_zoo import resolve_config_file

        super().merge_from_file(resolve_config_file(cfg_filename), allow_unsafe)

    def merge_from_list(self, cfg_list: list[Any]) -> None:
        """Merge ``["KEY.PATH", value, ...]`` pairs (values as Python literals or strings).

        Raises:
            ValueError: if ``cfg_list`` has an odd length.
            KeyError: naming the key and the valid keys at that level, if a key does not exist.
        """
        if len(cfg_list) % 2 != 0:
            raise ValueError(
                f"merge_from_list expects KEY, VALUE pairs; got {len(cfg_list)} items: {cfg_list}"
            )
        for full_key in cfg_list[0::2]:
            node: Any = self
            for part in full_key.split("."):
                if not isinstance(node, _FvcoreCfgNode) or part not in node:
                    choices = sorted(node.keys()) if isinstance(node, _FvcoreCfgNode) else []
                    raise KeyError(
                        f"Config key {full_key!r} does not exist ({part!r} not found); "
                        f"keys at that level: {choices}"
                    )
                node = node[part]
        super().merge_from_list(cfg_list)
