#!/usr/bin/env python
"""Mask2Former demo: visualise predictions on images, a video or a webcam stream.

Examples::

    python demo/demo.py \\
        --config-file configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml \\
        --input "images/*.jpg" --output out/ --opts MODEL.WEIGHTS model_final.pkl
    python demo/demo.py --config-file ... --video-input clip.mp4 --output out/
    python demo/demo.py --config-file ... --input a.png --output out/ --save-raw
    python demo/demo.py --config-file ... --input "images/*.jpg" --output out/ --batch-size 4 \\
        --opts TEST.AMP.ENABLED True   # bfloat16 network on the CPU
    python demo/demo.py --exported export/demo/model.onnx --input a.png --output out/

``--exported FILE`` runs a file written by ``tools/export_model.py`` (ONNX with onnxruntime or
OpenVINO, ``.pt2`` with torch.export) instead of the PyTorch model; the config (by default the
one the file was exported from) then only gives the resizing and the class names.

Images are written to ``--output`` under their input file name and at their input size; a
video ``clip.mp4`` becomes ``<output>/clip.mp4`` (``.avi`` inputs stay ``.avi``) with the same
frame count. ``--save-raw`` also writes ``sem_seg/``, ``panoptic/`` + ``panoptic.json`` and
``instances.json`` (see ``mask2former.evaluation.prediction_files``).
"""

from __future__ import annotations

import argparse
import glob
import logging
import os
import sys
from collections.abc import Iterator, Sequence

import cv2
import numpy as np
import torch
import torch.utils.data as torchdata
import tqdm

from mask2former.config import get_cfg
from mask2former.data import register_builtin, register_custom_datasets
from mask2former.data.detection_utils import read_image
from mask2former.evaluation.prediction_files import RawPredictionWriter
from mask2former.export.predictor import BACKENDS, ExportedPredictor
from mask2former.predictor import ImagePreprocessor, Predictor
from mask2former.utils.visualizer import TASKS, draw_predictions

logger = logging.getLogger("mask2former.demo")

WINDOW_NAME = "mask2former demo"
DEFAULT_CONFIG = "configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml"
_IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
# Containers whose codec OpenCV writes everywhere (no x264 licence needed).
_VIDEO_CODECS = {".avi": "MJPG", ".mp4": "mp4v"}


def get_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        description="Mask2Former demo on images, a video or a webcam.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog=__doc__.split("\n\n", 1)[1],
    )
    parser.add_argument(
        "--config-file",
        metavar="FILE",
        help=f"path to a YAML config (default: {DEFAULT_CONFIG}, or with --exported the config "
        "recorded in its model.json)",
    )
    parser.add_argument(
        "--exported",
        metavar="FILE",
        help="run this exported model (.onnx / .pt2 from tools/export_model.py, model.json "
        "beside it) instead of building the PyTorch model",
    )
    parser.add_argument(
        "--exported-backend",
        choices=BACKENDS,
        help="runtime of --exported (default: torch_export for .pt2, else onnxruntime)",
    )
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument(
        "--input", nargs="+", help="image files, folders or glob patterns such as 'dir/*.jpg'"
    )
    source.add_argument("--video-input", help="path to a video file")
    source.add_argument("--webcam", action="store_true", help="read frames from webcam 0")
    parser.add_argument(
        "--output",
        help="folder for the visualisations (created); without it they are shown in a window",
    )
    parser.add_argument(
        "--confidence-threshold",
        type=float,
        default=0.5,
        help="minimum score of drawn instance predictions",
    )
    parser.add_argument(
        "--task",
        choices=TASKS,
        default="auto",
        help="prediction to draw; auto: panoptic, else instances, else semantic",
    )
    parser.add_argument("--batch-size", type=int, default=1, help="images per forward pass")
    parser.add_argument(
        "--num-workers",
        type=int,
        default=1,
        help="background processes that read and resize the next images while the model runs "
        "(0: in the main process)",
    )
    parser.add_argument("--alpha", type=float, default=0.5, help="opacity of the mask colours")
    parser.add_argument("--no-contours", action="store_true", help="do not outline segments")
    parser.add_argument("--no-labels", action="store_true", help="do not write class names")
    parser.add_argument(
        "--save-raw",
        action="store_true",
        help="also write the raw predictions (PNG / COCO JSON) into --output",
    )
    parser.add_argument(
        "--opts",
        default=[],
        nargs=argparse.REMAINDER,
        help="config overrides as KEY VALUE pairs, e.g. MODEL.WEIGHTS model_final.pkl",
    )
    return parser


