"""MaskFormer end to end on a tiny model: shapes, losses, overfitting, state dicts, input checks."""

import io

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.modeling import MaskFormer, build_model
from mask2former.structures import Boxes, Instances

NUM_CLASSES = 4
THING_IDS = [0, 1]


def tiny_cfg(backbone="swin"):
    """A tiny Swin (default, fast) or ResNet-18 Mask2Former config with 4 classes."""
    cfg = get_cfg()
    cfg.MODEL.DEVICE = "cpu"
    cfg.MODEL.META_ARCHITECTURE = "MaskFormer"
    cfg.MODEL.PIXEL_MEAN = [123.675, 116.280, 103.530]
    cfg.MODEL.PIXEL_STD = [58.395, 57.120, 57.375]
    cfg.MODEL.BACKBONE.NAME = {"swin": "D2SwinTransformer", "resnet": "build_resnet_backbone"}[
        backbone
    ]
    cfg.MODEL.BACKBONE.FREEZE_AT = 0
    swin = cfg.MODEL.SWIN
    swin.EMBED_DIM, swin.DEPTHS, swin.NUM_HEADS = 16, [1, 1, 1, 1], [1, 1, 2, 2]
    swin.WINDOW_SIZE, swin.DROP_PATH_RATE = 4, 0.0
    cfg.MODEL.RESNETS.DEPTH = 18
    cfg.MODEL.RESNETS.STEM_OUT_CHANNELS = 16
    cfg.MODEL.RESNETS.RES2_OUT_CHANNELS = 64
    cfg.MODEL.RESNETS.OUT_FEATURES = ["res2", "res3", "res4", "res5"]
    head = cfg.MODEL.SEM_SEG_HEAD
    head.NAME = "MaskFormerHead"
    head.IN_FEATURES = ["res2", "res3", "res4", "res5"]
    head.NUM_CLASSES = NUM_CLASSES
    head.CONVS_DIM = 32
    head.MASK_DIM = 32
    head.NORM = "GN"
    head.PIXEL_DECODER_NAME = "MSDeformAttnPixelDecoder"
    head.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES = ["res3", "res4", "res5"]
    head.COMMON_STRIDE = 4
    head.TRANSFORMER_ENC_LAYERS = 1
    mf = cfg.MODEL.MASK_FORMER
    mf.TRANSFORMER_DECODER_NAME = "MultiScaleMaskedTransformerDecoder"
    mf.TRANSFORMER_IN_FEATURE = "multi_scale_pixel_decoder"
    mf.CLASS_WEIGHT, mf.MASK_WEIGHT, mf.DICE_WEIGHT = 2.0, 5.0, 5.0
    mf.HIDDEN_DIM = 32
    mf.NUM_OBJECT_QUERIES = 6
    mf.NHEADS = 2
    mf.DROPOUT = 0.0
    mf.DIM_FEEDFORWARD = 64
    mf.DEC_LAYERS = 4  # 3 decoder layers + the prediction from the learnable queries
    mf.TRAIN_NUM_POINTS = 256
    mf.TEST.SEMANTIC_ON = mf.TEST.INSTANCE_ON = mf.TEST.PANOPTIC_ON = True
    mf.TEST.OBJECT_MASK_THRESHOLD = 0.0
    mf.TEST.OVERLAP_THRESHOLD = 0.0
    cfg.TEST.DETECTIONS_PER_IMAGE = 5
    return cfg


def tiny_model(seed=0, backbone="swin"):
    torch.manual_seed(seed)
    return MaskFormer(tiny_cfg(backbone), thing_ids=THING_IDS)


