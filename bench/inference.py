"""CPU inference benchmark: network, post-processing and full ``model([x])``, float32 and bfloat16.

Two tables, random weights, COCO panoptic heads (133 classes, 100 queries):

1. detectron2 door, per model (R50, Swin-T configs) and input size: the network
   (backbone + pixel decoder + transformer decoder), the full ``model([{"image", "height",
   "width"}])`` with semantic + instance + panoptic inference on, and their difference
   (pre-processing + upsampling + post-processing), in float32 and under bfloat16 autocast.
2. transformers door, Swin-T beside the ``transformers`` package on the same weights: the
   network and ``post_process_panoptic_segmentation``, in float32 and bfloat16 autocast.

With ``--backends torch,onnxruntime,openvino`` instead: per model, PyTorch eager beside the
network exported to ONNX and run by onnxruntime / OpenVINO (``bench/export_backends.py``),
float32, network alone and full call, at the first ``--sizes`` entry.

Numbers are medians over ``--repeats`` runs after one warm-up, the compared variants
interleaved, with ``--threads`` intra-op threads. ``--profile`` prints the top operators of one
full float32 R50 call. The original implementation is timed by ``bench/vs_original.py``.

    python bench/inference.py [--sizes 512x683 800x1333] [--repeats 3] [--threads 2] \
        [--models R50 Swin-T] [--dtypes float32 bfloat16] [--skip-hf] [--profile]
    python bench/inference.py --backends torch,onnxruntime,openvino --models R50 demo \
        --sizes 512x683 --repeats 5
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from collections.abc import Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from bench.export_backends import BACKENDS, bench_backends, print_backend_table  # noqa: E402
from bench.timing import interleaved_medians  # noqa: E402
from mask2former.config import get_cfg  # noqa: E402
from mask2former.hf import (  # noqa: E402
    Mask2FormerForUniversalSegmentation,
    Mask2FormerImageProcessor,
)
from mask2former.modeling.build import build_model  # noqa: E402
from mask2former.utils import cpu_caching  # noqa: E402

CONFIGS = {
    "R50": "coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml",
    "Swin-T": "coco/panoptic-segmentation/swin/maskformer2_swin_tiny_bs16_50ep.yaml",
    "demo": "demo/mask2former_demo.yaml",
}
SWIN_T = {
    "embed_dim": 96,
    "depths": [2, 2, 6, 2],
    "num_heads": [3, 6, 12, 24],
    "window_size": 7,
    "drop_path_rate": 0.0,
    "out_features": ["stage1", "stage2", "stage3", "stage4"],
}


def autocast_context(dtype: str) -> Callable[[], AbstractContextManager]:
    if dtype == "float32":
        return nullcontext
    return partial(torch.autocast, "cpu", dtype=getattr(torch, dtype))


def padded(size: tuple[int, int], divisor: int = 32) -> tuple[int, int]:
    return tuple(-(-side // divisor) * divisor for side in size)


def d2_cfg(name: str):
    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", CONFIGS[name]))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


def build_d2_model(name: str) -> torch.nn.Module:
    torch.manual_seed(0)
    return build_model(d2_cfg(name)).eval()


def _network(model: torch.nn.Module, inputs: list[dict], dtype: str) -> object:
    # In the caching-allocator scope that model([x]) enters, so that "post" = full - network
    # compares like with like.
    with torch.no_grad(), cpu_caching.caching(), autocast_context(dtype)():
        images = model.preprocess_images(inputs)
        return model.sem_seg_head(model.backbone(images.tensor))


def _full(model: torch.nn.Module, inputs: list[dict], dtype: str) -> object:
    # As TEST.AMP.ENABLED / TEST.AMP.DTYPE set it: the network under autocast, the
    # post-processing in float32.
    model.inference_dtype = None if dtype == "float32" else getattr(torch, dtype)
    with torch.no_grad():
        return model(inputs)


def bench_d2(models: list[str], sizes: list[tuple[int, int]], dtypes: list[str], repeats: int):
    rows = []
    for name in models:
        model = build_d2_model(name)
        for size in sizes:
            generator = torch.Generator().manual_seed(0)
            image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=generator)
            inputs = [{"image": image, "height": size[0], "width": size[1]}]
            fns = {}
            for dtype in dtypes:
                fns[f"net {dtype}"] = partial(_network, model, inputs, dtype)
                fns[f"full {dtype}"] = partial(_full, model, inputs, dtype)
            medians = interleaved_medians(fns, repeats)
            for dtype in dtypes:
                net, full = medians[f"net {dtype}"], medians[f"full {dtype}"]
                rows.append((name, size, dtype, net, full - net, full))
    return rows


def bench_hf(sizes: list[tuple[int, int]], dtypes: list[str], repeats: int):
    import transformers

    torch.manual_seed(0)
    config = transformers.Mask2FormerConfig(
        backbone_config=dict(SWIN_T, model_type="swin"), num_labels=133
    )
    theirs = transformers.Mask2FormerForUniversalSegmentation(config).eval()
    with tempfile.TemporaryDirectory() as directory:
        theirs.save_pretrained(directory)
        ours = Mask2FormerForUniversalSegmentation.from_pretrained(directory).eval()
    processors = {
        "ours": Mask2FormerImageProcessor(),
        "hf": transformers.Mask2FormerImageProcessor(),
    }
    models = {"ours": ours, "hf": theirs}
    rows = []
    for size in sizes:
        pixel_values = torch.randn(1, 3, *padded(size))
        kwargs = {"target_sizes": [size], "label_ids_to_fuse": set(range(80, 133))}
        for dtype in dtypes:
            context = autocast_context(dtype)

            def network(who: str, context=context, pixel_values=pixel_values) -> object:
                with torch.no_grad(), context():
                    return models[who](pixel_values)

            outputs = {who: network(who) for who in models}
            diff = (
                (outputs["ours"].masks_queries_logits - outputs["hf"].masks_queries_logits)
                .abs()
                .max()
                .item()
            )
            fns = {}
            for who in models:
                fns[f"net {who}"] = partial(network, who)
                fns[f"post {who}"] = partial(
                    processors[who].post_process_panoptic_segmentation, outputs[who], **kwargs
                )
            m = interleaved_medians(fns, repeats)
            rows.append(
                (size, dtype, m["net ours"], m["net hf"], m["post ours"], m["post hf"], diff)
            )
    return rows


def profile_r50(size: tuple[int, int], top: int = 25) -> None:
    model = build_d2_model("R50")
    image = torch.randint(0, 256, (3, *size), dtype=torch.uint8)
    inputs = [{"image": image, "height": size[0], "width": size[1]}]
    _full(model, inputs, "float32")
    with torch.profiler.profile(activities=[torch.profiler.ProfilerActivity.CPU]) as prof:
        _full(model, inputs, "float32")
    print(f"\nTop operators, R50 full model([x]) float32 {size[0]}x{size[1]}:")
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=top))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["512x683", "800x1333"])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--models", nargs="+", default=["R50", "Swin-T"], choices=list(CONFIGS))
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--skip-hf", action="store_true", help="skip the transformers table")
    parser.add_argument("--profile", action="store_true", help="print the top operators")
    parser.add_argument(
        "--backends",
        help=f"comma-separated subset of {','.join(BACKENDS)}: time these runtimes instead",
    )
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    sizes = [tuple(int(v) for v in s.split("x")) for s in args.sizes]

    print(f"CPU, {args.threads} threads, median of {args.repeats} runs, seconds")
    if args.backends:
        backends = args.backends.split(",")
        unknown = sorted(set(backends) - set(BACKENDS))
        if unknown:
            parser.error(f"--backends {unknown} are not among {BACKENDS}")
        models = {name: (build_d2_model(name), d2_cfg(name)) for name in args.models}
        rows, export_seconds = bench_backends(
            models, sizes[0], backends, args.repeats, args.threads
        )
        print_backend_table(rows, export_seconds, sizes[0])
        return
    print("\ndetectron2 door: model([x]) with semantic + instance + panoptic inference on")
    print(f"{'model':7s} {'input':9s} {'dtype':9s} {'network':>8s} {'post':>7s} {'full':>7s}")
    for name, size, dtype, net, post, full in bench_d2(
        args.models, sizes, args.dtypes, args.repeats
    ):
        print(f"{name:7s} {size[0]}x{size[1]:<5d} {dtype:9s} {net:8.3f} {post:7.3f} {full:7.3f}")

    if not args.skip_hf:
        print("\ntransformers door, Swin-T: ours beside transformers (ratio = transformers / ours)")
        print(
            f"{'input':9s} {'dtype':9s} {'net ours':>8s} {'net hf':>7s} {'ratio':>6s} "
            f"{'post ours':>9s} {'post hf':>8s} {'ratio':>6s} {'max|dmask|':>10s}"
        )
        for size, dtype, net, net_hf, post, post_hf, diff in bench_hf(
            sizes, args.dtypes, args.repeats
        ):
            print(
                f"{size[0]}x{size[1]:<5d} {dtype:9s} {net:8.3f} {net_hf:7.3f} "
                f"{net_hf / net:5.2f}x {post:9.3f} {post_hf:8.3f} {post_hf / post:5.2f}x "
                f"{diff:10.1e}"
            )
    if args.profile:
        profile_r50(sizes[0])


if __name__ == "__main__":
    main()
