"""The post-processing gives what it gave before the speed-up (issue 11).

``_reference_postprocessing.py`` is a frozen copy of the implementation before the speed-up.
Each function is compared with it on random logits (almost nothing passes the thresholds),
trained-like logits (confident classes, sharp overlapping masks, repeated stuff classes,
duplicated queries so that scores and masks tie) and logits where every query predicts
"no object", over several class counts, query counts and image sizes (odd sizes, padding,
output size != input size). Semantic scores may differ by float32 summation order (1e-5);
panoptic maps, segments_info and instances must be identical (mask scores within 1e-6).
"""

from __future__ import annotations

import contextlib
import math

import pytest
import torch
import torch.nn.functional as F

from mask2former.modeling import postprocessing
from mask2former.structures import masks_to_boxes
from mask2former.utils import cpu_caching
from tests.modeling import _reference_postprocessing as reference

KINDS = ("random", "trained", "empty")
# (queries, classes, low-resolution mask height, width): 4x upsampling gives the padded size.
SHAPES = [(1, 1, 5, 7), (16, 5, 9, 13), (100, 133, 16, 21), (200, 150, 12, 17)]


def make_logits(
    kind: str, num_queries: int, num_classes: int, height: int, width: int, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """(Q, K + 1) class logits and (Q, height, width) mask logits of the given kind."""
    generator = torch.Generator().manual_seed(seed)
    class_logits = torch.randn(num_queries, num_classes + 1, generator=generator)
    mask_logits = torch.randn(num_queries, height, width, generator=generator)
    if kind == "empty":
        class_logits[:, -1] += 40
    elif kind == "trained":
        # A quarter of the queries are confident and split the image between them (Voronoi
        # cells with sharp borders); the others say "no object" or are unsure, with
        # overlapping discs as masks.
        num_confident = max(1, num_queries // 4)
        labels = torch.randint(0, 7, (num_queries,), generator=generator)
        # 4 thing and 3 stuff classes, so that stuff classes repeat and must be merged.
        pool = torch.tensor([0, 1, 2, 3, num_classes - 3, num_classes - 2, num_classes - 1])
        labels = pool.clamp(0, num_classes - 1)[labels]
        unsure = torch.rand(num_queries, generator=generator) < 0.5
        unsure[:num_confident] = False
        labels[num_confident:][~unsure[num_confident:]] = num_classes
        confidence = torch.where(
            unsure,
            1 + 2 * torch.rand(num_queries, generator=generator),
            4 + 8 * torch.rand(num_queries, generator=generator),
        )
        class_logits[torch.arange(num_queries), labels] += confidence
        rows = torch.arange(height, dtype=torch.float32).view(1, -1, 1)
        cols = torch.arange(width, dtype=torch.float32).view(1, 1, -1)
        centre_y = torch.rand(num_queries, 1, 1, generator=generator) * height
        centre_x = torch.rand(num_queries, 1, 1, generator=generator) * width
        distance = ((rows - centre_y) ** 2 + (cols - centre_x) ** 2).sqrt()
        radius = 1 + torch.rand(num_queries, 1, 1, generator=generator) * max(height, width) / 4
        noise = 0.5 * mask_logits
        mask_logits = 6 * (radius - distance) + noise
        if num_confident > 1:
            cells = distance[:num_confident]
            nearest_two = cells.topk(2, dim=0, largest=False).values
            nearest_other = torch.where(cells == nearest_two[0], nearest_two[1], nearest_two[0])
            mask_logits[:num_confident] = 6 * (nearest_other - cells) + noise[:num_confident]
        if num_queries >= 4:
            # Exact ties: query 1 repeats query 0; query 3 has query 2's mask and score.
            class_logits[1] = class_logits[0]
            mask_logits[1] = mask_logits[0]
            mask_logits[3] = mask_logits[2]
            class_logits[3] = class_logits[2]
    return class_logits, mask_logits


def upsampled(mask_logits: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    return F.interpolate(mask_logits[None], size=size, mode="bilinear", align_corners=False)[0]


def thing_ids_for(num_classes: int) -> list[int]:
    """The first 60% of the classes are things (COCO: 80 of 133)."""
    return list(range(math.ceil(0.6 * num_classes)))


def assert_same_instances(got, expected) -> None:
    assert got.image_size == expected.image_size
    assert got.pred_masks.dtype == expected.pred_masks.dtype
    assert torch.equal(got.pred_masks, expected.pred_masks)
    assert torch.equal(got.pred_boxes.tensor, expected.pred_boxes.tensor)
    assert torch.equal(got.pred_classes, expected.pred_classes)
    torch.testing.assert_close(got.scores, expected.scores, rtol=0, atol=1e-6)


def assert_same_panoptic(got, expected) -> None:
    assert got[0].dtype == expected[0].dtype
    assert torch.equal(got[0], expected[0])
    assert got[1] == expected[1]


def assert_same_results(got: dict, expected: dict) -> None:
    assert got.keys() == expected.keys()
    if "sem_seg" in expected:
        assert got["sem_seg"].shape == expected["sem_seg"].shape
        torch.testing.assert_close(got["sem_seg"], expected["sem_seg"], rtol=0, atol=1e-5)
    if "panoptic_seg" in expected:
        assert_same_panoptic(got["panoptic_seg"], expected["panoptic_seg"])
    if "instances" in expected:
        assert_same_instances(got["instances"], expected["instances"])


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES)
def test_semantic_inference(kind, shape):
    num_queries, num_classes, height, width = shape
    class_logits, mask_logits = make_logits(kind, *shape)
    masks = upsampled(mask_logits, (4 * height - 3, 4 * width + 1))
    got = postprocessing.semantic_inference(class_logits, masks)
    expected = reference.semantic_inference(class_logits, masks)
    assert got.shape == expected.shape == (num_classes, *masks.shape[-2:])
    torch.testing.assert_close(got, expected, rtol=0, atol=1e-5)


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize(("object_mask_threshold", "overlap_threshold"), [(0.8, 0.8), (0.2, 0.3)])
def test_panoptic_inference(kind, shape, object_mask_threshold, overlap_threshold):
    num_classes = shape[1]
    class_logits, mask_logits = make_logits(kind, *shape, seed=1)
    masks = upsampled(mask_logits, (4 * shape[2] + 3, 4 * shape[3] - 1))
    options = {
        "object_mask_threshold": object_mask_threshold,
        "overlap_threshold": overlap_threshold,
        "thing_ids": thing_ids_for(num_classes),
    }
    got = postprocessing.panoptic_inference(class_logits, masks, **options)
    expected = reference.panoptic_inference(class_logits, masks, **options)
    assert_same_panoptic(got, expected)
    if kind == "trained" and shape[0] >= 100:
        assert len(expected[1]) >= 3  # the case exercises painting and merging


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("topk", [1, 10, 100])
@pytest.mark.parametrize("things_only", [False, True])
def test_instance_inference(kind, shape, topk, things_only):
    class_logits, mask_logits = make_logits(kind, *shape, seed=2)
    masks = upsampled(mask_logits, (4 * shape[2], 4 * shape[3] + 2))
    thing_ids = thing_ids_for(shape[1]) if things_only else None
    got = postprocessing.instance_inference(
        class_logits, masks, test_topk_per_image=topk, thing_ids=thing_ids
    )
    expected = reference.instance_inference(
        class_logits, masks, test_topk_per_image=topk, thing_ids=thing_ids
    )
    assert_same_instances(got, expected)


def test_masks_to_boxes():
    generator = torch.Generator().manual_seed(3)
    masks = torch.rand(12, 17, 23, generator=generator) > 0.97
    masks[0] = False  # empty mask -> zero box
    masks[1] = False
    masks[1, 16, 22] = True  # one pixel in the last row and column
    masks[2] = True
    for candidate in (masks, masks.float(), masks.to(torch.uint8), masks[:0]):
        got = masks_to_boxes(candidate)
        expected = reference.masks_to_boxes(candidate)
        assert got.dtype == expected.dtype
        assert torch.equal(got, expected)


# (padded low-resolution size, image sizes inside the padded input, output sizes)
BATCHES = [
    ((16, 21), [(64, 84), (61, 77)], [(64, 84), (61, 77)]),
    ((16, 21), [(57, 83), (64, 69)], [(114, 166), (33, 40)]),
    ((9, 12), [(33, 45), (36, 48)], [(33, 45), (73, 101)]),
]
# (tasks, sem_seg_postprocess_before_inference); panoptic and instance need it True.
TASKS = [
    ({"semantic_on": True, "panoptic_on": True, "instance_on": True}, True),
    ({"semantic_on": True, "panoptic_on": False, "instance_on": False}, True),
    ({"semantic_on": True, "panoptic_on": False, "instance_on": False}, False),
    ({"semantic_on": False, "panoptic_on": True, "instance_on": False}, True),
    ({"semantic_on": False, "panoptic_on": False, "instance_on": True}, True),
]


def _tail_options(tasks: dict, before_inference: bool, num_classes: int) -> dict:
    return {
        **tasks,
        "sem_seg_postprocess_before_inference": before_inference,
        "object_mask_threshold": 0.3,
        "overlap_threshold": 0.8,
        "test_topk_per_image": 50,
        "thing_ids": thing_ids_for(num_classes),
    }


@pytest.mark.parametrize("kind", KINDS)
@pytest.mark.parametrize("batch", BATCHES)
@pytest.mark.parametrize(("tasks", "before_inference"), TASKS)
@pytest.mark.parametrize("band_elements", [None, 3000])
@pytest.mark.parametrize("recycled", [False, True])
def test_inference_tail(kind, batch, tasks, before_inference, band_elements, recycled, monkeypatch):
    """``band_elements`` 3000 splits panoptic and instance inference into many row bands
    (one row each with many kept queries, a last band shorter than the others).
    ``recycled``: inside a caching-allocator scope, after an earlier call on other logits whose
    results were dropped (so large tensors reuse their memory, stale values included)."""
    if band_elements is not None:
        monkeypatch.setattr(postprocessing, "BAND_ELEMENTS", band_elements)
    low_size, image_sizes, output_sizes = batch
    num_queries, num_classes = 100, 133
    logits = [make_logits(kind, num_queries, num_classes, *low_size, seed=s) for s in (4, 5)]
    pred_logits = torch.stack([class_logits for class_logits, _ in logits])
    pred_masks = torch.stack([mask_logits for _, mask_logits in logits])
    padded_size = (4 * low_size[0], 4 * low_size[1])
    options = _tail_options(tasks, before_inference, num_classes)
    scope = cpu_caching.caching() if recycled else contextlib.nullcontext()
    with scope:
        if recycled:
            postprocessing.postprocess_batch(
                pred_logits.flip(1), -pred_masks, padded_size, image_sizes, output_sizes, **options
            )
        got = postprocessing.postprocess_batch(
            pred_logits, pred_masks, padded_size, image_sizes, output_sizes, **options
        )
    expected = reference.reference_inference_tail(
        pred_logits, pred_masks, padded_size, image_sizes, output_sizes, **options
    )
    assert len(got) == len(expected) == 2
    for got_image, expected_image in zip(got, expected):
        assert_same_results(got_image, expected_image)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_semantic_product_in_reduced_precision(dtype):
    """``semantic_dtype`` casts the product's operands (as autocast would) and returns float32
    scores close to the float32 product; None leaves the float32 result untouched."""
    class_logits, mask_logits = make_logits("trained", 100, 133, 16, 21)
    probs = upsampled(mask_logits, (64, 84)).sigmoid()
    exact = postprocessing.semantic_scores(class_logits, probs)
    assert torch.equal(postprocessing.semantic_scores(class_logits, probs, None), exact)
    reduced = postprocessing.semantic_scores(class_logits, probs, dtype)
    assert reduced.dtype == torch.float32 and reduced.shape == exact.shape
    class_probs = F.softmax(class_logits, -1)[:, :-1].to(dtype).float()
    expected = torch.einsum("qk,qhw->khw", class_probs.double(), probs.to(dtype).double())
    torch.testing.assert_close(reduced.double(), expected, rtol=1e-2, atol=1e-3)
    assert (reduced - exact).abs().max() > 0  # the operands were rounded


def test_inputs_are_not_modified():
    """The fast paths work in place on their own copies, never on the caller's tensors."""
    class_logits, mask_logits = make_logits("trained", 16, 5, 9, 13)
    masks = upsampled(mask_logits, (36, 52))
    saved = (class_logits.clone(), mask_logits.clone(), masks.clone())
    options = {"object_mask_threshold": 0.2, "overlap_threshold": 0.3, "thing_ids": [0, 1]}
    postprocessing.semantic_inference(class_logits, masks)
    postprocessing.panoptic_inference(class_logits, masks, **options)
    postprocessing.instance_inference(class_logits, masks, test_topk_per_image=10)
    tail = {**_tail_options(TASKS[0][0], True, 5), **options}
    postprocessing.postprocess_image(class_logits, masks, (36, 52), 36, 52, **tail)
    postprocessing.postprocess_batch(
        class_logits[None], mask_logits[None], (36, 52), [(36, 52)], [(36, 52)], **tail
    )
    for before, after in zip(saved, (class_logits, mask_logits, masks)):
        assert torch.equal(before, after)


def test_results_held_by_the_caller_keep_their_values():
    """Inside caching scopes, results still referenced (a view, a NumPy array) keep their values
    while later calls reuse the memory of released ones."""
    options = _tail_options(TASKS[0][0], True, 133)
    size = [(64, 84)]

    def run(seed: int) -> dict:
        class_logits, mask_logits = make_logits("trained", 100, 133, 16, 21, seed=seed)
        with cpu_caching.caching():
            return postprocessing.postprocess_batch(
                class_logits[None], mask_logits[None], (64, 84), size, size, **options
            )[0]

    first = run(0)
    saved = (first["sem_seg"][3].clone(), first["instances"].pred_masks.clone())
    held = (first["sem_seg"][3], first["instances"].pred_masks.numpy())
    del first
    second = run(1)
    assert torch.equal(held[0], saved[0])
    assert torch.equal(torch.from_numpy(held[1]), saved[1])
    assert not torch.equal(second["sem_seg"][3], saved[0])


def test_panoptic_ties_go_to_the_first_query():
    """Two overlapping queries of different classes with exactly equal scores and saturated
    masks: the overlap goes to the first, as argmax does in the reference."""
    class_logits = torch.tensor([[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]])
    mask_logits = torch.full((2, 6, 8), -30.0)
    mask_logits[0, :, :5] = 30.0
    mask_logits[1, :, 3:] = 30.0
    options = {"object_mask_threshold": 0.5, "overlap_threshold": 0.1, "thing_ids": [0, 1]}
    got = postprocessing.panoptic_inference(class_logits, mask_logits, **options)
    expected = reference.panoptic_inference(class_logits, mask_logits, **options)
    assert_same_panoptic(got, expected)
    assert got[0][:, 3:5].eq(1).all()  # the overlap belongs to segment 1 (query 0)
