"""Register a dataset in one call per format (detectron2's names and signatures).

- :func:`register_coco_instances`: a COCO instances JSON + image folder (instance seg);
- :func:`register_coco_panoptic`: a COCO panoptic JSON + PNG folder (panoptic, and with
  ``sem_seg_root`` / ``instances_json`` also semantic / instance evaluation);
- :func:`register_coco_panoptic_separated`: detectron2's PanopticFPN-style variant;
- :func:`register_sem_seg`: a folder of images + a folder of label PNGs (semantic seg).

Each fills in the metadata that mappers, evaluators and visualisers read (class names,
thing/stuff contiguous id maps, colours, ``ignore_label``, ``evaluator_type``) from the
annotation files when not given, and with ``validate=True`` (the default) checks the files
at registration (see :mod:`mask2former.data.datasets.custom_checks`). The builtin
registrations pass ``validate=False`` with full metadata, so that they read no file.
"""

from __future__ import annotations

import logging
from typing import Any

from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.data.datasets.builtin_meta import panoptic_metadata
from mask2former.data.datasets.coco import load_coco_json, load_sem_seg
from mask2former.data.datasets.coco_panoptic import load_coco_panoptic_json
from mask2former.data.datasets.custom_checks import (
    check_coco_instances,
    check_coco_panoptic,
    check_sem_seg,
)
from mask2former.data.datasets.paths import read_json
from mask2former.utils.visualizer import fallback_color

logger = logging.getLogger(__name__)

__all__ = [
    "instances_metadata",
    "panoptic_metadata_from_categories",
    "register_coco_instances",
    "register_coco_panoptic",
    "register_coco_panoptic_separated",
    "register_sem_seg",
    "sem_seg_metadata",
]


def _color(category: dict, index: int) -> list[int]:
    return list(category["color"]) if "color" in category else list(fallback_color(index))


def instances_metadata(categories: list[dict]) -> dict[str, Any]:
    """Metadata of COCO instance ``categories``: classes in category-id order (as
    detectron2's ``load_coco_json``), contiguous ids 0..K-1, colours from the categories'
    ``color`` or a generated palette."""
    cats = sorted(categories, key=lambda c: c["id"])
    return {
        "thing_classes": [c["name"] for c in cats],
        "thing_colors": [_color(c, i) for i, c in enumerate(cats)],
        "thing_dataset_id_to_contiguous_id": {c["id"]: i for i, c in enumerate(cats)},
    }


def panoptic_metadata_from_categories(categories: list[dict]) -> dict[str, Any]:
    """Mask2Former's panoptic metadata of COCO panoptic ``categories``.

    Contiguous ids put the things first (by category id), then the stuff (by category id),
    as in COCO: instance evaluation needs thing ids 0..T-1. ``thing_classes`` lists the
    things, ``stuff_classes`` every class (the semantic label of class ``i`` is ``i``).
    """
    by_id = sorted(categories, key=lambda c: c["id"])
    ordered = [c for c in by_id if c["isthing"]] + [c for c in by_id if not c["isthing"]]
    return panoptic_metadata(
        [dict(c, isthing=bool(c["isthing"]), color=_color(c, i)) for i, c in enumerate(ordered)]
    )


def sem_seg_metadata(classes: list[str]) -> dict[str, Any]:
    """Metadata of a semantic dataset whose label maps hold class ``i`` as value ``i``."""
    return {
        "stuff_classes": list(classes),
        "stuff_colors": [list(fallback_color(i)) for i in range(len(classes))],
    }


def _merge(name: str, inferred: dict[str, Any], given: dict[str, Any], source: str) -> dict:
    """``given`` over ``inferred``; class names must agree with the annotation files."""
    for key in ("thing_classes", "thing_dataset_id_to_contiguous_id"):
        if key in given and key in inferred and list(given[key]) != list(inferred[key]):
            raise ValueError(
                f"register {name!r}: metadata[{key!r}] = {given[key]!r} disagrees with "
                f"{source}, which gives {inferred[key]!r}; drop it from the metadata to use "
                "the file's categories"
            )
    return {**inferred, **given}


def _register(name: str, loader, metadata: dict[str, Any]) -> None:
    DatasetCatalog.register(name, loader)
    MetadataCatalog.get(name).set(**metadata)
    logger.debug("Registered dataset %r (evaluator_type %r)", name, metadata["evaluator_type"])


