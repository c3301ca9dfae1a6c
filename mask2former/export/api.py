"""``export_model``: a built ``MaskFormer`` to an exported file plus its metadata JSON."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from mask2former.export.metadata import FORMATS, SUFFIXES, export_metadata, write_metadata
from mask2former.export.network import ExportableNetwork
from mask2former.export.to_onnx import DEFAULT_OPSET, export_onnx
from mask2former.export.to_torch_export import export_program, save_program

logger = logging.getLogger(__name__)


def default_size(cfg: Any, size_divisibility: int) -> tuple[int, int]:
    """(height, width) of a landscape test image: MIN_SIZE_TEST by up to MAX_SIZE_TEST * 3/4
    (the 4:3 aspect of COCO images), rounded up to ``size_divisibility``."""
    unit = max(size_divisibility, 1)
    short = int(cfg.INPUT.MIN_SIZE_TEST)
    long = min(int(cfg.INPUT.MAX_SIZE_TEST), round(short * 4 / 3))
    return -(-short // unit) * unit, -(-long // unit) * unit


def export_model(
    model: Any,
    cfg: Any,
    *,
    export_format: str,
    output_dir: str | Path,
    height: int | None = None,
    width: int | None = None,
    dynamic: bool = False,
    opset: int = DEFAULT_OPSET,
    onnx_exporter: str = "torchscript",
    config_file: str = "",
) -> Path:
    """Export ``model``'s network to ``output_dir/model.{onnx,pt2}`` plus ``model.json``.

    Args:
        model: a ``MaskFormer`` (set to eval mode here).
        cfg: its config.
        export_format: "onnx" or "torch_export".
        output_dir: created if missing.
        height, width: the input size; ``default_size`` when None. Multiples of the size
            divisibility.
        dynamic: dynamic batch, height and width (multiples of the size divisibility).
        opset: ONNX opset (ignored by torch.export).
        onnx_exporter: "torchscript" or "dynamo" (see ``export_onnx``).
        config_file: recorded in the metadata.

    Returns:
        The exported file's path.
    """
    if export_format not in FORMATS:
        raise ValueError(f"export_format={export_format!r} is not one of {FORMATS}")
    model = model.eval()
    divisibility = int(model.size_divisibility)
    default_h, default_w = default_size(cfg, divisibility)
    height, width = height or default_h, width or default_w
    if divisibility > 1 and (height % divisibility or width % divisibility):
        raise ValueError(
            f"--height {height} --width {width}: both must be multiples of the size "
            f"divisibility {divisibility} (MODEL.MASK_FORMER.SIZE_DIVISIBILITY / the backbone's)"
        )
    output_dir = Path(output_dir)
    output_dir.mkdir(parents=True, exist_ok=True)
    path = output_dir / f"model{SUFFIXES[export_format]}"
    network = ExportableNetwork(model)
    if export_format == "onnx":
        export_onnx(
            network,
            path,
            height=height,
            width=width,
            dynamic=dynamic,
            size_divisibility=divisibility,
            opset=opset,
            exporter=onnx_exporter,
        )
    else:
        program = export_program(
            network, height=height, width=width, size_divisibility=divisibility, dynamic=dynamic
        )
        save_program(program, path)
    metadata = export_metadata(
        model,
        cfg,
        export_format=export_format,
        height=height,
        width=width,
        dynamic=dynamic,
        opset=opset if export_format == "onnx" else None,
        config_file=config_file,
    )
    write_metadata(path, metadata)
    return path
