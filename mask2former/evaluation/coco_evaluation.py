"""COCO instance segmentation (and box) AP through pycocotools' ``COCOeval`` (default) or
``faster-coco-eval``'s ``COCOeval_faster`` (same numbers, optional package)."""

from __future__ import annotations

import contextlib
import copy
import io
import itertools
import json
import logging
import os
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from pycocotools.coco import COCO
from pycocotools.cocoeval import COCOeval
from tabulate import tabulate

from mask2former.data.catalog import DatasetCatalog, MetadataCatalog
from mask2former.evaluation.coco_format import encode_mask, records_to_coco_dict, write_coco_json
from mask2former.utils import comm

from .evaluator import DatasetEvaluator

logger = logging.getLogger(__name__)

_METRIC_NAMES = ["AP", "AP50", "AP75", "APs", "APm", "APl"]
COCO_BACKENDS = ("pycocotools", "faster-coco-eval")
# Chooses the backend when the evaluator is built without an explicit one.
COCO_BACKEND_ENV = "MASK2FORMER_COCO_BACKEND"


def _coco_api_classes(backend: str) -> tuple[type, type]:
    """(COCO, COCOeval) classes of ``backend``."""
    if backend == "pycocotools":
        return COCO, COCOeval
    try:
        from faster_coco_eval import COCO as FasterCOCO
        from faster_coco_eval import COCOeval_faster
    except ImportError as e:
        raise ImportError(
            "COCO AP backend 'faster-coco-eval' needs it: pip install faster-coco-eval "
            "(or use the default backend 'pycocotools')"
        ) from e
    return FasterCOCO, COCOeval_faster


def instances_to_coco_json(instances: Any, image_id: int) -> list[dict[str, Any]]:
    """COCO result records of one image's predictions.

    Args:
        instances: ``Instances`` with ``scores`` (N,), ``pred_classes`` (N,) and optionally
            ``pred_masks`` (N, H, W) and ``pred_boxes`` (``Boxes``, XYXY absolute).
        image_id: the image's id.
    """
    num = len(instances)
    if num == 0:
        return []
    scores = instances.scores.tolist()
    classes = instances.pred_classes.tolist()
    boxes = None
    if instances.has("pred_boxes"):
        xyxy = instances.pred_boxes.tensor.float().numpy()
        boxes = np.concatenate([xyxy[:, :2], xyxy[:, 2:] - xyxy[:, :2]], axis=1).tolist()
    masks = instances.pred_masks.numpy() if instances.has("pred_masks") else None
    results = []
    for k in range(num):
        result: dict[str, Any] = {
            "image_id": image_id,
            "category_id": int(classes[k]),
            "score": float(scores[k]),
        }
        if boxes is not None:
            result["bbox"] = boxes[k]
        if masks is not None:
            result["segmentation"] = encode_mask(
                masks[k] > 0.5 if masks.dtype != bool else masks[k]
            )
        results.append(result)
    return results


