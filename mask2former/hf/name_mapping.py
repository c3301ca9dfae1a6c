"""Checkpoint parameter names: transformers <-> original Mask2Former (detectron2), both ways.

The transformers side uses the names transformers writes into ``model.safetensors`` (the
hub layout: ``...encoder.encoder.layers.0.blocks.0.attention.self.query.weight``); the names
of transformers 5's live modules (``...encoder.swin.encoder...attention.q_proj.weight``) are
accepted on input as well. The original side is the state dict of ``MaskFormer``
(``backbone.layers.0.blocks.0.attn.qkv.weight``, ``sem_seg_head.pixel_decoder...``,
``sem_seg_head.predictor...``, ``criterion.empty_weight``).

Fused projections are split or merged: Swin's ``attn.qkv`` <-> ``self.query/key/value`` and
the decoder self-attention's ``in_proj_{weight,bias}`` <-> ``q_proj/k_proj/v_proj`` (the
cross-attention is an ``nn.MultiheadAttention`` on both sides). Swin's
``relative_position_index`` (original only) is rebuilt from the window size, and
transformers' unused final Swin LayerNorm is dropped or written as an identity.
"""

from __future__ import annotations

import math
import re

import torch

from mask2former.modeling.backbone.swin_blocks import relative_position_index

_HF_SWIN = "model.pixel_level_module.encoder."
_HF_PIXEL = "model.pixel_level_module.decoder."
_HF_DECODER = "model.transformer_module."
_PIXEL = "sem_seg_head.pixel_decoder."
_PRED = "sem_seg_head.predictor."
_BLOCK_HF = _HF_SWIN + "encoder.layers.{i}.blocks.{j}."
_BLOCK_D2 = "backbone.layers.{i}.blocks.{j}."
_SELF_HF = _HF_DECODER + "decoder.layers.{i}.self_attn."
_SELF_D2 = _PRED + "transformer_self_attention_layers.{i}.self_attn."

# (transformers template, original template); {name} matches one dotted component.
_RENAMES: list[tuple[str, str]] = [
    (_HF_SWIN + "embeddings.patch_embeddings.projection.{p}", "backbone.patch_embed.proj.{p}"),
    (_HF_SWIN + "embeddings.norm.{p}", "backbone.patch_embed.norm.{p}"),
    (_BLOCK_HF + "layernorm_before.{p}", _BLOCK_D2 + "norm1.{p}"),
    (_BLOCK_HF + "layernorm_after.{p}", _BLOCK_D2 + "norm2.{p}"),
    (
        _BLOCK_HF + "attention.self.relative_position_bias_table",
        _BLOCK_D2 + "attn.relative_position_bias_table",
    ),
    (_BLOCK_HF + "attention.output.dense.{p}", _BLOCK_D2 + "attn.proj.{p}"),
    (_BLOCK_HF + "intermediate.dense.{p}", _BLOCK_D2 + "mlp.fc1.{p}"),
    (_BLOCK_HF + "output.dense.{p}", _BLOCK_D2 + "mlp.fc2.{p}"),
    (_HF_SWIN + "encoder.layers.{i}.downsample.{m}.{p}", "backbone.layers.{i}.downsample.{m}.{p}"),
    (_HF_PIXEL + "level_embed", _PIXEL + "transformer.level_embed"),
    (_HF_PIXEL + "input_projections.{i}.{m}.{p}", _PIXEL + "input_proj.{i}.{m}.{p}"),
    (
        _HF_PIXEL + "encoder.layers.{i}.self_attn.{m}.{p}",
        _PIXEL + "transformer.encoder.layers.{i}.self_attn.{m}.{p}",
    ),
    (
        _HF_PIXEL + "encoder.layers.{i}.self_attn_layer_norm.{p}",
        _PIXEL + "transformer.encoder.layers.{i}.norm1.{p}",
    ),
    (
        _HF_PIXEL + "encoder.layers.{i}.fc1.{p}",
        _PIXEL + "transformer.encoder.layers.{i}.linear1.{p}",
    ),
    (
        _HF_PIXEL + "encoder.layers.{i}.fc2.{p}",
        _PIXEL + "transformer.encoder.layers.{i}.linear2.{p}",
    ),
    (
        _HF_PIXEL + "encoder.layers.{i}.final_layer_norm.{p}",
        _PIXEL + "transformer.encoder.layers.{i}.norm2.{p}",
    ),
    (_HF_PIXEL + "mask_projection.{p}", _PIXEL + "mask_features.{p}"),
    (_HF_PIXEL + "adapter_{i}.0.weight", _PIXEL + "adapter_{i}.weight"),
    (_HF_PIXEL + "adapter_{i}.1.{p}", _PIXEL + "adapter_{i}.norm.{p}"),
    (_HF_PIXEL + "layer_{i}.0.weight", _PIXEL + "layer_{i}.weight"),
    (_HF_PIXEL + "layer_{i}.1.{p}", _PIXEL + "layer_{i}.norm.{p}"),
    (_HF_DECODER + "queries_embedder.weight", _PRED + "query_embed.weight"),
    (_HF_DECODER + "queries_features.weight", _PRED + "query_feat.weight"),
    (_HF_DECODER + "level_embed.weight", _PRED + "level_embed.weight"),
    (_HF_DECODER + "input_projections.{i}.{p}", _PRED + "input_proj.{i}.{p}"),
    (_SELF_HF + "out_proj.{p}", _SELF_D2 + "out_proj.{p}"),
    (
        _HF_DECODER + "decoder.layers.{i}.self_attn_layer_norm.{p}",
        _PRED + "transformer_self_attention_layers.{i}.norm.{p}",
    ),
    (
        _HF_DECODER + "decoder.layers.{i}.cross_attn.{m}",
        _PRED + "transformer_cross_attention_layers.{i}.multihead_attn.{m}",
    ),
    (
        _HF_DECODER + "decoder.layers.{i}.cross_attn.out_proj.{p}",
        _PRED + "transformer_cross_attention_layers.{i}.multihead_attn.out_proj.{p}",
    ),
    (
        _HF_DECODER + "decoder.layers.{i}.cross_attn_layer_norm.{p}",
        _PRED + "transformer_cross_attention_layers.{i}.norm.{p}",
    ),
    (_HF_DECODER + "decoder.layers.{i}.fc1.{p}", _PRED + "transformer_ffn_layers.{i}.linear1.{p}"),
    (_HF_DECODER + "decoder.layers.{i}.fc2.{p}", _PRED + "transformer_ffn_layers.{i}.linear2.{p}"),
    (
        _HF_DECODER + "decoder.layers.{i}.final_layer_norm.{p}",
        _PRED + "transformer_ffn_layers.{i}.norm.{p}",
    ),
    (_HF_DECODER + "decoder.layernorm.{p}", _PRED + "decoder_norm.{p}"),
    (
        _HF_DECODER + "decoder.mask_predictor.mask_embedder.{i}.0.{p}",
        _PRED + "mask_embed.layers.{i}.{p}",
    ),
    ("class_predictor.{p}", _PRED + "class_embed.{p}"),
    ("criterion.empty_weight", "criterion.empty_weight"),
]

