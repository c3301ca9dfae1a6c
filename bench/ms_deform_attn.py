"""Benchmark of the MSDeformAttn backends against the PyTorch reference.

Shapes: the pixel decoder of an R50 model at 512x683 (levels (64, 88), (32, 44), (16, 22),
as the model pads to a multiple of 32) and at 800x1333 (levels (100, 167), (50, 84),
(25, 42); batch 1 and 2), Lq = S, 8 heads x 32 dims, 4 points; and a small training-demo
shape (levels (16, 16), (8, 8), (4, 4), batch 8). Sampling locations are realistic: each
query samples a few pixels around its own position on every level, as the deformable
encoder does.

    python bench/ms_deform_attn.py [--threads 2] [--repeats 5] [--baseline REV]

Prints, per shape and device, the median forward and forward+backward times of every available
backend and its speed-up over the reference; the forward also with a bfloat16 value (float32
locations and weights, as under autocast). ``--baseline REV`` also builds the CPU kernel
sources of git revision REV (under another op namespace) and times its forward interleaved
with today's ("x base": today's speed-up over it; the baseline gets the bfloat16 value as
float32, the conversion timed, as the wrapper of the day did).
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from bench.timing import interleaved_medians  # noqa: E402
from mask2former.layers import _msda_build  # noqa: E402
from mask2former.layers.ms_deform_attn_reference import ms_deform_attn_reference  # noqa: E402

SHAPES = {
    "R50 512x683 b1": (1, ((64, 88), (32, 44), (16, 22))),
    "R50 800x1333 b1": (1, ((100, 167), (50, 84), (25, 42))),
    "R50 800x1333 b2": (2, ((100, 167), (50, 84), (25, 42))),
    "small 16x16 b8": (8, ((16, 16), (8, 8), (4, 4))),
}
HEADS, DIM, POINTS = 8, 32, 4
BASELINE_NAMESPACE = "mask2former_baseline"


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


def build_baseline(revision: str) -> Callable:
    """The CPU forward of the kernel sources at git ``revision``, built under another op
    namespace so that it loads beside today's."""
    names = ("ms_deform_attn.h", "ms_deform_attn.cpp", "cpu/ms_deform_attn_cpu.cpp")
    source_dir = Path(tempfile.mkdtemp(prefix="msda_baseline_"))
    (source_dir / "cpu").mkdir()
    for name in names:
        text = subprocess.run(
            ["git", "-C", str(ROOT), "show", f"{revision}:csrc/ms_deform_attn/{name}"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout
        for macro in ("TORCH_LIBRARY(", "TORCH_LIBRARY_IMPL("):
            text = text.replace(f"{macro}mask2former,", f"{macro}{BASELINE_NAMESPACE},")
        (source_dir / name).write_text(text)
    from torch.utils.cpp_extension import load

    load(
        name=f"{BASELINE_NAMESPACE}_{revision.replace('~', '_').replace('^', '_')}",
        sources=[str(source_dir / name) for name in names[1:]],
        extra_cflags=list(_msda_build.EXTRA_CFLAGS),
        is_python_module=False,
    )
    return getattr(torch.ops, BASELINE_NAMESPACE).ms_deform_attn_forward


def forward_fn(op: Callable, inputs: tuple) -> Callable[[], None]:
    def forward():
        with torch.no_grad():
            op(*inputs)

    return forward


def upcast_value(op: Callable) -> Callable:
    """``op`` with its value converted to float32 first (the conversion is timed with it)."""

    def run(value, *rest):
        return op(value.float(), *rest)

    return run


def forward_backward_ms(op: Callable, inputs: tuple, repeats: int) -> float:
    """Median forward+backward ms."""
    value, shapes, starts, locations, weights = inputs
    leaves = [t.detach().requires_grad_() for t in (value, locations, weights)]
    grad_output = torch.randn(value.shape[0], locations.shape[1], HEADS * DIM, device=value.device)

    def forward_backward():
        for leaf in leaves:
            leaf.grad = None
        out = op(leaves[0], shapes, starts, leaves[1], leaves[2])
        out.backward(grad_output)
        if value.device.type == "cuda":
            torch.cuda.synchronize()

    return 1e3 * interleaved_medians({"fb": forward_backward}, repeats)["fb"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--threads", type=int, default=2, help="torch.set_num_threads")
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--shapes", nargs="*", default=list(SHAPES), choices=list(SHAPES))
    parser.add_argument("--baseline", help="git revision whose CPU kernel to time beside today's")
    parser.add_argument("--no-backward", action="store_true", help="forward times only")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    status = _msda_build.load_extension()
    backends = {"cpu": [("pytorch", ms_deform_attn_reference)]}
    if status.loaded:
        backends["cpu"].append(("cpu", torch.ops.mask2former.ms_deform_attn_forward))
    if args.baseline:
        backends["cpu"].append((f"@{args.baseline}", build_baseline(args.baseline)))
    if torch.cuda.is_available():
        backends["cuda"] = [("pytorch", ms_deform_attn_reference)]
        if status.has_cuda:
            backends["cuda"].append(("cuda", torch.ops.mask2former.ms_deform_attn_forward))

    print(f"torch {torch.__version__}, {args.threads} threads, kernels: {status.origin}")
    print(f"GPU: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "no GPU")
    header = f"{'shape':<18}{'device':<8}{'value':<7}{'backend':<14}{'fwd ms':>9}{'x ref':>7}"
    header += f"{'x base':>8}{'fwd+bwd ms':>12}{'x ref':>7}"
    print(header)
    print("-" * len(header))
    for shape_name in args.shapes:
        batch, shapes = SHAPES[shape_name]
        for device, candidates in backends.items():
            inputs = make_inputs(batch, shapes, device, torch.Generator().manual_seed(0))
            value, spatial_shapes, starts, locations, weights = inputs
            low = (value.bfloat16(), spatial_shapes, starts, locations, weights)
            # The reference is timed on its own: interleaved, its large temporaries evict the
            # value from the caches before whichever kernel runs next.
            (_, reference_op), *kernels = candidates
            reference_fn = {("pytorch", "fp32"): forward_fn(reference_op, inputs)}
            medians = {
                key: 1e3 * t for key, t in interleaved_medians(reference_fn, args.repeats).items()
            }
            forwards = {}
            for backend, op in kernels:
                forwards[backend, "fp32"] = forward_fn(op, inputs)
                if backend.startswith("@"):
                    # the wrapper of the day upcast a 16-bit value before calling the op
                    forwards[backend, "bf16"] = forward_fn(upcast_value(op), low)
                else:
                    forwards[backend, "bf16"] = forward_fn(op, low)
            medians |= {
                key: 1e3 * t for key, t in interleaved_medians(forwards, args.repeats).items()
            }
            reference = medians["pytorch", "fp32"]
            backward_reference = None
            for (backend, dtype), fwd in medians.items():
                base = medians.get((f"@{args.baseline}", dtype)) if args.baseline else None
                line = f"{shape_name:<18}{device:<8}{dtype:<7}{backend:<14}{fwd:>9.1f}"
                line += f"{reference / fwd:>7.1f}"
                line += f"{base / fwd:>8.2f}" if base and backend == device else " " * 8
                if dtype == "fp32" and not backend.startswith("@") and not args.no_backward:
                    op = dict(candidates)[backend]
                    fwd_bwd = forward_backward_ms(op, inputs, args.repeats)
                    backward_reference = backward_reference or fwd_bwd
                    line += f"{fwd_bwd:>12.1f}{backward_reference / fwd_bwd:>7.1f}"
                print(line)


if __name__ == "__main__":
    main()
