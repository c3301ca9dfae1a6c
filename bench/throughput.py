"""Images per second of the demo's image loop: batch size x float32 / bfloat16 (TEST.AMP).

Reads and resizes the images in DataLoader workers as ``demo/demo.py`` does, runs the model
and post-processing (no drawing), over ``--rounds`` interleaved rounds of every setting; prints
the median images/s of each and its ratio to batch 1 float32.

    python bench/throughput.py --config-file configs/demo/mask2former_demo.yaml \
        --input datasets/demo_shapes/images/val --weights output/demo/model_final.pth \
        [--batch-sizes 1 4] [--dtypes float32 bfloat16] [--rounds 3] [--threads 2]
"""

from __future__ import annotations

import argparse
import glob
import os
import statistics
import sys
import time

import torch
import torch.utils.data as torchdata

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from mask2former.config import get_cfg  # noqa: E402
from mask2former.data.detection_utils import read_image  # noqa: E402
from mask2former.predictor import Predictor  # noqa: E402


class _Images(torchdata.Dataset):
    def __init__(self, paths: list[str], preprocess) -> None:
        self.paths, self.preprocess = paths, preprocess

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, index: int) -> dict:
        return self.preprocess(read_image(self.paths[index], format="BGR"))


def images_per_second(predictor: Predictor, paths: list[str], batch_size: int, workers: int):
    loader = torchdata.DataLoader(
        _Images(paths, predictor.preprocessor),
        batch_size=batch_size,
        num_workers=workers,
        collate_fn=list,
    )
    start = time.perf_counter()
    for batch in loader:
        predictor.run(batch)
    return len(paths) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config-file", required=True)
    parser.add_argument("--input", required=True, help="folder of images")
    parser.add_argument("--weights", default="")
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 4])
    parser.add_argument("--dtypes", nargs="+", default=["float32", "bfloat16"])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--max-images", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    paths = sorted(glob.glob(os.path.join(args.input, "*")))[: args.max_images]
    predictors = {}
    for dtype in args.dtypes:
        cfg = get_cfg()
        cfg.merge_from_file(args.config_file)
        cfg.merge_from_list(
            ["MODEL.WEIGHTS", args.weights, "TEST.AMP.ENABLED", str(dtype != "float32")]
        )
        predictors[dtype] = Predictor(cfg)
    settings = [(d, b) for d in args.dtypes for b in args.batch_sizes]
    rates: dict[tuple[str, int], list[float]] = {s: [] for s in settings}
    for dtype, batch in settings:  # warm-up
        images_per_second(predictors[dtype], paths[: 2 * batch], batch, args.workers)
    for _ in range(args.rounds):
        for dtype, batch in settings:
            rates[(dtype, batch)].append(
                images_per_second(predictors[dtype], paths, batch, args.workers)
            )
    base = statistics.median(rates[settings[0]])
    print(f"{len(paths)} images, {args.threads} threads, median of {args.rounds} rounds")
    print(f"{'dtype':9s} {'batch':>5s} {'images/s':>9s} {'ratio':>6s}")
    for dtype, batch in settings:
        rate = statistics.median(rates[(dtype, batch)])
        print(f"{dtype:9s} {batch:5d} {rate:9.2f} {rate / base:6.2f}")


if __name__ == "__main__":
    main()
