"""Fixtures: the unseen dataset (tests/data/custom/unseen_data.py), written once per session,
and its COCO panoptic conversion."""

import pytest

from mask2former.data.datasets.custom_convert import convert_to_coco_panoptic
from tests.data.custom.unseen_data import CLASSES, THING_CLASSES, write_unseen_dataset


@pytest.fixture(scope="session")
def unseen_root(tmp_path_factory):
    """Root of the unseen dataset: 6 train and 3 val images."""
    return write_unseen_dataset(str(tmp_path_factory.mktemp("unseen")), {"train": 6, "val": 3})


@pytest.fixture(scope="session")
def unseen_panoptic(unseen_root, tmp_path_factory):
    """``{split: PanopticConversion}`` of the unseen dataset (from its instance-id maps)."""
    out = tmp_path_factory.mktemp("unseen_panoptic")
    return {
        split: convert_to_coco_panoptic(
            f"{unseen_root}/semantic/{split}",
            f"{unseen_root}/images/{split}",
            str(out / split),
            classes=CLASSES,
            thing_classes=THING_CLASSES,
            instance_dir=f"{unseen_root}/instances/{split}",
        )
        for split in ("train", "val")
    }


@pytest.fixture
def dataset_names(request):
    """A factory of dataset names unique to the test; they leave the catalogs afterwards."""
    from mask2former.data import DatasetCatalog, MetadataCatalog

    made = []

    def make(suffix: str = "") -> str:
        made.append(f"custom_test_{request.node.name}_{len(made)}{suffix}")
        return made[-1]

    yield make
    for base in made:
        for name in (base, base + "_separated", base + "_stuffonly"):
            if name in DatasetCatalog:
                DatasetCatalog.remove(name)
            if name in MetadataCatalog:
                MetadataCatalog.remove(name)
