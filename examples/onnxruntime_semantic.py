"""Semantic segmentation with an exported ONNX file, onnxruntime and numpy only (no torch).

    python tools/export_model.py --config-file configs/demo/mask2former_demo.yaml \\
        --format onnx --output export/demo MODEL.WEIGHTS output/demo/model_final.pth
    python examples/onnxruntime_semantic.py export/demo/model.onnx image.npy --output labels.npy

The image is an (H, W, 3) uint8 array in the config's INPUT.FORMAT (``.npy``, or any image
file when Pillow is installed, read as RGB), at most the exported size unless the file was
exported with --dynamic (then any size, padded to the size divisibility). The result is the
(H, W) class index of every pixel, computed as the model does: mask logits upsampled
bilinearly to the padded input, cropped, sigmoid, then class probabilities (no-object
dropped) times mask probabilities, summed over queries.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import onnxruntime


def read_image(path: Path) -> np.ndarray:
    if path.suffix == ".npy":
        return np.load(path)
    from PIL import Image  # only for image files

    return np.asarray(Image.open(path).convert("RGB"))


def bilinear_matrix(out_size: int, in_size: int) -> np.ndarray:
    """(out_size, in_size) weights of a 1-D bilinear resize, as align_corners=False."""
    source = np.maximum((np.arange(out_size) + 0.5) * in_size / out_size - 0.5, 0.0)
    low = np.floor(source).astype(np.int64)
    high = np.minimum(low + 1, in_size - 1)
    frac = (source - low).astype(np.float32)
    weights = np.zeros((out_size, in_size), np.float32)
    np.add.at(weights, (np.arange(out_size), low), 1.0 - frac)
    np.add.at(weights, (np.arange(out_size), high), frac)
    return weights


def semantic_labels(model_path: Path, image: np.ndarray, threads: int | None = None) -> np.ndarray:
    """(H, W) int64 class index per pixel of ``image`` ((H, W, 3) uint8)."""
    metadata = json.loads(model_path.with_suffix(".json").read_text())
    image_h, image_w = image.shape[:2]
    if metadata["dynamic"]:
        unit = max(metadata["size_divisibility"], 1)
        height, width = -(-image_h // unit) * unit, -(-image_w // unit) * unit
    else:
        height, width = metadata["height"], metadata["width"]
    if image_h > height or image_w > width:
        raise SystemExit(f"image {image_h}x{image_w} is larger than the exported {height}x{width}")
    # Padded with the pixel mean, which the graph normalises to 0, as the model pads.
    batch = np.empty((1, 3, height, width), np.float32)
    batch[0] = np.asarray(metadata["pixel_mean"], np.float32)[:, None, None]
    batch[0, :, :image_h, :image_w] = image.transpose(2, 0, 1)

    options = onnxruntime.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    session = onnxruntime.InferenceSession(
        str(model_path), options, providers=["CPUExecutionProvider"]
    )
    pred_logits, pred_masks = session.run(["pred_logits", "pred_masks"], {"image": batch})
    logits = pred_logits[0] - pred_logits[0].max(-1, keepdims=True)
    class_probs = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    rows = bilinear_matrix(height, pred_masks.shape[-2])[:image_h]
    cols = bilinear_matrix(width, pred_masks.shape[-1])[:image_w]
    mask_logits = np.einsum("hy,qyx,wx->qhw", rows, pred_masks[0], cols)
    mask_probs = 1.0 / (1.0 + np.exp(-mask_logits))
    scores = np.einsum("qk,qhw->khw", class_probs[:, :-1], mask_probs)
    return scores.argmax(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", type=Path, help="model.onnx (model.json beside it)")
    parser.add_argument("image", type=Path, help=".npy (H, W, 3) uint8 or an image file")
    parser.add_argument("--output", type=Path, required=True, help=".npy for the label map")
    parser.add_argument("--threads", type=int, help="onnxruntime intra-op threads")
    args = parser.parse_args()
    labels = semantic_labels(args.model, read_image(args.image), args.threads)
    np.save(args.output, labels)
    names = json.loads(args.model.with_suffix(".json").read_text()).get("class_names") or []
    present = np.unique(labels)
    print("classes present:", ", ".join(names[i] if i < len(names) else str(i) for i in present))


if __name__ == "__main__":
    main()
