"""datasets/prepare_ade20k_{pan,ins}_seg.py on a hand-made miniature ADEChallengeData2016 tree."""

import contextlib
import importlib
import io
import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from mask2former.data.datasets import load_class_table, load_coco_json
from tests.optional import require_package

DATASETS_DIR = Path(__file__).resolve().parents[2] / "datasets"
H, W = 20, 24
# ADE20K-150 semantic label values (1-based) and instance category values (R channel, 1-based).
SEM_WALL, SEM_SKY, SEM_FLOOR, SEM_TREE, SEM_ROAD, SEM_BED, SEM_PERSON, SEM_SKYSCRAPER = (
    1, 3, 4, 5, 7, 8, 13, 49
)  # fmt: skip
INS_BED, INS_PERSON = 1, 4


@pytest.fixture(scope="module")
def scripts():
    """The two scripts imported as modules (their folder is put on sys.path, as when run)."""
    with pytest.MonkeyPatch.context() as mp:
        mp.syspath_prepend(str(DATASETS_DIR))
        pan = importlib.import_module("prepare_ade20k_pan_seg")
        ins = importlib.import_module("prepare_ade20k_ins_seg")
    return pan, ins


def _rect(y0, y1, x0, x1):
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _write(ade, split, stem, semantic, instances):
    """Write image, semantic PNG and instance PNG; ``instances``: [(R value, G value, mask)]."""
    rgb = np.random.default_rng(0).integers(0, 255, (H, W, 3), dtype=np.uint8)
    inst = np.zeros((H, W, 3), dtype=np.uint8)
    for cat, inst_id, mask in instances:
        inst[mask] = (cat, inst_id, 0)
    for sub, array, ext in (
        ("images", rgb, ".jpg"),
        ("annotations", semantic, ".png"),
        ("annotations_instance", inst, ".png"),
    ):
        os.makedirs(ade / sub / split, exist_ok=True)
        Image.fromarray(array).save(ade / sub / split / (stem + ext))


@pytest.fixture(scope="module")
def tree(tmp_path_factory, scripts):
    """Build the tree, run both scripts once; return (root, masks by image and segment)."""
    root = tmp_path_factory.mktemp("d2") / "datasets"
    ade = root / "ADEChallengeData2016"
    # Image 1: wall over floor, an unlabeled corner, two persons (one drawn on the wall's
    # semantic region) and a bed; a semantic "person" region without instance stays void.
    person1, person2, bed = _rect(2, 8, 2, 8), _rect(12, 18, 2, 8), _rect(12, 18, 12, 20)
    void_person, other = _rect(4, 7, 18, 22), _rect(0, 2, 0, 2)
    sem1 = np.full((H, W), SEM_WALL, dtype=np.uint8)
    sem1[10:] = SEM_FLOOR
    sem1[other], sem1[void_person] = 0, SEM_PERSON
    sem1[person2], sem1[bed] = SEM_PERSON, SEM_BED
    instances1 = [(INS_PERSON, 1, person1), (INS_PERSON, 2, person2), (INS_BED, 3, bed)]
    _write(ade, "training", "ADE_train_00000001", sem1, instances1)
    # Image 2: stuff only, including road and skyscraper (same color in the registration table).
    sem2 = np.full((H, W), SEM_SKY, dtype=np.uint8)
    sem2[8:14, :12], sem2[8:14, 12:], sem2[14:] = SEM_SKYSCRAPER, SEM_ROAD, SEM_TREE
    _write(ade, "training", "ADE_train_00000002", sem2, [])
    # Validation: one bed on a wall.
    sem3 = np.full((H, W), SEM_WALL, dtype=np.uint8)
    sem3[bed] = SEM_BED
    _write(ade, "validation", "ADE_val_00000001", sem3, [(INS_BED, 7, bed)])

    pan, ins = scripts
    with contextlib.redirect_stderr(io.StringIO()):  # progress bars
        pan.main(["--root", str(root), "--workers", "2"])
        ins.main(["--root", str(root), "--workers", "2"])
    masks = {
        "ADE_train_00000001": {
            "things": [(12, person1), (12, person2), (7, bed)],
            "stuff": [(0, sem1 == SEM_WALL), (3, sem1 == SEM_FLOOR)],
            "void": other | void_person,
        },
        "ADE_val_00000001": {"things": [(7, bed)], "stuff": [(0, sem3 == SEM_WALL)]},
    }
    return root, masks


def _panoptic_ids(path):
    rgb = np.asarray(Image.open(path), dtype=np.uint32)
    return rgb[..., 0] + 256 * rgb[..., 1] + 256 * 256 * rgb[..., 2]


def test_panoptic_segments_as_constructed(tree):
    root, masks = tree
    ade = root / "ADEChallengeData2016"
    gt = json.loads((ade / "ade20k_panoptic_train.json").read_text())
    assert [img["id"] for img in gt["images"]] == ["ADE_train_00000001", "ADE_train_00000002"]
    assert (gt["images"][0]["height"], gt["images"][0]["width"]) == (H, W)
    assert len(gt["categories"]) == 150 and sum(c["isthing"] for c in gt["categories"]) == 100

    ann1, ann2 = gt["annotations"]
    expected = masks["ADE_train_00000001"]
    segs = ann1["segments_info"]
    assert [s["category_id"] for s in segs] == [0, 3, 12, 12, 7]  # stuff first, then things
    ids = _panoptic_ids(ade / "ade20k_panoptic_train" / ann1["file_name"])
    things_union = np.zeros((H, W), dtype=bool)
    for seg, (_, mask) in zip(segs[2:], expected["things"]):
        np.testing.assert_array_equal(ids == seg["id"], mask)
        assert seg["area"] == mask.sum() and seg["iscrowd"] == 0
        things_union |= mask
    for seg, (_, mask) in zip(segs[:2], expected["stuff"]):
        np.testing.assert_array_equal(ids == seg["id"], mask & ~things_union)
        # As the original: area and bbox of the semantic region, before things are pasted.
        assert seg["area"] == mask.sum()
    assert segs[0]["bbox"] == [0, 0, W, 10] and segs[4]["bbox"] == [12, 12, 8, 6]
    assert (ids[expected["void"]] == 0).all()
    assert len({s["id"] for s in segs}) == len(segs)

    # Road and skyscraper share a color in the registration palette; here they must not.
    assert [s["category_id"] for s in ann2["segments_info"]] == [2, 4, 6, 48]
    assert len({s["id"] for s in ann2["segments_info"]}) == 4


