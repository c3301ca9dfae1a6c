"""The Cityscapes datasets end to end: a generated tree in the Cityscapes layout, the builtin
loaders, ``tools/train_net.py --eval-only`` and the official ``cityscapesscripts`` evaluations,
against hand-computed answers.

The ground truth is made as Cityscapes makes it: polygon JSONs rendered by cityscapesscripts'
``json2labelImg`` / ``json2instanceImg`` and converted by ``createPanopticImgs``. The model is
the oracle of :mod:`tests.evaluation.cityscapes_oracle`, which predicts what the image spells
out: the "val" split's images spell out the ground truth, the "train" split's the same scene
with the person labelled as a rider (a known error).
"""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import REPO_ROOT, cli_env, finish_cli
from tests.evaluation.cityscapes_oracle import encode_prediction
from tests.optional import require_package

HEIGHT, WIDTH = 64, 128  # Cityscapes' 1:2 aspect; regions stay above the 100-pixel minimum
CITY = "testcity"
STEM = f"{CITY}_000000_000019"
# Drawn in this order (later ones cover earlier ones): (label, x0, y0, x1, y1), inclusive.
SCENE = [
    ("road", 0, 0, WIDTH - 1, HEIGHT - 1),
    ("sky", 0, 0, WIDTH - 1, 15),
    ("car", 8, 24, 39, 55),
    ("car", 96, 32, 119, 55),
    ("person", 72, 20, 87, 59),
]
PERSON_TRAIN_ID, RIDER_TRAIN_ID = 11, 12
# Instance inference keeps the top (query, class) pairs: exactly the oracle's own pairs (one
# per segment, score 1). Its other pairs score 0 and would be matched or counted as false
# positives at that score (with the person's mask, "person" at score 0 would find the person).
NUM_SEGMENTS, NUM_THINGS = len(SCENE), 3
# cityscapesscripts' json2instanceImg saves its 32-bit instance PNGs as Pillow 12 deprecates.
pytestmark = pytest.mark.filterwarnings("ignore:Saving I mode images:DeprecationWarning")
# split -> whether its predictions carry the known error
SPLITS = {"val": False, "train": True}


def _write_split(root: str, split: str, person_as_rider: bool) -> None:
    """The polygons, the label / train-id / instance PNGs cityscapesscripts renders from them,
    and the image that spells out the oracle's prediction."""
    from cityscapesscripts.preparation.json2instanceImg import json2instanceImg
    from cityscapesscripts.preparation.json2labelImg import json2labelImg

    gt_dir = os.path.join(root, "gtFine", split, CITY)
    image_dir = os.path.join(root, "leftImg8bit", split, CITY)
    os.makedirs(gt_dir)
    os.makedirs(image_dir)
    prefix = os.path.join(gt_dir, f"{STEM}_gtFine_")
    objects = [
        {"label": label, "polygon": [[x0, y0], [x1, y0], [x1, y1], [x0, y1]]}
        for label, x0, y0, x1, y1 in SCENE
    ]
    with open(prefix + "polygons.json", "w") as f:
        json.dump({"imgHeight": HEIGHT, "imgWidth": WIDTH, "objects": objects}, f)
    json2labelImg(prefix + "polygons.json", prefix + "labelIds.png", "ids")
    json2labelImg(prefix + "polygons.json", prefix + "labelTrainIds.png", "trainIds")
    json2instanceImg(prefix + "polygons.json", prefix + "instanceIds.png", "ids")

    train_ids = np.asarray(Image.open(prefix + "labelTrainIds.png")).copy()
    instance_ids = np.asarray(Image.open(prefix + "instanceIds.png"))
    instances = np.where(instance_ids >= 1000, instance_ids % 1000 + 1, 0)
    if person_as_rider:
        train_ids[train_ids == PERSON_TRAIN_ID] = RIDER_TRAIN_ID
    image = encode_prediction(train_ids, instances)
    Image.fromarray(image).save(os.path.join(image_dir, f"{STEM}_leftImg8bit.png"))


@pytest.fixture(scope="module")
def cityscapes_root(tmp_path_factory):
    """``$DETECTRON2_DATASETS`` with ``cityscapes/`` holding the "val" and "train" splits."""
    require_package("cityscapesscripts")
    from cityscapesscripts.preparation.createPanopticImgs import convert2panoptic

    datasets = tmp_path_factory.mktemp("datasets")
    root = str(datasets / "cityscapes")
    for split, person_as_rider in SPLITS.items():
        _write_split(root, split, person_as_rider)
    convert2panoptic(os.path.join(root, "gtFine"), setNames=list(SPLITS))
    return str(datasets)


def _config(task: str) -> str:
    return os.path.join(REPO_ROOT, "configs", "cityscapes", task, "maskformer2_R50_bs16_90k.yaml")


