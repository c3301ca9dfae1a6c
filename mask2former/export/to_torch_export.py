"""torch.export: an ``ExportedProgram`` that keeps the compiled MSDeformAttn op."""

from __future__ import annotations

import logging
from pathlib import Path

import torch

from mask2former.export.network import ExportableNetwork

logger = logging.getLogger(__name__)

# Upper bound of the dynamic height and width, in units of the size divisibility.
MAX_SIZE_UNITS = 256


def dynamic_image_shapes(size_divisibility: int) -> dict[str, dict[int, object]]:
    """torch.export ``dynamic_shapes`` of the ``image`` input: any batch, and height and width
    any multiple of ``size_divisibility`` up to ``MAX_SIZE_UNITS`` of it."""
    unit = max(size_divisibility, 1)
    rows = torch.export.Dim("height_units", min=1, max=MAX_SIZE_UNITS)
    cols = torch.export.Dim("width_units", min=1, max=MAX_SIZE_UNITS)
    batch = torch.export.Dim("batch", min=1, max=1024)
    return {"image": {0: batch, 2: unit * rows, 3: unit * cols}}


def export_program(
    network: ExportableNetwork,
    *,
    height: int,
    width: int,
    size_divisibility: int,
    dynamic: bool = False,
) -> torch.export.ExportedProgram:
    """Export ``network`` with ``torch.export`` (eval mode is set here).

    MSDeformAttn stays one ``mask2former::ms_deform_attn_forward`` node when the compiled
    kernel is loaded (its fake implementation traces it), else the reference's ops.

    Args:
        network: the network to export.
        height, width: the example input size, multiples of ``size_divisibility``.
        size_divisibility: with ``dynamic``, height and width stay multiples of it.
        dynamic: batch, height and width are dynamic.
    """
    network = network.eval()
    # Batch 2: torch.export specialises dimensions of size 1.
    example = torch.rand(2 if dynamic else 1, 3, height, width) * 255
    dynamic_shapes = dynamic_image_shapes(size_divisibility) if dynamic else None
    with torch.no_grad():
        return torch.export.export(network, (example,), dynamic_shapes=dynamic_shapes)


def save_program(program: torch.export.ExportedProgram, path: str | Path) -> Path:
    """Write ``program`` as a ``.pt2`` file (``torch.export.load`` reads it)."""
    path = Path(path)
    torch.export.save(program, str(path))
    logger.info("Wrote %s", path)
    return path
