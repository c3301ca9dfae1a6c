"""One process of the distributed evaluation test: the demo validation set (4 images)
evaluated by ``evaluate`` with a model that predicts each image's ground truth shifted
sideways by ``2 * image_id`` pixels, so every image scores differently and imperfectly."""

import numpy as np
import torch
from PIL import Image

from mask2former.config import get_cfg
from mask2former.data import DatasetCatalog, MetadataCatalog
from mask2former.data.datasets import register_demo
from mask2former.engine.trainer import evaluate
from mask2former.structures import Instances
from mask2former.utils.panoptic_ids import rgb2id

DATASET = "demo_shapes_val_panoptic"


class ShiftedTruthModel(torch.nn.Module):
    """Predicts the shifted ground truth of each input's ``image_id`` at its full size."""

    def __init__(self, dataset_name: str):
        super().__init__()
        self.unused = torch.nn.Parameter(torch.zeros(1))  # evaluate() toggles train/eval
        self._records = {r["image_id"]: r for r in DatasetCatalog.get(dataset_name)}
        self._num_classes = len(MetadataCatalog.get(dataset_name).stuff_classes)

    def forward(self, batch: list[dict]) -> list[dict]:
        return [self._predict(self._records[item["image_id"]]) for item in batch]

    def _predict(self, record: dict) -> dict:
        truth = rgb2id(np.asarray(Image.open(record["pan_seg_file_name"]).convert("RGB")))
        ids = np.roll(truth, 2 * int(record["image_id"]), axis=1)
        segments = [s for s in record["segments_info"] if (ids == s["id"]).any()]
        labels = np.zeros(ids.shape, dtype=np.int64)  # void pixels count as class 0
        for segment in segments:
            labels[ids == segment["id"]] = segment["category_id"]
        things = [s for s in segments if s["isthing"]]
        masks = torch.from_numpy(np.stack([ids == s["id"] for s in things])).float()
        instances = Instances(
            ids.shape,
            pred_masks=masks,
            scores=torch.linspace(0.9, 0.5, len(things)),
            pred_classes=torch.tensor([s["category_id"] for s in things]),
        )
        sem_seg = torch.nn.functional.one_hot(torch.from_numpy(labels), self._num_classes)
        return {
            "sem_seg": sem_seg.permute(2, 0, 1).float(),
            "panoptic_seg": (
                torch.from_numpy(ids).int(),
                [{k: s[k] for k in ("id", "category_id", "isthing")} for s in segments],
            ),
            "instances": instances,
        }


def evaluation_worker(demo_root: str, output_dir: str) -> None:
    """Evaluate on this process's share of the images; rank 0 writes eval_results.json."""
    register_demo(demo_root, generate=False)
    try:
        cfg = get_cfg()
        cfg.OUTPUT_DIR = output_dir
        cfg.DATASETS.TEST = (DATASET,)
        cfg.DATALOADER.NUM_WORKERS = 0
        test = cfg.MODEL.MASK_FORMER.TEST
        test.PANOPTIC_ON = test.INSTANCE_ON = test.SEMANTIC_ON = True
        evaluate(cfg, ShiftedTruthModel(DATASET))
    finally:
        for split in ("train", "val"):
            for kind in ("panoptic", "instance", "sem_seg"):
                DatasetCatalog.remove(f"demo_shapes_{split}_{kind}")
                MetadataCatalog.remove(f"demo_shapes_{split}_{kind}")