def setup_cfg(args: argparse.Namespace, config_file: str):
    """The frozen config of ``config_file`` with ``--opts`` merged in."""
    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(args.opts)
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE is %s but CUDA is not available; using cpu", cfg.MODEL.DEVICE)
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def expand_inputs(patterns: Sequence[str]) -> list[str]:
    """Files named by ``--input``: paths, folders (their images) and glob patterns, in order."""
    paths: list[str] = []
    for pattern in patterns:
        pattern = os.path.expanduser(pattern)
        if os.path.isdir(pattern):
            found = sorted(
                os.path.join(pattern, name)
                for name in os.listdir(pattern)
                if name.lower().endswith(_IMAGE_EXTENSIONS)
            )
        elif os.path.isfile(pattern):
            found = [pattern]
        else:
            found = sorted(glob.glob(pattern))
        if not found:
            raise FileNotFoundError(f"--input {pattern!r} matches no image file")
        paths += found
    names = [os.path.basename(p) for p in paths]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise ValueError(f"--input: several inputs share the output name(s) {duplicates}")
    return paths


class _ImageFiles(torchdata.Dataset):
    """Reads and resizes image files (in data-loader workers): (path, BGR image, model input)."""

    def __init__(self, paths: Sequence[str], preprocessor: ImagePreprocessor) -> None:
        self.paths = list(paths)
        self.preprocessor = preprocessor

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> tuple[str, np.ndarray | None, dict | str]:
        path = self.paths[index]
        try:
            image = read_image(path, format="BGR")
            return path, image, self.preprocessor(image)
        except (OSError, ValueError) as e:  # reported by name; the other images go on
            return path, None, str(e)


def _list_collate(batch: list) -> list:
    return batch


def _output_path(output_dir: str, name: str, input_path: str | None) -> str:
    """``output_dir/name``, refusing to overwrite the input it is made from."""
    out_path = os.path.join(output_dir, name)
    if input_path and os.path.abspath(out_path) == os.path.abspath(input_path):
        raise ValueError(f"--output {output_dir!r} would overwrite the input {input_path!r}")
    return out_path


def _show(window: str, image_bgr: np.ndarray, delay_ms: int) -> bool:
    """Show a frame; returns False when the user pressed Esc."""
    try:
        cv2.namedWindow(window, cv2.WINDOW_NORMAL)
        cv2.imshow(window, image_bgr)
        return cv2.waitKey(delay_ms) != 27
    except cv2.error as e:
        raise RuntimeError(
            "Cannot open a window (headless OpenCV or no display); pass --output DIR"
        ) from e


def run_on_images(args: argparse.Namespace, predictor: Predictor, draw_kwargs: dict) -> None:
    paths = expand_inputs(args.input)
    writer = RawPredictionWriter(args.output, predictor.metadata) if args.save_raw else None
    loader = torchdata.DataLoader(
        _ImageFiles(paths, predictor.preprocessor),
        batch_size=args.batch_size,
        num_workers=args.num_workers,
        collate_fn=_list_collate,
    )
    # tqdm's rate reads "image/s": decoding overlaps the model, drawing does not.
    failed: list[str] = []
    with tqdm.tqdm(total=len(paths), unit="image", disable=not args.output) as progress:
        for batch in loader:
            for path, _, error in (item for item in batch if item[1] is None):
                logger.error("Skipping %s: %s", path, error)
                failed.append(path)
                progress.update(1)
            batch = [item for item in batch if item[1] is not None]
            outputs = predictor.run([inputs for _, _, inputs in batch])
            for (path, image, _), predictions in zip(batch, outputs):
                vis_rgb = draw_predictions(
                    image[:, :, ::-1], predictions, predictor.metadata, **draw_kwargs
                )
                if writer is not None:
                    writer.add(os.path.splitext(os.path.basename(path))[0], predictions)
                if args.output:
                    out_path = _output_path(args.output, os.path.basename(path), path)
                    if not cv2.imwrite(out_path, vis_rgb[:, :, ::-1]):
                        raise OSError(f"cv2.imwrite could not write {out_path}")
                elif not _show(WINDOW_NAME, vis_rgb[:, :, ::-1], 0):
                    return
                progress.update(1)
    if writer is not None:
        writer.close()
    if failed:
        raise SystemExit(f"{len(failed)} of {len(paths)} images failed: {', '.join(failed)}")


