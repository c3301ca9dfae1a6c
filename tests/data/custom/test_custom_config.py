"""DATASETS.CUSTOM: entries checked with errors naming DATASETS.CUSTOM[i].<key>, registered
once per process, paths resolved; and the train_net set-up registers them before building."""

import pytest

from mask2former.config import get_cfg
from mask2former.data import DatasetCatalog, MetadataCatalog, register_custom_datasets
from tests.data.custom.unseen_data import CLASSES


def _cfg(*entries):
    cfg = get_cfg()
    cfg.DATASETS.CUSTOM = list(entries)
    return cfg


def _sem_seg(root, name, **extra):
    entry = {
        "name": name,
        "format": "sem_seg",
        "image_root": f"{root}/images/val",
        "gt_root": f"{root}/semantic/val",
        "classes": CLASSES,
    }
    return {**entry, **extra}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"format": "voc"}, r"DATASETS.CUSTOM\[0\].format is 'voc'; expected one of"),
        ({"classes": None}, r"DATASETS.CUSTOM\[0\].classes is None \(NoneType\)"),
        ({"gt_ext": 3}, r"DATASETS.CUSTOM\[0\].gt_ext is 3 \(int\); expected a str"),
        (
            {"json": "x.json"},
            r"DATASETS.CUSTOM\[0\] \(format sem_seg\) has unknown key\(s\) \['json'\]",
        ),
        ({"ignore_label": True}, r"DATASETS.CUSTOM\[0\].ignore_label is True"),
        ({"classes": [1, 2]}, r"DATASETS.CUSTOM\[0\].classes must be a list of class names"),
    ],
)
def test_malformed_entries_name_the_key(unseen_root, change, message):
    with pytest.raises(ValueError, match=message):
        register_custom_datasets(_cfg(_sem_seg(unseen_root, "never_registered", **change)))
    assert "never_registered" not in DatasetCatalog


def test_missing_key_and_missing_folder(unseen_root, tmp_path):
    entry = _sem_seg(unseen_root, "never_registered")
    del entry["gt_root"]
    with pytest.raises(
        ValueError, match=r"DATASETS.CUSTOM\[0\] \(format sem_seg\) lacks \['gt_root'\]"
    ):
        register_custom_datasets(_cfg(entry))
    entry = _sem_seg(unseen_root, "never_registered", gt_root=str(tmp_path / "nowhere"))
    with pytest.raises(
        FileNotFoundError,
        match=r"DATASETS.CUSTOM\[0\] \('never_registered'\).*nowhere does not exist",
    ):
        register_custom_datasets(_cfg(entry))


def test_registers_once_resolves_paths_and_refuses_a_changed_entry(
    unseen_root, dataset_names, monkeypatch
):
    name = dataset_names()
    monkeypatch.setenv("UNSEEN_ROOT", unseen_root)
    entry = {
        "name": name,
        "format": "coco_instances",
        "image_root": "$UNSEEN_ROOT/images/val",
        "json": "$UNSEEN_ROOT/coco/val.json",
    }
    assert register_custom_datasets(_cfg(entry)) == [name]
    assert register_custom_datasets(_cfg(entry)) == []  # a second setup() in the process
    meta = MetadataCatalog.get(name)
    assert meta.image_root == f"{unseen_root}/images/val"
    assert meta.thing_classes == ["square", "ellipse"]
    with pytest.raises(ValueError, match="was registered from a different entry"):
        register_custom_datasets(_cfg(dict(entry, json=f"{unseen_root}/coco/train.json")))
    with pytest.raises(ValueError, match="names .* more than once"):
        register_custom_datasets(
            _cfg(_sem_seg(unseen_root, "twice"), _sem_seg(unseen_root, "twice"))
        )


def test_yaml_entries_merge_and_reach_the_catalog_through_setup(
    unseen_root, tmp_path, dataset_names
):
    from mask2former.engine.cli import setup
    from mask2former.engine.defaults import default_argument_parser

    name = dataset_names()
    config = tmp_path / "custom.yaml"
    config.write_text(
        "DATASETS:\n"
        "  CUSTOM:\n"
        f"    - name: {name}\n"
        "      format: coco_panoptic\n"
        f"      image_root: {unseen_root}/images/val\n"
        f"      json: {tmp_path}/missing.json\n"
        f"      panoptic_root: {tmp_path}\n"
        f"  TEST: ('{name}',)\n"
    )
    args = default_argument_parser().parse_args(
        ["--config-file", str(config), "OUTPUT_DIR", str(tmp_path / "out"), "MODEL.DEVICE", "cpu"]
    )
    with pytest.raises(
        FileNotFoundError, match=r"DATASETS.CUSTOM\[0\].*missing.json does not exist"
    ):
        setup(args)


def test_num_classes_must_match_a_custom_training_dataset(unseen_root, dataset_names):
    name = dataset_names()
    cfg = _cfg(_sem_seg(unseen_root, name))
    cfg.DATASETS.TRAIN = (name,)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 5
    with pytest.raises(ValueError, match="NUM_CLASSES is 5 but training dataset .* has 4 classes"):
        register_custom_datasets(cfg)
    cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES = 4
    register_custom_datasets(cfg)  # registered by the first call, now consistent
    assert MetadataCatalog.get(name).stuff_classes == CLASSES
