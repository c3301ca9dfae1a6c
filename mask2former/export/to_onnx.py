"""ONNX export: MSDeformAttn as standard ops (``GridSample``) through the PyTorch reference."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from mask2former.export.network import OUTPUT_NAMES, ExportableNetwork
from mask2former.export.to_torch_export import dynamic_image_shapes
from mask2former.layers.ms_deform_attn import use_reference_backend

logger = logging.getLogger(__name__)

# GridSample entered the default ONNX domain in opset 16.
MIN_OPSET = 16
DEFAULT_OPSET = 17
# "torchscript": torch.onnx's traced exporter (seconds; torch calls it legacy since 2.9);
# "dynamo": its torch.export-based one (minutes on a CPU, torch's default).
EXPORTERS = ("torchscript", "dynamo")


def export_onnx(
    network: ExportableNetwork,
    path: str | Path,
    *,
    height: int,
    width: int,
    dynamic: bool = False,
    size_divisibility: int = 32,
    opset: int = DEFAULT_OPSET,
    exporter: str = "torchscript",
) -> Path:
    """Write ``network`` as an ONNX file checked by ``onnx.checker``.

    MSDeformAttn runs through the PyTorch reference, whose level sizes both exporters record
    as graph values, so with ``dynamic`` one graph takes any batch, height and width.

    Args:
        network: the network to export (eval mode is set here).
        path: the ``.onnx`` file to write.
        height, width: the example input size, multiples of ``size_divisibility``.
        dynamic: batch, height and width are dynamic axes (else the graph takes one image of
            ``height`` x ``width``).
        size_divisibility: with ``dynamic``, height and width stay multiples of it (the
            "dynamo" exporter checks this; the graph's users pad to it).
        opset: ONNX opset, at least ``MIN_OPSET``.
        exporter: one of ``EXPORTERS``.

    Returns:
        ``path``.
    """
    try:
        import onnx
    except ImportError as error:
        raise ImportError(
            "ONNX export needs the onnx package: pip install 'mask2former[export]'"
        ) from error
    if opset < MIN_OPSET:
        raise ValueError(f"opset={opset}: MSDeformAttn needs GridSample, opset >= {MIN_OPSET}")
    if exporter not in EXPORTERS:
        raise ValueError(f"exporter={exporter!r} is not one of {EXPORTERS}")
    path = Path(path)
    network = network.eval()
    # A batch of 2 so that no size-1 broadcast is baked into the batch axis.
    example = torch.rand(2 if dynamic else 1, 3, height, width) * 255
    names = {"input_names": ["image"], "output_names": list(OUTPUT_NAMES)}
    with torch.no_grad(), use_reference_backend():
        if exporter == "dynamo":
            dynamic_shapes = dynamic_image_shapes(size_divisibility) if dynamic else None
            program = torch.onnx.export(
                network,
                (example,),
                dynamo=True,
                opset_version=opset,
                dynamic_shapes=dynamic_shapes,
                **names,
            )
            program.save(str(path))
        else:
            torch.onnx.export(
                network,
                (example,),
                str(path),
                dynamo=False,
                opset_version=opset,
                dynamic_axes=_dynamic_axes() if dynamic else None,
                **names,
            )
    onnx.checker.check_model(str(path))
    logger.info(
        "Wrote %s (opset %d, %s exporter, %s)",
        path,
        opset,
        exporter,
        "dynamic batch, height and width" if dynamic else f"input 1x3x{height}x{width}",
    )
    return path


def _dynamic_axes() -> dict[str, dict[int, str]]:
    # The masks are at a quarter of the input size: their own axis names, as the exporter
    # cannot state the relation.
    return {
        "image": {0: "batch", 2: "height", 3: "width"},
        "pred_logits": {0: "batch"},
        "pred_masks": {0: "batch", 2: "mask_height", 3: "mask_width"},
    }
