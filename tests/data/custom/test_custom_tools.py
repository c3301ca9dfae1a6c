"""The data tools on the unseen dataset: visualize_data (raw and augmented), dataset_stats,
visualize_json_results (saved predictions beside the ground truth) and the converter CLI."""

import json
import os
import runpy
import shutil

import numpy as np
import pytest
from PIL import Image

from tests.cli_helpers import REPO_ROOT
from tests.data.custom.unseen_data import CLASSES, THING_CLASSES


def _tool(name):
    """The ``main`` of tools/<name>.py, run in this process (no torch import per call)."""
    return runpy.run_path(os.path.join(REPO_ROOT, "tools", f"{name}.py"))["main"]


@pytest.fixture
def custom_yaml(unseen_root, unseen_panoptic, tmp_path, dataset_names):
    names = {key: dataset_names() for key in ("instances", "semantic", "panoptic")}
    conv = unseen_panoptic["val"]
    entries = [
        {
            "name": names["instances"],
            "format": "coco_instances",
            "image_root": f"{unseen_root}/images/val",
            "json": f"{unseen_root}/coco/val.json",
        },
        {
            "name": names["semantic"],
            "format": "sem_seg",
            "image_root": f"{unseen_root}/images/val",
            "gt_root": f"{unseen_root}/semantic/val",
            "classes": CLASSES,
        },
        {
            "name": names["panoptic"],
            "format": "coco_panoptic",
            "image_root": f"{unseen_root}/images/val",
            "json": conv.panoptic_json,
            "panoptic_root": conv.panoptic_root,
            "gt_root": conv.sem_seg_root,
            "instances_json": conv.instances_json,
        },
    ]
    path = tmp_path / "custom.yaml"
    path.write_text("DATASETS:\n  CUSTOM:\n" + "".join(f"    - {json.dumps(e)}\n" for e in entries))
    return str(path), names


def test_visualize_data_draws_annotations_and_augmented_samples(custom_yaml, tmp_path, capsys):
    config, names = custom_yaml
    main = _tool("visualize_data")
    for key in ("instances", "semantic", "panoptic"):
        out = tmp_path / key
        main(
            [
                "--config-file",
                config,
                "--source",
                "annotation",
                "--dataset",
                names[key],
                "--num",
                "2",
                "--output",
                str(out),
            ]
        )
        files = sorted(os.listdir(out))
        assert files == ["val_000.jpg", "val_001.jpg"]
        drawn = np.asarray(Image.open(out / files[0]))
        assert drawn.shape == (72, 96, 3)
    out = tmp_path / "augmented"
    main(
        [
            "--config-file",
            config,
            "--source",
            "dataloader",
            "--dataset",
            names["semantic"],
            "--num",
            "3",
            "--output",
            str(out),
            "INPUT.DATASET_MAPPER_NAME",
            "mask_former_semantic",
            "SOLVER.IMS_PER_BATCH",
            "2",
            "INPUT.MIN_SIZE_TRAIN",
            "(64,)",
            "INPUT.CROP.ENABLED",
            "False",
        ]
    )
    assert len(os.listdir(out)) == 4  # two batches of two
    assert "Wrote 4 images" in capsys.readouterr().out


def test_dataset_stats_counts_and_warns(custom_yaml, tmp_path, capsys):
    config, names = custom_yaml
    out = tmp_path / "stats.json"
    _tool("dataset_stats")(
        ["--config-file", config, "--dataset", *names.values(), "--json", str(out)]
    )
    stats = {s["kind"]: s for s in json.loads(out.read_text())}
    instances = {c["name"]: c for c in stats["instances"]["classes"]}
    panoptic = {c["name"]: c for c in stats["panoptic"]["classes"]}
    semantic = {c["name"]: c for c in stats["semantic"]["classes"]}
    # The COCO instances and the panoptic things count the same objects.
    for name in THING_CLASSES:
        assert instances[name]["count"] == panoptic[name]["count"] > 0
        assert semantic[name]["images"] == panoptic[name]["images"]
    assert semantic["background"]["images"] == 3 and stats["semantic"]["num_images"] == 3
    assert stats["panoptic"]["warnings"] == [] and stats["panoptic"]["empty_images"] == []
    report = capsys.readouterr().out
    assert "Dataset" in report and "mean area" in report


