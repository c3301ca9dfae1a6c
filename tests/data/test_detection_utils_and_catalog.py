"""read_image conversions and errors; catalogs; builtin registration and missing-root errors."""

import numpy as np
import pytest
from PIL import Image

from mask2former.data import DatasetCatalog, Metadata, MetadataCatalog, read_image
from mask2former.data.datasets import builtin_metadata, load_class_table
from mask2former.data.datasets.coco import load_sem_seg


@pytest.fixture()
def rgb_file(tmp_path):
    array = np.zeros((4, 6, 3), dtype=np.uint8)
    array[..., 0] = 200  # red
    path = tmp_path / "rgb.png"
    Image.fromarray(array).save(path)
    return str(path)


def test_rgb_and_bgr(rgb_file):
    assert read_image(rgb_file, "RGB")[0, 0].tolist() == [200, 0, 0]
    assert read_image(rgb_file, "BGR")[0, 0].tolist() == [0, 0, 200]
    assert read_image(rgb_file, "L").shape == (4, 6, 1)


# 16-bit images: tests/reliability/test_images.py (detectron2's recorded answers).
@pytest.mark.parametrize("mode", ["L", "RGBA", "P"])
def test_modes_convert_to_three_channels(tmp_path, mode):
    base = Image.new("RGB", (5, 3), (120, 120, 120))
    if mode == "P":
        image = base.convert("P", palette=Image.Palette.ADAPTIVE)
    else:
        image = base.convert(mode)
    path = tmp_path / f"img_{mode.replace(';', '')}.png"
    image.save(path)
    out = read_image(str(path), "RGB")
    assert out.shape == (3, 5, 3) and out.dtype == np.uint8
    assert np.abs(out.astype(int) - 120).max() <= 1


def test_sixteen_bit_raw_read_keeps_values(tmp_path):
    path = tmp_path / "labels.png"
    Image.fromarray(np.array([[0, 65535], [300, 7]], dtype=np.uint16)).save(path)
    assert read_image(str(path)).tolist() == [[0, 65535], [300, 7]]


def test_exif_orientation_is_applied(tmp_path):
    array = np.zeros((2, 4, 3), dtype=np.uint8)  # H=2, W=4
    array[0, 0] = 255
    exif = Image.Exif()
    exif[274] = 6  # rotate 90 degrees clockwise on display
    path = tmp_path / "rotated.jpg"
    Image.fromarray(array).save(path, exif=exif, quality=100)
    assert read_image(str(path), "RGB").shape == (4, 2, 3)


def test_missing_and_unreadable_files_are_named(tmp_path):
    with pytest.raises(FileNotFoundError, match="nothere.png"):
        read_image(str(tmp_path / "nothere.png"), "RGB")
    bad = tmp_path / "bad.jpg"
    bad.write_bytes(b"garbage")
    with pytest.raises(OSError, match="bad.jpg"):
        read_image(str(bad), "RGB")


def test_metadata_refuses_silent_change_and_names_missing_keys():
    meta = Metadata(name="m", ignore_label=255)
    meta.ignore_label = 255
    with pytest.raises(ValueError, match="ignore_label"):
        meta.ignore_label = 0
    with pytest.raises(AttributeError, match="thing_classes.*'m'"):
        _ = meta.thing_classes


def test_catalog_duplicate_and_unknown_names():
    DatasetCatalog.register("tmp_catalog_ds", lambda: [{"file_name": "x"}])
    try:
        with pytest.raises(ValueError, match="already registered"):
            DatasetCatalog.register("tmp_catalog_ds", list)
        assert DatasetCatalog.get("tmp_catalog_ds") == [{"file_name": "x"}]
        with pytest.raises(KeyError, match="tmp_catalog_ds"):
            DatasetCatalog.get("unknown_ds")
    finally:
        DatasetCatalog.remove("tmp_catalog_ds")


@pytest.mark.parametrize(
    "table, size",
    [
        ("coco_panoptic_133", 133),
        ("ade20k_full_847", 847),
        ("cityscapes_19", 19),
        ("ade20k_panoptic_150", 150),
        ("mapillary_vistas_panoptic_65", 65),
    ],
)
def test_class_tables(table, size):
    assert len(load_class_table(table)) == size


def test_builtin_metadata_matches_original_conventions():
    coco = builtin_metadata("coco_panoptic")
    assert len(coco["thing_classes"]) == 80 and len(coco["stuff_classes"]) == 133
    assert coco["stuff_dataset_id_to_contiguous_id"][200] == 132
    assert builtin_metadata("coco")["thing_dataset_id_to_contiguous_id"][90] == 79
    assert len(builtin_metadata("mapillary_vistas_sem_seg")["stuff_classes"]) == 65


def test_builtin_registration_and_missing_root_error(tmp_path, monkeypatch):
    import mask2former.data.datasets.builtin as builtin

    monkeypatch.setattr(builtin, "_REGISTERED_ROOTS", {})
    monkeypatch.setattr(DatasetCatalog, "data", {})
    monkeypatch.setattr(MetadataCatalog, "data", {})
    monkeypatch.setenv("DETECTRON2_DATASETS", str(tmp_path))
    builtin.register_builtin()
    builtin.register_builtin()  # idempotent
    for name in (
        "coco_2017_train_panoptic",
        "coco_2017_val_panoptic_with_sem_seg",
        "ade20k_sem_seg_train",
        "ade20k_panoptic_val",
        "ade20k_instance_val",
        "ade20k_full_sem_seg_train",
        "cityscapes_fine_sem_seg_val",
        "cityscapes_fine_panoptic_val",
        "cityscapes_fine_instance_seg_val",
        "mapillary_vistas_panoptic_val",
        "coco_2017_train_stuff_10k_sem_seg",
        "demo_shapes_train_panoptic",
    ):
        assert name in DatasetCatalog.list(), name
    assert MetadataCatalog.get("ade20k_full_sem_seg_val").ignore_label == 65535
    with pytest.raises(FileNotFoundError) as err:
        DatasetCatalog.get("ade20k_sem_seg_val")
    message = str(err.value)
    assert "ade20k_sem_seg_val" in message and "DETECTRON2_DATASETS" in message
    assert str(tmp_path) in message


def test_load_sem_seg_pairs_by_stem(tmp_path):
    (tmp_path / "img").mkdir()
    (tmp_path / "gt").mkdir()
    for stem in ("a", "b"):
        Image.new("RGB", (2, 2)).save(tmp_path / "img" / f"{stem}.jpg")
    Image.new("L", (2, 2)).save(tmp_path / "gt" / "b.png")
    records = load_sem_seg(str(tmp_path / "gt"), str(tmp_path / "img"))
    assert [r["file_name"].endswith("b.jpg") for r in records] == [True]
