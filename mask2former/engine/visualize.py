"""Write a few visualised predictions of a test dataset into the output folder."""

from __future__ import annotations

import logging
import os
from typing import Any

import cv2
import torch
from torch import nn

from mask2former.data import MetadataCatalog, build_detection_test_loader
from mask2former.data.detection_utils import read_image
from mask2former.utils.visualizer import draw_predictions

logger = logging.getLogger(__name__)


@torch.no_grad()
def save_visualizations(
    cfg: Any, model: nn.Module, dataset_name: str, output_dir: str, num_images: int = 4
) -> list[str]:
    """Run ``model`` on the first ``num_images`` images of ``dataset_name`` and save
    ``<output_dir>/<image stem>.png`` with the prediction (panoptic if predicted, else
    instances, else semantic) drawn over the image. Returns the written paths."""
    metadata = MetadataCatalog.get(dataset_name)
    os.makedirs(output_dir, exist_ok=True)
    was_training = model.training
    model.eval()
    written = []
    try:
        for inputs in build_detection_test_loader(cfg, dataset_name):
            if len(written) >= num_images:
                break
            outputs = model(inputs)
            for record, prediction in zip(inputs, outputs):
                image_rgb = read_image(record["file_name"], "RGB")
                drawn = draw_predictions(image_rgb, prediction, metadata)
                stem = os.path.splitext(os.path.basename(record["file_name"]))[0]
                path = os.path.join(output_dir, f"{stem}.png")
                cv2.imwrite(path, cv2.cvtColor(drawn, cv2.COLOR_RGB2BGR))
                written.append(path)
    finally:
        model.train(was_training)
    logger.info("Saved %d visualised predictions to %s", len(written), output_dir)
    return written
