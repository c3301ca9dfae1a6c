"""CPU inference benchmark: our Mask2Former beside transformers' on the same weights.

Swin-T is timed for both implementations (random weights, COCO-panoptic head: 133 classes,
100 queries) and R50 for ours only (transformers' Mask2Former has no ResNet backbone
config equivalent to the original's). The network and the panoptic post-processing are timed
apart; numbers are medians over ``--repeats`` runs after one warm-up, with ``--threads``
intra-op threads.

    python bench/inference.py [--sizes 800x1333 512x683] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mask2former.config import get_cfg  # noqa: E402
from mask2former.hf import (  # noqa: E402
    Mask2FormerForUniversalSegmentation,
    Mask2FormerImageProcessor,
)
from mask2former.modeling.build import build_model  # noqa: E402
from mask2former.modeling.postprocessing import panoptic_inference  # noqa: E402

SWIN_T = {
    "embed_dim": 96,
    "depths": [2, 2, 6, 2],
    "num_heads": [3, 6, 12, 24],
    "window_size": 7,
    "drop_path_rate": 0.0,
    "out_features": ["stage1", "stage2", "stage3", "stage4"],
}
R50_YAML = os.path.join(
    ROOT, "configs", "coco", "panoptic-segmentation", "maskformer2_R50_bs16_50ep.yaml"
)


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def padded(size: tuple[int, int], divisor: int = 32) -> tuple[int, int]:
    return tuple(-(-side // divisor) * divisor for side in size)


def bench_swin(sizes: list[tuple[int, int]], repeats: int) -> list[tuple]:
    import transformers

    torch.manual_seed(0)
    config = transformers.Mask2FormerConfig(
        backbone_config=dict(SWIN_T, model_type="swin"), num_labels=133
    )
    theirs = transformers.Mask2FormerForUniversalSegmentation(config).eval()
    with tempfile.TemporaryDirectory() as directory:
        theirs.save_pretrained(directory)
        ours = Mask2FormerForUniversalSegmentation.from_pretrained(directory)
    our_processor = Mask2FormerImageProcessor()
    their_processor = transformers.Mask2FormerImageProcessor()
    rows = []
    for size in sizes:
        pixel_values = torch.randn(1, 3, *padded(size))
        with torch.no_grad():
            their_out = theirs(pixel_values)
            our_out = ours(pixel_values)
            diff = (
                (their_out.masks_queries_logits - our_out.masks_queries_logits).abs().max().item()
            )
            their_net = median_seconds(partial(theirs, pixel_values), repeats)
            our_net = median_seconds(partial(ours, pixel_values), repeats)
        kwargs = {"target_sizes": [size], "label_ids_to_fuse": set(range(80, 133))}
        their_post = median_seconds(
            partial(their_processor.post_process_panoptic_segmentation, their_out, **kwargs),
            repeats,
        )
        our_post = median_seconds(
            partial(our_processor.post_process_panoptic_segmentation, our_out, **kwargs),
            repeats,
        )
        rows.append(("Swin-T", size, our_net, their_net, our_post, their_post, diff))
    return rows


def _r50_network(model: torch.nn.Module, images: torch.Tensor) -> dict:
    return model.sem_seg_head(model.backbone(images))


def _r50_panoptic(outputs: dict, size: tuple[int, int]) -> tuple:
    masks = torch.nn.functional.interpolate(
        outputs["pred_masks"], size=size, mode="bilinear", align_corners=False
    )
    return panoptic_inference(
        outputs["pred_logits"][0],
        masks[0],
        object_mask_threshold=0.8,
        overlap_threshold=0.8,
        thing_ids=range(80),
    )


def bench_r50(sizes: list[tuple[int, int]], repeats: int) -> list[tuple]:
    cfg = get_cfg()
    cfg.merge_from_file(R50_YAML)
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.DATASETS.TRAIN = ()
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    rows = []
    for size in sizes:
        images = torch.randn(1, 3, *padded(size))
        with torch.no_grad():
            outputs = _r50_network(model, images)
            net = median_seconds(partial(_r50_network, model, images), repeats)
            post_time = median_seconds(partial(_r50_panoptic, outputs, size), repeats)
        rows.append(("R50", size, net, None, post_time, None, None))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["800x1333", "512x683"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-r50", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]
    rows = bench_swin(sizes, args.repeats)
    if not args.skip_r50:
        rows += bench_r50(sizes, args.repeats)

    def fmt(value: float | None) -> str:
        return "-" if value is None else f"{value * 1000:9.1f}"

    print(
        f"CPU, {args.threads} threads, median of {args.repeats} (ms); ratio = ours / transformers"
    )
    header = "model   input      ours-net  hf-net    ratio  ours-post  hf-post   ratio  max|dmask|"
    print(header)
    for name, size, our_net, their_net, our_post, their_post, diff in rows:
        net_ratio = "-" if their_net is None else f"{our_net / their_net:5.2f}"
        post_ratio = "-" if their_post is None else f"{our_post / their_post:5.2f}"
        mask_diff = "-" if diff is None else f"{diff:.1e}"
        print(
            f"{name:7s} {size[0]}x{size[1]:<5d} {fmt(our_net)} {fmt(their_net)} {net_ratio:>6s} "
            f"{fmt(our_post)} {fmt(their_post)} {post_ratio:>6s}  {mask_diff}"
        )


if __name__ == "__main__":
    main()
