"""``build_backbone``: the backbone named by ``MODEL.BACKBONE.NAME``."""

from __future__ import annotations

from mask2former.layers.shape_spec import ShapeSpec
from mask2former.modeling.backbone.backbone import Backbone
from mask2former.modeling.registry import BACKBONE_REGISTRY, get_from_registry


def build_backbone(cfg, input_shape: ShapeSpec | None = None) -> Backbone:
    """Build ``cfg.MODEL.BACKBONE.NAME`` from ``BACKBONE_REGISTRY``.

    Args:
        cfg: config node with ``MODEL.BACKBONE.NAME`` and the backbone's keys.
        input_shape: input description; default ``len(cfg.MODEL.PIXEL_MEAN)`` channels.

    Raises:
        KeyError: the name is not registered (the message lists the choices).
        TypeError: the registered callable did not return a :class:`Backbone`.
    """
    if input_shape is None:
        input_shape = ShapeSpec(channels=len(cfg.MODEL.PIXEL_MEAN))
    name = cfg.MODEL.BACKBONE.NAME
    backbone = get_from_registry(BACKBONE_REGISTRY, name, "MODEL.BACKBONE.NAME")(cfg, input_shape)
    if not isinstance(backbone, Backbone):
        raise TypeError(
            f"MODEL.BACKBONE.NAME={name!r} built a {type(backbone).__name__}, expected a Backbone"
        )
    return backbone
