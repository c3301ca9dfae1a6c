"""Semantic-segmentation test-time augmentation (TEST.AUG.*)."""

import torch
import torch.nn.functional as F
from torch import nn

from mask2former.modeling import build_model
from mask2former.modeling.test_time_augmentation import SemanticSegmentorWithTTA, SemSegTTAMapper
from tests.tiny_config import tiny_cfg


def _input(height: int, width: int, resized: tuple[int, int]) -> dict:
    """A test-mapper style input: uint8 image already resized, original size in height/width."""
    generator = torch.Generator().manual_seed(0)
    image = torch.randint(0, 256, (3, *resized), generator=generator, dtype=torch.uint8)
    return {"image": image, "height": height, "width": width}


def test_single_scale_without_flip_equals_plain_inference():
    cfg = tiny_cfg(
        **{
            "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": False,
            "MODEL.MASK_FORMER.TEST.INSTANCE_ON": False,
            "TEST.AUG.ENABLED": True,
            "TEST.AUG.MIN_SIZES": (64,),
            "TEST.AUG.MAX_SIZE": 128,
            "TEST.AUG.FLIP": False,
        }
    )
    assert cfg.TEST.AUG.MIN_SIZES == (cfg.INPUT.MIN_SIZE_TEST,)
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    inputs = [_input(96, 120, (64, 80))]
    with torch.no_grad():
        plain = model(inputs)[0]["sem_seg"]
        tta = SemanticSegmentorWithTTA(cfg, model)(inputs)[0]["sem_seg"]
    assert tta.shape == plain.shape == (5, 96, 120)
    torch.testing.assert_close(tta, plain, rtol=0, atol=1e-6)


class _PositionDependentModel(nn.Module):
    """sem_seg = mean image channel + a left-to-right ramp, resized to (height, width)."""

    def __init__(self) -> None:
        super().__init__()
        self.seen_sizes: list[tuple[int, int]] = []

    def forward(self, batched_inputs: list[dict]) -> list[dict]:
        outputs = []
        for x in batched_inputs:
            image = x["image"].float()
            self.seen_sizes.append(tuple(image.shape[-2:]))
            ramp = torch.linspace(0, 1, image.shape[-1]).expand(image.shape[-2], -1)
            scores = (image.mean(0) + ramp)[None, None]
            scores = F.interpolate(scores, size=(x["height"], x["width"]), mode="bilinear")
            outputs.append({"sem_seg": scores[0].repeat(2, 1, 1)})
        return outputs


def test_flip_is_undone_and_averaged():
    model = _PositionDependentModel()
    tta = SemanticSegmentorWithTTA(None, model, tta_mapper=SemSegTTAMapper([4], 100, flip=True))
    image = torch.arange(4 * 6, dtype=torch.float32).view(1, 4, 6).repeat(3, 1, 1)
    out = tta([{"image": image, "height": 4, "width": 6}])[0]["sem_seg"]
    ramp = torch.linspace(0, 1, 6).expand(4, -1)
    # mean of f(x) and unflip(f(flip(x))): the image term is the same, the ramp is symmetrised
    expected = image[0] + (ramp + ramp.flip(-1)) / 2
    torch.testing.assert_close(out, expected.expand(2, -1, -1))
    assert model.seen_sizes == [(4, 6), (4, 6)]


def test_every_scale_and_flip_is_run_at_its_size():
    model = _PositionDependentModel()
    mapper = SemSegTTAMapper([8, 16], 1000, flip=True)
    tta = SemanticSegmentorWithTTA(None, model, tta_mapper=mapper)
    image = torch.randint(0, 256, (3, 8, 12), dtype=torch.uint8)
    out = tta([{"image": image, "height": 20, "width": 30}])[0]["sem_seg"]
    assert out.shape == (2, 20, 30)
    assert model.seen_sizes == [(8, 12), (8, 12), (16, 24), (16, 24)]
