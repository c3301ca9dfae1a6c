"""``ExportedPredictor``: an exported network + the shared post-processing, model-like."""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mask2former.export.metadata import read_metadata
from mask2former.modeling.postprocessing import postprocess_batch

logger = logging.getLogger(__name__)

BACKENDS = ("onnxruntime", "openvino", "torch_export")

Runner = Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]]


def _onnxruntime_runner(path: Path, num_threads: int | None) -> Runner:
    try:
        import onnxruntime
    except ImportError as error:
        raise ImportError(
            f"running {path} needs onnxruntime: pip install 'mask2former[export]'"
        ) from error

    options = onnxruntime.SessionOptions()
    if num_threads is not None:
        options.intra_op_num_threads = num_threads
    # Idle threads would spin after each run, on the cores the post-processing runs on next
    # (demo model, 512x683, 2 threads on a loaded machine: network 0.54 s vs 0.73 s spinning).
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        pred_logits, pred_masks = session.run(["pred_logits", "pred_masks"], {"image": image})
        return pred_logits, pred_masks

    return run


def _openvino_runner(path: Path, num_threads: int | None) -> Runner:
    import openvino

    core = openvino.Core()
    # float32: OpenVINO's CPU plugin may otherwise pick bfloat16 where the CPU has it.
    config = {"INFERENCE_PRECISION_HINT": "f32"}
    if num_threads is not None:
        config["INFERENCE_NUM_THREADS"] = num_threads
    compiled = core.compile_model(core.read_model(str(path)), "CPU", config)

    def run(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        outputs = compiled(image)
        return outputs["pred_logits"], outputs["pred_masks"]

    return run


def _torch_export_runner(path: Path) -> Runner:
    from mask2former.layers import _msda_build

    # The program may hold the compiled MSDeformAttn op: register it before loading.
    _msda_build.load_extension()
    module = torch.export.load(str(path)).module()

    def run(image: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        with torch.no_grad():
            pred_logits, pred_masks = module(torch.from_numpy(image))
        return pred_logits.numpy(), pred_masks.numpy()

    return run


def default_backend(path: str | Path) -> str:
    """``torch_export`` for ``.pt2`` files, else ``onnxruntime``."""
    return "torch_export" if Path(path).suffix == ".pt2" else "onnxruntime"


class ExportedPredictor:
    """Runs a file written by ``tools/export_model.py`` and returns ``model([inputs])``'s dicts.

    Example::

        predictor = ExportedPredictor("export/model.onnx")
        results = predictor([{"image": image_chw}])  # [{"sem_seg", "panoptic_seg", "instances"}]
    """

    def __init__(
        self, path: str | Path, backend: str | None = None, num_threads: int | None = None
    ) -> None:
        """Args:
        path: the ``.onnx`` or ``.pt2`` file; its ``.json`` metadata must lie beside it.
        backend: one of ``BACKENDS``; default by the file's suffix.
        num_threads: CPU threads of onnxruntime / OpenVINO (their default when None).
        """
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"exported model {self.path} not found")
        self.metadata = read_metadata(self.path)
        self.backend = backend or default_backend(self.path)
        if self.backend not in BACKENDS:
            raise ValueError(f"backend={self.backend!r} is not one of {BACKENDS}")
        if self.backend == "torch_export":
            self._run = _torch_export_runner(self.path)
        elif self.backend == "openvino":
            self._run = _openvino_runner(self.path, num_threads)
        else:
            self._run = _onnxruntime_runner(self.path, num_threads)
        self._pad_value = torch.tensor(self.metadata["pixel_mean"]).view(-1, 1, 1)
        logger.info("ExportedPredictor: %s on %s", self.path, self.backend)

    def check_config(self, cfg: Any) -> None:
        """Raise unless ``cfg`` describes this file's model (same channel order and classes).

        ``Predictor(cfg, model=exported_predictor)`` reads the resizing, the channel order and
        the class names from ``cfg``.
        """
        checks = (
            ("INPUT.FORMAT", cfg.INPUT.FORMAT, "input_format"),
            ("MODEL.SEM_SEG_HEAD.NUM_CLASSES", cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES, "num_classes"),
        )
        mismatches = [
            f"{key} is {value!r} in the config but {self.metadata.get(field)!r} in the export"
            for key, value, field in checks
            if value != self.metadata.get(field)
        ]
        if mismatches:
            raise ValueError(
                f"the config does not match {self.path} ({'; '.join(mismatches)}): pass the "
                f"config it was exported from ({self.metadata.get('config_file') or 'unknown'})"
            )

    def padded_size(self, sizes: list[tuple[int, int]]) -> tuple[int, int]:
        """The network input size for images of ``sizes`` (h, w).

        A fixed-size export takes its exported size; a dynamic one the largest image rounded
        up to the size divisibility, as ``MaskFormer`` pads.
        """
        max_h, max_w = (max(size[i] for size in sizes) for i in (0, 1))
        if not self.metadata["dynamic"]:
            height, width = self.metadata["height"], self.metadata["width"]
            if max_h > height or max_w > width:
                raise ValueError(
                    f"{self.path} takes images up to {height}x{width} (exported without "
                    f"--dynamic); got {max_h}x{max_w}: resize it or re-export with that size"
                )
            return height, width
        unit = max(self.metadata["size_divisibility"], 1)
        return -(-max_h // unit) * unit, -(-max_w // unit) * unit

    def network(self, images: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the exported graph on (N, 3, H, W) float pixels; returns logits and masks.

        A graph exported with batch 1 (without ``--dynamic``) runs image by image.
        """
        images = images.float().contiguous()
        chunks = [images] if self.metadata["dynamic"] else images.split(1)
        outputs = [self._run(chunk.numpy()) for chunk in chunks]
        return tuple(torch.from_numpy(np.concatenate(parts)) for parts in zip(*outputs))

    def __call__(self, batched_inputs: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Like ``MaskFormer`` in eval mode.

        Args:
            batched_inputs: dicts with "image" ((3, H, W) uint8 or float, 0-255, in the
                exported config's ``INPUT.FORMAT``) and optionally "height" / "width".

        Returns:
            One dict per image with "sem_seg", "panoptic_seg" and "instances" as switched on.
        """
        images = [inputs["image"].float() for inputs in batched_inputs]
        image_sizes = [(int(image.shape[-2]), int(image.shape[-1])) for image in images]
        height, width = self.padded_size(image_sizes)
        # Padded with the pixel mean, which the graph normalises to 0 (MaskFormer's padding).
        batch = self._pad_value.expand(len(images), -1, height, width).clone()
        for index, image in enumerate(images):
            batch[index, :, : image.shape[-2], : image.shape[-1]] = image
        pred_logits, pred_masks = self.network(batch)
        meta = self.metadata
        return postprocess_batch(
            pred_logits,
            pred_masks,
            (height, width),
            image_sizes,
            [
                (inputs.get("height", size[0]), inputs.get("width", size[1]))
                for inputs, size in zip(batched_inputs, image_sizes)
            ],
            semantic_on=meta["semantic_on"],
            panoptic_on=meta["panoptic_on"],
            instance_on=meta["instance_on"],
            sem_seg_postprocess_before_inference=meta["sem_seg_postprocess_before_inference"],
            object_mask_threshold=meta["object_mask_threshold"],
            overlap_threshold=meta["overlap_threshold"],
            test_topk_per_image=meta["test_topk_per_image"],
            thing_ids=meta["thing_ids"],
        )
