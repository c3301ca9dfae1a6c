"""Timing of the evaluation backends on generated data: PQ (ours vs panopticapi's
``pq_compute``, one process each) and COCO mask AP (pycocotools vs faster-coco-eval).

    python bench/evaluation_backends.py [--images 100] [--repeats 3]

PQ data: COCO-style panoptic PNG + JSON pairs at 480x640 (tests/evaluation/pq_cases.py's
generator). AP data: per image 8 ground-truth boxes as masks and 30 predictions
(jittered copies and random boxes with random scores). Prints the median time of each backend,
interleaved, and the ratio; numbers agree between the backends of a pair (checked here).
"""

from __future__ import annotations

import argparse
import contextlib
import copy
import io
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from pycocotools import mask as mask_util

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "evaluation"))
from pq_cases import write_case  # noqa: E402

from mask2former.evaluation.pq import pq_compute  # noqa: E402


def _median_times(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    times: dict[str, list[float]] = {name: [] for name in functions}
    for _ in range(repeats):
        for name, function in functions.items():  # interleaved
            start = time.perf_counter()
            function()
            times[name].append(time.perf_counter() - start)
    return {name: statistics.median(values) for name, values in times.items()}


def bench_pq(num_images: int, repeats: int) -> None:
    try:
        from panopticapi.evaluation import pq_compute as panopticapi_pq_compute
    except ImportError:
        print("PQ: panopticapi not installed (pip install panopticapi-lite); ours only")
        panopticapi_pq_compute = None
    with tempfile.TemporaryDirectory() as tmp:
        paths = write_case(Path(tmp), seed=0, num_images=num_images, size=(480, 640))
        args = [paths[k] for k in ("gt_json", "pred_json", "gt_folder", "pred_folder")]
        functions = {"mask2former.evaluation.pq": lambda: pq_compute(*args)}
        if panopticapi_pq_compute is not None:
            import panopticapi.evaluation as pe

            def theirs():
                # One process, as ours: panopticapi spreads over cpu_count() by default.
                saved = pe.multiprocessing.cpu_count
                pe.multiprocessing.cpu_count = lambda: 1
                try:
                    with contextlib.redirect_stdout(io.StringIO()):
                        return panopticapi_pq_compute(*args)
                finally:
                    pe.multiprocessing.cpu_count = saved

            functions["panopticapi pq_compute"] = theirs
            ours, reference = pq_compute(*args), theirs()
            assert abs(ours["All"]["pq"] - reference["All"]["pq"]) < 1e-9
        _print("PQ", num_images, _median_times(functions, repeats))


def _coco_data(num_images: int) -> tuple[dict, list[dict]]:
    rng = np.random.default_rng(0)
    height, width = 480, 640
    images, annotations, results = [], [], []
    for image_id in range(1, num_images + 1):
        images.append({"id": image_id, "height": height, "width": width, "file_name": ""})
        for _ in range(8):
            y, x = rng.integers(0, [height - 120, width - 120])
            h, w = rng.integers(20, 120, size=2)
            category = int(rng.integers(1, 4))
            annotations.append(_segment(height, width, y, x, h, w, image_id, category, gt=True))
            for _ in range(3):  # jittered copies
                dy, dx = rng.integers(-15, 16, size=2)
                y2, x2 = np.clip([y + dy, x + dx], 0, [height - h, width - w])
                results.append(_segment(height, width, y2, x2, h, w, image_id, category))
        for _ in range(6):  # random boxes
            y, x = rng.integers(0, [height - 100, width - 100])
            h, w = rng.integers(10, 100, size=2)
            results.append(_segment(height, width, y, x, h, w, image_id, int(rng.integers(1, 4))))
    for result in results:
        result["score"] = float(rng.random())
    for i, annotation in enumerate(annotations, 1):
        annotation["id"] = i
    categories = [{"id": c, "name": f"c{c}"} for c in (1, 2, 3)]
    return {"images": images, "annotations": annotations, "categories": categories}, results


def _segment(height, width, y, x, h, w, image_id, category, gt=False) -> dict:
    mask = np.zeros((height, width), dtype=np.uint8, order="F")
    mask[y : y + h, x : x + w] = 1
    rle = mask_util.encode(mask)
    rle["counts"] = rle["counts"].decode("ascii")
    segment = {"image_id": image_id, "category_id": category, "segmentation": rle}
    if gt:
        segment.update(area=int(h * w), bbox=[int(x), int(y), int(w), int(h)], iscrowd=0)
    return segment


def bench_coco(num_images: int, repeats: int) -> None:
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    try:
        from faster_coco_eval import COCO as FasterCOCO
        from faster_coco_eval import COCOeval_faster
    except ImportError:
        print("COCO AP: faster-coco-eval not installed (pip install faster-coco-eval)")
        return
    dataset, results = _coco_data(num_images)

    def run(coco_class, eval_class) -> float:
        with contextlib.redirect_stdout(io.StringIO()):
            gt = coco_class()
            gt.dataset = dataset
            gt.createIndex()
            # loadRes adds fields to the result dicts: each backend gets its own copy.
            evaluator = eval_class(gt, gt.loadRes(copy.deepcopy(results)), "segm")
            evaluator.evaluate()
            evaluator.accumulate()
            evaluator.summarize()
        return float(evaluator.stats[0])

    functions = {
        "pycocotools": lambda: run(COCO, COCOeval),
        "faster-coco-eval": lambda: run(FasterCOCO, COCOeval_faster),
    }
    assert abs(functions["pycocotools"]() - functions["faster-coco-eval"]()) < 1e-12
    _print("COCO mask AP", num_images, _median_times(functions, repeats))


def _print(what: str, num_images: int, times: dict[str, float]) -> None:
    names = list(times)
    print(f"{what} of {num_images} images (median):")
    for name in names:
        print(f"  {name:28s} {times[name]:7.2f} s")
    if len(names) == 2:
        print(f"  {names[1]} / {names[0]}: {times[names[1]] / times[names[0]]:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--images", type=int, default=100)
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    bench_pq(args.images, args.repeats)
    bench_coco(args.images, args.repeats)


if __name__ == "__main__":
    main()
