"""CPU float32 network benchmark: backbone + pixel decoder + transformer decoder.

Times ``model.sem_seg_head(model.backbone(images))`` of the R50 and Swin-T COCO panoptic configs
(random weights, 133 classes, 100 queries) under ``torch.no_grad()`` with ``--threads`` intra-op
threads, median of ``--repeats`` runs after one warm-up. Each measurement runs in a fresh worker
process so that ``--baseline DIR`` (another checkout of this repository, e.g. a
``git worktree`` of the commit before a change) can be timed the same way: rounds alternate
between this checkout and the baseline, and the table gives both medians and their ratio.
Wall-clock and process CPU time are both reported: on a shared machine the CPU time (best with
``OMP_WAIT_POLICY=PASSIVE``, so idle OpenMP threads do not spin) is the steadier of the two.

    python bench/network.py [--models r50 swin_t] [--sizes 512x683 800x1333] [--repeats 5]
        [--rounds 2] [--baseline /tmp/base] [--profile]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time

import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CONFIGS = {
    "r50": "configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml",
    "swin_t": "configs/coco/panoptic-segmentation/swin/maskformer2_swin_tiny_bs16_50ep.yaml",
}


def build_network(model_name: str, root: str) -> torch.nn.Module:
    """The eval-mode model of ``CONFIGS[model_name]`` with seeded random weights."""
    from mask2former.config import get_cfg
    from mask2former.modeling.build import build_model

    cfg = get_cfg()
    cfg.merge_from_file(os.path.join(root, CONFIGS[model_name]))
    cfg.MODEL.WEIGHTS = ""
    cfg.MODEL.DEVICE = "cpu"
    cfg.DATASETS.TRAIN = ()
    torch.manual_seed(0)
    return build_model(cfg).eval()


def padded(size: tuple[int, int], divisor: int = 32) -> tuple[int, int]:
    return tuple(-(-side // divisor) * divisor for side in size)


def run_network(model: torch.nn.Module, images: torch.Tensor) -> dict:
    return model.sem_seg_head(model.backbone(images))


def worker(args: argparse.Namespace) -> None:
    """Time one (model, size) in this process and print one JSON line (or a profile)."""
    torch.set_num_threads(args.threads)
    model = build_network(args.models[0], args.root)
    size = tuple(int(v) for v in args.sizes[0].split("x"))
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, *padded(size)) * 50 + 110
    images = (pixels - model.pixel_mean) / model.pixel_std  # as MaskFormer.forward does
    with torch.no_grad():
        outputs = run_network(model, images)  # warm-up (also builds caches)
        if args.profile:
            from torch.profiler import ProfilerActivity, profile

            with profile(activities=[ProfilerActivity.CPU]) as prof:
                run_network(model, images)
            print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
            return
        wall, cpu = [], []
        for _ in range(args.repeats):
            start, start_cpu = time.perf_counter(), time.process_time()
            run_network(model, images)
            wall.append(time.perf_counter() - start)
            cpu.append(time.process_time() - start_cpu)
    checksum = float(outputs["pred_masks"].double().abs().mean())
    medians = {"wall": statistics.median(wall), "cpu": statistics.median(cpu)}
    print(json.dumps({**medians, "checksum": checksum}))


def measure(root: str, model: str, size: str, args: argparse.Namespace) -> dict:
    env = dict(os.environ, PYTHONPATH=root)
    command = [sys.executable, os.path.abspath(__file__), "--worker", "--root", root]
    command += ["--models", model, "--sizes", size, "--repeats", str(args.repeats)]
    command += ["--threads", str(args.threads)]
    result = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    if result.returncode != 0:
        raise RuntimeError(f"worker for {root} {model} {size} failed:\n{result.stderr}")
    return json.loads(result.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["r50", "swin_t"], choices=list(CONFIGS))
    parser.add_argument("--sizes", nargs="+", default=["512x683", "800x1333"])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--rounds", type=int, default=2, help="alternating worker runs per side")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--baseline", help="another checkout to time the same way")
    parser.add_argument("--profile", action="store_true", help="print the top operators")
    parser.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.profile:
        for model in args.models:
            for size in args.sizes:
                print(f"== {model} {size}, {args.threads} threads ==", flush=True)
                env = dict(os.environ, PYTHONPATH=ROOT)
                command = [sys.executable, os.path.abspath(__file__), "--worker", "--profile"]
                command += ["--models", model, "--sizes", size, "--threads", str(args.threads)]
                subprocess.run(command, env=env, check=True)
        return

    sides = [("ours", ROOT)] + ([("baseline", args.baseline)] if args.baseline else [])
    print(
        f"CPU float32, {args.threads} threads, network = backbone + sem_seg_head; medians of "
        f"{args.repeats} runs x {args.rounds} rounds (ms); wall clock and process CPU time"
    )
    print("model   input      clock   ours    baseline  ours/base  |checksum diff|")
    for model in args.models:
        for size in args.sizes:
            results: dict[str, list[dict]] = {name: [] for name, _ in sides}
            for _ in range(args.rounds):
                for name, root in sides:
                    results[name].append(measure(root, model, size, args))
            for clock in ("wall", "cpu"):
                ours = statistics.median(r[clock] for r in results["ours"])
                line = f"{model:7s} {size:10s} {clock:5s} {ours * 1000:8.1f}"
                if args.baseline:
                    base = statistics.median(r[clock] for r in results["baseline"])
                    diff = abs(results["ours"][0]["checksum"] - results["baseline"][0]["checksum"])
                    line += f"  {base * 1000:8.1f}  {ours / base:9.3f}  {diff:.1e}"
                print(line, flush=True)


if __name__ == "__main__":
    main()
