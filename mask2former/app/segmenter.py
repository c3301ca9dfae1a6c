"""The web demo's model: a config + weights (``Predictor``) or a transformers-style folder.

Both give detectron2-style predictions ("sem_seg", "panoptic_seg", "instances") from the
shared post-processing, so the page draws and exports them the same way. The score threshold
of the page is the panoptic ``object_mask_threshold`` (the minimum class probability of a kept
query); instances are filtered by it afterwards, in ``mask2former.app.results``.
"""

from __future__ import annotations

import logging
import os
import threading
from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from mask2former.config import get_cfg
from mask2former.model_zoo import resolve_config_file
from mask2former.modeling.inference_amp import inference_autocast
from mask2former.modeling.postprocessing import postprocess_batch
from mask2former.predictor import Predictor

logger = logging.getLogger(__name__)

__all__ = ["ConfigSegmenter", "Segmenter", "TransformersSegmenter", "config_from_file"]


class Segmenter(ABC):
    """Runs a model on RGB images; subclasses say how.

    Attributes:
        metadata: class names and colours (detectron2 ``Metadata`` or a dict).
        default_threshold: the model's own panoptic score threshold.
        description: one line naming the model, shown on the page.
    """

    metadata: Any
    default_threshold: float
    description: str

    def __init__(self) -> None:
        # One forward at a time: the page's events run in worker threads, and the threshold
        # of a run must not change under another.
        self._lock = threading.Lock()

    def predict(self, images: Sequence[np.ndarray], score_threshold: float) -> list[dict]:
        """Predictions for (H, W, 3) uint8 RGB images, one dict per image, in order."""
        if not 0.0 <= score_threshold <= 1.0:
            raise ValueError(f"score_threshold must be in [0, 1], got {score_threshold}")
        with self._lock, torch.no_grad():
            return self._predict(list(images), float(score_threshold))

    @abstractmethod
    def _predict(self, images: list[np.ndarray], score_threshold: float) -> list[dict]:
        """``predict`` under the lock, with a checked threshold."""


def config_from_file(config_file: str, opts: Sequence[str] = ()) -> Any:
    """The frozen config of ``config_file`` (a path or a shipped config name) with
    ``KEY VALUE`` overrides; CPU when CUDA is asked for but absent."""
    config_file = resolve_config_file(config_file)
    if len(opts) % 2:
        raise ValueError(f"--opts takes KEY VALUE pairs, got an odd count: {list(opts)}")
    cfg = get_cfg()
    cfg.merge_from_file(config_file)
    cfg.merge_from_list(list(opts))
    if cfg.MODEL.DEVICE.startswith("cuda") and not torch.cuda.is_available():
        logger.warning("MODEL.DEVICE is %s but CUDA is not available; using cpu", cfg.MODEL.DEVICE)
        cfg.MODEL.DEVICE = "cpu"
    cfg.freeze()
    return cfg


class ConfigSegmenter(Segmenter):
    """A detectron2-style config and its ``MODEL.WEIGHTS`` through ``Predictor``.

    ``TEST.AMP.ENABLED True`` in the config runs the network in bfloat16; panoptic, instance
    and semantic results must all be switched on (``MODEL.MASK_FORMER.TEST.*_ON``) for the
    page to offer them.

    Args:
        cfg: a config from ``mask2former.config.get_cfg()``.
    """

    def __init__(self, cfg: Any) -> None:
        super().__init__()
        self.predictor = Predictor(cfg, input_format="RGB")
        self.metadata = self.predictor.metadata
        self.default_threshold = float(self.predictor.model.object_mask_threshold)
        weights = cfg.MODEL.WEIGHTS or "random initialisation"
        self.description = f"{cfg.MODEL.META_ARCHITECTURE} with weights {weights}"

    def _predict(self, images: list[np.ndarray], score_threshold: float) -> list[dict]:
        model = self.predictor.model
        model.object_mask_threshold = score_threshold
        return self.predictor(images)


class TransformersSegmenter(Segmenter):
    """A ``save_pretrained`` folder (config.json, weights, preprocessor_config.json).

    transformers' configs do not say which classes are things, so every class is a thing in
    panoptic results (as transformers does without ``label_ids_to_fuse``).

    Args:
        model_dir: the folder.
        bfloat16: run the network under ``torch.autocast`` in bfloat16.
    """

    def __init__(self, model_dir: str, bfloat16: bool = False) -> None:
        super().__init__()
        # Imported here: the transformers door is only needed for --hf-model.
        from mask2former.hf import Mask2FormerForUniversalSegmentation, Mask2FormerImageProcessor

        self.model = Mask2FormerForUniversalSegmentation.from_pretrained(model_dir).eval()
        has_processor = os.path.isfile(os.path.join(model_dir, "preprocessor_config.json"))
        self.processor = (
            Mask2FormerImageProcessor.from_pretrained(model_dir)
            if has_processor
            else Mask2FormerImageProcessor()
        )
        config = self.model.config
        names = [config.id2label[i] for i in range(len(config.id2label))]
        self.metadata = {"thing_classes": names, "stuff_classes": names}
        self.thing_ids = list(range(len(names)))
        self.default_threshold = 0.8  # transformers' panoptic default
        self.dtype = torch.bfloat16 if bfloat16 else None
        self.description = f"Mask2FormerForUniversalSegmentation from {model_dir}"

    def _predict(self, images: list[np.ndarray], score_threshold: float) -> list[dict]:
        results = []
        for image in images:
            encoded = self.processor(image, return_tensors="pt", input_data_format="channels_last")
            pixel_mask = encoded["pixel_mask"][0]
            image_size = (int(pixel_mask.any(1).sum()), int(pixel_mask.any(0).sum()))
            pixel_values = encoded["pixel_values"].to(self.model.device)
            with inference_autocast(self.model.device.type, self.dtype):
                outputs = self.model(pixel_values)
            results += postprocess_batch(
                outputs.class_queries_logits.float(),
                outputs.masks_queries_logits.float(),
                tuple(pixel_values.shape[-2:]),
                [image_size],
                [image.shape[:2]],
                semantic_on=True,
                panoptic_on=True,
                instance_on=True,
                sem_seg_postprocess_before_inference=True,
                object_mask_threshold=score_threshold,
                overlap_threshold=0.8,
                test_topk_per_image=100,
                thing_ids=self.thing_ids,
            )
        return results