def test_panoptic_readable_by_panopticapi(tree):
    require_package("panopticapi", "panopticapi-lite")
    from panopticapi.evaluation import pq_compute

    ade = tree[0] / "ADEChallengeData2016"
    json_file, folder = str(ade / "ade20k_panoptic_val.json"), str(ade / "ade20k_panoptic_val")
    with contextlib.redirect_stdout(io.StringIO()):
        result = pq_compute(json_file, json_file, folder, folder)
    assert result["All"]["n"] == 2 and result["All"]["pq"] == pytest.approx(1.0)


def test_panoptic_png_is_deterministic(tree, scripts, tmp_path):
    pan, _ = scripts
    ade = tree[0] / "ADEChallengeData2016"
    stem = "ADE_train_00000001"
    categories = {c["id"]: c for c in pan.panoptic_categories()}
    files = [
        str(ade / sub / "training" / f"{stem}{ext}")
        for sub, ext in (("images", ".jpg"), ("annotations", ".png"))
    ] + [str(ade / "annotations_instance" / "training" / f"{stem}.png")]
    _, annotation = pan.convert(*files, str(tmp_path), categories, pan.instance_category_map())
    gt = json.loads((ade / "ade20k_panoptic_train.json").read_text())["annotations"][0]
    assert annotation == gt
    written = (tmp_path / f"{stem}.png").read_bytes()
    assert written == (ade / "ade20k_panoptic_train" / f"{stem}.png").read_bytes()


def test_instances_readable_by_pycocotools(tree):
    from pycocotools.coco import COCO

    root, masks = tree
    ade = root / "ADEChallengeData2016"
    for split, stem, n_images in (
        ("train", "ADE_train_00000001", 2),
        ("val", "ADE_val_00000001", 1),
    ):
        json_file = str(ade / f"ade20k_instance_{split}.json")
        with contextlib.redirect_stdout(io.StringIO()):
            coco = COCO(json_file)
        assert len(coco.imgs) == n_images
        assert coco.dataset["categories"] == load_class_table("ade20k_instance_100")
        anns = coco.loadAnns(coco.getAnnIds(imgIds=[stem]))
        expected = masks[stem]["things"]
        assert [a["id"] for a in anns] == list(range(1, len(expected) + 1))
        assert [a["category_id"] for a in anns] == [cat for cat, _ in expected]
        for ann, (_, mask) in zip(anns, expected):
            np.testing.assert_array_equal(coco.annToMask(ann), mask)
            assert ann["area"] == mask.sum() and ann["iscrowd"] == 0

    records = load_coco_json(str(ade / "ade20k_instance_train.json"), str(ade / "images"))
    assert [len(r["annotations"]) for r in records] == [3, 0]


def test_category_tables_agree():
    mapping = load_class_table("ade20k_instance_catid_mapping")
    assert [row["instance_id"] for row in mapping] == list(range(1, 101))
    instance_ids = [c["id"] for c in load_class_table("ade20k_instance_100")]
    assert [row["category_id"] for row in mapping] == instance_ids
    things = [c["id"] for c in load_class_table("ade20k_panoptic_150") if c["isthing"]]
    assert sorted(instance_ids) == things


def test_errors_name_the_missing_path(scripts, tmp_path, capsys):
    pan, ins = scripts
    with pytest.raises(FileNotFoundError, match="images/training.*DETECTRON2_DATASETS"):
        pan.main(["--root", str(tmp_path / "nowhere")])
    ade = tmp_path / "ADEChallengeData2016"
    _write(ade, "training", "ADE_train_00000001", np.ones((H, W), np.uint8), [])
    os.remove(ade / "annotations_instance" / "training" / "ADE_train_00000001.png")
    with pytest.raises(FileNotFoundError, match="annotations_instance/training/ADE_train_0+1.png"):
        ins.main(["--root", str(tmp_path)])
    with pytest.raises(SystemExit) as exit_info:
        ins.main(["--help"])
    assert exit_info.value.code == 0 and "--root" in capsys.readouterr().out


def test_instance_spanning_two_categories_is_an_error(scripts, tmp_path):
    _, ins = scripts
    ade = tmp_path / "ADEChallengeData2016"
    instances = [(INS_BED, 1, _rect(0, 4, 0, 4)), (INS_PERSON, 1, _rect(6, 9, 0, 4))]
    _write(ade, "training", "x", np.ones((H, W), np.uint8), instances)
    files = [str(ade / "images" / "training" / "x.jpg")]
    files.append(str(ade / "annotations_instance" / "training" / "x.png"))
    with pytest.raises(ValueError, match=r"x\.png: instance 1 has instance categories \[1, 4\]"):
        ins.convert(*files, {1: 7, 4: 12})
