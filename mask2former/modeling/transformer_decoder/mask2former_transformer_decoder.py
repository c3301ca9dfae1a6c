"""Mask2Former's masked-attention transformer decoder and the transformer-decoder builder."""

from __future__ import annotations

import logging

import torch
from fvcore.nn.weight_init import c2_xavier_fill
from torch import nn
from torch.nn import functional as F

from mask2former.config.configurable import configurable
from mask2former.layers.position_encoding import PositionEmbeddingSine
from mask2former.layers.wrappers import Conv2d, flatten_spatial
from mask2former.modeling.head_outputs import MaskDecoderOutput
from mask2former.modeling.pixel_decoder.fpn import NUM_MULTI_SCALE_FEATURES
from mask2former.modeling.registry import TRANSFORMER_DECODER_REGISTRY, get_from_registry
from mask2former.modeling.transformer_decoder.layers import (
    MLP,
    CrossAttentionLayer,
    FFNLayer,
    SelfAttentionLayer,
)

logger = logging.getLogger(__name__)


def build_transformer_decoder(cfg, in_channels: int, mask_classification: bool = True) -> nn.Module:
    """Build ``cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME`` for ``in_channels`` inputs."""
    name = cfg.MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME
    decoder_cls = get_from_registry(
        TRANSFORMER_DECODER_REGISTRY, name, "MODEL.MASK_FORMER.TRANSFORMER_DECODER_NAME"
    )
    return decoder_cls(cfg, in_channels, mask_classification)


def compute_attention_mask(
    mask_logits: torch.Tensor, target_size: tuple[int, int], num_heads: int
) -> torch.Tensor:
    """Masked-attention mask from a mask prediction.

    The logits are resized bilinearly (align_corners=False) to ``target_size``; a position is
    masked where ``sigmoid < 0.5``. A query whose mask is empty at that resolution would attend
    nowhere, so its row is cleared and it attends everywhere.

    Args:
        mask_logits: (B, Q, H, W) mask logits.
        target_size: (h, w) of the feature level attended next.
        num_heads: attention heads (the mask is repeated per head).

    Returns:
        (B * num_heads, Q, h * w) bool, True where attention is NOT allowed.
    """
    resized = F.interpolate(mask_logits, size=target_size, mode="bilinear", align_corners=False)
    return _blocked_positions(resized.flatten(2), num_heads)


