"""MaskFormerHead built from the original configs: outputs, names, sizes, state-dict round trip."""

from pathlib import Path

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.layers import ShapeSpec
from mask2former.modeling.heads import MaskFormerHead, build_sem_seg_head
from mask2former.modeling.heads.mask_former_head import INERT_KEYS, warn_inert_keys
from mask2former.modeling.pixel_decoder import MSDeformAttnPixelDecoder
from mask2former.modeling.transformer_decoder import MultiScaleMaskedTransformerDecoder

CONFIG = (
    Path(__file__).resolve().parents[2]
    / "configs/coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml"
)
R50_SHAPE = {f"res{i + 2}": ShapeSpec(channels=256 * 2**i, stride=4 * 2**i) for i in range(4)}
TINY_SHAPE = {f"res{i + 2}": ShapeSpec(channels=8 * (i + 1), stride=4 * 2**i) for i in range(4)}


def _cfg(tiny: bool = True):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG))
    if tiny:
        cfg.merge_from_list(
            [
                "MODEL.SEM_SEG_HEAD.NUM_CLASSES", 3,
                "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32,
                "MODEL.SEM_SEG_HEAD.MASK_DIM", 16,
                "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", 1,
                "MODEL.MASK_FORMER.HIDDEN_DIM", 32,
                "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES", 5,
                "MODEL.MASK_FORMER.NHEADS", 4,
                "MODEL.MASK_FORMER.DIM_FEEDFORWARD", 48,
                "MODEL.MASK_FORMER.DEC_LAYERS", 4,
            ]
        )  # fmt: skip
    return cfg


