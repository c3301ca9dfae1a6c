"""Mask2FormerImageProcessor pre-processing against transformers' processor."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former.hf import Mask2FormerImageProcessor
from tests.optional import require_package

transformers = require_package("transformers")


def _images_and_maps(seed: int = 0):
    rng = np.random.default_rng(seed)
    images = [
        rng.integers(0, 256, (50, 70, 3), dtype=np.uint8),
        rng.integers(0, 256, (64, 40, 3), dtype=np.uint8),
    ]
    maps = [
        rng.integers(0, 5, (50, 70), dtype=np.uint8),
        rng.integers(0, 5, (64, 40), dtype=np.uint8),
    ]
    return images, maps


def _assert_same(got, expected):
    assert set(got) == set(expected)
    for key in ("pixel_values", "pixel_mask"):
        assert got[key].dtype == expected[key].dtype, key
        torch.testing.assert_close(got[key], expected[key], rtol=0, atol=1e-6)
    for key in ("mask_labels", "class_labels"):
        assert len(got.get(key, [])) == len(expected.get(key, []))
        for ours, theirs in zip(got.get(key, []), expected.get(key, [])):
            assert ours.dtype == theirs.dtype and torch.equal(ours, theirs), key


SETTINGS = [
    {"size": {"shortest_edge": 64, "longest_edge": 96}},
    {
        "size": {"shortest_edge": 48, "longest_edge": 80},
        "ignore_index": 255,
        "do_reduce_labels": True,
    },
    {"size": {"height": 33, "width": 47}, "size_divisor": 0, "resample": 3},
    {"size": {"max_height": 60, "max_width": 60}, "do_normalize": False},
]


@pytest.mark.parametrize("settings", SETTINGS)
@pytest.mark.parametrize("kind", ["numpy_hwc", "pil", "tensor_chw", "float_hwc"])
def test_preprocess_matches_transformers(settings, kind):
    images, maps = _images_and_maps()
    if kind == "pil":
        images = [Image.fromarray(image) for image in images]
    elif kind == "tensor_chw":
        images = [torch.from_numpy(image).permute(2, 0, 1) for image in images]
    elif kind == "float_hwc":
        images = [image.astype(np.float32) for image in images]
    theirs = transformers.Mask2FormerImageProcessor(**settings)
    ours = Mask2FormerImageProcessor(**settings)
    expected = theirs(images, segmentation_maps=maps, return_tensors="pt")
    got = ours(images, segmentation_maps=maps, return_tensors="pt")
    _assert_same(got, expected)


def test_instance_maps_and_encode_inputs_match():
    images, maps = _images_and_maps(1)
    instance_maps = [m.astype(np.int64) + 1 for m in maps]
    mapping = [{i: (i * 3) % 4 for i in range(1, 7)}, {i: i % 2 for i in range(1, 7)}]
    kwargs = {"instance_id_to_semantic_id": mapping, "return_tensors": "pt"}
    size = {"shortest_edge": 40, "longest_edge": 64}
    theirs = transformers.Mask2FormerImageProcessor(ignore_index=0, size=size)
    ours = Mask2FormerImageProcessor(ignore_index=0, size=size)
    _assert_same(ours(images, instance_maps, **kwargs), theirs(images, instance_maps, **kwargs))
    prepared = [np.transpose(image, (2, 0, 1)).astype(np.float32) for image in images]
    encoded = ours.encode_inputs(prepared, maps, return_tensors="pt")
    assert encoded["pixel_values"].shape == (2, 3, 64, 70)
    assert encoded["pixel_mask"][0, 50:].sum() == 0 and encoded["pixel_mask"][0, :50].all()
    assert torch.equal(encoded["pixel_values"][0, :, :50, :70], torch.from_numpy(prepared[0]))


def test_default_settings_batched_array_and_no_maps():
    images, _ = _images_and_maps()
    batch = np.stack([images[0][:20, :30], images[0][:20, :30]])
    got = Mask2FormerImageProcessor()(batch, return_tensors="pt")
    expected = transformers.Mask2FormerImageProcessor()(batch, return_tensors="pt")
    assert got["pixel_values"].shape == (2, 3, 800, 1216)
    _assert_same(got, expected)
    assert set(got) == {"pixel_values", "pixel_mask"}


def test_save_and_load_preprocessor_config_both_ways(tmp_path):
    settings = {"size": {"shortest_edge": 384, "longest_edge": 512}, "ignore_index": 255}
    transformers.Mask2FormerImageProcessor(**settings, do_reduce_labels=True).save_pretrained(
        tmp_path / "t"
    )
    ours = Mask2FormerImageProcessor.from_pretrained(tmp_path / "t")
    assert ours.size == settings["size"] and ours.do_reduce_labels and ours.ignore_index == 255
    # every key transformers writes is read (image_processor_type: dropped)
    theirs = transformers.Mask2FormerImageProcessor(**settings).to_dict()
    assert Mask2FormerImageProcessor.from_dict(theirs).to_dict() == theirs
    # older files: an int size with max_size, reduce_labels, size_divisibility
    old = Mask2FormerImageProcessor.from_dict(
        {"size": 384, "max_size": 512, "reduce_labels": True, "size_divisibility": 16}
    )
    assert old.size == settings["size"] and old.do_reduce_labels and old.size_divisor == 16
    ours.save_pretrained(tmp_path / "o")
    back = transformers.Mask2FormerImageProcessor.from_pretrained(tmp_path / "o")
    assert (
        back.to_dict()
        == transformers.Mask2FormerImageProcessor.from_pretrained(tmp_path / "t").to_dict()
    )


def test_bad_inputs_raise_clear_errors():
    processor = Mask2FormerImageProcessor()
    with pytest.raises(ValueError, match="images"):
        processor(np.zeros((4, 4), dtype=np.uint8))
    with pytest.raises(ValueError, match="channel dimension"):
        processor(np.zeros((10, 10, 7), dtype=np.uint8))
    with pytest.raises(TypeError, match="images"):
        processor(["not an image"])
    with pytest.raises(ValueError, match="segmentation_maps: got 1 maps for 2 images"):
        processor([np.zeros((8, 8, 3), np.uint8)] * 2, segmentation_maps=[np.zeros((8, 8))])
    with pytest.raises(ValueError, match="ignore_index"):
        processor(np.zeros((8, 8, 3), np.uint8), np.zeros((8, 8), np.uint8), do_reduce_labels=True)
    with pytest.raises(TypeError, match="sizes"):
        Mask2FormerImageProcessor(sizes=3)
    with pytest.raises(TypeError, match=r"unknown settings \['sizes'\]"):
        processor(np.zeros((8, 8, 3), np.uint8), sizes=3)
    with pytest.raises(TypeError, match=r"unknown settings \['sizes'\]"):
        Mask2FormerImageProcessor.from_dict({"sizes": 3})
    with pytest.raises(ValueError, match="return_tensors"):
        processor(np.zeros((8, 8, 3), np.uint8), return_tensors="tf")
