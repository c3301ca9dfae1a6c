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
    python bench/network.py --winograd [--models r50] [--sizes 512x683 800x1333] [--repeats 7]

``--winograd`` is an in-process A/B of the eval-time Winograd convolution
(``mask2former.layers.winograd``): first each 3x3 convolution shape of the network's FPN output
conv and ResNet stages against oneDNN's direct convolution, then the whole network with Winograd
on and off, in float32 and under bfloat16 autocast, the two sides interleaved run by run.
"""

from __future__ import annotations

import argparse
import contextlib
import functools
import json
import math
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


def _interleaved(functions: dict[str, object], repeats: int) -> dict[str, dict[str, float]]:
    """name -> {"wall", "cpu"} medians (s) of ``repeats`` runs, the functions taking turns."""
    times = {name: {"wall": [], "cpu": []} for name in functions}
    for function in functions.values():
        function()  # warm-up (also builds the cached weights)
    for _ in range(repeats):
        for name, function in functions.items():
            start, start_cpu = time.perf_counter(), time.process_time()
            function()
            times[name]["wall"].append(time.perf_counter() - start)
            times[name]["cpu"].append(time.process_time() - start_cpu)
    return {
        name: {clock: statistics.median(values) for clock, values in clocks.items()}
        for name, clocks in times.items()
    }


def _dtype_context(dtype: str) -> contextlib.AbstractContextManager:
    if dtype == "bfloat16":
        return torch.autocast("cpu", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def winograd_convs(size: tuple[int, int], repeats: int) -> None:
    """Per-shape table: the 3x3 convolutions of the R50 network (FPN output conv at 1/4, the
    ResNet stages' 3x3 convs at 1/4 to 1/32) by oneDNN's direct kernel and by Winograd."""
    from mask2former.layers.winograd import winograd_conv3x3, winograd_weight

    height, width = padded(size)
    shapes = [(256, 4), (64, 4), (128, 8), (256, 16), (512, 32)]
    geometry = ([1, 1], [1, 1], [1, 1], 1)
    for channels, stride in shapes:
        map_size = (height // stride, width // stride)
        x = torch.randn(1, channels, *map_size).contiguous(memory_format=torch.channels_last)
        weight = torch.randn(channels, channels, 3, 3) / math.sqrt(9 * channels)
        for dtype in (torch.float32, torch.bfloat16):
            x_k = x.to(dtype)
            direct_weight = weight.to(dtype).contiguous(memory_format=torch.channels_last)
            transformed = winograd_weight(weight, dtype)
            with torch.no_grad():
                times = _interleaved(
                    {
                        "direct": functools.partial(
                            torch.ops.mkldnn._convolution_pointwise,
                            *(x_k, direct_weight, None, *geometry, "none", [], ""),
                        ),
                        "winograd": functools.partial(winograd_conv3x3, x_k, transformed),
                    },
                    repeats,
                )
            direct, wino = times["direct"], times["winograd"]
            print(
                f"conv {channels:3d}ch {map_size[0]:3d}x{map_size[1]:<3d} {str(dtype)[6:]:8s}"
                f" direct {direct['wall'] * 1e3:7.1f} ms wall {direct['cpu'] * 1e3:7.1f} ms cpu"
                f" | winograd {wino['wall'] * 1e3:7.1f} / {wino['cpu'] * 1e3:7.1f}"
                f" | direct/winograd cpu {direct['cpu'] / wino['cpu']:.2f}",
                flush=True,
            )


def winograd_network(model_name: str, size: tuple[int, int], repeats: int) -> None:
    """The network with Winograd on and off, in float32 and under bfloat16 autocast."""
    from mask2former.layers.winograd import winograd_enabled

    model = build_network(model_name, ROOT)
    torch.manual_seed(1)
    pixels = torch.randn(1, 3, *padded(size)) * 50 + 110
    images = (pixels - model.pixel_mean) / model.pixel_std

    def run(enabled: bool) -> dict:
        with winograd_enabled(enabled):
            return run_network(model, images)

    for dtype in ("float32", "bfloat16"):
        with torch.no_grad(), _dtype_context(dtype):
            times = _interleaved({"on": lambda: run(True), "off": lambda: run(False)}, repeats)
            diff = (run(True)["pred_masks"] - run(False)["pred_masks"]).abs().max()
        on, off = times["on"], times["off"]
        print(
            f"network {model_name} {size[0]}x{size[1]} {dtype:8s}"
            f" on {on['wall'] * 1e3:7.1f} ms wall {on['cpu'] * 1e3:7.1f} ms cpu"
            f" | off {off['wall'] * 1e3:7.1f} / {off['cpu'] * 1e3:7.1f}"
            f" | off/on wall {off['wall'] / on['wall']:.3f} cpu {off['cpu'] / on['cpu']:.3f}"
            f" | max |pred_masks diff| {float(diff):.1e}",
            flush=True,
        )


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
    parser.add_argument(
        "--winograd", action="store_true", help="in-process A/B of the Winograd convolution"
    )
    parser.add_argument("--root", default=ROOT, help=argparse.SUPPRESS)
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        worker(args)
        return
    if args.winograd:
        sys.path.insert(0, ROOT)  # in this process (the workers get PYTHONPATH)
        torch.set_num_threads(args.threads)
        print(f"CPU, {args.threads} threads, medians of {args.repeats} interleaved runs")
        for size in args.sizes:
            shape = tuple(int(v) for v in size.split("x"))
            winograd_convs(shape, args.repeats)
            for model in args.models:
                winograd_network(model, shape, args.repeats)
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
