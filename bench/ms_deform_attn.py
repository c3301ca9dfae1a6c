"""Benchmark of the MSDeformAttn backends against the PyTorch reference.

Shapes: the pixel decoder of an R50 model at 800x1333 (levels (100, 167), (50, 84), (25, 42);
Lq = S; 8 heads x 32 dims; 4 points; batch 1 and 2) and a small training-demo shape (levels
(16, 16), (8, 8), (4, 4), batch 8). Sampling locations are realistic: each query samples a few
pixels around its own position on every level, as the deformable encoder does.

    python bench/ms_deform_attn.py [--threads 2] [--repeats 5]

Prints, per shape and device, the median forward and forward+backward times of every available
backend and its speed-up over the reference.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable

import torch

from mask2former.layers import _msda_build
from mask2former.layers.ms_deform_attn_reference import ms_deform_attn_reference

SHAPES = {
    "R50 800x1333 b1": (1, ((100, 167), (50, 84), (25, 42))),
    "R50 800x1333 b2": (2, ((100, 167), (50, 84), (25, 42))),
    "small 16x16 b8": (8, ((16, 16), (8, 8), (4, 4))),
}
HEADS, DIM, POINTS = 8, 32, 4


def make_inputs(batch: int, shapes, device: str, generator: torch.Generator) -> tuple:
    """Encoder-like inputs; queries are the S pixels of all levels (Lq = S)."""
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    areas = spatial_shapes.prod(1)
    level_start_index = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    keys, levels = int(areas.sum()), len(shapes)
    centers = []
    for height, width in shapes:
        y, x = torch.meshgrid(
            (torch.arange(height) + 0.5) / height,
            (torch.arange(width) + 0.5) / width,
            indexing="ij",
        )
        centers.append(torch.stack([x.flatten(), y.flatten()], -1))
    reference_points = torch.cat(centers)  # (S, 2)
    size_xy = spatial_shapes.flip(-1).float()  # (L, 2) as (W, H)
    offsets_px = 2.0 * torch.randn(batch, keys, HEADS, levels, POINTS, 2, generator=generator)
    locations = reference_points[None, :, None, None, None] + offsets_px / size_xy[:, None]
    weights = torch.rand(batch, keys, HEADS, levels, POINTS, generator=generator)
    weights = weights.flatten(-2).softmax(-1).view_as(weights)
    value = torch.randn(batch, keys, HEADS, DIM, generator=generator)
    tensors = (value, spatial_shapes, level_start_index, locations, weights)
    return tuple(t.to(device) for t in tensors)


def median_ms(fn: Callable[[], None], repeats: int, device: str) -> float:
    fn()  # warm-up
    times = []
    for _ in range(repeats):
        if device == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        fn()
        if device == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - start)
    return 1e3 * statistics.median(times)


def time_backend(op: Callable, inputs: tuple, repeats: int, device: str) -> tuple[float, float]:
    """(forward ms, forward+backward ms) medians."""
    value, shapes, starts, locations, weights = inputs

    def forward():
        with torch.no_grad():
            op(*inputs)

    leaves = [t.detach().requires_grad_() for t in (value, locations, weights)]
    grad_output = torch.randn(value.shape[0], locations.shape[1], HEADS * DIM, device=device)

    def forward_backward():
        for leaf in leaves:
            leaf.grad = None
        out = op(leaves[0], shapes, starts, leaves[1], leaves[2])
        out.backward(grad_output)

    return median_ms(forward, repeats, device), median_ms(forward_backward, repeats, device)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    status = _msda_build.load_extension()
    backends = {"cpu": [("pytorch", ms_deform_attn_reference)]}
    if status.loaded:
        backends["cpu"].append(("cpu", torch.ops.mask2former.ms_deform_attn_forward))
    if torch.cuda.is_available():
        backends["cuda"] = [("pytorch", ms_deform_attn_reference)]
        if status.has_cuda:
            backends["cuda"].append(("cuda", torch.ops.mask2former.ms_deform_attn_forward))

    print(f"torch {torch.__version__}, {args.threads} threads, kernels: {status.origin}")
    print(f"GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU")
    header = f"{'shape':<18}{'device':<8}{'backend':<9}{'fwd ms':>10}{'x ref':>8}"
    header += f"{'fwd+bwd ms':>12}{'x ref':>8}"
    print(header)
    print("-" * len(header))
    for shape_name in args.shapes:
        batch, shapes = SHAPES[shape_name]
        for device, candidates in backends.items():
            inputs = make_inputs(batch, shapes, device, torch.Generator().manual_seed(0))
            reference = None
            for backend, op in candidates:
                fwd, fwd_bwd = time_backend(op, inputs, args.repeats, device)
                reference = reference or (fwd, fwd_bwd)
                print(
                    f"{shape_name:<18}{device:<8}{backend:<9}{fwd:>10.1f}{reference[0] / fwd:>8.1f}"
                    f"{fwd_bwd:>12.1f}{reference[1] / fwd_bwd:>8.1f}"
                )


if __name__ == "__main__":
    main()