def _frames(capture: cv2.VideoCapture) -> Iterator[np.ndarray]:
    while capture.isOpened():
        ok, frame = capture.read()
        if not ok:
            break
        yield frame


def run_on_stream(
    args: argparse.Namespace, predictor: Predictor, draw_kwargs: dict, capture: cv2.VideoCapture
) -> None:
    """Visualise every frame of ``capture`` (BGR frames) into a video file or a window."""
    if args.video_input:
        stem, ext = os.path.splitext(os.path.basename(args.video_input))
        window = os.path.basename(args.video_input)
    else:
        stem, ext, window = "webcam", ".mp4", WINDOW_NAME
    ext = ext.lower() if ext.lower() in _VIDEO_CODECS else ".mp4"
    num_frames = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or None
    fps = capture.get(cv2.CAP_PROP_FPS) or 30.0
    writer = None
    try:
        for frame in tqdm.tqdm(_frames(capture), total=num_frames, unit="frame"):
            predictions = predictor(frame)
            vis_bgr = draw_predictions(
                frame[:, :, ::-1], predictions, predictor.metadata, **draw_kwargs
            )[:, :, ::-1]
            if not args.output:
                if not _show(window, np.ascontiguousarray(vis_bgr), 1):
                    break
                continue
            if writer is None:
                out_path = _output_path(args.output, stem + ext, args.video_input)
                height, width = frame.shape[:2]
                fourcc = cv2.VideoWriter_fourcc(*_VIDEO_CODECS[ext])
                writer = cv2.VideoWriter(out_path, fourcc, float(fps), (width, height), True)
                if not writer.isOpened():
                    raise OSError(f"cv2.VideoWriter cannot write {out_path}")
            writer.write(np.ascontiguousarray(vis_bgr))
    finally:
        capture.release()
        if writer is not None:
            writer.release()


def main(argv: Sequence[str] | None = None) -> None:
    args = get_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[%(asctime)s %(name)s] %(message)s")
    if args.batch_size < 1:
        raise SystemExit(f"--batch-size must be >= 1, got {args.batch_size}")
    if args.num_workers < 0:
        raise SystemExit(f"--num-workers must be >= 0, got {args.num_workers}")
    if args.save_raw and not (args.output and args.input):
        raise SystemExit("--save-raw needs --input images and --output")
    logger.info("Arguments: %s", vars(args))
    if args.exported_backend and not args.exported:
        raise SystemExit("--exported-backend needs --exported FILE")
    register_builtin()
    exported = ExportedPredictor(args.exported, args.exported_backend) if args.exported else None
    config_file = args.config_file
    if config_file is None and exported is not None:
        config_file = exported.metadata["config_file"]
    cfg = setup_cfg(args, config_file or DEFAULT_CONFIG)
    register_custom_datasets(cfg)  # class names of a DATASETS.CUSTOM dataset
    if exported is not None:
        exported.check_config(cfg)
    if args.output:
        os.makedirs(args.output, exist_ok=True)
    predictor = Predictor(cfg, model=exported)
    draw_kwargs = {
        "task": args.task,
        "confidence_threshold": args.confidence_threshold,
        "alpha": args.alpha,
        "draw_contours": not args.no_contours,
        "draw_labels": not args.no_labels,
    }
    if args.input:
        run_on_images(args, predictor, draw_kwargs)
    else:
        if args.video_input and not os.path.isfile(args.video_input):
            raise SystemExit(f"--video-input {args.video_input!r} does not exist")
        capture = cv2.VideoCapture(args.video_input if args.video_input else 0)
        if not capture.isOpened():
            raise SystemExit(f"cannot open {'--video-input' if args.video_input else 'webcam 0'}")
        run_on_stream(args, predictor, draw_kwargs, capture)


if __name__ == "__main__":
    sys.exit(main())
