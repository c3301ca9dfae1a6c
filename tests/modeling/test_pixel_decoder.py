"""Pixel decoders: shapes, strides, parameter names, deformable-attention details."""

import math

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.layers import ShapeSpec
from mask2former.layers.ms_deform_attn_module import MSDeformAttn
from mask2former.modeling.pixel_decoder import (
    BasePixelDecoder,
    MSDeformAttnPixelDecoder,
    build_pixel_decoder,
)
from mask2former.modeling.pixel_decoder.msdeformattn import MSDeformAttnTransformerEncoder

INPUT_SHAPE = {
    "res2": ShapeSpec(channels=8, stride=4),
    "res3": ShapeSpec(channels=12, stride=8),
    "res4": ShapeSpec(channels=16, stride=16),
    "res5": ShapeSpec(channels=20, stride=32),
}


def _features(height: int, width: int, batch: int = 2) -> dict[str, torch.Tensor]:
    generator = torch.Generator().manual_seed(0)
    return {
        name: torch.randn(
            batch,
            spec.channels,
            math.ceil(height / spec.stride),
            math.ceil(width / spec.stride),
            generator=generator,
        )
        for name, spec in INPUT_SHAPE.items()
    }


def _msdeform_decoder(**overrides) -> MSDeformAttnPixelDecoder:
    kwargs = dict(
        transformer_dropout=0.0,
        transformer_nheads=4,
        transformer_dim_feedforward=48,
        transformer_enc_layers=2,
        conv_dim=32,
        mask_dim=24,
        norm="GN",
        transformer_in_features=["res3", "res4", "res5"],
        common_stride=4,
    )
    kwargs.update(overrides)
    return MSDeformAttnPixelDecoder(INPUT_SHAPE, **kwargs)


@pytest.mark.parametrize("height,width", [(128, 96), (100, 75)])
def test_msdeform_pixel_decoder_shapes(height, width):
    torch.manual_seed(0)
    decoder = _msdeform_decoder().eval()
    features = _features(height, width)
    with torch.no_grad():
        mask_features, encoder_features, multi_scale = decoder.forward_features(features)
    assert mask_features.shape == (2, 24, *features["res2"].shape[-2:])
    assert encoder_features.shape == (2, 32, *features["res5"].shape[-2:])
    # three levels, coarse to fine: the encoder's res5, res4, res3 outputs
    assert [tuple(f.shape[-2:]) for f in multi_scale] == [
        tuple(features[name].shape[-2:]) for name in ("res5", "res4", "res3")
    ]
    assert all(f.shape[:2] == (2, 32) and f.dtype == torch.float32 for f in multi_scale)
    assert torch.equal(multi_scale[0], encoder_features)


def test_msdeform_pixel_decoder_is_deterministic():
    torch.manual_seed(1)
    decoder_a = _msdeform_decoder().eval()
    torch.manual_seed(1)
    decoder_b = _msdeform_decoder().eval()
    features = _features(64, 64)
    with torch.no_grad():
        out_a = decoder_a.forward_features(features)
        out_b = decoder_b.forward_features(features)
        out_a2 = decoder_a.forward_features(features)
    assert torch.equal(out_a[0], out_b[0]) and torch.equal(out_a[0], out_a2[0])


def test_msdeform_pixel_decoder_parameter_names():
    state = _msdeform_decoder().state_dict()
    expected_shapes = {
        "transformer.encoder.layers.0.self_attn.sampling_offsets.weight": (4 * 3 * 4 * 2, 32),
        "transformer.encoder.layers.1.self_attn.attention_weights.weight": (4 * 3 * 4, 32),
        "transformer.encoder.layers.0.linear1.weight": (48, 32),
        "transformer.encoder.layers.0.norm2.weight": (32,),
        "transformer.level_embed": (3, 32),
        "input_proj.0.0.weight": (32, 20, 1, 1),  # res5 first
        "input_proj.2.0.weight": (32, 12, 1, 1),
        "input_proj.0.1.weight": (32,),  # GroupNorm
        "mask_features.weight": (24, 32, 1, 1),
        "adapter_1.weight": (32, 8, 1, 1),
        "adapter_1.norm.weight": (32,),
        "layer_1.weight": (32, 32, 3, 3),
        "layer_1.norm.bias": (32,),
    }
    for key, shape in expected_shapes.items():
        assert tuple(state[key].shape) == shape, key
    # one FPN level (stride 8 -> 4); bias only without a norm
    assert "adapter_2.weight" not in state and "adapter_1.bias" not in state
    assert "transformer.encoder.layers.2.norm1.weight" not in state


