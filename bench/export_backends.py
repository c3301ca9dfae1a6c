"""PyTorch eager beside the exported network's runtimes (onnxruntime, OpenVINO), CPU.

Per model, the network exported to ONNX at the padded input size (random weights), then for
each backend the network alone (padded float32 batch in, ``pred_logits`` / ``pred_masks`` out)
and the full call (raw image in, ``sem_seg`` / ``panoptic_seg`` / ``instances`` out, the same
shared post-processing for every backend), timed interleaved. Used by ``bench/inference.py
--backends``.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

import torch

from bench.timing import interleaved_medians
from mask2former.export import ExportableNetwork, ExportedPredictor, export_model

BACKENDS = ("torch", "onnxruntime", "openvino")


@dataclass
class BackendRow:
    """One model and backend: median seconds, and the masks' distance to PyTorch's."""

    model: str
    backend: str
    network: float
    full: float
    torch_network: float
    torch_full: float
    masks_error: float  # max |masks - torch masks| / max |torch masks|


def _padded_batch(image: torch.Tensor, size: tuple[int, int], mean: torch.Tensor) -> torch.Tensor:
    # Pixel-mean padding, which normalises to 0: what MaskFormer and ExportedPredictor feed.
    batch = mean.view(1, 3, 1, 1).expand(1, 3, *size).clone()
    batch[0, :, : image.shape[-2], : image.shape[-1]] = image
    return batch


def bench_backends(
    models: dict[str, tuple[torch.nn.Module, object]],
    size: tuple[int, int],
    backends: list[str],
    repeats: int,
    threads: int,
) -> tuple[list[BackendRow], dict[str, float]]:
    """Time every backend on every model at input ``size`` (h, w).

    Args:
        models: name -> (``MaskFormer`` in eval mode, its config).
        size: the image size; the network runs at it rounded up to the size divisibility.
        backends: names from ``BACKENDS`` ("torch" is always timed, as the reference).
        repeats: timed rounds (after one warm-up), variants interleaved.
        threads: intra-op threads of each runtime (torch's are set by the caller).

    Returns:
        The rows, and each model's ONNX export time in seconds.
    """
    rows, export_seconds = [], {}
    for name, (model, cfg) in models.items():
        unit = max(int(model.size_divisibility), 1)
        padded = tuple(-(-side // unit) * unit for side in size)
        generator = torch.Generator().manual_seed(0)
        image = torch.randint(0, 256, (3, *size), dtype=torch.uint8, generator=generator)
        inputs = [{"image": image, "height": size[0], "width": size[1]}]
        batch = _padded_batch(image.float(), padded, model.pixel_mean.flatten())
        network = ExportableNetwork(model)

        def torch_network(network=network, batch=batch) -> tuple[torch.Tensor, torch.Tensor]:
            with torch.no_grad():
                return network(batch)

        def torch_full(model=model, inputs=inputs) -> list[dict]:
            with torch.no_grad():
                return model(inputs)

        fns: dict[tuple[str, str], Callable[[], object]] = {
            ("torch", "network"): torch_network,
            ("torch", "full"): torch_full,
        }
        with tempfile.TemporaryDirectory() as directory:
            exported = [b for b in backends if b != "torch"]
            if exported:
                start = time.perf_counter()
                path = export_model(
                    model, cfg, export_format="onnx", output_dir=directory, height=padded[0],
                    width=padded[1],
                )  # fmt: skip
                export_seconds[name] = time.perf_counter() - start
            for backend in exported:
                predictor = ExportedPredictor(path, backend=backend, num_threads=threads)
                fns[(backend, "network")] = partial(predictor.network, batch)
                fns[(backend, "full")] = partial(predictor, inputs)
            expected_masks = torch_network()[1]
            errors = {
                backend: float(
                    (fns[(backend, "network")]()[1] - expected_masks).abs().max()
                    / expected_masks.abs().max()
                )
                for backend in ["torch", *exported]
            }
            medians = interleaved_medians(fns, repeats)
        for backend in ["torch", *exported]:
            rows.append(
                BackendRow(
                    name,
                    backend,
                    medians[(backend, "network")],
                    medians[(backend, "full")],
                    medians[("torch", "network")],
                    medians[("torch", "full")],
                    errors[backend],
                )
            )
    return rows, export_seconds


def print_backend_table(
    rows: list[BackendRow], export_seconds: dict[str, float], size: tuple[int, int]
) -> None:
    """A Markdown-ready table; ratio = PyTorch eager time / the backend's (higher is faster)."""
    print(f"\nExported network by backend, float32, {size[0]}x{size[1]} (ratio = torch / backend)")
    print(
        f"{'model':7s} {'backend':12s} {'network':>8s} {'ratio':>6s} {'full':>7s} {'ratio':>6s} "
        f"{'masks err':>9s}"
    )
    for row in rows:
        print(
            f"{row.model:7s} {row.backend:12s} {row.network:8.3f} "
            f"{row.torch_network / row.network:5.2f}x {row.full:7.3f} "
            f"{row.torch_full / row.full:5.2f}x {row.masks_error:9.1e}"
        )
    for name, seconds in export_seconds.items():
        print(f"ONNX export of {name}: {seconds:.1f} s")
