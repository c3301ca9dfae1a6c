"""Name matching for pretrained weights whose names differ from the model's.

Two cases, following detectron2's loading rules:

* Caffe2 / Detectron1 ImageNet backbones (``conv1_w``, ``res_conv1_bn_s``,
  ``res2_0_branch2a_w``, ...) are first renamed to detectron2 names
  (``stem.conv1.weight``, ``stem.conv1.norm.weight``, ``res2.0.conv1.weight``, ...).
* Any checkpoint marked ``matching_heuristics`` (detectron2 ImageNet ``R-50.pkl``, a
  converted Swin ``.pkl``) is then aligned by suffix: a model key takes the checkpoint key
  that is its longest dot-separated suffix, so ``res2.0.conv1.weight`` loads into
  ``backbone.res2.0.conv1.weight``.
"""

import logging
import re
from collections.abc import Mapping

import torch

from mask2former.checkpoint.key_report import format_matched_table

logger = logging.getLogger(__name__)

# Ordered (pattern, replacement) rules applied after "_" -> "." in Caffe2 blob names.
_C2_RENAME_RULES: tuple[tuple[str, str], ...] = (
    (r"\.b$", ".bias"),
    (r"\.w$", ".weight"),
    # batch / group norm parameters all become ".norm.*"
    (r"bn\.s$", "norm.weight"),
    (r"bn\.bias$", "norm.bias"),
    (r"bn\.rm", "norm.running_mean"),
    (r"bn\.running\.mean$", "norm.running_mean"),
    (r"bn\.riv$", "norm.running_var"),
    (r"bn\.running\.var$", "norm.running_var"),
    (r"bn\.gamma$", "norm.weight"),
    (r"bn\.beta$", "norm.bias"),
    (r"gn\.s$", "norm.weight"),
    (r"gn\.bias$", "norm.bias"),
    # stem: "res_conv1_bn_*" is the stem's norm, "conv1_*" the stem's conv
    (r"^res\.conv1\.norm\.", "conv1.norm."),
    (r"^conv1\.", "stem.conv1."),
    # bottleneck branches
    (r"\.branch1\.", ".shortcut."),
    (r"\.branch2a\.", ".conv1."),
    (r"\.branch2b\.", ".conv2."),
    (r"\.branch2c\.", ".conv3."),
)
# Whole-name renames applied before anything else (Caffe2 classifier blobs).
_C2_EXACT_RENAMES = {"pred_b": "linear_b", "pred_w": "linear_w"}


def convert_c2_name(name: str) -> str:
    """Rename one Caffe2 backbone blob to its detectron2 parameter name.

    Args:
        name: e.g. ``"res2_0_branch2a_bn_s"``.

    Returns:
        e.g. ``"res2.0.conv1.norm.weight"``.
    """
    name = _C2_EXACT_RENAMES.get(name, name).replace("_", ".")
    for pattern, replacement in _C2_RENAME_RULES:
        name = re.sub(pattern, replacement, name)
    return name


def convert_c2_state_dict(
    state_dict: Mapping[str, torch.Tensor],
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Rename all Caffe2 blobs of ``state_dict``.

    Args:
        state_dict: Caffe2 name -> tensor.

    Returns:
        (detectron2 name -> tensor, detectron2 name -> original Caffe2 name).

    Raises:
        ValueError: if two blobs map to the same detectron2 name.
    """
    renamed: dict[str, torch.Tensor] = {}
    original_names: dict[str, str] = {}
    for c2_name in sorted(state_dict):
        new_name = convert_c2_name(c2_name)
        if new_name in renamed:
            raise ValueError(
                f"Caffe2 blobs {original_names[new_name]!r} and {c2_name!r} both map to "
                f"{new_name!r}."
            )
        renamed[new_name] = state_dict[c2_name]
        original_names[new_name] = c2_name
    return renamed, original_names


def _longest_suffix_match(model_key: str, checkpoint_keys: set[str]) -> str | None:
    """Longest checkpoint key equal to ``model_key`` or to a ``.``-separated suffix of it."""
    parts = model_key.split(".")
    for start in range(len(parts)):
        candidate = ".".join(parts[start:])
        if candidate in checkpoint_keys:
            return candidate
    return None


def align_and_update_state_dicts(
    model_state_dict: Mapping[str, torch.Tensor],
    checkpoint_state_dict: Mapping[str, torch.Tensor],
    c2_conversion: bool = False,
) -> tuple[dict[str, torch.Tensor], dict[str, str]]:
    """Rename checkpoint keys to model keys by longest-suffix matching.

    Each model key takes the longest checkpoint key that equals it or is a complete suffix of
    it after a ``.`` (``res2.0.conv1.weight`` matches ``backbone.res2.0.conv1.weight``, but
    ``conv1.weight`` does not match ``backbone.head.whatever_conv1.weight``). A match whose
    shape differs from the model's is skipped with a warning. Checkpoint keys that match
    nothing are kept under their own names (they surface as unexpected keys on loading).

    Args:
        model_state_dict: the model's state dict (only names and shapes are used).
        checkpoint_state_dict: checkpoint name -> tensor.
        c2_conversion: rename Caffe2 blob names first (see :func:`convert_c2_name`).

    Returns:
        (state dict keyed by model names where matched, model key -> original checkpoint key
        for every match).

    Raises:
        ValueError: if one checkpoint key matches two model keys with the right shape.
    """
    if c2_conversion:
        checkpoint_state_dict, original_names = convert_c2_state_dict(checkpoint_state_dict)
    else:
        original_names = {key: key for key in checkpoint_state_dict}
    checkpoint_keys = set(checkpoint_state_dict)

    result: dict[str, torch.Tensor] = {}
    model_key_of: dict[str, str] = {}  # matched checkpoint key -> model key
    for model_key in sorted(model_state_dict):
        checkpoint_key = _longest_suffix_match(model_key, checkpoint_keys)
        if checkpoint_key is None:
            continue
        value = checkpoint_state_dict[checkpoint_key]
        model_shape = tuple(model_state_dict[model_key].shape)
        if tuple(value.shape) != model_shape:
            logger.warning(
                "Skip loading %s from checkpoint key %s: shape %s in the checkpoint, %s in "
                "the model.",
                model_key,
                original_names[checkpoint_key],
                tuple(value.shape),
                model_shape,
            )
            continue
        if checkpoint_key in model_key_of:
            raise ValueError(
                f"Checkpoint key {original_names[checkpoint_key]!r} matches two model keys, "
                f"{model_key_of[checkpoint_key]!r} and {model_key!r}; cannot decide which one "
                "to load."
            )
        model_key_of[checkpoint_key] = model_key
        result[model_key] = value

    if not model_key_of:
        logger.warning("No checkpoint key matched a model key by suffix.")
        return dict(checkpoint_state_dict), {}
    matched = {model_key: original_names[ckpt_key] for ckpt_key, model_key in model_key_of.items()}
    shapes = {key: tuple(model_state_dict[key].shape) for key in matched}
    logger.info(
        "Weights matched by name heuristics (model <- checkpoint, shape), %d tensors:\n%s",
        len(matched),
        format_matched_table(matched, shapes),
    )
    for checkpoint_key in sorted(checkpoint_keys - model_key_of.keys()):
        result[checkpoint_key] = checkpoint_state_dict[checkpoint_key]
    return result, matched
