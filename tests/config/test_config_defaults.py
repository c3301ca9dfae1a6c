"""Defaults of ``get_cfg()``: detectron2 + DeepLab + Mask2Former layers, merge behaviour."""

import pytest
import yaml
from fvcore.common.config import CfgNode as FvcoreCfgNode

from mask2former.config import CfgNode, get_cfg
from mask2former.config.config import evaluate_expression


def test_get_cfg_is_fvcore_node_and_fresh_copy():
    cfg = get_cfg()
    assert isinstance(cfg, FvcoreCfgNode)
    assert isinstance(cfg, CfgNode)
    cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES = 7
    assert get_cfg().MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == 100


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # detectron2 layer
        ("VERSION", 2),
        ("MODEL.META_ARCHITECTURE", "GeneralizedRCNN"),
        ("MODEL.PIXEL_MEAN", [103.530, 116.280, 123.675]),
        ("MODEL.BACKBONE.FREEZE_AT", 2),
        ("MODEL.RESNETS.NORM", "FrozenBN"),
        ("MODEL.RESNETS.STRIDE_IN_1X1", True),
        ("MODEL.SEM_SEG_HEAD.NUM_CLASSES", 54),
        ("MODEL.SEM_SEG_HEAD.IGNORE_VALUE", 255),
        ("INPUT.MIN_SIZE_TRAIN", (800,)),
        ("SOLVER.WARMUP_FACTOR", 0.001),
        ("SOLVER.WEIGHT_DECAY_BIAS", None),
        ("SOLVER.CLIP_GRADIENTS.CLIP_TYPE", "value"),
        ("TEST.AUG.MIN_SIZES", (400, 500, 600, 700, 800, 900, 1000, 1100, 1200)),
        ("MODEL.ROI_KEYPOINT_HEAD.CONV_DIMS", (512,) * 8),
        # DeepLab layer
        ("MODEL.RESNETS.STEM_TYPE", "deeplab"),
        ("MODEL.RESNETS.RES5_MULTI_GRID", [1, 2, 4]),
        ("MODEL.RESNETS.RES4_DILATION", 1),
        ("SOLVER.POLY_LR_POWER", 0.9),
        ("INPUT.CROP.SINGLE_CATEGORY_MAX_AREA", 1.0),
        # Mask2Former layer
        ("MODEL.MASK_FORMER.DEC_LAYERS", 6),
        ("MODEL.MASK_FORMER.MASK_WEIGHT", 20.0),
        ("MODEL.MASK_FORMER.TRAIN_NUM_POINTS", 12544),
        ("MODEL.MASK_FORMER.IMPORTANCE_SAMPLE_RATIO", 0.75),
        ("MODEL.MASK_FORMER.TEST.SEMANTIC_ON", True),
        ("MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME", "BasePixelDecoder"),
        ("MODEL.SEM_SEG_HEAD.DEFORMABLE_TRANSFORMER_ENCODER_IN_FEATURES", ["res3", "res4", "res5"]),
        ("MODEL.SWIN.DROP_PATH_RATE", 0.3),
        ("MODEL.SWIN.QK_SCALE", None),
        ("INPUT.DATASET_MAPPER_NAME", "mask_former_semantic"),
        ("INPUT.SIZE_DIVISIBILITY", -1),
        ("SOLVER.OPTIMIZER", "ADAMW"),
    ],
)
def test_default_values(key, expected):
    node = get_cfg()
    for part in key.split("."):
        node = node[part]
    assert node == expected
    assert type(node) is type(expected)


def test_merge_from_list_coerces_values():
    cfg = get_cfg()
    cfg.merge_from_list(
        [
            "MODEL.MASK_FORMER.NUM_OBJECT_QUERIES",
            "50",
            "SOLVER.BASE_LR",
            0.5,
            "INPUT.MIN_SIZE_TRAIN",
            "(512, 640)",
            "MODEL.WEIGHTS",
            "/tmp/w.pkl",
        ]
    )
    assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == 50
    assert cfg.SOLVER.BASE_LR == 0.5
    assert cfg.INPUT.MIN_SIZE_TRAIN == (512, 640)
    assert cfg.MODEL.WEIGHTS == "/tmp/w.pkl"


def test_unknown_key_is_rejected():
    cfg = get_cfg()
    with pytest.raises(KeyError, match="MODEL.MASK_FORMER.NOT_A_KEY"):
        cfg.merge_from_list(["MODEL.MASK_FORMER.NOT_A_KEY", 1])


def test_base_inheritance_and_eval_tag(tmp_path):
    (tmp_path / "sub").mkdir()
    (tmp_path / "base.yaml").write_text(
        "MODEL:\n  MASK_FORMER:\n    DEC_LAYERS: 10\n    NHEADS: 4\n"
        'INPUT:\n  MIN_SIZE_TRAIN: !!python/object/apply:eval ["[int(x * 0.1 * 640) '
        'for x in range(5, 8)]"]\n'
    )
    (tmp_path / "sub" / "child.yaml").write_text(
        "_BASE_: ../base.yaml\nMODEL:\n  MASK_FORMER:\n    NHEADS: 2\n"
    )
    cfg = get_cfg()
    cfg.merge_from_file(str(tmp_path / "sub" / "child.yaml"))
    assert cfg.MODEL.MASK_FORMER.DEC_LAYERS == 10
    assert cfg.MODEL.MASK_FORMER.NHEADS == 2
    assert cfg.INPUT.MIN_SIZE_TRAIN == (320, 384, 448)


@pytest.mark.parametrize(
    "expression",
    ["__import__('os').getcwd()", "(1).__class__", "open('x')", "[y for y in range(3)] + z"],
)
def test_eval_tag_rejects_code(expression):
    with pytest.raises(ValueError, match="Config expression"):
        evaluate_expression(expression)


def test_other_python_tags_need_allow_unsafe(tmp_path):
    path = tmp_path / "bad.yaml"
    path.write_text("SEED: !!python/object/apply:os.getpid []\n")
    with pytest.raises(yaml.constructor.ConstructorError):
        get_cfg().merge_from_file(str(path))
