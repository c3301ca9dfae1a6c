"""Compiled MSDeformAttn kernels against the PyTorch reference (CPU here, CUDA when present)."""

from __future__ import annotations

import logging
import os
import shutil

import pytest
import torch

from mask2former.layers import _msda_build
from mask2former.layers.ms_deform_attn import BACKEND_ENV, ms_deform_attn, select_backend
from mask2former.layers.ms_deform_attn_reference import ms_deform_attn_reference
from tests.optional import unavailable

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


@pytest.fixture(scope="module")
def ops():
    # torch's JIT build compiles with $CXX, else c++.
    compiler = os.environ.get("CXX", "c++")
    if _msda_build._prebuilt_library() is None and shutil.which(compiler) is None:
        unavailable(f"needs a C++ compiler to build the kernels: no {compiler!r}", ci_has_it=True)
    status = _msda_build.load_extension()
    assert status.loaded, f"the MSDeformAttn kernels did not build: {status.origin}"
    return torch.ops.mask2former


@pytest.fixture
def fresh_backend(monkeypatch):
    """Clears the per-process backend choice so that the env variable is read again."""
    monkeypatch.delenv(BACKEND_ENV, raising=False)
    select_backend.cache_clear()
    yield monkeypatch
    select_backend.cache_clear()


def make_inputs(
    batch=2,
    shapes=((6, 7), (3, 4), (1, 1)),
    queries=5,
    heads=2,
    dim=5,
    points=3,
    dtype=torch.float64,
    device="cpu",
    spread=(-0.3, 1.3),
    seed=0,
):
    """Random op inputs; sampling locations uniform in `spread` (partly outside [0, 1])."""
    gen = torch.Generator().manual_seed(seed)
    spatial_shapes = torch.tensor(shapes, dtype=torch.int64)
    areas = spatial_shapes.prod(1)
    level_start_index = torch.cat([areas.new_zeros(1), areas.cumsum(0)[:-1]])
    levels = len(shapes)
    value = torch.randn(batch, int(areas.sum()), heads, dim, generator=gen, dtype=dtype)
    low, high = spread
    locations = low + (high - low) * torch.rand(
        batch, queries, heads, levels, points, 2, generator=gen, dtype=dtype
    )
    weights = torch.rand(batch, queries, heads, levels, points, generator=gen, dtype=dtype)
    tensors = (value, spatial_shapes, level_start_index, locations, weights)
    return tuple(t.to(device) for t in tensors)


def run_with_grads(fn, inputs, grad_output):
    """(output, grad value, grad sampling_locations, grad attention_weights) of fn at inputs."""
    value, shapes, starts, locations, weights = (
        t.detach().clone().requires_grad_(t.is_floating_point()) for t in inputs
    )
    output = fn(value, shapes, starts, locations, weights)
    output.backward(grad_output)
    return output.detach(), value.grad, locations.grad, weights.grad


def assert_all_close(actual, expected, **tolerance):
    for name, got, want in zip(("output", "value", "locations", "weights"), actual, expected):
        torch.testing.assert_close(got, want, **tolerance, msg=lambda m, n=name: f"{n}: {m}")


CASES = {
    "basic": {},
    "single_1x1_level": {"shapes": ((1, 1),)},
    "many_heads_points": {"heads": 16, "points": 8, "dim": 3, "queries": 3},
    "dim_32": {"dim": 32, "heads": 2, "shapes": ((5, 9), (3, 5))},
    # head dims whose per-item reductions span warps / need atomics in the CUDA backward
    "dim_48": {"dim": 48, "heads": 2, "queries": 5, "shapes": ((4, 6), (2, 3))},
    "dim_5": {"dim": 5, "heads": 3, "queries": 4},
    "far_outside": {"spread": (-2.0, 3.0)},
}


@pytest.mark.parametrize("case", CASES)
def test_cpu_matches_reference_float64(ops, case):
    inputs = make_inputs(**CASES[case])
    grad_output = torch.randn_like(ms_deform_attn_reference(*inputs))
    expected = run_with_grads(ms_deform_attn_reference, inputs, grad_output)
    actual = run_with_grads(ops.ms_deform_attn_forward, inputs, grad_output)
    assert_all_close(actual, expected, rtol=0, atol=1e-10)


