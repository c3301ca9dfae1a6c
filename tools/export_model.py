"""Export a Mask2Former config's network to ONNX or torch.export (``.pt2``).

Examples::

    python tools/export_model.py --config-file configs/demo/mask2former_demo.yaml \\
        --format onnx --output export/demo MODEL.WEIGHTS output/demo/model_final.pth
    python tools/export_model.py --format torch_export --dynamic --output export/r50 \\
        --config-file configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml \\
        MODEL.WEIGHTS model_final.pkl

The graph takes ``image``, float32 (N, 3, H, W) pixel values 0-255 in the config's
INPUT.FORMAT (normalisation is inside), and returns ``pred_logits`` (N, Q, K + 1) and
``pred_masks`` (N, Q, H / 4, W / 4). OUTPUT/model.json holds the sizes and the
post-processing settings; ``mask2former.export.ExportedPredictor`` runs the file.

ONNX holds MSDeformAttn as standard ops (GridSample, opset >= 16); torch.export keeps the
compiled op. Without --dynamic the graph takes one image of --height x --width; with it, any
batch, height and width (multiples of the size divisibility, which callers pad to).
--onnx-exporter dynamo uses torch's torch.export-based ONNX exporter (minutes on a CPU)
instead of the traced one (seconds).
"""

from __future__ import annotations

import argparse
import logging
import sys
import time

import torch

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.config import get_cfg
from mask2former.data import register_builtin
from mask2former.export import export_model
from mask2former.export.metadata import FORMATS
from mask2former.export.to_onnx import DEFAULT_OPSET, EXPORTERS
from mask2former.modeling import build_model

logger = logging.getLogger("mask2former.export_model")


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Export a Mask2Former network to ONNX or torch.export.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument("--config-file", required=True, metavar="FILE", help="YAML config")
    parser.add_argument("--format", required=True, choices=FORMATS, help="exporter")
    parser.add_argument("--output", required=True, metavar="DIR", help="output directory")
    parser.add_argument("--height", type=int, help="input height (default from INPUT.*_TEST)")
    parser.add_argument("--width", type=int, help="input width (default from INPUT.*_TEST)")
    parser.add_argument("--dynamic", action="store_true", help="dynamic batch, height, width")
    parser.add_argument("--opset", type=int, default=DEFAULT_OPSET, help="ONNX opset (>= 16)")
    parser.add_argument(
        "--onnx-exporter", choices=EXPORTERS, default="torchscript", help="torch.onnx exporter"
    )
    parser.add_argument("opts", nargs=argparse.REMAINDER, help="config overrides: KEY VALUE ...")
    return parser


def setup_cfg(args: argparse.Namespace):
    cfg = get_cfg()
    cfg.merge_from_file(args.config_file)
    cfg.merge_from_list(args.opts)
    # Exported graphs run on the CPU here; the weights load onto it.
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def main(argv: list[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    register_builtin()
    cfg = setup_cfg(args)
    model = build_model(cfg).eval()
    if cfg.MODEL.WEIGHTS:
        DetectionCheckpointer(model).load(cfg.MODEL.WEIGHTS)
    else:
        logger.warning("MODEL.WEIGHTS is empty: exporting randomly initialised weights")
    start = time.perf_counter()
    path = export_model(
        model,
        cfg,
        export_format=args.format,
        output_dir=args.output,
        height=args.height,
        width=args.width,
        dynamic=args.dynamic,
        opset=args.opset,
        onnx_exporter=args.onnx_exporter,
        config_file=args.config_file,
    )
    print(
        f"Exported {path} (+ {path.with_suffix('.json').name}) in "
        f"{time.perf_counter() - start:.1f} s"
    )


if __name__ == "__main__":
    torch.set_grad_enabled(False)
    sys.exit(main())