def test_dataset_stats_warns_about_missing_classes_and_empty_images(
    unseen_root, tmp_path, dataset_names
):
    from mask2former.data import DatasetCatalog, MetadataCatalog, register_sem_seg
    from mask2former.data.datasets.custom_stats import dataset_stats, format_stats

    labels = shutil.copytree(f"{unseen_root}/semantic/val", tmp_path / "labels")
    Image.fromarray(np.full((72, 96), 255, np.uint8)).save(labels / "val_000.png")
    name = dataset_names()
    register_sem_seg(name, f"{unseen_root}/images/val", str(labels), classes=[*CLASSES, "car"])
    stats = dataset_stats(name, DatasetCatalog.get(name), MetadataCatalog.get(name))
    assert stats.warnings == ["class 'car' has no samples", "1 of 3 images have no annotation"]
    assert stats.empty_images == [f"{unseen_root}/images/val/val_000.jpg"]
    assert "WARNING: class 'car' has no samples" in format_stats(stats)


def test_visualize_json_results_puts_predictions_beside_ground_truth(
    custom_yaml, unseen_root, unseen_panoptic, tmp_path
):
    config, names = custom_yaml
    main = _tool("visualize_json_results")
    # A --save-raw folder whose predictions are the ground truth: both halves are equal.
    raw = tmp_path / "raw"
    conv = unseen_panoptic["val"]
    shutil.copytree(conv.panoptic_root, raw / "panoptic")
    shutil.copy(conv.panoptic_json, raw / "panoptic.json")
    shutil.copytree(f"{unseen_root}/semantic/val", raw / "sem_seg")
    for key in ("panoptic", "semantic"):
        out = tmp_path / f"vis_{key}"
        main(
            [
                "--input",
                str(raw),
                "--output",
                str(out),
                "--dataset",
                names[key],
                "--config-file",
                config,
            ]
        )
        assert sorted(os.listdir(out)) == ["val_000.png", "val_001.png", "val_002.png"]
        drawn = np.asarray(Image.open(out / "val_000.png"))  # 72 x 96
        prediction, truth = drawn[:, :96], drawn[:, 100:]
        assert drawn.shape == (72, 196, 3) and np.array_equal(prediction, truth)
    # Evaluation's COCO results JSON (dataset category ids, matched by image_id).
    coco = json.loads(open(f"{unseen_root}/coco/val.json").read())
    results = [dict(a, score=0.9) for a in coco["annotations"]]
    results.append(dict(coco["annotations"][0], score=0.1))  # below --conf-threshold
    (tmp_path / "results.json").write_text(json.dumps(results))
    out = tmp_path / "vis_instances"
    main(
        [
            "--input",
            str(tmp_path / "results.json"),
            "--output",
            str(out),
            "--dataset",
            names["instances"],
            "--config-file",
            config,
            "--num",
            "1",
        ]
    )
    drawn = np.asarray(Image.open(out / "val_000.png"))
    image = np.asarray(Image.open(f"{unseen_root}/images/val/val_000.jpg"))
    assert not np.array_equal(drawn[:, :96], image)  # instances were drawn


def test_converter_cli_output_registers(unseen_root, tmp_path, capsys, dataset_names):
    from mask2former.data import DatasetCatalog, register_coco_panoptic

    _tool("convert_to_coco_panoptic")(
        [
            *("--semantic-dir", f"{unseen_root}/semantic/val"),
            *("--image-dir", f"{unseen_root}/images/val"),
            *("--instances-json", f"{unseen_root}/coco/val.json"),
            *("--output", str(tmp_path / "out")),
            *("--classes", ",".join(CLASSES), "--thing-classes", ",".join(THING_CLASSES)),
        ]
    )
    out = capsys.readouterr().out
    assert "['ellipse', 'square', 'background', 'stripes']" in out
    name = dataset_names()
    register_coco_panoptic(
        name,
        {},
        f"{unseen_root}/images/val",
        str(tmp_path / "out" / "panoptic"),
        str(tmp_path / "out" / "panoptic.json"),
        str(tmp_path / "out" / "instances.json"),
        sem_seg_root=str(tmp_path / "out" / "sem_seg"),
    )
    assert len(DatasetCatalog.get(name)) == 3
