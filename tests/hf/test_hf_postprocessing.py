"""post_process_* of our processor against transformers' on fixed logits."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch

from mask2former.hf import Mask2FormerImageProcessor
from tests.optional import require_package

transformers = require_package("transformers")


def _same(got, expected) -> bool:
    if isinstance(expected, torch.Tensor):
        return got.shape == expected.shape and torch.equal(got, expected)
    if isinstance(expected, dict):
        return got.keys() == expected.keys() and all(_same(got[k], expected[k]) for k in expected)
    if isinstance(expected, list | tuple):
        return len(got) == len(expected) and all(_same(a, b) for a, b in zip(got, expected))
    return got == expected


def _trained_like(generator: torch.Generator) -> SimpleNamespace:
    """Logits like a trained model's: confident classes (few, so that labels repeat and fuse),
    sharp overlapping disc masks, and exact ties (query 1 repeats query 0)."""
    batch, num_queries, num_classes, height, width = 2, 40, 20, 24, 32
    class_logits = torch.randn(batch, num_queries, num_classes + 1, generator=generator)
    labels = torch.randint(0, 6, (batch, num_queries), generator=generator)
    labels[:, ::3] = num_classes  # a third say "no object"
    confidence = 3 + 6 * torch.rand(batch, num_queries, generator=generator)
    class_logits.scatter_add_(-1, labels[..., None], confidence[..., None])
    rows = torch.arange(height, dtype=torch.float32).view(1, 1, -1, 1)
    cols = torch.arange(width, dtype=torch.float32).view(1, 1, 1, -1)
    centre_y = torch.rand(batch, num_queries, 1, 1, generator=generator) * height
    centre_x = torch.rand(batch, num_queries, 1, 1, generator=generator) * width
    radius = 2 + torch.rand(batch, num_queries, 1, 1, generator=generator) * 10
    distance = ((rows - centre_y) ** 2 + (cols - centre_x) ** 2).sqrt()
    masks = 4 * (radius - distance) + 0.3 * torch.randn(distance.shape, generator=generator)
    class_logits[:, 1], masks[:, 1] = class_logits[:, 0], masks[:, 0]
    return SimpleNamespace(class_queries_logits=class_logits, masks_queries_logits=masks)


def _outputs(kind: str) -> SimpleNamespace:
    seeds = {"mixed": 0, "confident": 1, "empty": 2, "trained": 3}
    generator = torch.Generator().manual_seed(seeds[kind])
    if kind == "trained":
        return _trained_like(generator)
    class_logits = torch.randn(2, 10, 6, generator=generator)
    if kind == "confident":
        class_logits = class_logits * 4
    if kind == "empty":  # every query predicts "no object"
        class_logits[..., -1] += 30
    masks = torch.randn(2, 10, 24, 32, generator=generator) * 3
    return SimpleNamespace(class_queries_logits=class_logits, masks_queries_logits=masks)


SIZES = [(50, 70), (31, 45)]


@pytest.fixture(scope="module")
def processors():
    return Mask2FormerImageProcessor(), transformers.Mask2FormerImageProcessor()


@pytest.mark.parametrize(
    ("kind", "target_sizes"), [("mixed", None), ("confident", SIZES), ("trained", SIZES)]
)
def test_semantic(processors, kind, target_sizes):
    ours, theirs = processors
    outputs = _outputs(kind)
    got = ours.post_process_semantic_segmentation(outputs, target_sizes=target_sizes)
    assert _same(got, theirs.post_process_semantic_segmentation(outputs, target_sizes=target_sizes))


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("mixed", {}),
        ("confident", {"threshold": 0.05, "target_sizes": SIZES}),
        ("confident", {"threshold": 0.05, "return_coco_annotation": True}),
        ("mixed", {"threshold": 0.05, "return_binary_maps": True, "target_sizes": SIZES}),
        ("empty", {"target_sizes": SIZES}),
        ("trained", {}),
        ("trained", {"threshold": 0.3, "target_sizes": SIZES}),
        ("trained", {"threshold": 0.3, "return_binary_maps": True}),
    ],
)
def test_instance(processors, kind, options):
    ours, theirs = processors
    outputs = _outputs(kind)
    got = ours.post_process_instance_segmentation(outputs, **options)
    assert _same(got, theirs.post_process_instance_segmentation(outputs, **options))


@pytest.mark.parametrize(
    ("kind", "options"),
    [
        ("mixed", {}),
        ("mixed", {"threshold": 0.2, "label_ids_to_fuse": {1, 2}, "target_sizes": SIZES}),
        (
            "mixed",
            {
                "threshold": 0.1,
                "overlap_mask_area_threshold": 0.3,
                "label_ids_to_fuse": {0, 1, 2, 3},
            },
        ),
        ("empty", {}),
        ("empty", {"target_sizes": SIZES}),
        ("trained", {"label_ids_to_fuse": {3, 4, 5}}),
        ("trained", {"label_ids_to_fuse": {0, 1}, "target_sizes": SIZES}),
        ("trained", {"threshold": 0.8, "overlap_mask_area_threshold": 0.5}),
    ],
)
def test_panoptic(processors, kind, options):
    ours, theirs = processors
    outputs = _outputs(kind)
    got = ours.post_process_panoptic_segmentation(outputs, **options)
    expected = theirs.post_process_panoptic_segmentation(outputs, **options)
    assert _same(got, expected)
    if kind == "empty":
        assert all(result["segments_info"] == [] for result in got)
    else:
        assert any(result["segments_info"] for result in got)


def test_bad_arguments(processors):
    ours, _ = processors
    with pytest.raises(ValueError, match="target_sizes"):
        ours.post_process_semantic_segmentation(_outputs("mixed"), target_sizes=[(4, 4)])
    with pytest.raises(ValueError, match="return_coco_annotation and return_binary_maps"):
        ours.post_process_instance_segmentation(
            _outputs("mixed"), return_coco_annotation=True, return_binary_maps=True
        )
    with pytest.raises(TypeError, match="class_queries_logits"):
        ours.post_process_panoptic_segmentation(object())


def test_panoptic_area_ratio_at_the_threshold(processors):
    """A query that keeps exactly half of its mask is dropped at overlap 0.5 (strictly above)."""
    ours, theirs = processors
    masks = torch.full((1, 2, 384, 384), -30.0)
    masks[0, 0, :, :192] = 30.0
    masks[0, 1, :, 96:288] = 30.0  # the second query scores higher and wins the overlap
    outputs = SimpleNamespace(
        class_queries_logits=torch.tensor([[[4.0, 0.0, 0.0], [0.0, 5.0, 0.0]]]),
        masks_queries_logits=masks,
    )
    options = {"overlap_mask_area_threshold": 0.5, "label_ids_to_fuse": set()}
    got = ours.post_process_panoptic_segmentation(outputs, **options)
    assert _same(got, theirs.post_process_panoptic_segmentation(outputs, **options))
    assert [segment["label_id"] for segment in got[0]["segments_info"]] == [1]