def test_cpu_forward_float32(ops):
    inputs = make_inputs(dtype=torch.float32, dim=32, shapes=((8, 12), (4, 6), (2, 3)))
    torch.testing.assert_close(
        ops.ms_deform_attn_forward(*inputs), ms_deform_attn_reference(*inputs), rtol=0, atol=1e-5
    )


CPU_KERNEL_ENV = "MASK2FORMER_MSDA_CPU_KERNEL"


@pytest.fixture(params=["auto", "portable"])
def cpu_kernel(request, monkeypatch):
    """Runs a test through the default CPU forward (AVX-512 where the CPU has it) and through
    the portable one (the kernel reads the variable on every call)."""
    if request.param == "portable":
        monkeypatch.setenv(CPU_KERNEL_ENV, "portable")
    else:
        monkeypatch.delenv(CPU_KERNEL_ENV, raising=False)
    return request.param


# Forward cases for the float32 / 16-bit kernels: odd head dims (masked channel tails),
# sample counts that are not a multiple of 16, points far outside, batch 2, many heads.
FORWARD_CASES = {
    "encoder_like": {"dim": 32, "heads": 8, "points": 4, "shapes": ((9, 13), (5, 7), (3, 3))},
    "dim_5_odd_samples": {"dim": 5, "heads": 3, "points": 3, "queries": 7},
    "dim_48": {"dim": 48, "heads": 2, "shapes": ((4, 6), (2, 3))},
    "dim_17": {"dim": 17, "heads": 3, "points": 5, "queries": 9},
    "dim_64": {"dim": 64, "heads": 2, "points": 2},
    "far_outside": {"dim": 32, "spread": (-2.0, 3.0)},
    "single_1x1_level": {"shapes": ((1, 1),), "dim": 16},
}


def with_bad_locations(inputs):
    """Inputs with NaN, +-inf and just-outside sampling locations sprinkled in; samples at a
    non-finite location get an infinite attention weight (they must contribute nothing)."""
    value, shapes, starts, locations, weights = inputs
    locations = locations.clone()
    flat = locations.view(-1)
    flat[::7] = float("nan")
    flat[3::11] = float("inf")
    flat[5::13] = -float("inf")
    flat[9::17] = -0.5 / 4  # pixel -1 on a width-4 level: exactly on the border
    weights = weights.masked_fill(~locations.isfinite().all(-1), float("inf"))
    return value, shapes, starts, locations, weights


def as_reference_inputs(inputs):
    """The reference's view of `with_bad_locations`: a sample at a non-finite location
    contributes nothing (as one far outside the map, with weight 0)."""
    value, shapes, starts, locations, weights = inputs
    finite = locations.isfinite().all(-1)
    locations = torch.nan_to_num(locations, nan=-10, posinf=10, neginf=-10)
    return value, shapes, starts, locations, weights.masked_fill(~finite, 0)


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_cpu_forward_float32_matches_reference(ops, cpu_kernel, case):
    inputs = with_bad_locations(make_inputs(**FORWARD_CASES[case], dtype=torch.float32))
    expected = ms_deform_attn_reference(*as_reference_inputs(inputs))
    output = ops.ms_deform_attn_forward(*inputs)
    torch.testing.assert_close(output, expected, rtol=0, atol=2e-6)


