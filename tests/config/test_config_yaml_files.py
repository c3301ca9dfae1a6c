"""Every YAML file under configs/ (except configs/demo/) merges into ``get_cfg()``."""

from pathlib import Path

import pytest

from mask2former.config import get_cfg

CONFIG_ROOT = Path(__file__).resolve().parents[2] / "configs"
YAML_FILES = sorted(
    p for p in CONFIG_ROOT.rglob("*.yaml") if "demo" not in p.relative_to(CONFIG_ROOT).parts
)


def _load(relative_path: str):
    cfg = get_cfg()
    cfg.merge_from_file(str(CONFIG_ROOT / relative_path))
    return cfg


def test_config_tree_is_complete():
    names = {p.relative_to(CONFIG_ROOT).as_posix() for p in YAML_FILES}
    assert len(names) == 57
    for dataset in ("coco", "ade20k", "cityscapes", "mapillary-vistas"):
        assert any(n.startswith(dataset + "/") for n in names), dataset


@pytest.mark.parametrize("path", YAML_FILES, ids=lambda p: p.relative_to(CONFIG_ROOT).as_posix())
def test_yaml_merges(path):
    cfg = get_cfg()
    cfg.merge_from_file(str(path))
    cfg.freeze()


def test_coco_panoptic_r50_values():
    cfg = _load("coco/panoptic-segmentation/maskformer2_R50_bs16_50ep.yaml")
    assert cfg.MODEL.META_ARCHITECTURE == "MaskFormer"
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 133
    assert cfg.MODEL.SEM_SEG_HEAD.PIXEL_DECODER_NAME == "MSDeformAttnPixelDecoder"
    assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == 100
    assert cfg.MODEL.MASK_FORMER.DEC_LAYERS == 10
    assert cfg.MODEL.MASK_FORMER.TRAIN_NUM_POINTS == 12544
    assert cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON is True
    assert cfg.MODEL.RESNETS.STEM_TYPE == "basic"
    assert cfg.MODEL.RESNETS.RES5_MULTI_GRID == [1, 1, 1]
    assert cfg.MODEL.PIXEL_STD == [58.395, 57.120, 57.375]
    assert cfg.SOLVER.STEPS == (327778, 355092)
    assert cfg.INPUT.FORMAT == "RGB"


def test_coco_panoptic_swin_large_values():
    cfg = _load("coco/panoptic-segmentation/swin/maskformer2_swin_large_IN21k_384_bs16_100ep.yaml")
    assert cfg.MODEL.BACKBONE.NAME == "D2SwinTransformer"
    assert cfg.MODEL.SWIN.EMBED_DIM == 192
    assert cfg.MODEL.SWIN.DEPTHS == [2, 2, 18, 2]
    assert cfg.MODEL.SWIN.NUM_HEADS == [6, 12, 24, 48]
    assert cfg.MODEL.SWIN.WINDOW_SIZE == 12
    assert cfg.MODEL.SWIN.PRETRAIN_IMG_SIZE == 384
    assert cfg.MODEL.MASK_FORMER.NUM_OBJECT_QUERIES == 200
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 133


def test_ade20k_semantic_eval_tag_values():
    cfg = _load("ade20k/semantic-segmentation/maskformer2_R50_bs16_160k.yaml")
    assert cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 150
    assert cfg.INPUT.MIN_SIZE_TRAIN == tuple(int(x * 0.1 * 512) for x in range(5, 21))
    assert cfg.INPUT.CROP.SIZE == [512, 512]
    assert cfg.MODEL.MASK_FORMER.TEST.PANOPTIC_ON is False


def _as_lists(value):
    if isinstance(value, dict):
        return {k: _as_lists(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_as_lists(v) for v in value]
    return value


def test_dump_and_reload_round_trip(tmp_path):
    cfg = _load(
        "ade20k/semantic-segmentation/swin/maskformer2_swin_large_IN21k_384_bs16_160k_res640.yaml"
    )
    dumped = tmp_path / "config.yaml"
    dumped.write_text(cfg.dump())
    reloaded = get_cfg()
    reloaded.merge_from_file(str(dumped))
    assert _as_lists(reloaded) == _as_lists(cfg)
    assert reloaded.INPUT.MIN_SIZE_TRAIN == cfg.INPUT.MIN_SIZE_TRAIN