def _instances(height, width, generator):
    masks = torch.zeros(2, height, width, dtype=torch.bool)
    masks[0, : height // 2, : width // 2] = True
    masks[1, height // 2 :, :] = True
    inst = Instances((height, width))
    inst.gt_classes = torch.tensor([1, 3])
    inst.gt_masks = masks
    return inst


def _batch(sizes=((64, 64), (48, 56)), seed=0):
    generator = torch.Generator().manual_seed(seed)
    return [
        {
            "image": torch.randint(0, 256, (3, h, w), dtype=torch.uint8, generator=generator),
            "height": h,
            "width": w,
            "instances": _instances(h, w, generator),
        }
        for h, w in sizes
    ]


def test_from_config_maps_the_config():
    model = tiny_model()
    weights = model.criterion.weight_dict
    assert weights["loss_ce"] == 2.0 and weights["loss_mask"] == 5.0 and weights["loss_dice"] == 5.0
    assert sorted(k for k in weights if k.startswith("loss_ce")) == [
        "loss_ce",
        "loss_ce_0",
        "loss_ce_1",
        "loss_ce_2",
    ]
    torch.testing.assert_close(
        model.criterion.empty_weight, torch.tensor([1.0] * NUM_CLASSES + [0.1])
    )
    assert model.criterion.num_points == 256 and model.criterion.matcher.num_points == 256
    assert model.size_divisibility == 32 and model.test_topk_per_image == 5
    assert model.sem_seg_postprocess_before_inference
    state = model.state_dict()
    assert "pixel_mean" not in state and "pixel_std" not in state
    assert "criterion.empty_weight" in state
    cfg = tiny_cfg("resnet")
    cfg.MODEL.MASK_FORMER.SIZE_DIVISIBILITY = -1
    model = MaskFormer(cfg)
    assert model.size_divisibility == model.backbone.size_divisibility


def test_training_returns_every_weighted_loss():
    model = tiny_model().train()
    torch.manual_seed(1)
    losses = model(_batch())
    names = ["loss_ce", "loss_mask", "loss_dice"]
    assert set(losses) == set(names + [f"{n}_{i}" for n in names for i in range(3)])
    assert all(v.dim() == 0 and torch.isfinite(v) for v in losses.values())
    # Weighted: the same draw of the criterion alone gives the unweighted value.
    model.criterion.weight_dict = {k: 1.0 for k in model.criterion.weight_dict}
    torch.manual_seed(1)
    unweighted = model(_batch())
    torch.testing.assert_close(losses["loss_mask"], 5.0 * unweighted["loss_mask"])


@pytest.mark.parametrize("backbone", ["swin", "resnet"])
def test_inference_shapes_for_all_three_tasks(backbone):
    model = tiny_model(backbone=backbone).eval()
    batch = _batch(sizes=((64, 64), (40, 52)))
    batch[1]["height"], batch[1]["width"] = 80, 104  # the output size may differ from the input
    with torch.no_grad():
        results = model(batch)
    assert len(results) == 2
    for result, (h, w) in zip(results, [(64, 64), (80, 104)]):
        assert result["sem_seg"].shape == (NUM_CLASSES, h, w)
        panoptic_seg, segments_info = result["panoptic_seg"]
        assert panoptic_seg.shape == (h, w) and panoptic_seg.dtype == torch.int32
        assert {s["id"] for s in segments_info} == set(panoptic_seg.unique().tolist()) - {0}
        instances = result["instances"]
        assert instances.image_size == (h, w)
        assert instances.pred_masks.shape[1:] == (h, w)
        assert isinstance(instances.pred_boxes, Boxes)
        assert instances.pred_boxes.tensor.shape == (len(instances), 4)
        assert set(instances.pred_classes.tolist()) <= set(THING_IDS)  # panoptic on: things only
        assert instances.scores.shape == (len(instances),)


def test_semantic_only_inference_postprocesses_after():
    cfg = tiny_cfg()
    cfg.MODEL.MASK_FORMER.TEST.INSTANCE_ON = cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON = False
    torch.manual_seed(0)
    model = MaskFormer(cfg).eval()
    assert not model.sem_seg_postprocess_before_inference
    batch = [{"image": torch.rand(3, 50, 60) * 255}]  # float input, no height/width given
    with torch.no_grad():
        [result] = model(batch)
    assert list(result) == ["sem_seg"] and result["sem_seg"].shape == (NUM_CLASSES, 50, 60)


def test_overfits_a_fixed_batch():
    model = tiny_model().train()
    batch = _batch()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3, weight_decay=0.0)
    torch.manual_seed(0)
    first = None
    for _ in range(30):
        total = sum(model(batch).values())
        first = total.item() if first is None else first
        optimizer.zero_grad()
        total.backward()
        optimizer.step()
    with torch.no_grad():
        torch.manual_seed(0)
        last = sum(model(batch).values()).item()
    assert last < 0.5 * first, (first, last)


def test_state_dict_round_trip_is_bit_exact():
    model = tiny_model(seed=0).eval()
    buffer = io.BytesIO()
    torch.save(model.state_dict(), buffer)
    fresh = tiny_model(seed=123).eval()
    buffer.seek(0)
    fresh.load_state_dict(torch.load(buffer, weights_only=True), strict=True)
    batch = _batch()
    with torch.no_grad():
        outputs = model.sem_seg_head(model.backbone(model.preprocess_images(batch).tensor))
        fresh_outputs = fresh.sem_seg_head(fresh.backbone(fresh.preprocess_images(batch).tensor))
        results, fresh_results = model(batch), fresh(batch)
    assert torch.equal(outputs["pred_logits"], fresh_outputs["pred_logits"])
    assert torch.equal(outputs["pred_masks"], fresh_outputs["pred_masks"])
    for result, fresh_result in zip(results, fresh_results):
        assert torch.equal(result["sem_seg"], fresh_result["sem_seg"])
        assert torch.equal(result["panoptic_seg"][0], fresh_result["panoptic_seg"][0])
        assert result["panoptic_seg"][1] == fresh_result["panoptic_seg"][1]
        assert torch.equal(result["instances"].scores, fresh_result["instances"].scores)


@pytest.mark.parametrize(
    "image,what",
    [
        (torch.zeros(3, 32, 32, dtype=torch.int64), "dtype torch.int64"),
        (torch.zeros(1, 32, 32, dtype=torch.uint8), r"shape \(1, 32, 32\)"),
        (torch.zeros(4, 32, 32, dtype=torch.uint8), r"shape \(4, 32, 32\)"),
        (torch.zeros(1, 3, 32, 32, dtype=torch.uint8), r"shape \(1, 3, 32, 32\)"),
        (torch.zeros(32, 32, dtype=torch.uint8), r"shape \(32, 32\)"),
        (torch.zeros(32, 32, 3, dtype=torch.uint8), r"shape \(32, 32, 3\)"),
        ([[0.0]], "got list"),
    ],
)
def test_bad_images_raise_value_error(image, what):
    model = tiny_model().eval()
    expected = r"batched_inputs\[0\]\['image'\] must be a \(3, H, W\) uint8 or floating-point"
    with pytest.raises(ValueError, match=expected) as excinfo:
        model([{"image": image}])
    assert excinfo.match(what)


def test_bad_batches_raise_value_error():
    model = tiny_model()
    with pytest.raises(ValueError, match="non-empty list"):
        model([])
    with pytest.raises(ValueError, match="has no 'image' entry"):
        model([{"img": torch.zeros(3, 8, 8)}])
    batch = _batch()
    del batch[1]["instances"]
    with pytest.raises(ValueError, match="'instances'"):
        model.train()(batch)


def test_build_model_reads_thing_ids_from_metadata():
    from mask2former.data.catalog import MetadataCatalog

    name = "test_meta_arch_tiny_panoptic_train"
    MetadataCatalog.get(name).set(thing_dataset_id_to_contiguous_id={7: 0, 9: 1})
    cfg = tiny_cfg()
    cfg.DATASETS.TRAIN = (name,)
    model = build_model(cfg)
    assert isinstance(model, MaskFormer) and model.thing_ids == [0, 1]
    cfg.MODEL.META_ARCHITECTURE = "NoSuchArch"
    with pytest.raises(KeyError, match="MODEL.META_ARCHITECTURE"):
        build_model(cfg)