class COCOEvaluator(DatasetEvaluator):
    """AP of instance predictions (``"instances"`` outputs) with COCO's official API.

    The ground truth is metadata ``json_file`` when present, otherwise a COCO json built
    from the dataset records (``annotations`` or panoptic thing segments) in ``output_dir``.

    Args:
        dataset_name: registered dataset.
        tasks: subset of ("segm", "bbox"); inferred from the predictions when None.
        distributed: gather predictions of all ranks on rank 0.
        output_dir: where to write ``coco_instances_results.json`` (and the converted gt).
        max_dets_per_image: the COCO detections limit (100).
        strict_category_ids: require contiguous thing ids ``0..K-1`` (COCO); the ADE20K
            variant (:class:`InstanceSegEvaluator`) only requires them to be mapped.
        backend: "pycocotools" or "faster-coco-eval"; None reads
            ``$MASK2FORMER_COCO_BACKEND``, default "pycocotools".
    """

    def __init__(
        self,
        dataset_name: str,
        tasks: Sequence[str] | None = None,
        distributed: bool = True,
        output_dir: str | None = None,
        *,
        max_dets_per_image: int = 100,
        strict_category_ids: bool = True,
        backend: str | None = None,
    ):
        backend = backend or os.environ.get(COCO_BACKEND_ENV) or "pycocotools"
        if backend not in COCO_BACKENDS:
            raise ValueError(
                f"COCOEvaluator backend (or ${COCO_BACKEND_ENV}) is {backend!r}; expected one "
                f"of {COCO_BACKENDS}"
            )
        coco_class, self._cocoeval_class = _coco_api_classes(backend)
        self._dataset_name = dataset_name
        self._tasks = tuple(tasks) if tasks is not None else None
        self._distributed = distributed
        self._output_dir = output_dir
        self._max_dets = [1, 10, max_dets_per_image]
        self._strict = strict_category_ids
        self._metadata = MetadataCatalog.get(dataset_name)
        json_file = self._metadata.get("json_file")
        if json_file is None:
            json_file = self._convert_dataset()
        with contextlib.redirect_stdout(io.StringIO()):
            self._coco_api = coco_class(json_file)

    def _categories(self) -> list[tuple[int, int, str]]:
        names = list(self._metadata.thing_classes)
        mapping = self._metadata.get("thing_dataset_id_to_contiguous_id")
        if not mapping:
            return [(i, i, name) for i, name in enumerate(names)]
        pairs = sorted(mapping.items(), key=lambda kv: kv[1])
        if len(pairs) != len(names):
            names = [str(dataset_id) for dataset_id, _ in pairs]
        return [(cid, did, name) for (did, cid), name in zip(pairs, names)]

    def _convert_dataset(self) -> str:
        if not self._output_dir:
            raise ValueError(
                f"COCOEvaluator: dataset {self._dataset_name!r} has no metadata json_file; "
                "give output_dir so that a COCO json can be generated from its records"
            )
        path = os.path.join(self._output_dir, f"{self._dataset_name}_coco_format.json")
        if comm.is_main_process():
            records = DatasetCatalog.get(self._dataset_name)
            write_coco_json(records_to_coco_dict(records, self._categories()), path)
        comm.synchronize()
        return path

    def reset(self) -> None:
        self._predictions: list[dict[str, Any]] = []

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            if "instances" not in out:
                continue
            instances = out["instances"].to(torch.device("cpu"))
            self._predictions.append(
                {
                    "image_id": inp["image_id"],
                    "instances": instances_to_coco_json(instances, inp["image_id"]),
                }
            )

    def evaluate(self) -> dict[str, Any] | None:
        predictions = self._predictions
        if self._distributed:
            comm.synchronize()
            predictions = list(itertools.chain(*comm.gather(predictions, dst=0)))
            if not comm.is_main_process():
                return None
        if not predictions:
            logger.warning(f"COCOEvaluator on {self._dataset_name}: no predictions received")
            return {}
        coco_results = list(itertools.chain(*[p["instances"] for p in predictions]))
        self._map_category_ids(coco_results)
        if self._output_dir:
            os.makedirs(self._output_dir, exist_ok=True)
            path = os.path.join(self._output_dir, "coco_instances_results.json")
            with open(path, "w") as f:
                json.dump(coco_results, f)
        tasks = self._tasks or self._tasks_from(coco_results)
        img_ids = sorted({p["image_id"] for p in predictions})
        results: dict[str, Any] = OrderedDict()
        for task in sorted(tasks):
            coco_eval = self._run_cocoeval(coco_results, task, img_ids) if coco_results else None
            results[task] = self._derive_results(coco_eval, task)
        return results

    @staticmethod
    def _tasks_from(coco_results: list[dict[str, Any]]) -> tuple[str, ...]:
        tasks = ["bbox"] if any("bbox" in r for r in coco_results) else []
        if any("segmentation" in r for r in coco_results):
            tasks.append("segm")
        return tuple(tasks)

    def _map_category_ids(self, coco_results: list[dict[str, Any]]) -> None:
        mapping = self._metadata.get("thing_dataset_id_to_contiguous_id")
        if not mapping:
            return
        reverse = {v: k for k, v in mapping.items()}
        if self._strict:
            contiguous = sorted(reverse)
            if contiguous != list(range(len(contiguous))):
                raise ValueError(
                    f"thing_dataset_id_to_contiguous_id of {self._dataset_name!r} must map to "
                    f"0..{len(contiguous) - 1}; use InstanceSegEvaluator for other layouts"
                )
        for result in coco_results:
            if result["category_id"] not in reverse:
                raise ValueError(
                    f"A prediction has class {result['category_id']}, but dataset "
                    f"{self._dataset_name!r} only has thing classes {sorted(reverse)}"
                )
            result["category_id"] = reverse[result["category_id"]]

    def _run_cocoeval(self, coco_results: list[dict], task: str, img_ids: list[int]) -> Any:
        if task not in ("bbox", "segm"):
            raise ValueError(f"COCOEvaluator task must be 'bbox' or 'segm', got {task!r}")
        coco_results = copy.deepcopy(coco_results)
        if task == "segm":
            for result in coco_results:
                result.pop("bbox", None)
        with contextlib.redirect_stdout(io.StringIO()):
            coco_dt = self._coco_api.loadRes(coco_results)
            coco_eval = self._cocoeval_class(self._coco_api, coco_dt, task)
            coco_eval.params.maxDets = self._max_dets
            coco_eval.params.imgIds = img_ids
            coco_eval.evaluate()
            coco_eval.accumulate()
        summary = io.StringIO()
        with contextlib.redirect_stdout(summary):
            coco_eval.summarize()
        logger.info(f"COCOeval {task} summary:\n{summary.getvalue()}")
        return coco_eval

    def _derive_results(self, coco_eval: Any, task: str) -> dict[str, float]:
        if coco_eval is None:
            logger.warning(f"No {task} predictions from the model!")
            return {name: float("nan") for name in _METRIC_NAMES}
        results = {
            name: float(coco_eval.stats[i] * 100 if coco_eval.stats[i] >= 0 else "nan")
            for i, name in enumerate(_METRIC_NAMES)
        }
        logger.info(
            f"Evaluation results for {task}:\n"
            + tabulate([list(results.values())], headers=list(results), floatfmt=".3f")
        )
        names = [name for _, _, name in self._categories()]
        precisions = coco_eval.eval["precision"]  # (iou, recall, class, area, max dets)
        if len(names) <= 1 or precisions.shape[2] != len(names):
            return results
        per_class = []
        for k, name in enumerate(names):
            precision = precisions[:, :, k, 0, -1]
            precision = precision[precision > -1]
            per_class.append((name, float(np.mean(precision) * 100) if precision.size else np.nan))
        logger.info(
            f"Per-category {task} AP:\n"
            + tabulate(per_class, headers=["category", "AP"], floatfmt=".3f")
        )
        results.update({f"AP-{name}": ap for name, ap in per_class})
        return results


class InstanceSegEvaluator(COCOEvaluator):
    """COCO AP for datasets whose thing classes are a non-contiguous subset of the
    contiguous ids (ADE20K panoptic, Mapillary Vistas), as in the original Mask2Former."""

    def __init__(self, dataset_name: str, *args: Any, **kwargs: Any):
        kwargs.setdefault("strict_category_ids", False)
        super().__init__(dataset_name, *args, **kwargs)