def register_coco_instances(
    name: str,
    metadata: dict[str, Any],
    json_file: str,
    image_root: str,
    *,
    validate: bool = True,
) -> None:
    """Register a COCO instances JSON as dataset ``name`` (``evaluator_type`` "coco").

    Categories may have any ids: they map to contiguous ids 0..K-1 in id order, kept in
    ``thing_dataset_id_to_contiguous_id`` (evaluation maps predictions back).

    Args:
        name: dataset name, e.g. "my_data_train".
        metadata: extra metadata (may be ``{}``; class names and colours come from the JSON).
        json_file: COCO instances JSON (``images``, ``annotations``, ``categories``).
        image_root: folder the images' ``file_name`` are relative to.
        validate: check the JSON and images now (:func:`check_coco_instances`) and infer
            the metadata from it; False reads no file (``metadata`` must then be complete).
    """
    if validate:
        categories = check_coco_instances(json_file, image_root, name)
        ids = sorted(c["id"] for c in categories)
        if ids != list(range(1, len(ids) + 1)):
            logger.info(
                "Dataset %r: category ids %s map to contiguous ids 0..%d in id order",
                name,
                ids,
                len(ids) - 1,
            )
        metadata = _merge(name, instances_metadata(categories), metadata, json_file)
    _register(
        name,
        lambda: load_coco_json(json_file, image_root, name),
        dict(metadata, json_file=json_file, image_root=image_root, evaluator_type="coco"),
    )


def register_coco_panoptic(
    name: str,
    metadata: dict[str, Any],
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    instances_json: str | None = None,
    *,
    sem_seg_root: str | None = None,
    evaluator_type: str = "coco_panoptic_seg",
    ignore_label: int = 255,
    image_ext: str | None = ".jpg",
    validate: bool = True,
) -> None:
    """Register a COCO panoptic dataset (detectron2's "standard" registration).

    Records carry ``pan_seg_file_name`` + ``segments_info`` for the panoptic mapper, and
    ``sem_seg_file_name`` when ``sem_seg_root`` is given. Evaluation: PQ; AP against
    ``instances_json`` (or the panoptic things when None); mIoU needs ``sem_seg_root``.

    Args:
        name: dataset name.
        metadata: extra metadata (may be ``{}``: inferred from the JSON's categories by
            :func:`panoptic_metadata_from_categories`).
        image_root: image folder.
        panoptic_root: folder of the panoptic PNGs.
        panoptic_json: COCO panoptic JSON.
        instances_json: COCO instances JSON of the same images, for AP evaluation.
        sem_seg_root: folder of semantic PNGs named as the panoptic PNGs, holding
            contiguous class ids (as ``stuff_classes``) and ``ignore_label``.
        evaluator_type: see :mod:`mask2former.evaluation.build`.
        ignore_label: ignored value of the semantic PNGs.
        image_ext: image extension (image = PNG stem + ext); None reads the image names
            from the JSON's ``images``.
        validate: check the files now (:func:`check_coco_panoptic`) and infer the metadata.
    """
    if validate:
        categories = check_coco_panoptic(
            panoptic_json,
            image_root,
            panoptic_root,
            name,
            image_ext=image_ext,
            sem_seg_root=sem_seg_root,
        )
        metadata = _merge(
            name, panoptic_metadata_from_categories(categories), metadata, panoptic_json
        )
        if instances_json is not None:
            check_coco_instances(instances_json, image_root, name)
    meta = dict(metadata)

    def load() -> list[dict]:
        return load_coco_panoptic_json(
            panoptic_json,
            image_root,
            panoptic_root,
            meta,
            semseg_dir=sem_seg_root,
            image_ext=image_ext,
            dataset_name=name,
        )

    extra = {"sem_seg_root": sem_seg_root} if sem_seg_root is not None else {}
    _register(
        name,
        load,
        dict(
            meta,
            panoptic_root=panoptic_root,
            image_root=image_root,
            panoptic_json=panoptic_json,
            json_file=instances_json,
            evaluator_type=evaluator_type,
            ignore_label=ignore_label,
            label_divisor=1000,
            **extra,
        ),
    )


def _merge_to_panoptic(detection: list[dict], semantic: list[dict], name: str) -> list[dict]:
    by_file = {r["file_name"]: r for r in semantic}
    missing = [r["file_name"] for r in detection if r["file_name"] not in by_file]
    if missing:
        raise FileNotFoundError(
            f"Dataset {name!r}: {len(missing)} images have no semantic label map: {missing[:5]}"
        )
    return [{**r, **by_file[r["file_name"]]} for r in detection]


