"""Cityscapes semantic / instance evaluation with the official ``cityscapesscripts``.

Predictions are written in the official result format to a temporary directory that all
ranks of one machine share; rank 0 runs the official scripts. Single machine only.
"""

from __future__ import annotations

import glob
import importlib
import logging
import os
import tempfile
from collections import OrderedDict
from types import ModuleType
from typing import Any

import numpy as np
from PIL import Image

from mask2former.data.catalog import MetadataCatalog
from mask2former.evaluation.evaluator import DatasetEvaluator
from mask2former.utils import comm

logger = logging.getLogger(__name__)


class _NumpyForCityscapesScripts(ModuleType):
    """numpy as the official scripts (written for numpy 1.x) expect it: ``np.in1d``, which
    numpy 2.4 removed (``np.isin`` on the flattened input replaces it), and a whole-array
    ``np.count_nonzero`` that returns a Python int (numpy 2 returns a numpy integer, which
    the scripts' JSON writer cannot serialise)."""

    def __init__(self) -> None:
        super().__init__("numpy")

    def __getattr__(self, name: str) -> Any:
        return getattr(np, name)

    @staticmethod
    def in1d(values: Any, test_values: Any, assume_unique: bool = False, invert: bool = False):
        return np.isin(np.ravel(values), test_values, assume_unique=assume_unique, invert=invert)

    @staticmethod
    def count_nonzero(values: Any, axis: Any = None, *, keepdims: bool = False) -> Any:
        count = np.count_nonzero(values, axis=axis, keepdims=keepdims)
        return int(count) if axis is None and not keepdims else count


def _import_cityscapes(module: str) -> ModuleType:
    try:
        imported = importlib.import_module(f"cityscapesscripts.{module}")
    except ImportError as e:
        raise ImportError(
            "Cityscapes evaluation needs the official scripts: pip install cityscapesscripts "
            "(or pip install 'mask2former[eval]')"
        ) from e
    # Only the scripts' own module-level ``np`` is replaced, never numpy itself.
    if getattr(imported, "np", None) is np:
        imported.np = _NumpyForCityscapesScripts()
    return imported


class _CityscapesEvaluator(DatasetEvaluator):
    """Shared set-up: metadata (``thing_classes``, ``gt_dir``) and the result directory."""

    def __init__(self, dataset_name: str):
        self._metadata = MetadataCatalog.get(dataset_name)
        self._labels = _import_cityscapes("helpers.labels")

    def reset(self) -> None:
        if comm.get_local_size() != comm.get_world_size():
            raise RuntimeError("Cityscapes evaluators do not support multi-machine jobs")
        self._working_dir = tempfile.TemporaryDirectory(prefix="cityscapes_eval_")
        # Every rank writes into rank 0's directory.
        self._temp_dir = comm.all_gather(self._working_dir.name)[0]
        if self._temp_dir != self._working_dir.name:
            self._working_dir.cleanup()
        logger.info(f"Writing cityscapes results to {self._temp_dir}")

    def _ground_truth(self, pattern: str) -> list[str]:
        gt_dir = self._metadata.gt_dir
        files = [os.path.abspath(f) for f in glob.glob(os.path.join(gt_dir, "*", pattern))]
        if not files:
            raise FileNotFoundError(f"No ground truth {pattern!r} under gt_dir {gt_dir!r}")
        return files

    def _configure(self, cityscapes_eval: ModuleType) -> None:
        cityscapes_eval.args.predictionPath = os.path.abspath(self._temp_dir)
        cityscapes_eval.args.predictionWalk = None
        cityscapes_eval.args.JSONOutput = False
        cityscapes_eval.args.colorized = False


class CityscapesInstanceEvaluator(_CityscapesEvaluator):
    """Instance AP / AP50 (``"segm"``) with ``evalInstanceLevelSemanticLabeling``."""

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        name2label = self._labels.name2label
        for inp, out in zip(inputs, outputs):
            basename = os.path.splitext(os.path.basename(inp["file_name"]))[0]
            lines = []
            if "instances" in out:
                instances = out["instances"].to("cpu")
                for i in range(len(instances)):
                    class_name = self._metadata.thing_classes[int(instances.pred_classes[i])]
                    mask = instances.pred_masks[i].numpy() > 0.5
                    png = f"{basename}_{i}_{class_name}.png"
                    Image.fromarray(mask.astype(np.uint8) * 255).save(
                        os.path.join(self._temp_dir, png)
                    )
                    score = float(instances.scores[i])
                    lines.append(f"{png} {name2label[class_name].id} {score}\n")
            with open(os.path.join(self._temp_dir, f"{basename}_pred.txt"), "w") as f:
                f.writelines(lines)

    def evaluate(self) -> dict[str, Any] | None:
        comm.synchronize()
        if not comm.is_main_process():
            return None
        cityscapes_eval = _import_cityscapes("evaluation.evalInstanceLevelSemanticLabeling")
        self._configure(cityscapes_eval)
        cityscapes_eval.args.gtInstancesFile = os.path.join(self._temp_dir, "gtInstances.json")
        gt_files = self._ground_truth("*_gtFine_instanceIds.png")
        preds = [cityscapes_eval.getPrediction(gt, cityscapes_eval.args) for gt in gt_files]
        # The official script writes its "matches.json" into the working directory; run it
        # in the temporary directory (all paths above are absolute) so it lands there.
        cwd = os.getcwd()
        os.chdir(self._temp_dir)
        try:
            averages = cityscapes_eval.evaluateImgLists(preds, gt_files, cityscapes_eval.args)[
                "averages"
            ]
        finally:
            os.chdir(cwd)
        self._working_dir.cleanup()
        return OrderedDict(
            {"segm": {"AP": averages["allAp"] * 100, "AP50": averages["allAp50%"] * 100}}
        )


class CityscapesSemSegEvaluator(_CityscapesEvaluator):
    """IoU / iIoU over classes and categories (``"sem_seg"``) with
    ``evalPixelLevelSemanticLabeling``."""

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        train_id_to_label = self._labels.trainId2label
        for inp, out in zip(inputs, outputs):
            basename = os.path.splitext(os.path.basename(inp["file_name"]))[0]
            train_ids = out["sem_seg"].argmax(dim=0).cpu().numpy()
            pred = np.full(train_ids.shape, 255, dtype=np.uint8)
            for train_id, label in train_id_to_label.items():
                if not label.ignoreInEval:
                    pred[train_ids == train_id] = label.id
            Image.fromarray(pred).save(os.path.join(self._temp_dir, f"{basename}_pred.png"))

    def evaluate(self) -> dict[str, Any] | None:
        comm.synchronize()
        if not comm.is_main_process():
            return None
        cityscapes_eval = _import_cityscapes("evaluation.evalPixelLevelSemanticLabeling")
        self._configure(cityscapes_eval)
        gt_files = self._ground_truth("*_gtFine_labelIds.png")
        preds = [cityscapes_eval.getPrediction(cityscapes_eval.args, gt) for gt in gt_files]
        results = cityscapes_eval.evaluateImgLists(preds, gt_files, cityscapes_eval.args)
        self._working_dir.cleanup()
        return OrderedDict(
            {
                "sem_seg": {
                    "IoU": 100.0 * results["averageScoreClasses"],
                    "iIoU": 100.0 * results["averageScoreInstClasses"],
                    "IoU_sup": 100.0 * results["averageScoreCategories"],
                    "iIoU_sup": 100.0 * results["averageScoreInstCategories"],
                }
            }
        )