def test_msdeform_attn_init_grid():
    attn = MSDeformAttn(d_model=16, n_levels=2, n_heads=4, n_points=3)
    grid = attn.sampling_offsets.bias.view(4, 2, 3, 2)
    # head 0 points along +x, head 1 along +y; the k-th point is k+1 away; same on all levels
    assert torch.allclose(grid[0, 1, :, 0], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.allclose(grid[0, :, :, 1], torch.zeros(2, 3), atol=1e-6)
    assert torch.allclose(grid[1, 0, :, 1], torch.tensor([1.0, 2.0, 3.0]))
    assert torch.count_nonzero(attn.sampling_offsets.weight) == 0
    assert torch.count_nonzero(attn.attention_weights.weight) == 0


def _identity_attention(n_heads: int = 2) -> MSDeformAttn:
    attn = MSDeformAttn(d_model=4, n_levels=1, n_heads=n_heads, n_points=2)
    with torch.no_grad():
        attn.sampling_offsets.bias.zero_()
        for proj in (attn.value_proj, attn.output_proj):
            proj.weight.copy_(torch.eye(4))
            proj.bias.zero_()
    return attn


def test_msdeform_attn_samples_pixel_centres_and_normalises_offsets_by_width_height():
    height, width = 2, 3
    values = torch.randn(1, height * width, 4)
    shapes = torch.tensor([[height, width]])
    start = torch.tensor([0])
    reference = MSDeformAttnTransformerEncoder.get_reference_points(shapes, 1, "cpu")
    assert torch.allclose(
        reference[0, :, 0],
        torch.tensor(
            [[(x + 0.5) / width, (y + 0.5) / height] for y in range(height) for x in range(width)]
        ),
    )
    attn = _identity_attention()
    with torch.no_grad():
        # zero offsets at pixel centres return each pixel's own value
        out = attn(values, reference, values, shapes, start)
        assert torch.allclose(out, values, atol=1e-6)
        # an offset of one pixel in x moves to the right neighbour (normalised by W, not H)
        attn.sampling_offsets.bias.view(2, 1, 2, 2)[..., 0] = 1.0
        out = attn(values, reference, values, shapes, start)
    grid = values.view(height, width, 4)
    shifted = torch.cat([grid[:, 1:], torch.zeros(height, 1, 4)], 1)  # zero padding outside
    assert torch.allclose(out, shifted.view(1, -1, 4), atol=1e-6)


def test_msdeform_attn_rejects_box_reference_points():
    attn = _identity_attention()
    values = torch.randn(1, 4, 4)
    with pytest.raises(ValueError, match="reference_points"):
        attn(values, torch.rand(1, 4, 1, 4), values, torch.tensor([[2, 2]]), torch.tensor([0]))


def test_base_pixel_decoder_shapes_and_names():
    torch.manual_seed(0)
    decoder = BasePixelDecoder(INPUT_SHAPE, conv_dim=32, mask_dim=24, norm="GN").eval()
    features = _features(100, 75)
    with torch.no_grad():
        mask_features, encoder_features, multi_scale = decoder.forward_features(features)
    assert mask_features.shape == (2, 24, *features["res2"].shape[-2:])
    assert encoder_features is None
    assert [tuple(f.shape[-2:]) for f in multi_scale] == [
        tuple(features[name].shape[-2:]) for name in ("res5", "res4", "res3")
    ]
    state = decoder.state_dict()
    assert tuple(state["layer_4.weight"].shape) == (32, 20, 3, 3)  # coarsest: no lateral conv
    assert "adapter_4.weight" not in state
    assert tuple(state["adapter_1.weight"].shape) == (32, 8, 1, 1)
    assert tuple(state["mask_features.weight"].shape) == (24, 32, 3, 3)
    assert "layer_1.bias" not in state
    no_norm = BasePixelDecoder(INPUT_SHAPE, conv_dim=32, mask_dim=24, norm="").state_dict()
    assert "layer_1.bias" in no_norm and "layer_1.norm.weight" not in no_norm


def _tiny_cfg():
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.SEM_SEG_HEAD.IN_FEATURES", ["res2", "res3", "res4", "res5"],
            "MODEL.SEM_SEG_HEAD.CONVS_DIM", 32,
            "MODEL.SEM_SEG_HEAD.MASK_DIM", 16,
            "MODEL.SEM_SEG_HEAD.NORM", "GN",
            "MODEL.SEM_SEG_HEAD.TRANSFORMER_ENC_LAYERS", 1,
            "MODEL.MASK_FORMER.NHEADS", 4,
            "MODEL.MASK_FORMER.DROPOUT", 0.0,
        ]
    )  # fmt: skip
    return cfg


def test_build_pixel_decoder_from_config():
    cfg = _tiny_cfg()
    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "MSDeformAttnPixelDecoder"
    kwargs = MSDeformAttnPixelDecoder.from_config(cfg, INPUT_SHAPE)
    assert kwargs["transformer_dim_feedforward"] == 1024  # fixed, as in the original
    assert kwargs["transformer_in_features"] == ["res3", "res4", "res5"]
    decoder = build_pixel_decoder(cfg, INPUT_SHAPE)
    assert isinstance(decoder, MSDeformAttnPixelDecoder)
    assert len(decoder.transformer.encoder.layers) == 1
    assert decoder.transformer.encoder.layers[0].linear1.out_features == 1024

    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "BasePixelDecoder"
    assert isinstance(build_pixel_decoder(cfg, INPUT_SHAPE), BasePixelDecoder)

    cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME = "NoSuchDecoder"
    with pytest.raises(KeyError, match="MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME"):
        build_pixel_decoder(cfg, INPUT_SHAPE)
