"""The demo "shapes" dataset as a torch Dataset for the transformers-style door."""

from __future__ import annotations

import glob
import os
from typing import Any

import numpy as np
import torch
from PIL import Image

from mask2former.hf.image_processing import Mask2FormerImageProcessor


class DemoSemanticDataset(torch.utils.data.Dataset):
    """Images with their semantic maps (ids 0..4, 255 ignored), encoded by ``processor``.

    Args:
        root: output folder of ``python -m mask2former.data.datasets.demo_files``.
        split: "train" or "val".
        processor: the image processor; its ``ignore_index`` should be 255.
    """

    def __init__(self, root: str, split: str, processor: Mask2FormerImageProcessor) -> None:
        self.images = sorted(glob.glob(os.path.join(root, "images", split, "*.png")))
        if not self.images:
            raise FileNotFoundError(
                f"no images under {os.path.join(root, 'images', split)}; create the dataset with "
                f"python -m mask2former.data.datasets.demo_files --output {root}"
            )
        self.maps = [
            os.path.join(root, f"sem_seg_{split}", os.path.basename(p)) for p in self.images
        ]
        self.processor = processor

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, index: int) -> dict[str, Any]:
        image = np.array(Image.open(self.images[index]).convert("RGB"))
        segmentation_map = np.array(Image.open(self.maps[index]))
        encoded = self.processor(image, segmentation_maps=segmentation_map)
        return {key: value[0] for key, value in encoded.items()}


def collate_segmentation_batch(items: list[dict[str, Any]]) -> dict[str, Any]:
    """Pad pixel values / masks (and label masks) to the batch's largest size and stack them.

    Returns:
        pixel_values (B, 3, H, W), pixel_mask (B, H, W), and lists mask_labels (N_i, H, W),
        class_labels (N_i,).
    """
    height = max(item["pixel_values"].shape[-2] for item in items)
    width = max(item["pixel_values"].shape[-1] for item in items)

    def pad(tensor: torch.Tensor) -> torch.Tensor:
        bottom, right = height - tensor.shape[-2], width - tensor.shape[-1]
        return torch.nn.functional.pad(tensor, (0, right, 0, bottom))

    batch: dict[str, Any] = {
        "pixel_values": torch.stack([pad(item["pixel_values"]) for item in items]),
        "pixel_mask": torch.stack([pad(item["pixel_mask"]) for item in items]),
    }
    if "mask_labels" in items[0]:
        batch["mask_labels"] = [pad(item["mask_labels"]) for item in items]
        batch["class_labels"] = [item["class_labels"] for item in items]
    return batch
