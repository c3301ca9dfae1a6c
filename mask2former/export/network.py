"""The exported graph: pixels 0-255 in, ``pred_logits`` and ``pred_masks`` out."""

from __future__ import annotations

import torch
from torch import nn

OUTPUT_NAMES = ("pred_logits", "pred_masks")


class ExportableNetwork(nn.Module):
    """A ``MaskFormer``'s network without pre- and post-processing, for exporters.

    Normalisation happens inside, so a runtime feeds raw pixels. Pad with the pixel mean
    (which normalises to 0, the value ``MaskFormer`` pads with) to reach a multiple of the
    size divisibility.
    """

    def __init__(self, model: nn.Module) -> None:
        """Args: model: a ``MaskFormer`` (``backbone``, ``sem_seg_head``, ``pixel_mean/std``)."""
        super().__init__()
        self.backbone = model.backbone
        self.sem_seg_head = model.sem_seg_head
        self.register_buffer("pixel_mean", model.pixel_mean.detach().clone(), False)
        self.register_buffer("pixel_std", model.pixel_std.detach().clone(), False)

    def forward(self, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Run the network.

        Args:
            image: (N, 3, H, W) float32 pixel values 0-255 in the config's ``INPUT.FORMAT``.

        Returns:
            pred_logits (N, Q, K + 1) and pred_masks (N, Q, H / 4, W / 4) (float32 logits).
        """
        outputs = self.sem_seg_head(self.backbone((image - self.pixel_mean) / self.pixel_std))
        return outputs["pred_logits"].float(), outputs["pred_masks"].float()
