"""``mask2former-app`` / ``python demo/app.py``: serve the web demo on 127.0.0.1.

Examples::

    mask2former-app                                  # the main job's model, if trained
    mask2former-app --config-file configs/demo/mask2former_demo.yaml \\
        --opts MODEL.WEIGHTS output/demo/model_final.pth TEST.AMP.ENABLED True
    mask2former-app --hf-model path/to/save_pretrained_dir --bfloat16 --port 8080

Then open http://127.0.0.1:7860 (or the given port) in a browser.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
from collections.abc import Sequence

from mask2former.app.inputs import InputLimits, example_images
from mask2former.app.segmenter import (
    ConfigSegmenter,
    Segmenter,
    TransformersSegmenter,
    config_from_file,
)
from mask2former.app.ui import build_app, require_gradio

logger = logging.getLogger("mask2former.app")

__all__ = ["DEFAULT_CONFIG", "DEFAULT_WEIGHTS", "get_parser", "load_segmenter", "main"]

# The main job's model (README quick start), served when no model is given.
DEFAULT_CONFIG = "configs/demo/mask2former_demo.yaml"
DEFAULT_WEIGHTS = os.path.join("output", "demo", "model_final.pth")
HOST = "127.0.0.1"


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Mask2Former web demo (gradio), served on 127.0.0.1.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    model = parser.add_mutually_exclusive_group()
    model.add_argument("--config-file", metavar="FILE", help="YAML config (path or shipped name)")
    model.add_argument("--hf-model", metavar="DIR", help="a transformers-style model folder")
    parser.add_argument("--port", type=int, default=7860, help="port on 127.0.0.1")
    parser.add_argument(
        "--bfloat16",
        action="store_true",
        help="run the network in bfloat16 (TEST.AMP.ENABLED True for --config-file)",
    )
    parser.add_argument(
        "--score-threshold",
        type=float,
        default=None,
        help="start value of the page's score threshold (default: the model's own)",
    )
    parser.add_argument(
        "--batch-size", type=int, default=4, help="images per forward pass (folder / video)"
    )
    limits = InputLimits()
    parser.add_argument(
        "--max-pixels",
        type=int,
        default=limits.max_pixels,
        help="largest image (height * width) accepted",
    )
    parser.add_argument(
        "--max-video-frames",
        type=int,
        default=limits.max_video_frames,
        help="frames read from one video",
    )
    parser.add_argument(
        "--examples-dir",
        default=os.path.join(tempfile.gettempdir(), "mask2former-app"),
        help="where the example images are generated on first use",
    )
    parser.add_argument(
        "--opts",
        default=[],
        nargs=argparse.REMAINDER,
        help="config overrides as KEY VALUE pairs, e.g. MODEL.WEIGHTS model_final.pth",
    )
    return parser


def load_segmenter(args: argparse.Namespace) -> Segmenter:
    """The model named by the command line (the main job's model without one).

    Raises:
        SystemExit: no model given and the main job's model is not there (says how to get one).
    """
    if args.hf_model:
        if args.opts:
            raise SystemExit("--opts applies to --config-file, not to --hf-model")
        return TransformersSegmenter(args.hf_model, bfloat16=args.bfloat16)
    opts = list(args.opts)
    if args.config_file is None:
        if not os.path.isfile(DEFAULT_WEIGHTS):
            raise SystemExit(
                f"No model given, and the main job's model {DEFAULT_WEIGHTS} is not here. "
                f"Train it (about 7 minutes on 2 CPU cores) with\n"
                f"  python tools/train_net.py --config-file {DEFAULT_CONFIG}\n"
                "or pass --config-file CFG --opts MODEL.WEIGHTS FILE, or --hf-model DIR."
            )
        args.config_file = DEFAULT_CONFIG
        opts = ["MODEL.WEIGHTS", DEFAULT_WEIGHTS, *opts]
    if args.bfloat16:
        opts += ["TEST.AMP.ENABLED", "True", "TEST.AMP.DTYPE", "bfloat16"]
    try:
        cfg = config_from_file(args.config_file, opts)
    except (FileNotFoundError, ValueError, KeyError) as e:
        raise SystemExit(f"cannot load the config: {e}") from e
    if not cfg.MODEL.WEIGHTS:
        logger.warning("MODEL.WEIGHTS is empty: the model has random weights")
    return ConfigSegmenter(cfg)


def main(argv: Sequence[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    for name in ("port", "batch_size", "max_pixels", "max_video_frames"):
        if getattr(args, name) < 1:
            raise SystemExit(f"--{name.replace('_', '-')} must be >= 1, got {getattr(args, name)}")
    # gradio is the optional [app] extra: say so before loading the model.
    try:
        require_gradio()
    except ModuleNotFoundError as e:
        raise SystemExit(str(e)) from e
    segmenter = load_segmenter(args)
    limits = InputLimits(max_pixels=args.max_pixels, max_video_frames=args.max_video_frames)
    app = build_app(
        segmenter,
        limits=limits,
        examples=example_images(args.examples_dir),
        batch_size=args.batch_size,
        score_threshold=args.score_threshold,
    )
    logger.info("Serving %s on http://%s:%d", segmenter.description, HOST, args.port)
    app.launch(server_name=HOST, server_port=args.port, show_error=False)
