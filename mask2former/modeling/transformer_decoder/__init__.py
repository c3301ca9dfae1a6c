"""Transformer decoders (registered in ``TRANSFORMER_DECODER_REGISTRY`` on import)."""

from mask2former.modeling.transformer_decoder.layers import (
    MLP,
    CrossAttentionLayer,
    FFNLayer,
    SelfAttentionLayer,
)
from mask2former.modeling.transformer_decoder.mask2former_transformer_decoder import (
    MultiScaleMaskedTransformerDecoder,
    build_transformer_decoder,
    compute_attention_mask,
)

__all__ = [
    "MLP",
    "CrossAttentionLayer",
    "FFNLayer",
    "MultiScaleMaskedTransformerDecoder",
    "SelfAttentionLayer",
    "build_transformer_decoder",
    "compute_attention_mask",
]
