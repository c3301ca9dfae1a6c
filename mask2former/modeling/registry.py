"""All model registries, one per role (fvcore ``Registry``).

Each registry's ``get`` raises ``KeyError`` listing what is registered; the builders in
``mask2former.modeling.build`` turn that into an error naming the config key.
"""

from fvcore.common.registry import Registry

BACKBONE_REGISTRY = Registry("BACKBONE")
BACKBONE_REGISTRY.__doc__ = "Backbones: called as fn(cfg, input_shape: ShapeSpec) -> Backbone."

PIXEL_DECODER_REGISTRY = Registry("PIXEL_DECODER")
PIXEL_DECODER_REGISTRY.__doc__ = (
    "Pixel decoders (MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME): cls(cfg, input_shape)."
)

SEM_SEG_HEADS_REGISTRY = Registry("SEM_SEG_HEADS")
SEM_SEG_HEADS_REGISTRY.__doc__ = (
    "Segmentation heads (MODEL.SEM_SEG_HEAD.NAME): cls(cfg, input_shape)."
)

TRANSFORMER_DECODER_REGISTRY = Registry("TRANSFORMER_MODULE")
TRANSFORMER_DECODER_REGISTRY.__doc__ = (
    "Transformer decoders (MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME): "
    "cls(cfg, in_channels, mask_classification=True)."
)

META_ARCH_REGISTRY = Registry("META_ARCH")
META_ARCH_REGISTRY.__doc__ = "Meta-architectures (MODEL.META_ARCHITECTURE): cls(cfg)."


def get_from_registry(registry: Registry, name: str, cfg_key: str):
    """Look ``name`` up, raising a KeyError that names ``cfg_key`` and the choices."""
    try:
        return registry.get(name)
    except KeyError as e:
        choices = sorted(name for name, _ in registry)
        raise KeyError(
            f"{cfg_key}={name!r} is not a registered {registry._name.lower()}; choices: {choices}"
        ) from e
