"""Records the ORIGINAL five training mappers' outputs into original_mapper_outputs.json.

The original mappers (Mask2Former's mask2former/data/dataset_mappers/) run on detectron2's own
data code (data/transforms, data/detection_utils, structures, PointRend's color augmentation):
both are read from git clones and imported from a temporary folder, with only the packages
whose ``__init__`` pulls in compiled or model code replaced by bare packages, and omegaconf's
``DictConfig`` (an isinstance check) stubbed when missing: nothing the mappers call is
stubbed. fvcore's polygon cropping needs shapely (``pip install shapely``). Each mapper maps
``generate_records``' records under fixed seeds of numpy, random and torch; the fixture
keeps per output the image, sem_seg and mask digests, the classes and the boxes. The
original's config is its get_cfg() as recorded by tests/config/record_original_configs.py
plus ``OVERRIDES``. Run from the repository root:

    python tests/data/record_original_mappers.py --mask2former-git-dir M2F/.git \
        --detectron2-git-dir D2/.git
"""

from __future__ import annotations

import argparse
import hashlib
import importlib.util
import io
import json
import random
import subprocess
import sys
import tarfile
import tempfile
import types
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

HERE = Path(__file__).resolve().parent
OUTPUT = HERE / "original_mapper_outputs.json"
SEEDS = (0, 1, 2)
# Original mapper module and class for each INPUT.DATASET_MAPPER_NAME, and the record kind.
MAPPERS = {
    "mask_former_semantic": (
        "mask_former_semantic_dataset_mapper", "MaskFormerSemanticDatasetMapper", "semantic",
    ),
    "mask_former_panoptic": (
        "mask_former_panoptic_dataset_mapper", "MaskFormerPanopticDatasetMapper", "panoptic",
    ),
    "mask_former_instance": (
        "mask_former_instance_dataset_mapper", "MaskFormerInstanceDatasetMapper", "instance",
    ),
    "coco_panoptic_lsj": (
        "coco_panoptic_new_baseline_dataset_mapper", "COCOPanopticNewBaselineDatasetMapper",
        "panoptic",
    ),
    "coco_instance_lsj": (
        "coco_instance_new_baseline_dataset_mapper", "COCOInstanceNewBaselineDatasetMapper",
        "instance",
    ),
}  # fmt: skip
DATASET = "mapper_parity_dataset"
# Small sizes; every random augmentation on (scale, crop with category-area retries, flip,
# color jitter, LSJ scale jitter with crop and pad).
OVERRIDES = [
    "DATASETS.TRAIN", (DATASET,),
    "INPUT.FORMAT", "RGB",
    "INPUT.MIN_SIZE_TRAIN", (40, 48, 56, 64),
    "INPUT.MIN_SIZE_TRAIN_SAMPLING", "choice",
    "INPUT.MAX_SIZE_TRAIN", 100,
    "INPUT.CROP.ENABLED", True,
    "INPUT.CROP.TYPE", "absolute",
    "INPUT.CROP.SIZE", (40, 40),
    "INPUT.CROP.SINGLE_CATEGORY_MAX_AREA", 0.6,
    "INPUT.COLOR_AUG_SSD", True,
    "INPUT.SIZE_DIVISIBILITY", 48,
    "INPUT.IMAGE_SIZE", 48,
    "INPUT.MIN_SCALE", 0.3,
    "INPUT.MAX_SCALE", 1.8,
]  # fmt: skip
SIZES = ((60, 80), (72, 56), (50, 50))
THINGS, STUFF = (0, 1, 2), (3, 4)


