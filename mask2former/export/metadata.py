"""The JSON written beside an exported file: sizes and what post-processing needs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FORMATS = ("onnx", "torch_export")
SUFFIXES = {"onnx": ".onnx", "torch_export": ".pt2"}
REQUIRED_KEYS = (
    "format",
    "height",
    "width",
    "dynamic",
    "pixel_mean",
    "size_divisibility",
    "num_classes",
    "semantic_on",
    "panoptic_on",
    "instance_on",
    "sem_seg_postprocess_before_inference",
    "object_mask_threshold",
    "overlap_threshold",
    "test_topk_per_image",
    "thing_ids",
)


def metadata_path(exported_file: str | Path) -> Path:
    """The metadata JSON of ``exported_file`` (same name, ``.json``)."""
    return Path(exported_file).with_suffix(".json")


def export_metadata(
    model: Any,
    cfg: Any,
    *,
    export_format: str,
    height: int,
    width: int,
    dynamic: bool,
    opset: int | None,
    config_file: str,
) -> dict[str, Any]:
    """What a runtime needs besides the graph, from a ``MaskFormer`` and its config.

    Args:
        model: the exported ``MaskFormer`` (thresholds, thing ids, size divisibility).
        cfg: its config (input format, class names, test size).
        export_format: one of ``FORMATS``.
        height, width: the example input size (the fixed size unless ``dynamic``).
        dynamic: batch, height and width are dynamic axes.
        opset: ONNX opset, None for torch.export.
        config_file: the config path, recorded as given.
    """
    from mask2former.data.catalog import MetadataCatalog

    dataset_metadata = MetadataCatalog.get(cfg.DATASETS.TEST[0]) if len(cfg.DATASETS.TEST) else None
    class_names = None if dataset_metadata is None else dataset_metadata.get("stuff_classes")
    return {
        "config_file": config_file,
        "format": export_format,
        "height": height,
        "width": width,
        "dynamic": dynamic,
        "opset": opset,
        "input_name": "image",
        "output_names": ["pred_logits", "pred_masks"],
        "input_format": cfg.INPUT.FORMAT,
        "pixel_mean": [float(v) for v in model.pixel_mean.flatten()],
        "pixel_std": [float(v) for v in model.pixel_std.flatten()],
        "size_divisibility": int(model.size_divisibility),
        "min_size_test": int(cfg.INPUT.MIN_SIZE_TEST),
        "max_size_test": int(cfg.INPUT.MAX_SIZE_TEST),
        "num_classes": int(model.sem_seg_head.num_classes),
        "num_queries": int(model.num_queries),
        "class_names": None if class_names is None else list(class_names),
        "thing_ids": model.thing_ids,
        "semantic_on": bool(model.semantic_on),
        "panoptic_on": bool(model.panoptic_on),
        "instance_on": bool(model.instance_on),
        "sem_seg_postprocess_before_inference": bool(model.sem_seg_postprocess_before_inference),
        "object_mask_threshold": float(model.object_mask_threshold),
        "overlap_threshold": float(model.overlap_threshold),
        "test_topk_per_image": int(model.test_topk_per_image),
    }


def write_metadata(exported_file: str | Path, metadata: dict[str, Any]) -> Path:
    """Write ``metadata`` beside ``exported_file``; returns the JSON path."""
    path = metadata_path(exported_file)
    path.write_text(json.dumps(metadata, indent=2) + "\n")
    return path


def read_metadata(exported_file: str | Path) -> dict[str, Any]:
    """The metadata of ``exported_file``, checked for the keys post-processing reads."""
    path = metadata_path(exported_file)
    if not path.is_file():
        raise FileNotFoundError(
            f"{path} not found: tools/export_model.py writes it beside {Path(exported_file).name}"
        )
    metadata = json.loads(path.read_text())
    missing = [key for key in REQUIRED_KEYS if key not in metadata]
    if missing:
        raise ValueError(f"{path} lacks the keys {missing}; re-export with tools/export_model.py")
    return metadata