def _start_eval(config: str, output_dir: str, data_root: str, **opts) -> subprocess.Popen:
    """``tools/train_net.py --eval-only`` on the oracle model, in a fresh process that first
    registers the oracle's backbone and head."""
    opts = {
        "MODEL.BACKBONE.NAME": "build_cityscapes_oracle_backbone",
        "MODEL.SEM_SEG_HEAD.NAME": "CityscapesOracleHead",
        "MODEL.PIXEL_MEAN": [0.0, 0.0, 0.0],
        "MODEL.PIXEL_STD": [1.0, 1.0, 1.0],
        "MODEL.WEIGHTS": "",
        "MODEL.DEVICE": "cpu",
        "INPUT.MIN_SIZE_TEST": HEIGHT,
        "INPUT.MAX_SIZE_TEST": WIDTH,
        "DATALOADER.NUM_WORKERS": 0,
        "OUTPUT_DIR": output_dir,
        **opts,
    }
    args = ["--config-file", config, "--eval-only"]
    for key, value in opts.items():
        args += [key, repr(value) if isinstance(value, str | tuple | list) else str(value)]
    run_script = (
        "import runpy, sys; import tests.evaluation.cityscapes_oracle; "
        "sys.argv[0] = 'tools/train_net.py'; "
        "runpy.run_path('tools/train_net.py', run_name='__main__')"
    )
    return subprocess.Popen(
        [sys.executable, "-c", run_script, *args],
        cwd=REPO_ROOT,
        env=cli_env(DETECTRON2_DATASETS=data_root),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_rendered_ground_truth_is_the_scene(cityscapes_root):
    """The answers below rest on the rendering: every rectangle, edges included, and nothing
    else (label ids: road 7, sky 23, car 26, person 24; instances label * 1000 + n)."""
    label_ids = {"road": 7, "sky": 23, "car": 26, "person": 24}
    expected_labels = np.zeros((HEIGHT, WIDTH), dtype=np.uint8)
    expected_instances = np.zeros((HEIGHT, WIDTH), dtype=np.int64)
    cars = 0
    for label, x0, y0, x1, y1 in SCENE:
        expected_labels[y0 : y1 + 1, x0 : x1 + 1] = label_ids[label]
        instance = label_ids[label]
        if label in ("car", "person"):
            instance = label_ids[label] * 1000 + (cars if label == "car" else 0)
            cars += label == "car"
        expected_instances[y0 : y1 + 1, x0 : x1 + 1] = instance
    prefix = os.path.join(cityscapes_root, "cityscapes", "gtFine", "val", CITY, STEM)
    np.testing.assert_array_equal(
        np.asarray(Image.open(f"{prefix}_gtFine_labelIds.png")), expected_labels
    )
    np.testing.assert_array_equal(
        np.asarray(Image.open(f"{prefix}_gtFine_instanceIds.png")), expected_instances
    )


def test_eval_only_semantic_instance_panoptic(cityscapes_root, tmp_path):
    # Both runs at once: the 19-class panoptic config evaluates the semantic and panoptic
    # datasets of both splits, the 8-class instance config the instance datasets.
    panoptic_run = _start_eval(
        _config("panoptic-segmentation"),
        str(tmp_path / "panoptic"),
        cityscapes_root,
        **{
            "DATASETS.TEST": tuple(
                f"cityscapes_fine_{task}_{split}"
                for split in SPLITS
                for task in ("sem_seg", "panoptic")
            ),
            "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True,
            "MODEL.MASK_FORMER.TEST.INSTANCE_ON": True,
            "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": True,
            "TEST.DETECTIONS_PER_IMAGE": NUM_SEGMENTS,
        },
    )
    instance_run = _start_eval(
        _config("instance-segmentation"),
        str(tmp_path / "instance"),
        cityscapes_root,
        **{
            "DATASETS.TEST": tuple(f"cityscapes_fine_instance_seg_{split}" for split in SPLITS),
            "TEST.DETECTIONS_PER_IMAGE": NUM_THINGS,
        },
    )
    finish_cli(panoptic_run)
    finish_cli(instance_run)
    panoptic = json.loads((tmp_path / "panoptic" / "eval_results.json").read_text())
    instance = json.loads((tmp_path / "instance" / "eval_results.json").read_text())

    # Exact predictions: every metric is perfect.
    for result in (
        panoptic["cityscapes_fine_sem_seg_val"],
        panoptic["cityscapes_fine_panoptic_val"],
    ):
        assert result["sem_seg"] == pytest.approx(
            {"IoU": 100, "iIoU": 100, "IoU_sup": 100, "iIoU_sup": 100}
        )
    assert panoptic["cityscapes_fine_panoptic_val"]["segm"] == pytest.approx(
        {"AP": 100, "AP50": 100}
    )
    assert panoptic["cityscapes_fine_panoptic_val"]["panoptic_seg"]["PQ"] == pytest.approx(100)
    assert instance["cityscapes_fine_instance_seg_val"]["segm"] == pytest.approx(
        {"AP": 100, "AP50": 100}
    )

    # The person predicted as a rider. Semantic IoU over the 5 classes present: road, sky and
    # car exact, person (all missed) and rider (all false) 0. Both are "human", so the
    # category IoU stays perfect.
    for result in (
        panoptic["cityscapes_fine_sem_seg_train"],
        panoptic["cityscapes_fine_panoptic_train"],
    ):
        assert result["sem_seg"]["IoU"] == pytest.approx(100 * 3 / 5)
        assert result["sem_seg"]["IoU_sup"] == pytest.approx(100)
    # PQ over the same 5 categories: road, sky and both cars match exactly (PQ 1), person has
    # one false negative and rider one false positive (PQ 0). Things: car, person, rider.
    pq = panoptic["cityscapes_fine_panoptic_train"]["panoptic_seg"]
    assert (pq["PQ"], pq["PQ_th"], pq["PQ_st"]) == pytest.approx((60, 100 / 3, 100))
    # Instance AP averages the classes with ground truth: car 1, person 0 (the rider class
    # has no ground truth and no AP).
    for result in (
        instance["cityscapes_fine_instance_seg_train"],
        panoptic["cityscapes_fine_panoptic_train"],
    ):
        assert result["segm"] == pytest.approx({"AP": 50, "AP50": 50})
