"""End-to-end CPU inference beside the original implementation, on the same weights, in one run.

The original Mask2Former (facebookresearch/Mask2Former) and detectron2 are read from source
checkouts given on the command line (neither is installable from the package registries; the
original's CUDA op is not needed: on CPU its modules fall back to their PyTorch MSDeformAttn).
The original package is imported under the name ``orig_mask2former`` so that both live in one
process. The original model is built from its own config loader with random weights; ours is
built from the same YAML file and loads the original's state dict unchanged. Both run the full
``model([{"image", "height", "width"}])`` (network + semantic/instance/panoptic inference as the
config switches them on), interleaved, median of ``--repeats`` after a warm-up.

    python bench/vs_original.py --original-root /path/to/Mask2Former \
        --detectron2-root /path/to/detectron2 [--sizes 512x683 800x1333] [--repeats 5]

The original's extra imports (fvcore, timm, omegaconf, hydra-core) must be importable.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
import types
from collections.abc import Callable
from functools import partial

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

DEFAULT_CONFIG = "coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml"


def _import_original(original_root: str, detectron2_root: str | None) -> types.ModuleType:
    """Import the original package as ``orig_mask2former`` (a symlink in a temporary dir)."""
    if detectron2_root:
        sys.path.insert(0, os.path.abspath(detectron2_root))

    def _no_kernel(*_args, **_kwargs):
        raise RuntimeError("the original's compiled MSDeformAttn op is not built")

    # The original raises at import without its compiled op; a module whose functions fail
    # makes its MSDeformAttn modules take their own PyTorch fallback, as they do on CPU.
    stub = types.ModuleType("MultiScaleDeformableAttention")
    stub.ms_deform_attn_forward = _no_kernel
    stub.ms_deform_attn_backward = _no_kernel
    sys.modules.setdefault("MultiScaleDeformableAttention", stub)
    # detectron2's C++ COCOeval is only imported, never used for inference: pycocotools' one
    # stands in for it.
    from pycocotools.cocoeval import COCOeval

    fast_eval = types.ModuleType("detectron2.evaluation.fast_eval_api")
    fast_eval.COCOeval_opt = COCOeval
    sys.modules.setdefault("detectron2.evaluation.fast_eval_api", fast_eval)
    link_dir = tempfile.mkdtemp(prefix="orig_m2f_")
    os.symlink(
        os.path.join(os.path.abspath(original_root), "mask2former"),
        os.path.join(link_dir, "orig_mask2former"),
    )
    sys.path.insert(0, link_dir)
    import orig_mask2former

    return orig_mask2former


def _build_original(original, original_root: str, config: str) -> torch.nn.Module:
    from detectron2.config import get_cfg as d2_get_cfg
    from detectron2.modeling import build_model as d2_build_model
    from detectron2.projects.deeplab import add_deeplab_config

    cfg = d2_get_cfg()
    add_deeplab_config(cfg)
    original.add_maskformer2_config(cfg)
    cfg.merge_from_file(os.path.join(original_root, "configs", config))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    return d2_build_model(cfg).eval()


def _build_ours(config: str, state_dict: dict[str, torch.Tensor]) -> torch.nn.Module:
    from mask2former.config import get_cfg
    from mask2former.modeling import build_model

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(ROOT, "configs", config))
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.WEIGHTS = ""
    model = build_model(cfg).eval()
    # Buffers such as pixel_mean are not persistent in ours; everything else must match.
    result = model.load_state_dict(state_dict, strict=False)
    unexpected = [k for k in result.unexpected_keys if not k.startswith("pixel_")]
    if result.missing_keys or unexpected:
        raise RuntimeError(
            f"state dicts differ: missing {result.missing_keys[:5]}, unexpected {unexpected[:5]}"
        )
    return model


def _seconds(fn: Callable[[], object]) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _compare(ours: list[dict], theirs: list[dict]) -> str:
    parts = []
    a, b = ours[0], theirs[0]
    if "sem_seg" in a:
        diff = (a["sem_seg"].float() - b["sem_seg"].float()).abs().max().item()
        parts.append(f"sem_seg max|d| {diff:.1e}")
    if "panoptic_seg" in a:
        same = torch.equal(a["panoptic_seg"][0].int(), b["panoptic_seg"][0].int())
        segments = len(a["panoptic_seg"][1]), len(b["panoptic_seg"][1])
        parts.append(f"panoptic ids {'equal' if same else 'DIFFER'} ({segments[0]}/{segments[1]})")
    if "instances" in a:
        same = torch.equal(a["instances"].pred_classes, b["instances"].pred_classes) and bool(
            torch.equal(a["instances"].pred_masks.bool(), b["instances"].pred_masks.bool())
        )
        parts.append(f"instances {'equal' if same else 'DIFFER'}")
    return ", ".join(parts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--original-root", required=True, help="Mask2Former source checkout")
    parser.add_argument("--detectron2-root", default=None, help="detectron2 source checkout")
    parser.add_argument("--config", default=DEFAULT_CONFIG, help="config path under configs/")
    parser.add_argument("--sizes", nargs="+", default=["512x683"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    original = _import_original(args.original_root, args.detectron2_root)
    torch.manual_seed(args.seed)
    theirs = _build_original(original, args.original_root, args.config)
    ours = _build_ours(args.config, theirs.state_dict())

    def ours_in(dtype: torch.dtype | None) -> Callable[[list[dict]], list[dict]]:
        def run(inputs: list[dict]) -> list[dict]:
            # What TEST.AMP.ENABLED / TEST.AMP.DTYPE set on the model.
            ours.inference_dtype = dtype
            return ours(inputs)

        return run

    variants: list[tuple[str, Callable[[list[dict]], list[dict]]]] = [
        ("original float32", theirs),
        ("ours float32", ours_in(None)),
        ("ours bfloat16", ours_in(torch.bfloat16)),
    ]
    print(f"{args.config}, CPU, {args.threads} threads, median of {args.repeats} (s)")
    print(f"{'input':10s} {'variant':18s} {'full model([x])':>16s} {'speed-up':>9s}")
    for size_text in args.sizes:
        height, width = (int(v) for v in size_text.split("x"))
        generator = torch.Generator().manual_seed(args.seed)
        image = torch.randint(0, 256, (3, height, width), dtype=torch.uint8, generator=generator)
        inputs = [{"image": image, "height": height, "width": width}]
        with torch.no_grad():
            reference = theirs(inputs)
            check = _compare(ours_in(None)(inputs), reference)
            times: dict[str, list[float]] = {name: [] for name, _ in variants}
            for _, run in variants:  # warm-up
                run(inputs)
            for _ in range(args.repeats):  # interleaved rounds
                for name, run in variants:
                    times[name].append(_seconds(partial(run, inputs)))
        base = statistics.median(times["original float32"])
        for name, _ in variants:
            median = statistics.median(times[name])
            print(f"{size_text:10s} {name:18s} {median:16.3f} {base / median:8.2f}x")
        print(f"{size_text:10s} ours vs original (float32): {check}")


if __name__ == "__main__":
    main()