def _features(batch: int = 2, height: int = 64, width: int = 96) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        name: torch.randn(
            batch,
            spec.channels,
            -(-height // spec.stride),  # ceil, as a backbone's strided convs give
            -(-width // spec.stride),
            generator=generator,
        )
        for name, spec in TINY_SHAPE.items()
    }


def fill_deterministic(module: torch.nn.Module, seed: int = 0) -> None:
    """Overwrite every floating-point state entry, in state-dict order, from one generator."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for tensor in module.state_dict().values():
            if tensor.is_floating_point():
                tensor.copy_(0.2 * torch.randn(tensor.shape, generator=generator))


def checksum(tensor: torch.Tensor) -> tuple[float, float]:
    """(sum of |x|, sum of x weighted by a fixed -3..3 pattern) in float64."""
    flat = tensor.detach().flatten().double()
    pattern = torch.arange(flat.numel(), dtype=torch.float64).remainder(7) - 3
    return flat.abs().sum().item(), (flat * pattern).sum().item()


def test_original_config_uses_the_multi_scale_path():
    cfg = _cfg(tiny=False)
    assert cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE == "multi_scale_pixel_decoder"
    assert cfg.MODEL.SEM_SEG_HEAD.NAME == "MaskFormerHead"


def test_head_outputs_from_config():
    torch.manual_seed(0)
    head = build_sem_seg_head(_cfg(), TINY_SHAPE).eval()
    assert isinstance(head, MaskFormerHead)
    assert isinstance(head.pixel_decoder, MSDeformAttnPixelDecoder)
    assert isinstance(head.predictor, MultiScaleMaskedTransformerDecoder)
    assert head.num_classes == 3 and head.num_aux_outputs == 3
    with torch.no_grad():
        out = head(_features())
        with_states = head(_features(), output_hidden_states=True)
    assert out["pred_logits"].shape == (2, 5, 4)
    assert out["pred_masks"].shape == (2, 5, 16, 24)  # stride 4
    assert len(out["aux_outputs"]) == 3
    assert out.decoder.query_states is None and out.multi_scale_features is None
    assert len(with_states.decoder.query_states) == 4
    assert len(with_states.decoder.hidden_states) == 4  # the queries, then 3 layers
    assert [f.shape[-1] for f in with_states.multi_scale_features] == [3, 6, 12]
    assert out.mask_features.shape[-2:] == (16, 24)
    torch.testing.assert_close(with_states.pred_masks, out.pred_masks)


def test_head_state_dict_names_and_round_trip():
    torch.manual_seed(0)
    head = build_sem_seg_head(_cfg(), TINY_SHAPE).eval()
    state = head.state_dict()
    for key in [
        "pixel_decoder.transformer.encoder.layers.0.self_attn.sampling_offsets.weight",
        "pixel_decoder.transformer.level_embed",
        "pixel_decoder.input_proj.0.0.weight",
        "pixel_decoder.input_proj.0.1.weight",
        "pixel_decoder.mask_features.weight",
        "pixel_decoder.adapter_1.weight",
        "pixel_decoder.adapter_1.norm.weight",
        "pixel_decoder.layer_1.weight",
        "predictor.query_feat.weight",
        "predictor.query_embed.weight",
        "predictor.level_embed.weight",
        "predictor.transformer_self_attention_layers.0.self_attn.in_proj_weight",
        "predictor.transformer_cross_attention_layers.0.multihead_attn.in_proj_weight",
        "predictor.transformer_ffn_layers.0.linear1.weight",
        "predictor.decoder_norm.weight",
        "predictor.class_embed.weight",
        "predictor.mask_embed.layers.0.weight",
    ]:
        assert key in state, key
    torch.manual_seed(1)
    fresh = build_sem_seg_head(_cfg(), TINY_SHAPE).eval()
    features = _features()
    with torch.no_grad():
        before = fresh(features)["pred_masks"]
        fresh.load_state_dict(state, strict=True)
        expected, restored = head(features), fresh(features)
    assert not torch.equal(before, expected["pred_masks"])
    assert torch.equal(restored["pred_masks"], expected["pred_masks"])
    assert torch.equal(restored["pred_logits"], expected["pred_logits"])


# Checksums of the ORIGINAL implementation's outputs (facebookresearch/Mask2Former, CPU,
# PyTorch MSDeformAttn path) for the tiny config, weights from fill_deterministic(seed=2) and
# _features(2, 100, 75). In that run 4 of 30 query rows had an empty attention mask.
ORIGINAL_CHECKSUMS = {
    "mask_features": (4850.454077187942, 9.196320495941109),
    "pred_logits": (8.78099662810564, 0.4585506543517113),
    "pred_masks": (722.6102114931564, 1.0619357176765334),
    "aux0_pred_masks": (782.3095036339619, -7.776846530188777),
}


def test_outputs_match_the_original_implementation():
    head = build_sem_seg_head(_cfg(), TINY_SHAPE).eval()
    fill_deterministic(head, seed=2)
    features = _features(2, 100, 75)
    with torch.no_grad():
        mask_features = head.pixel_decoder.forward_features(features)[0]
        out = head(features)  # attention masks at the levels' resolution
        with_aux = head(features, output_aux_masks=True)  # at full resolution, as the original
    got = {
        "mask_features": checksum(mask_features),
        "pred_logits": checksum(out["pred_logits"]),
        "pred_masks": checksum(out["pred_masks"]),
        "aux0_pred_masks": checksum(with_aux["aux_outputs"][0]["pred_masks"]),
    }
    torch.testing.assert_close(with_aux["pred_masks"], out["pred_masks"])
    for name, (abs_sum, weighted) in ORIGINAL_CHECKSUMS.items():
        tolerance = 1e-5 * abs_sum
        assert got[name][0] == pytest.approx(abs_sum, abs=tolerance), name
        assert got[name][1] == pytest.approx(weighted, abs=tolerance), name


@pytest.mark.parametrize(
    "device,dtype",
    [
        ("cpu", torch.bfloat16),
        pytest.param(
            "cuda",
            torch.float16,
            marks=[
                pytest.mark.cuda,
                pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA"),
            ],
        ),
    ],
)
def test_pixel_decoder_runs_in_float32_under_training_autocast(device, dtype):
    # In training the pixel decoder ignores AMP, as in the original (dropout is 0 here).
    torch.manual_seed(0)
    head = build_sem_seg_head(_cfg(), TINY_SHAPE).train().to(device)
    features = {k: v.to(device) for k, v in _features().items()}
    with torch.no_grad():
        reference = head.pixel_decoder.forward_features(features)[0]
        with torch.autocast(device_type=device, dtype=dtype):
            mask_features, _, multi_scale = head.pixel_decoder.forward_features(features)
            out = head(features)
    assert mask_features.dtype == torch.float32
    assert all(level.dtype == torch.float32 for level in multi_scale)
    assert torch.equal(mask_features, reference)
    assert out["pred_masks"].shape == (2, 5, 16, 24)
    # Inference follows the caller's autocast (TEST.AMP); the deformable-attention op alone
    # stays float32 there.
    head.eval()
    with torch.no_grad(), torch.autocast(device_type=device, dtype=dtype):
        reduced = head.pixel_decoder.forward_features(features)[0]
    assert reduced.dtype == dtype
    torch.testing.assert_close(reduced.float(), reference, rtol=0.05, atol=0.05)


def test_every_parameter_gets_a_gradient():
    torch.manual_seed(0)
    head = build_sem_seg_head(_cfg(), TINY_SHAPE).train()
    out = head(_features(batch=1))
    loss = out["pred_logits"].sum() + out["pred_masks"].sigmoid().sum()
    loss = loss + sum(aux["pred_masks"].sigmoid().sum() for aux in out["aux_outputs"])
    loss.backward()
    unused = [name for name, p in head.named_parameters() if p.grad is None]
    assert not unused


def test_full_size_parameter_count():
    # COCO panoptic R50: ~44M in total, of which ~23.5M are the backbone's
    head = build_sem_seg_head(_cfg(tiny=False), R50_SHAPE)  # (faster on CPU than on meta)
    count = sum(p.numel() for p in head.parameters())
    assert 20.4e6 < count < 20.7e6
    assert head.predictor.class_embed.out_features == 134
    assert len(head.predictor.transformer_cross_attention_layers) == 9
    assert len(head.pixel_decoder.transformer.encoder.layers) == 6


def test_unsupported_transformer_in_feature_and_unknown_head():
    cfg = _cfg()
    cfg.MODEL.MASK_FORMER.TRANSFORMER_IN_FEATURE = "res5"
    with pytest.raises(ValueError, match="TRANSFORMER_IN_FEATURE"):
        build_sem_seg_head(cfg, TINY_SHAPE)
    cfg = _cfg()
    cfg.MODEL.SEM_SEG_HEAD.NAME = "NoSuchHead"
    with pytest.raises(KeyError, match="MODEL.SEM_SEG_HEAD.NAME"):
        build_sem_seg_head(cfg, TINY_SHAPE)


def test_keys_without_effect_warn_when_changed(caplog):
    defaults = get_cfg()
    for key, (default, _) in INERT_KEYS.items():
        node = defaults
        for part in key.split("."):
            node = getattr(node, part)
        assert node == default, f"INERT_KEYS default of {key} differs from get_cfg()"
    cfg = _cfg()
    with caplog.at_level("WARNING", logger="mask2former.modeling.heads.mask_former_head"):
        build_sem_seg_head(cfg, TINY_SHAPE)
    assert not caplog.records  # the original configs leave every such key at its default
    cfg.MODEL.SEM_SEG_HEAD.LOSS_WEIGHT = 2.0
    cfg.MODEL.SEM_SEG_HEAD.ASPP_DILATIONS = (6, 12, 18)  # a tuple equal to the default list
    cfg.MODEL.MASK_FORMER.ENC_LAYERS = 6
    with caplog.at_level("WARNING", logger="mask2former.modeling.heads.mask_former_head"):
        head = build_sem_seg_head(cfg, TINY_SHAPE)
    changed = ["MODEL.SEM_SEG_HEAD.LOSS_WEIGHT", "MODEL.MASK_FORMER.ENC_LAYERS"]
    assert warn_inert_keys(cfg) == changed
    assert "MODEL.SEM_SEG_HEAD.LOSS_WEIGHT=2.0 has no effect" in caplog.text
    assert "MASK_WEIGHT" in caplog.text  # names what weighs the losses instead
    assert not hasattr(head, "loss_weight")