@pytest.mark.parametrize("case", FORWARD_CASES)
def test_cpu_forward_paths_agree(ops, case, monkeypatch):
    # The AVX-512 forward writes out the FMAs GCC makes of the portable loops (x86-64-v3
    # clone): with GCC the two agree bit for bit; another compiler may round differently.
    inputs = with_bad_locations(make_inputs(**FORWARD_CASES[case], dtype=torch.float32))
    monkeypatch.delenv(CPU_KERNEL_ENV, raising=False)
    default = ops.ms_deform_attn_forward(*inputs)
    monkeypatch.setenv(CPU_KERNEL_ENV, "portable")
    portable = ops.ms_deform_attn_forward(*inputs)
    torch.testing.assert_close(default, portable, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("case", FORWARD_CASES)
def test_cpu_16_bit_value_is_read_exactly(ops, cpu_kernel, dtype, case):
    """A 16-bit value is read in place and gives the bits of the float32 kernel on its
    upcast; with float32 locations the output stays float32, with 16-bit locations too it is
    rounded to the value's dtype once."""
    value, shapes, starts, locations, weights = with_bad_locations(
        make_inputs(**FORWARD_CASES[case], dtype=torch.float32)
    )
    low = value.to(dtype)
    mixed = ops.ms_deform_attn_forward(low, shapes, starts, locations, weights)
    assert mixed.dtype == torch.float32
    assert torch.equal(
        mixed, ops.ms_deform_attn_forward(low.float(), shapes, starts, locations, weights)
    )

    low_locations, low_weights = locations.to(dtype), weights.to(dtype)
    output = ops.ms_deform_attn_forward(low, shapes, starts, low_locations, low_weights)
    upcast = ops.ms_deform_attn_forward(
        low.float(), shapes, starts, low_locations.float(), low_weights.float()
    )
    assert output.dtype == dtype
    assert torch.equal(output, upcast.to(dtype))


def test_cpu_16_bit_value_gradients_follow_the_upcast(ops):
    value, shapes, starts, locations, weights = make_inputs(dtype=torch.float32, dim=8)
    grad_output = torch.randn(value.shape[0], locations.shape[1], value.shape[2] * 8)
    low = value.bfloat16()
    expected = run_with_grads(
        ops.ms_deform_attn_forward, (low.float(), shapes, starts, locations, weights), grad_output
    )
    actual = run_with_grads(
        ops.ms_deform_attn_forward, (low, shapes, starts, locations, weights), grad_output
    )
    assert actual[1].dtype == torch.bfloat16
    assert_all_close(actual, [expected[0], expected[1].bfloat16(), *expected[2:]], rtol=0, atol=0)


def test_16_bit_value_reaches_the_kernel_uncopied(ops, fresh_backend):
    """In inference ``ms_deform_attn`` hands the CPU kernel a bfloat16 value as it is, under
    autocast (float32 result) and without (bfloat16 result), with the float32 results."""
    from torch.utils._python_dispatch import TorchDispatchMode

    value, shapes, starts, locations, weights = make_inputs(dtype=torch.float32, dim=8)
    low = value.bfloat16()
    expected = ops.ms_deform_attn_forward(low.float(), shapes, starts, locations, weights)

    class CopiedShapes(TorchDispatchMode):
        def __init__(self):
            super().__init__()
            self.shapes = []

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if func in (torch.ops.aten._to_copy.default, torch.ops.aten.copy_.default):
                self.shapes.append(tuple(args[0].shape))
            return func(*args, **(kwargs or {}))

    with torch.no_grad(), CopiedShapes() as copies:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            under_autocast = ms_deform_attn(low, shapes, starts, locations, weights)
        plain = ms_deform_attn(low, shapes, starts, locations, weights)
    assert tuple(value.shape) not in copies.shapes
    assert under_autocast.dtype == torch.float32 and torch.equal(under_autocast, expected)
    assert plain.dtype == torch.bfloat16 and torch.equal(plain, expected.bfloat16())


def test_cpu_bfloat16_follows_float32(ops):
    inputs = make_inputs(dtype=torch.float32, dim=8)
    low = tuple(t.bfloat16() if t.is_floating_point() else t for t in inputs)
    output = ops.ms_deform_attn_forward(*low)
    assert output.dtype == torch.bfloat16
    expected = ms_deform_attn_reference(*inputs)
    torch.testing.assert_close(output.float(), expected, rtol=2e-2, atol=5e-2)


def test_cpu_gradcheck(ops):
    value, shapes, starts, locations, weights = make_inputs(
        batch=1, shapes=((3, 4), (2, 2)), queries=2, heads=2, dim=3, points=2, spread=(-0.1, 1.1)
    )
    inputs = tuple(t.requires_grad_() for t in (value, locations, weights))

    def op(v, loc, w):
        return ms_deform_attn(v, shapes, starts, loc, w)

    assert torch.autograd.gradcheck(op, inputs, eps=1e-6, atol=1e-7)


def test_cpu_non_contiguous_inputs(ops):
    inputs = make_inputs()
    value, shapes, starts, locations, weights = inputs
    # same values, other strides: channels-first storage, a strided slice, a transposed copy
    strided = (
        value.transpose(1, 3).contiguous().transpose(1, 3),
        shapes.t().contiguous().t(),
        starts,
        torch.stack([locations, locations], dim=-1)[..., 0],
        weights.transpose(0, 1).contiguous().transpose(0, 1),
    )
    assert not any(t.is_contiguous() for i, t in enumerate(strided) if i in (0, 1, 3, 4))
    grad_output = torch.randn_like(ms_deform_attn_reference(*inputs))
    expected = run_with_grads(ms_deform_attn_reference, inputs, grad_output)
    actual = run_with_grads(ops.ms_deform_attn_forward, strided, grad_output)
    assert_all_close(actual, expected, rtol=0, atol=1e-10)


@pytest.mark.parametrize("empty", ["batch", "queries"])
def test_cpu_empty_inputs(ops, empty):
    inputs = make_inputs(batch=0) if empty == "batch" else make_inputs(queries=0)
    grad_output = torch.zeros_like(ms_deform_attn_reference(*inputs))
    output, grad_value, grad_locations, grad_weights = run_with_grads(
        ops.ms_deform_attn_forward, inputs, grad_output
    )
    assert output.shape == grad_output.shape
    assert grad_value.shape == inputs[0].shape and not grad_value.any()
    assert grad_locations.shape == inputs[3].shape and grad_weights.shape == inputs[4].shape


def test_cpu_deterministic_across_thread_counts(ops):
    inputs = make_inputs(batch=3, heads=4, dim=8, queries=7, dtype=torch.float32)
    grad_output = torch.randn_like(ms_deform_attn_reference(*inputs))
    threads = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        single = run_with_grads(ops.ms_deform_attn_forward, inputs, grad_output)
        torch.set_num_threads(max(2, threads))
        multi = run_with_grads(ops.ms_deform_attn_forward, inputs, grad_output)
    finally:
        torch.set_num_threads(threads)
    assert_all_close(multi, single, rtol=0, atol=0)


def test_input_errors_name_the_argument(ops):
    value, shapes, starts, locations, weights = make_inputs()
    with pytest.raises(RuntimeError, match="attention_weights has dtype"):
        ops.ms_deform_attn_forward(value, shapes, starts, locations, weights.float())
    with pytest.raises(RuntimeError, match="level_start_index\\[0\\] = 1"):
        ops.ms_deform_attn_forward(value, shapes, starts + 1, locations, weights)
    with pytest.raises(RuntimeError, match="sampling_locations must be"):
        ops.ms_deform_attn_forward(value, shapes, starts, locations[..., :1], weights)
    with pytest.raises(RuntimeError, match="value has S"):
        ops.ms_deform_attn_forward(value[:, 1:], shapes, starts, locations, weights)


def test_opcheck(ops):
    value, shapes, starts, locations, weights = make_inputs(dtype=torch.float32)
    args = (value.requires_grad_(), shapes, starts, locations.requires_grad_(), weights)
    torch.library.opcheck(ops.ms_deform_attn_forward.default, args)
    # a bfloat16 value with float32 locations: the fake kernel promises a float32 output
    mixed = (value.detach().bfloat16().requires_grad_(), *args[1:])
    torch.library.opcheck(ops.ms_deform_attn_forward.default, mixed)
    grad_output = torch.randn(value.shape[0], locations.shape[1], value.shape[2] * value.shape[3])
    torch.library.opcheck(
        ops.ms_deform_attn_backward.default,
        (grad_output, value.detach(), shapes, starts, locations.detach(), weights),
    )


def test_torch_compile_fullgraph_and_export(ops, fresh_backend):
    value, shapes, starts, locations, weights = make_inputs(dtype=torch.float32)

    def loss(v, loc, w):
        out = ms_deform_attn(v, shapes, starts, loc.sigmoid(), w.softmax(-1))
        return (out * out).sum()

    inputs = (value, shapes, starts, locations, weights)
    one = torch.tensor(1.0)
    eager = run_with_grads(lambda *a: loss(a[0], a[3], a[4]), inputs, one)
    # aot_eager traces forward and backward through the fake kernels (inductor adds minutes).
    compiled_loss = torch.compile(loss, fullgraph=True, backend="aot_eager")
    traced = run_with_grads(lambda *a: compiled_loss(a[0], a[3], a[4]), inputs, one)
    assert_all_close(traced, eager, rtol=1e-5, atol=1e-5)

    class Module(torch.nn.Module):
        def forward(self, v, loc, w):
            return ms_deform_attn(v, shapes, starts, loc, w)

    exported = torch.export.export(Module(), (value, locations, weights))
    targets = {node.target for node in exported.graph.nodes if node.op == "call_function"}
    assert ops.ms_deform_attn_forward.default in targets


def test_backend_env_variable(ops, fresh_backend, caplog):
    inputs = make_inputs()
    fresh_backend.setenv(BACKEND_ENV, "pytorch")
    with caplog.at_level(logging.INFO, logger="mask2former.layers.ms_deform_attn"):
        ms_deform_attn(*inputs)
        ms_deform_attn(*inputs)
    assert select_backend("cpu") == "pytorch"
    assert sum("backend for cpu inputs: pytorch" in r.message for r in caplog.records) == 1

    def choose(env_value):
        fresh_backend.setenv(BACKEND_ENV, env_value)
        select_backend.cache_clear()
        return select_backend("cpu")

    assert choose("cpu") == "cpu"
    with pytest.raises(RuntimeError, match="inputs are on cpu"):
        choose("cuda")
    with pytest.raises(ValueError, match=BACKEND_ENV):
        choose("tpu")
    assert choose("") == "cpu"


def test_failed_build_warns_once_and_falls_back(fresh_backend):
    def broken_build(with_cuda):
        raise RuntimeError("Error building extension 'x'\nfoo.cpp:1:1: error: broken kernel")

    fresh_backend.setattr(_msda_build, "_prebuilt_library", lambda: None)
    fresh_backend.setattr(_msda_build, "_build_library", broken_build)
    with pytest.warns(RuntimeWarning, match="broken kernel") as record:
        status = _msda_build._load()
    assert len(record) == 1 and not status.loaded
    fresh_backend.setattr(_msda_build, "load_extension", lambda: status)
    assert select_backend("cpu") == "pytorch"
    select_backend.cache_clear()
    fresh_backend.setenv(BACKEND_ENV, "cpu")
    with pytest.raises(RuntimeError, match="broken kernel"):
        select_backend("cpu")


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("case", CASES)
def test_cuda_matches_reference(ops, dtype, case):
    inputs = make_inputs(**CASES[case], dtype=dtype, device="cuda")
    grad_output = torch.randn_like(ms_deform_attn_reference(*inputs))
    expected = run_with_grads(ms_deform_attn_reference, inputs, grad_output)
    actual = run_with_grads(ops.ms_deform_attn_forward, inputs, grad_output)
    tolerance = 1e-10 if dtype == torch.float64 else 1e-4
    assert_all_close(actual, expected, rtol=0, atol=tolerance)


@needs_cuda
@pytest.mark.cuda
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("dim", [32, 48])
def test_cuda_half_precision(ops, dtype, dim):
    inputs = make_inputs(dim=dim, dtype=torch.float32, device="cuda")
    low = tuple(t.to(dtype) if t.is_floating_point() else t for t in inputs)
    grad_output = torch.randn_like(ms_deform_attn_reference(*inputs)).to(dtype)
    # The reference sees the rounded inputs: rounding a location to bfloat16 can move it into
    # another pixel cell, where the location gradient jumps.
    rounded = tuple(t.float() if t.is_floating_point() else t for t in low)
    expected = run_with_grads(ms_deform_attn_reference, rounded, grad_output.float())
    actual = run_with_grads(ops.ms_deform_attn_forward, low, grad_output)
    assert all(t.dtype == dtype for t in actual)
    assert_all_close([t.float() for t in actual], expected, rtol=5e-2, atol=1e-1)


@needs_cuda
@pytest.mark.cuda
def test_cuda_gradcheck_and_dispatch(ops, fresh_backend):
    assert select_backend("cuda") == "cuda"
    value, shapes, starts, locations, weights = make_inputs(
        batch=1, shapes=((3, 4), (2, 2)), queries=2, heads=2, dim=3, points=2, device="cuda"
    )
    inputs = tuple(t.requires_grad_() for t in (value, locations, weights))
    assert torch.autograd.gradcheck(
        lambda v, loc, w: ms_deform_attn(v, shapes, starts, loc, w), inputs, eps=1e-6, atol=1e-7
    )
