"""Post-processing benchmark: today's code beside the frozen pre-speed-up reference.

Times MaskFormer's inference tail, from the network outputs (class logits (B, Q, K + 1) and
mask logits at 1/4 of the padded size) to the result dicts, including the mask upsampling,
for semantic, instance and panoptic inference alone and all three together; and the
transformers-style ``post_process_*`` methods beside transformers' own (when installed).
Two kinds of logits: "random" (no query passes the panoptic threshold) and "trained"
(confident classes, sharp overlapping masks: many pass), from the equivalence tests. Numbers
are medians in ms over ``--repeats`` interleaved rounds after one warm-up, with ``--threads``
intra-op threads; the ratio is reference / ours.

    python bench/postprocessing.py [--sizes 512x683 800x1333] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import os
import sys
from functools import partial
from types import SimpleNamespace

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.timing import interleaved_medians  # noqa: E402
from mask2former.hf import Mask2FormerImageProcessor  # noqa: E402
from mask2former.modeling.postprocessing import postprocess_batch  # noqa: E402
from tests.modeling import _reference_postprocessing as reference  # noqa: E402
from tests.modeling.test_postprocessing_equivalence import make_logits  # noqa: E402

TASKS = {
    "semantic": {"semantic_on": True, "panoptic_on": False, "instance_on": False},
    "instance": {"semantic_on": False, "panoptic_on": False, "instance_on": True},
    "panoptic": {"semantic_on": False, "panoptic_on": True, "instance_on": False},
    "all three": {"semantic_on": True, "panoptic_on": True, "instance_on": True},
}
COCO_THINGS = list(range(80))  # COCO panoptic: the first 80 of the 133 classes are things


def network_outputs(
    kind: str, size: tuple[int, int], num_queries: int, num_classes: int
) -> tuple[torch.Tensor, torch.Tensor, tuple[int, int]]:
    """(1, Q, K + 1) class logits, (1, Q, H_pad / 4, W_pad / 4) mask logits, padded size."""
    padded = tuple(-(-side // 32) * 32 for side in size)
    class_logits, mask_logits = make_logits(
        kind, num_queries, num_classes, padded[0] // 4, padded[1] // 4
    )
    return class_logits[None], mask_logits[None], padded


def bench_tail(sizes, kinds, num_queries, num_classes, repeats) -> list[tuple]:
    rows = []
    for size in sizes:
        for kind in kinds:
            class_logits, mask_logits, padded = network_outputs(
                kind, size, num_queries, num_classes
            )
            fns = {}
            for task, switches in TASKS.items():
                options = {
                    **switches,
                    "sem_seg_postprocess_before_inference": True,
                    "object_mask_threshold": 0.8,
                    "overlap_threshold": 0.8,
                    "test_topk_per_image": 100,
                    "thing_ids": COCO_THINGS,
                }
                args = (class_logits, mask_logits, padded, [size], [size])
                fns[(task, "reference")] = partial(
                    reference.reference_inference_tail, *args, **options
                )
                fns[(task, "ours")] = partial(postprocess_batch, *args, **options)
            with torch.no_grad():
                medians = {k: 1000 * v for k, v in interleaved_medians(fns, repeats).items()}
            for task in TASKS:
                before, after = medians[(task, "reference")], medians[(task, "ours")]
                rows.append((f"{size[0]}x{size[1]}", kind, task, before, after))
    return rows


def bench_hf(sizes, kinds, num_queries, num_classes, repeats) -> list[tuple]:
    try:
        import transformers
    except ImportError:
        print("transformers is not installed: skipping the transformers-style rows")
        return []
    processors = {
        "reference": transformers.Mask2FormerImageProcessor(),
        "ours": Mask2FormerImageProcessor(),
    }
    rows = []
    for size in sizes:
        for kind in kinds:
            class_logits, mask_logits, _ = network_outputs(kind, size, num_queries, num_classes)
            outputs = SimpleNamespace(
                class_queries_logits=class_logits, masks_queries_logits=mask_logits
            )
            calls = {
                "semantic": ("post_process_semantic_segmentation", {}),
                "instance": ("post_process_instance_segmentation", {}),
                "panoptic": (
                    "post_process_panoptic_segmentation",
                    {"label_ids_to_fuse": set(range(80, num_classes))},
                ),
            }
            fns = {}
            for task, (method, options) in calls.items():
                for name, processor in processors.items():
                    fns[(task, name)] = partial(
                        getattr(processor, method), outputs, target_sizes=[size], **options
                    )
            with torch.no_grad():
                medians = {k: 1000 * v for k, v in interleaved_medians(fns, repeats).items()}
            for task in calls:
                before, after = medians[(task, "reference")], medians[(task, "ours")]
                rows.append((f"{size[0]}x{size[1]}", kind, f"hf {task}", before, after))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", nargs="+", default=["512x683", "800x1333"])
    parser.add_argument("--kinds", nargs="+", default=["random", "trained"])
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--classes", type=int, default=133)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--no-hf", action="store_true", help="skip the transformers-style rows")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(side) for side in size.split("x")) for size in args.sizes]
    common = (sizes, args.kinds, args.queries, args.classes, args.repeats)
    rows = bench_tail(*common)
    if not args.no_hf:
        rows += bench_hf(*common)
    print(
        f"post-processing, {args.queries} queries, {args.classes} classes, "
        f"{args.threads} threads, median of {args.repeats} (ms); hf rows: reference = "
        "transformers' Mask2FormerImageProcessor"
    )
    print(f"{'size':>9} {'logits':>8} {'task':>13} {'reference':>10} {'ours':>8} {'ratio':>6}")
    for size, kind, task, before, after in rows:
        print(f"{size:>9} {kind:>8} {task:>13} {before:10.1f} {after:8.1f} {before / after:6.2f}")


if __name__ == "__main__":
    main()