# Fused projections: (transformers template with {part}, parts in fused order, original template).
_FUSED: list[tuple[str, tuple[str, ...], str]] = [
    (
        _BLOCK_HF + "attention.self.{part}.{p}",
        ("query", "key", "value"),
        _BLOCK_D2 + "attn.qkv.{p}",
    ),
    (_SELF_HF + "{part}_proj.{p}", ("q", "k", "v"), _SELF_D2 + "in_proj_{p}"),
]
_HF_NORM = re.compile(re.escape(_HF_SWIN) + r"hidden_states_norms\.stage(\d+)\.(\w+)$")
_D2_NORM = re.compile(r"backbone\.norm(\d+)\.(\w+)$")
_HF_FINAL_SWIN_NORM = _HF_SWIN + "swin.layernorm."
_D2_REL_INDEX = re.compile(r"(backbone\.layers\.\d+\.blocks\.\d+\.attn\.)relative_position_index$")

# transformers 5 live-module names -> the names it writes to disk.
_LIVE_TO_DISK: list[tuple[str, str]] = [
    (r"encoder\.swin\.embeddings\.", "encoder.embeddings."),
    (r"encoder\.swin\.encoder\.", "encoder.encoder."),
    (r"attention\.q_proj\.", "attention.self.query."),
    (r"attention\.k_proj\.", "attention.self.key."),
    (r"attention\.v_proj\.", "attention.self.value."),
    (r"attention\.o_proj\.", "attention.output.dense."),
    (
        r"attention\.relative_position_bias\.relative_position_bias_table",
        "attention.self.relative_position_bias_table",
    ),
    (r"(blocks\.\d+\.)mlp\.fc1\.", r"\1intermediate.dense."),
    (r"(blocks\.\d+\.)mlp\.fc2\.", r"\1output.dense."),
]


def _compile(template: str) -> re.Pattern:
    pattern = re.escape(template)
    pattern = re.sub(r"\\\{(\w+)\\\}", lambda m: f"(?P<{m.group(1)}>[A-Za-z0-9_]+)", pattern)
    return re.compile(pattern + "$")


_RENAME_PATTERNS = [(_compile(hf), hf, _compile(d2), d2) for hf, d2 in _RENAMES]
_FUSED_PATTERNS = [(_compile(hf), hf, parts, _compile(d2), d2) for hf, parts, d2 in _FUSED]