def register_coco_panoptic_separated(
    name: str,
    metadata: dict[str, Any],
    image_root: str,
    panoptic_root: str,
    panoptic_json: str,
    sem_seg_root: str,
    instances_json: str,
    *,
    validate: bool = True,
) -> None:
    """detectron2's "separated" panoptic registration (the PanopticFPN setting).

    Registers ``name + "_separated"``: records of ``instances_json`` (instance polygons,
    contiguous thing ids) merged by ``file_name`` with the semantic maps of ``sem_seg_root``,
    in which every thing is 0 and the stuff classes are 1..S; and ``name + "_stuffonly"``,
    those semantic maps alone. Unlike :func:`register_coco_panoptic`, the semantic ids are
    not Mask2Former's (one id space over all classes), so Mask2Former's mappers do not train
    on these; they serve PanopticFPN-style pipelines and evaluation.
    """
    if validate:
        # Things as in the instances JSON, stuff as in the panoptic JSON.
        inferred = instances_metadata(check_coco_instances(instances_json, image_root, name))
        categories = read_json(panoptic_json, name)["categories"]
        stuff = sorted((c for c in categories if not c["isthing"]), key=lambda c: c["id"])
        inferred.update(
            stuff_classes=["things"] + [c["name"] for c in stuff],
            stuff_dataset_id_to_contiguous_id={c["id"]: i + 1 for i, c in enumerate(stuff)},
        )
        metadata = _merge(name, inferred, metadata, instances_json)
    separated = name + "_separated"
    _register(
        separated,
        lambda: _merge_to_panoptic(
            load_coco_json(instances_json, image_root, separated),
            load_sem_seg(sem_seg_root, image_root, dataset_name=separated),
            separated,
        ),
        dict(
            metadata,
            panoptic_root=panoptic_root,
            image_root=image_root,
            panoptic_json=panoptic_json,
            sem_seg_root=sem_seg_root,
            json_file=instances_json,
            evaluator_type="coco_panoptic_seg",
            ignore_label=255,
        ),
    )
    stuff_only = name + "_stuffonly"
    _register(
        stuff_only,
        lambda: load_sem_seg(sem_seg_root, image_root, dataset_name=stuff_only),
        dict(
            metadata,
            sem_seg_root=sem_seg_root,
            image_root=image_root,
            evaluator_type="sem_seg",
            ignore_label=255,
        ),
    )


def register_sem_seg(
    name: str,
    image_root: str,
    gt_root: str,
    *,
    classes: list[str],
    ignore_label: int = 255,
    image_ext: str = "jpg",
    gt_ext: str = "png",
    metadata: dict[str, Any] | None = None,
    validate: bool = True,
) -> None:
    """Register a folder of images and a folder of label maps (paired by file stem).

    Args:
        name: dataset name.
        image_root: image folder.
        gt_root: folder of single-channel label maps: class ``i`` of ``classes`` is value
            ``i``, ``ignore_label`` is not trained on nor evaluated.
        classes: the class names (their count is MODEL.SEM_SEG_HEAD.NUM_CLASSES).
        ignore_label: see ``gt_root``.
        image_ext: image extension ("jpg" or ".jpg").
        gt_ext: label map extension.
        metadata: extra metadata (e.g. ``stuff_colors``).
        validate: check every pair now (:func:`check_sem_seg`: matching stems and sizes,
            label values within ``classes`` or ``ignore_label``).
    """
    if not classes:
        raise ValueError(f"register_sem_seg({name!r}): classes must name at least one class")
    if 0 <= ignore_label < len(classes):
        raise ValueError(
            f"register_sem_seg({name!r}): ignore_label={ignore_label} is the id of class "
            f"{classes[ignore_label]!r}; use a value outside 0..{len(classes) - 1} (255)"
        )
    if validate:
        count = check_sem_seg(
            image_root,
            gt_root,
            name,
            num_classes=len(classes),
            ignore_label=ignore_label,
            image_ext=image_ext,
            gt_ext=gt_ext,
        )
        logger.info("Dataset %r: %d image/label pairs checked", name, count)
    _register(
        name,
        lambda: load_sem_seg(gt_root, image_root, gt_ext, image_ext, dataset_name=name),
        dict(
            sem_seg_metadata(classes),
            **(metadata or {}),
            image_root=image_root,
            sem_seg_root=gt_root,
            evaluator_type="sem_seg",
            ignore_label=ignore_label,
        ),
    )