def _rgb(ids: np.ndarray) -> np.ndarray:
    return np.stack([ids % 256, ids // 256 % 256, ids // 65536], axis=-1).astype(np.uint8)


def generate_records(folder: Path) -> dict[str, list[dict[str, Any]]]:
    """Writes three images with stuff halves and up to three rectangles of things; returns
    semantic, panoptic and instance records (contiguous category ids) over them."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.RandomState(1234)
    records: dict[str, list[dict[str, Any]]] = {"semantic": [], "panoptic": [], "instance": []}
    for index, (height, width) in enumerate(SIZES):
        image = rng.randint(0, 256, (height, width, 3)).astype(np.uint8)
        labels = np.full((height, width), STUFF[0], dtype=np.int64)
        labels[height // 2 :] = STUFF[1]
        ids = np.where(labels == STUFF[0], 1, 2)
        segments = [
            {"id": 1, "category_id": STUFF[0], "iscrowd": 0},
            {"id": 2, "category_id": STUFF[1], "iscrowd": 0},
        ]
        annotations = []
        for k in range(3):
            y0, x0 = rng.randint(0, height - 12), rng.randint(0, width - 12)
            y1, x1 = y0 + rng.randint(8, 20), x0 + rng.randint(8, 24)
            y1, x1 = min(y1, height), min(x1, width)
            category = THINGS[k % len(THINGS)]
            labels[y0:y1, x0:x1] = category
            ids[y0:y1, x0:x1] = 10 + k
            segments.append({"id": 10 + k, "category_id": category, "iscrowd": int(k == 2)})
            polygon = [float(v) for v in (x0, y0, x1, y0, x1, y1, x0, y1)]
            annotations.append(
                {
                    "segmentation": [polygon],
                    "bbox": [float(x0), float(y0), float(x1 - x0), float(y1 - y0)],
                    "bbox_mode": 1,  # XYWH_ABS
                    "category_id": category,
                    "iscrowd": 0,
                }
            )
        # Later rectangles cover earlier ones: keep only segments still visible.
        segments = [s for s in segments if (ids == s["id"]).any()]
        stem = folder / f"{index:03d}"
        Image.fromarray(image).save(f"{stem}.png")
        Image.fromarray(labels.astype(np.uint8)).save(f"{stem}_sem.png")
        Image.fromarray(_rgb(ids)).save(f"{stem}_pan.png")
        base = {"file_name": f"{stem}.png", "height": height, "width": width, "image_id": index}
        records["semantic"].append({**base, "sem_seg_file_name": f"{stem}_sem.png"})
        records["panoptic"].append(
            {
                **base,
                "pan_seg_file_name": f"{stem}_pan.png",
                "sem_seg_file_name": f"{stem}_sem.png",
                "segments_info": segments,
            }
        )
        records["instance"].append({**base, "annotations": annotations})
    return records


def _digest(tensor: torch.Tensor, as_bool: bool = False) -> str:
    values = tensor.to(torch.bool if as_bool else torch.int64).contiguous().numpy()
    return hashlib.sha256(values.tobytes()).hexdigest()[:32]


def summarize(out: dict[str, Any]) -> dict[str, Any]:
    """What the comparison needs of one mapped record: shapes, digests, classes, boxes."""
    summary: dict[str, Any] = {
        "image_shape": list(out["image"].shape),
        "image": _digest(out["image"]),
    }
    if "sem_seg" in out:
        summary["sem_seg_shape"] = list(out["sem_seg"].shape)
        summary["sem_seg"] = _digest(out["sem_seg"])
    if "instances" in out:
        instances = out["instances"]
        masks = instances.gt_masks
        masks = masks.tensor if hasattr(masks, "tensor") else masks
        summary["classes"] = instances.gt_classes.tolist()
        summary["masks_shape"] = list(masks.shape)
        summary["masks"] = _digest(masks, as_bool=True)
        if instances.has("gt_boxes"):
            summary["boxes"] = instances.gt_boxes.tensor.tolist()
    return summary


def seed_everything(seed: int) -> None:
    """The generators the augmentations draw from."""
    np.random.seed(seed)
    random.seed(seed)
    torch.manual_seed(seed)


def _git(git_dir: str, *args: str) -> bytes:
    return subprocess.run(
        ["git", "--git-dir", git_dir, *args], check=True, capture_output=True
    ).stdout


def _extract(git_dir: str, commit: str, paths: list[str], folder: Path) -> None:
    archive = _git(git_dir, "archive", "--format=tar", commit, *paths)
    tarfile.open(fileobj=io.BytesIO(archive)).extractall(folder, filter="data")


def _bare(name: str, path: Path | None = None, **attributes: Any) -> types.ModuleType:
    module = types.ModuleType(name)
    if path is not None:
        module.__path__ = [str(path)]
    module.__dict__.update(attributes)
    sys.modules[name] = module
    return module


def _import_original(d2_root: Path, m2f_root: Path) -> types.ModuleType:
    sys.path.insert(0, str(d2_root))
    package = d2_root / "detectron2"
    # The config recording leaves CfgNode-only stand-ins of detectron2 behind.
    for name in [n for n in sys.modules if n == "detectron2" or n.startswith("detectron2.")]:
        del sys.modules[name]
    # Packages whose __init__ imports the model zoo or compiled ops: bare packages over the
    # same folders, so that only the submodules the mappers use are imported.
    _bare("detectron2", package)
    for sub in ("data", "config", "layers", "projects"):
        _bare(f"detectron2.{sub}", package / sub)
    # structures/ imports these two names at module level; the mappers never call them.
    _bare("detectron2.layers.roi_align", ROIAlign=None)
    _bare("detectron2.layers.rotated_boxes", pairwise_iou_rotated=None)
    # configurable only checks isinstance(cfg, DictConfig) on it; the cfg here is a CfgNode.
    if importlib.util.find_spec("omegaconf") is None:
        _bare("omegaconf", DictConfig=type("DictConfig", (), {}))
    from detectron2.config.config import configurable
    from detectron2.data import detection_utils, transforms
    from detectron2.data.catalog import MetadataCatalog

    sys.modules["detectron2.config"].configurable = configurable
    data = sys.modules["detectron2.data"]
    data.MetadataCatalog, data.detection_utils, data.transforms = (
        MetadataCatalog,
        detection_utils,
        transforms,
    )
    color_path = d2_root / "projects/PointRend/point_rend/color_augmentation.py"
    spec = importlib.util.spec_from_file_location("point_rend_color_augmentation", color_path)
    color = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(color)
    _bare("detectron2.projects.point_rend", ColorAugSSDTransform=color.ColorAugSSDTransform)
    MetadataCatalog.get(DATASET).set(ignore_label=255)
    sys.path.insert(0, str(m2f_root / "mask2former" / "data"))
    return _bare("original_mappers")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mask2former-git-dir", required=True)
    parser.add_argument("--mask2former-commit", default="HEAD")
    parser.add_argument("--detectron2-git-dir", required=True)
    parser.add_argument("--detectron2-commit", default="HEAD")
    args = parser.parse_args()
    m2f = _git(args.mask2former_git_dir, "rev-parse", args.mask2former_commit).decode().strip()
    d2 = _git(args.detectron2_git_dir, "rev-parse", args.detectron2_commit).decode().strip()
    sys.path.insert(0, str(HERE.parent / "config"))
    from record_original_configs import _original_get_cfg

    cfg = _original_get_cfg(args.detectron2_git_dir, d2, args.mask2former_git_dir, m2f)
    cfg.merge_from_list(OVERRIDES)
    results: dict[str, Any] = {}
    with tempfile.TemporaryDirectory() as tmp:
        d2_root, m2f_root = Path(tmp) / "d2", Path(tmp) / "m2f"
        _extract(args.detectron2_git_dir, d2, ["detectron2", "projects/PointRend"], d2_root)
        _extract(args.mask2former_git_dir, m2f, ["mask2former/data/dataset_mappers"], m2f_root)
        _import_original(d2_root, m2f_root)
        records = generate_records(Path(tmp) / "records")
        for name, (module_name, class_name, kind) in MAPPERS.items():
            module = importlib.import_module(f"dataset_mappers.{module_name}")
            mapper = getattr(module, class_name)(cfg, True)
            results[name] = []
            for record in records[kind]:
                for seed in SEEDS:
                    seed_everything(seed)
                    results[name].append(summarize(mapper(record)))
    fixture = {
        "sources": {
            "mask2former": f"facebookresearch/Mask2Former {m2f} mask2former/data/dataset_mappers",
            "detectron2": f"facebookresearch/detectron2 {d2} detectron2/data, detectron2/"
            "structures, projects/PointRend/point_rend/color_augmentation.py",
        },
        "outputs": results,
    }
    OUTPUT.write_text(json.dumps(fixture, indent=1) + "\n")
    print(f"wrote {OUTPUT}")


if __name__ == "__main__":
    main()
