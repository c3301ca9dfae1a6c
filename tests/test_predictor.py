"""Predictor: build + load weights + resize + channel order + batched calls."""

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former.modeling import build_model
from mask2former.predictor import Predictor
from tests.tiny_config import TINY_DATASET, tiny_cfg

SEMANTIC_ONLY = {
    "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": False,
    "MODEL.MASK_FORMER.TEST.INSTANCE_ON": False,
}


@pytest.fixture(scope="module")
def weights_and_model(tmp_path_factory):
    torch.manual_seed(0)
    model = build_model(tiny_cfg(**SEMANTIC_ONLY)).eval()
    path = tmp_path_factory.mktemp("predictor") / "tiny.pth"
    torch.save({"model": model.state_dict()}, path)
    return str(path), model


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (height, width, 3), dtype=np.uint8)


def test_loads_weights_resizes_and_converts_bgr_to_rgb(weights_and_model):
    path, model = weights_and_model
    predictor = Predictor(tiny_cfg(**SEMANTIC_ONLY, **{"MODEL.WEIGHTS": path}))
    assert not predictor.model.training
    assert predictor.metadata.name == TINY_DATASET
    image_bgr = _image(70, 90)
    out = predictor(image_bgr)
    assert out["sem_seg"].shape == (5, 70, 90)

    # Independent preprocessing: RGB (INPUT.FORMAT), short side 64 -> 64 x round(90 * 64 / 70).
    rgb = Image.fromarray(np.ascontiguousarray(image_bgr[:, :, ::-1]))
    resized = np.asarray(rgb.resize((82, 64), Image.Resampling.BILINEAR))
    tensor = torch.as_tensor(resized.astype(np.float32).transpose(2, 0, 1))
    with torch.no_grad():
        expected = model([{"image": tensor, "height": 70, "width": 90}])[0]["sem_seg"]
    torch.testing.assert_close(out["sem_seg"], expected, rtol=1e-5, atol=1e-5)

    # RGB input with input_format="RGB" gives the same result.
    rgb_predictor = Predictor(
        tiny_cfg(**SEMANTIC_ONLY, **{"MODEL.WEIGHTS": path}), input_format="RGB"
    )
    out_rgb = rgb_predictor(np.ascontiguousarray(image_bgr[:, :, ::-1]))
    torch.testing.assert_close(out_rgb["sem_seg"], out["sem_seg"], rtol=1e-5, atol=1e-5)

    # A one-image list is the same call; a longer list keeps every image's size.
    (single,) = predictor([image_bgr])
    torch.testing.assert_close(single["sem_seg"], out["sem_seg"])
    batch = predictor([_image(40, 50, 1), _image(64, 48, 2)])
    assert [o["sem_seg"].shape[-2:] for o in batch] == [(40, 50), (64, 48)]
    assert predictor([]) == []


def test_errors_name_the_problem(weights_and_model):
    cfg = tiny_cfg(**SEMANTIC_ONLY, **{"INPUT.FORMAT": "YUV"})
    with pytest.raises(ValueError, match="INPUT.FORMAT"):
        Predictor(cfg)
    with pytest.raises(ValueError, match="input_format"):
        Predictor(tiny_cfg(**SEMANTIC_ONLY), input_format="L")
    predictor = Predictor(tiny_cfg(**SEMANTIC_ONLY))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        predictor(np.zeros((10, 10), np.uint8))


def test_list_runs_one_pass_per_size_and_equals_single_calls(weights_and_model):
    path, _ = weights_and_model
    predictor = Predictor(tiny_cfg(**SEMANTIC_ONLY, **{"MODEL.WEIGHTS": path}))
    model, batch_sizes = predictor.model, []

    def recording_model(inputs):
        batch_sizes.append(len(inputs))
        return model(inputs)

    images = [_image(70, 90, 1), _image(40, 50, 2), _image(70, 90, 3)]
    predictor.model = recording_model
    batched = predictor(images)
    # the two 70x90 images share a pass; the 40x50 one is not padded to their size
    assert sorted(batch_sizes) == [1, 2]
    predictor.model = model
    for image, output in zip(images, batched):
        single = predictor(image)["sem_seg"]
        torch.testing.assert_close(output["sem_seg"], single, atol=1e-5, rtol=0)
