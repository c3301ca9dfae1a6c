"""``Predictor``: run a config's model on raw images (numpy arrays), as detectron2's
``DefaultPredictor`` does, with batched calls and optional reduced precision (``TEST.AMP``).

Typical use::

    cfg = get_cfg(); cfg.merge_from_file(...); cfg.MODEL.WEIGHTS = "model_final.pkl"
    predictor = Predictor(cfg)
    outputs = predictor(read_image("input.jpg", format="BGR"))   # one dict
    outputs = predictor([image_a, image_b])                      # one dict per image

The resizing half (``ImagePreprocessor``) is a small picklable object, so data-loader workers
can prepare the next images while the model runs (see ``demo/demo.py``).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch

from mask2former.checkpoint import DetectionCheckpointer
from mask2former.data.catalog import Metadata, MetadataCatalog
from mask2former.data.transforms import ResizeShortestEdge
from mask2former.modeling import build_model

logger = logging.getLogger(__name__)

__all__ = ["ImagePreprocessor", "Predictor"]

_SUPPORTED_FORMATS = ("RGB", "BGR")


class ImagePreprocessor:
    """One (H, W, 3) uint8 image -> the model's input dict (resize + channel order).

    Args:
        min_size, max_size: ``ResizeShortestEdge`` sizes (``INPUT.MIN_SIZE_TEST`` /
            ``INPUT.MAX_SIZE_TEST``).
        input_format: channel order of the given arrays ("BGR" or "RGB").
        model_format: channel order the model expects (``INPUT.FORMAT``).
    """

    def __init__(self, min_size: int, max_size: int, input_format: str, model_format: str):
        for name, value in (("INPUT.FORMAT", model_format), ("input_format", input_format)):
            if value not in _SUPPORTED_FORMATS:
                raise ValueError(f"{name} must be one of {_SUPPORTED_FORMATS}, got {value!r}")
        self.input_format = input_format
        self.model_format = model_format
        self.resize = ResizeShortestEdge(int(min_size), int(max_size))

    def __call__(self, image: np.ndarray) -> dict[str, Any]:
        """Returns: {"image": (3, h, w) float32 tensor in the model's channel order, resized,
        "height": H, "width": W}."""
        if not isinstance(image, np.ndarray) or image.ndim != 3 or image.shape[2] != 3:
            shape = getattr(image, "shape", None)
            raise ValueError(
                f"Predictor expects (H, W, 3) numpy images in {self.input_format} order, got "
                f"{type(image).__name__} of shape {shape}"
            )
        if image.size == 0 or image.dtype.kind not in "uif":
            raise ValueError(
                f"Predictor expects (H, W, 3) uint8 images with at least one pixel, got shape "
                f"{image.shape} and dtype {image.dtype}"
            )
        if self.input_format != self.model_format:
            image = image[:, :, ::-1]
        height, width = image.shape[:2]
        resized = self.resize.get_transform(image).apply_image(np.ascontiguousarray(image))
        tensor = torch.as_tensor(resized.astype("float32").transpose(2, 0, 1))
        return {"image": tensor, "height": height, "width": width}


class Predictor:
    """Build the model of ``cfg``, load ``cfg.MODEL.WEIGHTS`` and predict on raw images.

    Each image is resized with ``ResizeShortestEdge(INPUT.MIN_SIZE_TEST, INPUT.MAX_SIZE_TEST)``
    and converted to ``INPUT.FORMAT``; the outputs are at the input image's size. With
    ``TEST.AMP.ENABLED`` the network runs under autocast in ``TEST.AMP.DTYPE``.

    Args:
        cfg: a config from ``mask2former.config.get_cfg()``; it is cloned.
        input_format: channel order of the arrays passed to ``__call__`` ("BGR", as OpenCV and
            ``read_image(..., format="BGR")`` give, or "RGB").
        model: what runs the model's input dicts instead of ``cfg``'s model with
            ``MODEL.WEIGHTS``, e.g. ``mask2former.export.ExportedPredictor`` (``cfg`` then gives
            the resizing, the channel order and the dataset metadata).
    """

    def __init__(
        self,
        cfg,
        input_format: str = "BGR",
        model: Callable[[list[dict[str, Any]]], list[dict]] | None = None,
    ) -> None:
        self.cfg = cfg.clone()
        self.preprocessor = ImagePreprocessor(
            self.cfg.INPUT.MIN_SIZE_TEST,
            self.cfg.INPUT.MAX_SIZE_TEST,
            input_format=input_format,
            model_format=self.cfg.INPUT.FORMAT,
        )
        if model is None:
            model = build_model(self.cfg).eval()
            DetectionCheckpointer(model).load(self.cfg.MODEL.WEIGHTS)
        self.model = model
        test_sets = self.cfg.DATASETS.TEST
        self.metadata: Metadata = MetadataCatalog.get(
            test_sets[0] if len(test_sets) else "__unused"
        )

    def preprocess(self, image: np.ndarray) -> dict[str, Any]:
        """One (H, W, 3) uint8 image -> the model's input dict (see :class:`ImagePreprocessor`)."""
        return self.preprocessor(image)

    @torch.no_grad()
    def run(self, inputs: Sequence[dict[str, Any]]) -> list[dict]:
        """The model's outputs for already preprocessed inputs, in order.

        Inputs of one (resized) size share a forward pass; different sizes are not padded to
        each other (padding would change the outputs), so each output equals a one-image call.
        """
        by_size: dict[tuple[int, ...], list[int]] = {}
        for index, item in enumerate(inputs):
            by_size.setdefault(tuple(item["image"].shape), []).append(index)
        outputs: list[dict | None] = [None] * len(inputs)
        for indices in by_size.values():
            for index, output in zip(indices, self.model([inputs[i] for i in indices])):
                outputs[index] = output
        return outputs  # type: ignore[return-value]

    def __call__(self, images: np.ndarray | Sequence[np.ndarray]) -> dict | list[dict]:
        """Predict on one image or a list of images (one forward pass per image size).

        Args:
            images: an (H, W, 3) uint8 array in ``input_format`` order, or a list of them.

        Returns:
            For one image its output dict ("sem_seg" (K, H, W), "panoptic_seg" (ids (H, W),
            segments_info), "instances"), as the model's test options switch on; for a list,
            a list of such dicts.
        """
        if isinstance(images, np.ndarray):
            return self([images])[0]
        if isinstance(images, torch.Tensor):  # iterating it would hide what was given
            raise ValueError(
                "Predictor expects (H, W, 3) numpy images, got a Tensor of shape "
                f"{tuple(images.shape)}; pass image.numpy() for an HWC tensor"
            )
        return self.run([self.preprocess(image) for image in images])
