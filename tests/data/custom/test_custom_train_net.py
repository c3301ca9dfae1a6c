"""The unseen dataset trained and evaluated end to end: described in YAML (DATASETS.CUSTOM) for
tools/train_net.py in COCO-instances and semantic-PNG form, and registered by a Python call
(COCO panoptic made by the converter) for the in-process trainer."""

import json

from mask2former.data import register_coco_panoptic
from mask2former.engine.trainer import Trainer
from tests.cli_helpers import finish_cli, start_cli
from tests.data.custom.unseen_data import CLASSES
from tests.tiny_config import BASE_CONFIG, tiny_cfg, tiny_opts

_SHORT = {
    "SOLVER.MAX_ITER": 2,
    "SOLVER.IMS_PER_BATCH": 2,
    "SOLVER.CHECKPOINT_PERIOD": 100,
    "INPUT.MIN_SIZE_TRAIN": (64,),
    "INPUT.MAX_SIZE_TRAIN": 96,
    "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.0,
}


def _yaml(tmp_path, name, entries):
    lines = [f"_BASE_: {BASE_CONFIG}", "DATASETS:", "  CUSTOM:"]
    lines += [f"    - {json.dumps(entry)}" for entry in entries]
    path = tmp_path / f"{name}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return str(path)


def test_train_net_on_yaml_described_coco_instances_and_sem_seg(unseen_root, tmp_path):
    instances = _yaml(
        tmp_path,
        "instances",
        [
            {
                "name": f"unseen_{split}",
                "format": "coco_instances",
                "image_root": f"{unseen_root}/images/{split}",
                "json": f"{unseen_root}/coco/{split}.json",
            }
            for split in ("train", "val")
        ],
    )
    semantic = _yaml(
        tmp_path,
        "semantic",
        [
            {
                "name": f"unseen_{split}_sem",
                "format": "sem_seg",
                "image_root": f"{unseen_root}/images/{split}",
                "gt_root": f"{unseen_root}/semantic/{split}",
                "classes": CLASSES,
            }
            for split in ("train", "val")
        ],
    )
    runs = {
        "instances": (
            instances,
            {
                "DATASETS.TRAIN": ("unseen_train",),
                "DATASETS.TEST": ("unseen_val",),
                "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 2,
                "INPUT.DATASET_MAPPER_NAME": "mask_former_instance",
                "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": False,
                "MODEL.MASK_FORMER.TEST.INSTANCE_ON": True,
                "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": False,
            },
        ),
        "semantic": (
            semantic,
            {
                "DATASETS.TRAIN": ("unseen_train_sem",),
                "DATASETS.TEST": ("unseen_val_sem",),
                "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 4,
                "INPUT.DATASET_MAPPER_NAME": "mask_former_semantic",
                "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True,
                "MODEL.MASK_FORMER.TEST.INSTANCE_ON": False,
                "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": False,
            },
        ),
    }
    # Started together: most of each run is importing torch and building the model.
    processes = {
        key: start_cli(
            "tools/train_net.py",
            ["--config-file", config, *tiny_opts(**_SHORT, **opts, OUTPUT_DIR=str(tmp_path / key))],
        )
        for key, (config, opts) in runs.items()
    }
    for process in processes.values():
        finish_cli(process)
    results = json.loads((tmp_path / "instances" / "eval_results.json").read_text())
    assert "AP" in results["segm"]
    results = json.loads((tmp_path / "semantic" / "eval_results.json").read_text())
    assert {"mIoU", "IoU-stripes", "IoU-square"} <= set(results["sem_seg"])
    dumped = (tmp_path / "semantic" / "config.yaml").read_text()
    assert "unseen_val_sem" in dumped and "sem_seg" in dumped  # the entries are in config.yaml


def test_python_registered_panoptic_trains_and_evaluates_three_tasks(
    unseen_root, unseen_panoptic, dataset_names, tmp_path
):
    names = {}
    for split, conv in unseen_panoptic.items():
        names[split] = dataset_names()
        register_coco_panoptic(
            names[split],
            {},
            f"{unseen_root}/images/{split}",
            conv.panoptic_root,
            conv.panoptic_json,
            conv.instances_json,
            sem_seg_root=conv.sem_seg_root,
        )
    cfg = tiny_cfg(
        **_SHORT,
        **{
            "DATASETS.TRAIN": (names["train"],),
            "DATASETS.TEST": (names["val"],),
            "MODEL.SEM_SEG_HEAD.NUM_CLASSES": 4,
            "INPUT.DATASET_MAPPER_NAME": "mask_former_panoptic",
            "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": True,
            "MODEL.MASK_FORMER.TEST.INSTANCE_ON": True,
            "MODEL.MASK_FORMER.TEST.SEMANTIC_ON": True,
            "OUTPUT_DIR": str(tmp_path),
            "TEST.EVAL_PERIOD": 0,
        },
    )
    cfg.freeze()
    Trainer(cfg).train()  # evaluates DATASETS.TEST after the last iteration
    results = json.loads((tmp_path / "eval_results.json").read_text())
    assert {"PQ", "PQ_th", "PQ_st"} <= set(results["panoptic_seg"])
    assert "AP" in results["segm"] and "mIoU" in results["sem_seg"]