def resize_mask_features(mask_features: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """The mask features resized to a feature level's ``size`` for
    :func:`level_attention_mask`: bilinear, align_corners=False, as
    :func:`compute_attention_mask` resizes mask logits.

    Args:
        mask_features: (B, C, H, W) per-pixel embeddings, any memory layout.
        size: (h, w).

    Returns:
        (B, C, h, w), contiguous: the logits are then a plain (Q x C) @ (C x hw) product,
        faster on the CPU than one reading channels-last features in place.
    """
    resized = F.interpolate(mask_features, size=size, mode="bilinear", align_corners=False)
    return resized.contiguous()


def level_attention_mask(
    mask_embed: torch.Tensor, level_mask_features: torch.Tensor, num_heads: int
) -> torch.Tensor:
    """:func:`compute_attention_mask` of the mask logits ``mask_embed @ mask_features``,
    made without them.

    Bilinear resizing and the product with the query embeddings are both linear, so
    ``resize(mask_embed @ F) == mask_embed @ resize(F)``: the logits are made directly at the
    level's resolution. Only rounding differs, so a logit within rounding of 0 may land on the
    other side of the threshold.

    Args:
        mask_embed: (B, Q, C) query mask embeddings.
        level_mask_features: (B, C, h, w) from :func:`resize_mask_features`.
        num_heads: attention heads.

    Returns:
        (B * num_heads, Q, h * w) bool, True where attention is NOT allowed.
    """
    logits = torch.bmm(mask_embed, level_mask_features.flatten(2))  # (B, Q, h * w)
    return _blocked_positions(logits, num_heads)


def _blocked_positions(logits: torch.Tensor, num_heads: int) -> torch.Tensor:
    """(B, Q, h * w) logits -> (B * num_heads, Q, h * w) bool attention mask (see
    :func:`compute_attention_mask`)."""
    # sigmoid, not the sign: a logit whose sigmoid rounds to 0.5 is not masked (as the original)
    blocked = logits.sigmoid() < 0.5
    # out of place: the ONNX (TorchScript) exporter has no in-place bitwise and
    blocked = blocked & ~blocked.all(-1, keepdim=True)  # per query, the same for all heads
    return blocked.unsqueeze(1).expand(-1, num_heads, -1, -1).flatten(0, 1).detach()


@TRANSFORMER_DECODER_REGISTRY.register()
class MultiScaleMaskedTransformerDecoder(nn.Module):
    """Queries refined by masked cross-attention over three scales, round robin.

    Each layer does cross-attention (masked by the previous prediction), self-attention and an
    FFN; class and mask predictions are made from the initial queries and after every layer.
    """

    _version = 2

    @configurable
    def __init__(
        self,
        in_channels: int,
        mask_classification: bool = True,
        *,
        num_classes: int,
        hidden_dim: int,
        num_queries: int,
        nheads: int,
        dim_feedforward: int,
        dec_layers: int,
        pre_norm: bool,
        mask_dim: int,
        enforce_input_project: bool,
    ) -> None:
        """
        Args:
            in_channels: channels of the multi-scale input features.
            mask_classification: must be True (only mask classification is supported).
            num_classes: number of classes (a "no object" class is added).
            hidden_dim: transformer width.
            num_queries: number of queries.
            nheads: attention heads.
            dim_feedforward: FFN hidden dimension.
            dec_layers: number of decoder layers (the config's DEC_LAYERS minus 1).
            pre_norm: pre-LayerNorm layers instead of post-norm.
            mask_dim: channels of the mask features.
            enforce_input_project: add the 1x1 input projection even when
                ``in_channels == hidden_dim``.
        """
        super().__init__()
        if not mask_classification:
            raise ValueError("MultiScaleMaskedTransformerDecoder needs mask_classification=True")
        self.mask_classification = mask_classification
        self.pe_layer = PositionEmbeddingSine(hidden_dim // 2, normalize=True)

        self.num_heads = nheads
        self.num_layers = dec_layers
        self.transformer_self_attention_layers = nn.ModuleList()
        self.transformer_cross_attention_layers = nn.ModuleList()
        self.transformer_ffn_layers = nn.ModuleList()
        for _ in range(dec_layers):
            self.transformer_self_attention_layers.append(
                SelfAttentionLayer(hidden_dim, nheads, dropout=0.0, normalize_before=pre_norm)
            )
            self.transformer_cross_attention_layers.append(
                CrossAttentionLayer(hidden_dim, nheads, dropout=0.0, normalize_before=pre_norm)
            )
            self.transformer_ffn_layers.append(
                FFNLayer(hidden_dim, dim_feedforward, dropout=0.0, normalize_before=pre_norm)
            )
        self.decoder_norm = nn.LayerNorm(hidden_dim)

        self.num_queries = num_queries
        self.query_feat = nn.Embedding(num_queries, hidden_dim)  # learnable query features
        self.query_embed = nn.Embedding(num_queries, hidden_dim)  # learnable query positions

        self.num_feature_levels = NUM_MULTI_SCALE_FEATURES
        self.level_embed = nn.Embedding(self.num_feature_levels, hidden_dim)
        self.input_proj = nn.ModuleList()
        for _ in range(self.num_feature_levels):
            if in_channels != hidden_dim or enforce_input_project:
                proj = Conv2d(in_channels, hidden_dim, kernel_size=1)
                c2_xavier_fill(proj)
                self.input_proj.append(proj)
            else:
                self.input_proj.append(nn.Sequential())

        self.class_embed = nn.Linear(hidden_dim, num_classes + 1)
        self.mask_embed = MLP(hidden_dim, hidden_dim, mask_dim, 3)

    @classmethod
    def from_config(cls, cfg, in_channels: int, mask_classification: bool) -> dict:
        mask_former = cfg.MODEL.MASK_FORMER
        if mask_former.DEC_LAYERS < 1:
            raise ValueError(
                f"MODEL.MASK_FORMER.DEC_LAYERS must be >= 1, got {mask_former.DEC_LAYERS}"
            )
        return {
            "in_channels": in_channels,
            "mask_classification": mask_classification,
            "num_classes": cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES,
            "hidden_dim": mask_former.HIDDEN_DIM,
            "num_queries": mask_former.NUM_OBJECT_QUERIES,
            "nheads": mask_former.NHEADS,
            "dim_feedforward": mask_former.DIM_FEEDFORWARD,
            # DEC_LAYERS counts the prediction made from the learnable queries themselves
            "dec_layers": mask_former.DEC_LAYERS - 1,
            "pre_norm": mask_former.PRE_NORM,
            "enforce_input_project": mask_former.ENFORCE_INPUT_PROJ,
            "mask_dim": cfg.MODEL.SEM_SEG_HEAD.MASK_DIM,
        }

    @property
    def num_aux_outputs(self) -> int:
        """Earlier predictions in ``aux_outputs``: one from the learnable queries and one after
        every layer but the last, i.e. ``dec_layers`` (the config's DEC_LAYERS minus 1)."""
        return self.num_layers

    def _load_from_state_dict(
        self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
    ):
        version = local_metadata.get("version", None)
        if version is None or version < 2:
            # early checkpoints named the learnable query features "static_query"
            renamed = [k for k in state_dict if k.startswith(prefix) and "static_query" in k]
            for key in renamed:
                state_dict[key.replace("static_query", "query_feat")] = state_dict.pop(key)
            if renamed:
                logger.warning("Renamed %s to query_feat (old checkpoint format)", renamed)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )

    def forward(
        self,
        x: list[torch.Tensor],
        mask_features: torch.Tensor,
        mask: torch.Tensor | None = None,
        output_hidden_states: bool = False,
        output_aux_masks: bool = False,
    ) -> MaskDecoderOutput:
        """Predict classes and masks.

        Args:
            x: three feature levels, coarse to fine, each (B, in_channels, H_l, W_l).
            mask_features: (B, mask_dim, H_m, W_m) per-pixel embeddings.
            mask: ignored (padding is not masked, as in the original).
            output_hidden_states: also return every layer's output and the normalised
                queries behind every prediction.
            output_aux_masks: in eval mode, also return the earlier predictions'
                (B, Q, H_m, W_m) mask logits (training mode always does: the criterion needs
                them). Without them, each attention mask is computed at its level's
                resolution (``level_attention_mask``): about 10x less work, and the same
                masks up to float rounding at the threshold.

        Returns:
            the last prediction, the ``dec_layers`` earlier ones as ``aux_outputs`` (their
            ``pred_masks`` only with ``output_aux_masks``, as channels-last views in eval mode)
            and the last layer's output; with ``output_hidden_states`` also ``hidden_states``
            and ``query_states``.
        """
        del mask
        if len(x) != self.num_feature_levels:
            raise ValueError(f"expected {self.num_feature_levels} feature levels, got {len(x)}")
        aux_masks = self.training or output_aux_masks
        sources, positions, sizes = [], [], []
        param_dtype = self.level_embed.weight.dtype  # float32 unless ``model.to(dtype)``
        for level in range(self.num_feature_levels):
            sizes.append(tuple(x[level].shape[-2:]))
            # (B, C, H, W) -> (HW, B, C), as views whatever the maps' memory layout
            position = self.pe_layer(x[level], None).to(param_dtype)
            positions.append(flatten_spatial(position).transpose(0, 1))
            source = flatten_spatial(self.input_proj[level](x[level]))
            source = source + self.level_embed.weight[level]
            sources.append(source.transpose(0, 1))
        # Without auxiliary masks, the attention masks are made at their levels' resolution
        # from the mask features resized once per level (layer i attends to level i % 3).
        level_features: list[torch.Tensor | None] = [None] * self.num_feature_levels
        if not aux_masks:
            for level in range(min(self.num_layers, self.num_feature_levels)):
                level_features[level] = resize_mask_features(mask_features, sizes[level])

        batch = sources[0].shape[1]
        query_pos = self.query_embed.weight.unsqueeze(1).repeat(1, batch, 1)  # (Q, B, C)
        output = self.query_feat.weight.unsqueeze(1).repeat(1, batch, 1)

        class_logits, mask_logits, query_states, hidden_states = [], [], [], [output]
        # the prediction from the learnable queries masks the first layer, if there is one
        first_masked = self.num_layers > 0
        logits, masks, states, attn_mask = self.forward_prediction_heads(
            output,
            mask_features,
            sizes[0] if first_masked else None,
            level_features[0] if first_masked else None,
        )
        class_logits.append(logits)
        mask_logits.append(masks)
        query_states.append(states)
        for i in range(self.num_layers):
            level = i % self.num_feature_levels
            output = self.transformer_cross_attention_layers[i](
                output,
                sources[level],
                memory_mask=attn_mask,
                memory_key_padding_mask=None,  # padded pixels are not masked
                pos=positions[level],
                query_pos=query_pos,
            )
            output = self.transformer_self_attention_layers[i](output, query_pos=query_pos)
            output = self.transformer_ffn_layers[i](output)
            hidden_states.append(output)
            # the last prediction has no next layer to mask
            next_level = (i + 1) % self.num_feature_levels
            last = i + 1 == self.num_layers
            logits, masks, states, attn_mask = self.forward_prediction_heads(
                output,
                mask_features,
                None if last else sizes[next_level],
                None if last else level_features[next_level],
            )
            class_logits.append(logits)
            mask_logits.append(masks)
            query_states.append(states)

        return MaskDecoderOutput(
            pred_logits=class_logits[-1],
            pred_masks=mask_logits[-1].contiguous(),
            aux_outputs=[
                {"pred_logits": a, "pred_masks": b} if aux_masks else {"pred_logits": a}
                for a, b in zip(class_logits[:-1], mask_logits[:-1])
            ],
            last_hidden_state=output.transpose(0, 1),
            hidden_states=tuple(hidden_states) if output_hidden_states else None,
            query_states=tuple(query_states) if output_hidden_states else None,
        )

    def forward_prediction_heads(
        self,
        output: torch.Tensor,
        mask_features: torch.Tensor,
        attn_mask_target_size: tuple[int, int] | None,
        level_mask_features: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor | None]:
        """Predict from the current queries.

        Args:
            output: (Q, B, C) queries.
            mask_features: (B, mask_dim, H_m, W_m).
            attn_mask_target_size: (h, w) of the level attended next; None after the last
                layer (no mask is computed).
            level_mask_features: (B, mask_dim, h, w) the mask features resized to
                ``attn_mask_target_size`` (``resize_mask_features``): the attention mask is
                made from them, and no full-resolution mask logits (None in their place).

        Returns:
            class logits (B, Q, K+1), mask logits (B, Q, H_m, W_m) (a channels-last view in
            eval mode) or None, normalised queries (B, Q, C), and the next attention mask
            (B * heads, Q, h * w) bool or None.
        """
        decoder_output = self.decoder_norm(output).transpose(0, 1)
        device_type = decoder_output.device.type
        if not self.training and torch.is_autocast_enabled(device_type):
            # Reduced-precision inference keeps the (tiny) class head in float32: panoptic and
            # instance thresholds act on its softmax (bfloat16 cost 0.5 PQ on the demo model).
            with torch.autocast(device_type, enabled=False):
                outputs_class = self.class_embed(decoder_output.to(self.class_embed.weight.dtype))
        else:
            outputs_class = self.class_embed(decoder_output)
        mask_embed = self.mask_embed(decoder_output)
        if level_mask_features is not None:
            attn_mask = level_attention_mask(mask_embed, level_mask_features, self.num_heads)
            return outputs_class, None, decoder_output, attn_mask
        batch, num_queries = mask_embed.shape[:2]
        height, width = mask_features.shape[-2:]
        pixels = flatten_spatial(mask_features)  # (B, HW, C), read in place for either layout
        if self.training:
            outputs_mask = torch.bmm(mask_embed, pixels.transpose(1, 2))
            outputs_mask = outputs_mask.view(batch, num_queries, height, width)
        else:
            # Channels-last logits (B, HW, Q): resizing them for the attention mask then needs
            # no transposing copy (the CPU bilinear kernel works in channels-last).
            outputs_mask = torch.bmm(pixels, mask_embed.transpose(1, 2))
            outputs_mask = outputs_mask.view(batch, height, width, num_queries).permute(0, 3, 1, 2)
        attn_mask = None
        if attn_mask_target_size is not None:
            attn_mask = compute_attention_mask(outputs_mask, attn_mask_target_size, self.num_heads)
        return outputs_class, outputs_mask, decoder_output, attn_mask
