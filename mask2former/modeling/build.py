"""``build_model(cfg)``: the meta-architecture named by ``MODEL.META_ARCHITECTURE``."""

from __future__ import annotations

import logging

from torch import nn

from mask2former.modeling.registry import META_ARCH_REGISTRY, get_from_registry
from mask2former.utils.device import resolve_device

logger = logging.getLogger(__name__)


def build_model(cfg) -> nn.Module:
    """Build the whole model from a config and move it to ``cfg.MODEL.DEVICE`` (a plain
    "cuda" on a machine without CUDA means the CPU, with a warning).

    Args:
        cfg: a config from ``mask2former.config.get_cfg()`` (with a YAML merged in).

    Returns:
        The model (e.g. ``MaskFormer``), in training mode, without loaded weights.
    """
    meta_arch = get_from_registry(
        META_ARCH_REGISTRY, cfg.MODEL.META_ARCHITECTURE, "MODEL.META_ARCHITECTURE"
    )
    model = meta_arch(cfg)
    model.to(resolve_device(cfg.MODEL.DEVICE))
    logger.debug("Model:\n%s", model)
    return model
