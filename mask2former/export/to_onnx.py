"""ONNX export: MSDeformAttn as standard ops (``GridSample``) through the PyTorch reference."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from mask2former.export.network import OUTPUT_NAMES, ExportableNetwork
from mask2former.layers.ms_deform_attn import use_reference_backend

logger = logging.getLogger(__name__)

# GridSample entered the default ONNX domain in opset 16.
MIN_OPSET = 16
DEFAULT_OPSET = 17


def export_onnx(
    network: ExportableNetwork,
    path: str | Path,
    *,
    height: int,
    width: int,
    dynamic_batch: bool = False,
    opset: int = DEFAULT_OPSET,
) -> Path:
    """Write ``network`` as an ONNX file checked by ``onnx.checker``.

    The graph is traced (the TorchScript exporter, ``dynamo=False``): the deformable encoder's
    level sizes become constants, so height and width are fixed; the batch axis can be dynamic.

    Args:
        network: the network to export (eval mode is set here).
        path: the ``.onnx`` file to write.
        height, width: the input size, multiples of the model's size divisibility.
        dynamic_batch: make the batch axis of the input and outputs dynamic.
        opset: ONNX opset, at least ``MIN_OPSET``.

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
    path = Path(path)
    network = network.eval()
    # A batch of 2 so that no size-1 broadcast is baked into the traced batch axis.
    example = torch.rand(2 if dynamic_batch else 1, 3, height, width) * 255
    dynamic_axes = None
    if dynamic_batch:
        dynamic_axes = {"image": {0: "batch"}, **{name: {0: "batch"} for name in OUTPUT_NAMES}}
    with torch.no_grad(), use_reference_backend():
        torch.onnx.export(
            network,
            (example,),
            str(path),
            dynamo=False,
            opset_version=opset,
            input_names=["image"],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes=dynamic_axes,
        )
    onnx.checker.check_model(str(path))
    logger.info("Wrote %s (opset %d, input %dx%d)", path, opset, height, width)
    return path
