"""Readable summaries of state-dict keys for checkpoint-loading logs."""

from collections import defaultdict
from collections.abc import Iterable, Mapping


def _module_and_leaf(key: str) -> tuple[str, str]:
    module, _, leaf = key.rpartition(".")
    return module, leaf


def _braced(prefix: str, leaves: list[str]) -> str:
    """``("a.b", ["weight", "bias"])`` -> ``"a.b.{bias, weight}"``."""
    joined = leaves[0] if len(leaves) == 1 else "{" + ", ".join(sorted(leaves)) + "}"
    return f"{prefix}.{joined}" if prefix else joined


def group_keys(keys: Iterable[str]) -> list[str]:
    """Group parameter names by module, one line per module.

    Args:
        keys: e.g. ``["backbone.stem.conv1.weight", "backbone.stem.conv1.norm.bias",
            "backbone.stem.conv1.norm.weight"]``.

    Returns:
        e.g. ``["backbone.stem.conv1.norm.{bias, weight}", "backbone.stem.conv1.weight"]``.
    """
    leaves_of: dict[str, list[str]] = defaultdict(list)
    for key in keys:
        module, leaf = _module_and_leaf(key)
        leaves_of[module].append(leaf)
    return sorted(_braced(module, leaves) for module, leaves in leaves_of.items())


def format_key_list(title: str, keys: Iterable[str]) -> str:
    """Title line with the key count, then one indented line per module group."""
    keys = sorted(keys)
    lines = [f"{title} ({len(keys)}):"] + ["  " + line for line in group_keys(keys)]
    return "\n".join(lines)


def format_matched_table(matched: Mapping[str, str], shapes: Mapping[str, tuple[int, ...]]) -> str:
    """Table of loaded tensors, one row per model module.

    Args:
        matched: model key -> checkpoint key it was loaded from.
        shapes: model key -> shape.

    Returns:
        Rows ``model names <- checkpoint names | shapes``, aligned in columns.
    """
    rows_of: dict[str, list[str]] = defaultdict(list)
    for model_key in sorted(matched):
        rows_of[_module_and_leaf(model_key)[0]].append(model_key)

    rows: list[tuple[str, str, str]] = []
    for module, model_keys in sorted(rows_of.items()):
        model_leaves = [_module_and_leaf(k)[1] for k in model_keys]
        checkpoint_keys = [matched[k] for k in model_keys]
        checkpoint_modules = {_module_and_leaf(k)[0] for k in checkpoint_keys}
        if len(checkpoint_modules) == 1:
            checkpoint_text = _braced(
                checkpoint_modules.pop(), [_module_and_leaf(k)[1] for k in checkpoint_keys]
            )
        else:
            checkpoint_text = ", ".join(checkpoint_keys)
        shape_text = " ".join(str(shapes[k]).replace(" ", "") for k in model_keys)
        rows.append((_braced(module, model_leaves), checkpoint_text, shape_text))

    model_width = max(len(r[0]) for r in rows)
    checkpoint_width = max(len(r[1]) for r in rows)
    return "\n".join(
        f"  {m.ljust(model_width)} <- {c.ljust(checkpoint_width)} | {s}" for m, c, s in rows
    )


def format_shape_table(
    incorrect_shapes: Iterable[tuple[str, tuple[int, ...], tuple[int, ...]]],
) -> str:
    """Aligned table of tensors skipped for their shape, one row per key.

    Args:
        incorrect_shapes: ``(key, checkpoint shape, model shape)`` triples.

    Returns:
        A header row (key, checkpoint, model) and one row per key.
    """
    rows = [("key", "checkpoint", "model")] + [
        (key, str(tuple(ckpt)), str(tuple(model))) for key, ckpt, model in sorted(incorrect_shapes)
    ]
    widths = [max(len(row[i]) for row in rows) for i in range(3)]
    return "\n".join(
        "  " + " | ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True))
        for row in rows
    )