def _normalize_hf_names(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Disk names for transformers 5 live names; ``model.`` added for ``Mask2FormerModel``."""
    result = {}
    for name, tensor in state_dict.items():
        if name.startswith(("pixel_level_module.", "transformer_module.")):
            name = "model." + name
        for pattern, replacement in _LIVE_TO_DISK:
            name = re.sub(pattern, replacement, name)
        result[name] = tensor
    return result


def _unmapped_error(names: list[str], direction: str) -> KeyError:
    shown = ", ".join(sorted(names)[:10])
    more = f" (and {len(names) - 10} more)" if len(names) > 10 else ""
    return KeyError(f"{direction}: {len(names)} parameter names have no mapping: {shown}{more}")


def hf_to_original(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """transformers ``Mask2Former*`` state dict -> original ``MaskFormer`` state dict.

    Raises:
        KeyError: some names are not part of a Swin Mask2Former checkpoint (listed).
    """
    source = _normalize_hf_names(state_dict)
    result: dict[str, torch.Tensor] = {}
    fused: dict[str, dict[str, torch.Tensor]] = {}
    unmapped = []
    for name, tensor in source.items():
        if name.startswith(_HF_FINAL_SWIN_NORM):
            continue  # transformers' final Swin LayerNorm: not used by the backbone
        norm = _HF_NORM.match(name)
        if norm:
            result[f"backbone.norm{int(norm.group(1)) - 1}.{norm.group(2)}"] = tensor
            continue
        target = _rename(name, hf_to_d2=True)
        if target is not None:
            result[target] = tensor
            continue
        for hf_re, _, parts, _, d2 in _FUSED_PATTERNS:
            match = hf_re.match(name)
            if match and match.group("part") in parts:
                groups = {k: v for k, v in match.groupdict().items() if k != "part"}
                fused.setdefault(d2.format(**groups), {})[match.group("part")] = tensor
                break
        else:
            unmapped.append(name)
    if unmapped:
        raise _unmapped_error(unmapped, "transformers -> original")
    for target, pieces in fused.items():
        parts = next(p for _, _, p, d2_re, _ in _FUSED_PATTERNS if d2_re.match(target))
        missing = [part for part in parts if part not in pieces]
        if missing:
            raise KeyError(f"transformers -> original: {target} lacks the {missing} projections")
        result[target] = torch.cat([pieces[part] for part in parts], dim=0)
    for name, table in list(result.items()):
        if name.endswith("attn.relative_position_bias_table"):
            window = (math.isqrt(table.shape[0]) + 1) // 2
            index_name = name.replace("relative_position_bias_table", "relative_position_index")
            result[index_name] = relative_position_index(window)
    return result


def original_to_hf(
    state_dict: dict[str, torch.Tensor], with_class_predictor: bool = True
) -> dict[str, torch.Tensor]:
    """Original ``MaskFormer`` state dict -> transformers ``Mask2FormerForUniversalSegmentation``
    state dict (disk names). ``with_class_predictor=False`` gives ``Mask2FormerModel``'s (no
    ``model.`` prefix, no class predictor, no criterion buffer).

    Raises:
        KeyError: some names are not part of a Swin Mask2Former checkpoint (listed).
    """
    result: dict[str, torch.Tensor] = {}
    unmapped = []
    for name, tensor in state_dict.items():
        if _D2_REL_INDEX.match(name):
            continue  # rebuilt from the window size by transformers
        norm = _D2_NORM.match(name)
        if norm:
            result[
                f"{_HF_SWIN}hidden_states_norms.stage{int(norm.group(1)) + 1}.{norm.group(2)}"
            ] = tensor
            continue
        target = _rename(name, hf_to_d2=False)
        if target is not None:
            result[target] = tensor
            continue
        for _, hf, parts, d2_re, _ in _FUSED_PATTERNS:
            match = d2_re.match(name)
            if match:
                for part, piece in zip(parts, tensor.chunk(len(parts), dim=0)):
                    result[hf.format(part=part, **match.groupdict())] = piece.clone()
                break
        else:
            unmapped.append(name)
    if unmapped:
        raise _unmapped_error(unmapped, "original -> transformers")
    last_norm = [k for k in result if _HF_NORM.match(k)]
    if last_norm:
        stages = max(int(_HF_NORM.match(k).group(1)) for k in last_norm)
        weight = result[f"{_HF_SWIN}hidden_states_norms.stage{stages}.weight"]
        result[_HF_FINAL_SWIN_NORM + "weight"] = torch.ones_like(weight)
        result[_HF_FINAL_SWIN_NORM + "bias"] = torch.zeros_like(weight)
    if not with_class_predictor:
        result = {k[len("model.") :]: v for k, v in result.items() if k.startswith("model.")}
    return result


def _rename(name: str, hf_to_d2: bool) -> str | None:
    for hf_re, hf, d2_re, d2 in _RENAME_PATTERNS:
        match = (hf_re if hf_to_d2 else d2_re).match(name)
        if match:
            return (d2 if hf_to_d2 else hf).format(**match.groupdict())
    return None
