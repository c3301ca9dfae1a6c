"""COCO panoptic quality (PQ / SQ / RQ for all, things, stuff) of written PNG + JSON
predictions: by :mod:`mask2former.evaluation.pq` (panopticapi's rules, numpy 2), or by
panopticapi's own ``pq_compute`` (the ``eval`` extra, ``panopticapi-lite``)."""

from __future__ import annotations

import contextlib
import io
import itertools
import json
import logging
import os
import tempfile
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import numpy as np
from PIL import Image
from tabulate import tabulate

from mask2former.data.catalog import MetadataCatalog
from mask2former.evaluation import pq
from mask2former.evaluation.evaluator import DatasetEvaluator
from mask2former.utils import comm
from mask2former.utils.panoptic_ids import id2rgb

logger = logging.getLogger(__name__)


PQ_BACKENDS = ("mask2former", "panopticapi")
# Chooses the backend when the evaluator is built without an explicit one.
PQ_BACKEND_ENV = "MASK2FORMER_PQ_BACKEND"


def _pq_compute_function(backend: str) -> Callable[..., dict[str, Any]]:
    if backend == "mask2former":
        return pq.pq_compute
    try:
        from panopticapi.evaluation import pq_compute
    except ImportError as e:
        raise ImportError(
            "PQ backend 'panopticapi' needs panopticapi: pip install panopticapi-lite "
            "(it requires numpy < 2), or use the default backend 'mask2former'"
        ) from e
    return pq_compute


def pq_results_to_metrics(pq_res: dict[str, Any]) -> dict[str, float]:
    """``pq_compute``'s result dict -> ``PQ, SQ, RQ, PQ_th, ..., RQ_st`` in percent."""
    metrics = {}
    for group, suffix in (("All", ""), ("Things", "_th"), ("Stuff", "_st")):
        for key in ("pq", "sq", "rq"):
            metrics[f"{key.upper()}{suffix}"] = 100 * float(pq_res[group][key])
    return metrics


class COCOPanopticEvaluator(DatasetEvaluator):
    """Panoptic quality of ``"panoptic_seg"`` outputs against the dataset's
    ``panoptic_json`` / ``panoptic_root`` (metadata).

    ``process`` encodes each prediction as a panoptic PNG (in memory) with dataset category
    ids; ``evaluate`` gathers them on rank 0, writes ``OUTPUT_DIR/predictions.json`` and
    the PNGs, and computes PQ from those files.

    Args:
        dataset_name: registered dataset (metadata: ``panoptic_json``, ``panoptic_root``,
            ``thing_dataset_id_to_contiguous_id``, ``stuff_dataset_id_to_contiguous_id``).
        output_dir: where ``predictions.json`` and ``panoptic_seg/*.png`` go (a temporary
            directory when None).
        backend: "mask2former" (:func:`mask2former.evaluation.pq.pq_compute`) or
            "panopticapi" (its ``pq_compute``); None reads ``$MASK2FORMER_PQ_BACKEND``,
            default "mask2former". Both give the same numbers.
    """

    def __init__(
        self, dataset_name: str, output_dir: str | None = None, backend: str | None = None
    ):
        backend = backend or os.environ.get(PQ_BACKEND_ENV) or "mask2former"
        if backend not in PQ_BACKENDS:
            raise ValueError(
                f"COCOPanopticEvaluator backend (or ${PQ_BACKEND_ENV}) is {backend!r}; "
                f"expected one of {PQ_BACKENDS}"
            )
        self._pq_compute = _pq_compute_function(backend)
        self._backend = backend
        self._metadata = MetadataCatalog.get(dataset_name)
        self._dataset_name = dataset_name
        self._thing_to_dataset_id = {
            v: k for k, v in self._metadata.thing_dataset_id_to_contiguous_id.items()
        }
        self._stuff_to_dataset_id = {
            v: k for k, v in self._metadata.stuff_dataset_id_to_contiguous_id.items()
        }
        self._output_dir = output_dir

    def reset(self) -> None:
        self._predictions: list[dict[str, Any]] = []

    def _convert_segment(self, segment: dict[str, Any]) -> dict[str, Any]:
        segment = dict(segment)
        isthing = segment.pop("isthing", None)
        if isthing is None:  # already dataset category ids
            return segment
        table = self._thing_to_dataset_id if isthing else self._stuff_to_dataset_id
        try:
            segment["category_id"] = table[segment["category_id"]]
        except KeyError as e:
            kind = "thing" if isthing else "stuff"
            raise KeyError(
                f"Predicted {kind} category {segment['category_id']} has no dataset id in the "
                f"metadata of {self._dataset_name!r}"
            ) from e
        return segment

    def _segments_from_label_map(self, panoptic_img: np.ndarray) -> list[dict[str, Any]]:
        # "category * label_divisor + instance" maps with -1 as void (segments_info None).
        divisor = self._metadata.label_divisor
        thing_ids = set(self._metadata.thing_dataset_id_to_contiguous_id.values())
        segments = []
        for label in np.unique(panoptic_img):
            if label == -1:
                continue
            category = int(label) // divisor
            segments.append(
                {"id": int(label) + 1, "category_id": category, "isthing": category in thing_ids}
            )
        return segments

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for inp, out in zip(inputs, outputs):
            panoptic_img, segments_info = out["panoptic_seg"]
            panoptic_img = panoptic_img.cpu().numpy().astype(np.int64)
            if segments_info is None:
                segments_info = self._segments_from_label_map(panoptic_img)
                panoptic_img = panoptic_img + 1  # panopticapi uses 0 for void
            segments_info = [self._convert_segment(s) for s in segments_info]
            file_name = os.path.splitext(os.path.basename(inp["file_name"]))[0] + ".png"
            with io.BytesIO() as buffer:
                Image.fromarray(id2rgb(panoptic_img)).save(buffer, format="PNG")
                png = buffer.getvalue()
            self._predictions.append(
                {
                    "image_id": inp["image_id"],
                    "file_name": file_name,
                    "png_string": png,
                    "segments_info": segments_info,
                }
            )

    def evaluate(self) -> dict[str, Any] | None:
        comm.synchronize()
        predictions = list(itertools.chain(*comm.gather(self._predictions, dst=0)))
        if not comm.is_main_process():
            return None
        gt_json = self._metadata.panoptic_json
        gt_folder = self._metadata.panoptic_root
        with contextlib.ExitStack() as stack:
            if self._output_dir:
                pred_dir = os.path.join(self._output_dir, "panoptic_seg")
                os.makedirs(pred_dir, exist_ok=True)
                json_dir = self._output_dir
            else:
                pred_dir = json_dir = stack.enter_context(tempfile.TemporaryDirectory())
            annotations = []
            for prediction in predictions:
                prediction = dict(prediction)
                with open(os.path.join(pred_dir, prediction["file_name"]), "wb") as f:
                    f.write(prediction.pop("png_string"))
                annotations.append(prediction)
            with open(gt_json) as f:
                json_data = json.load(f)
            json_data["annotations"] = annotations
            predictions_json = os.path.join(json_dir, "predictions.json")
            with open(predictions_json, "w") as f:
                json.dump(json_data, f)
            logger.info(f"Computing PQ ({self._backend}) of {len(annotations)} predictions")
            # panopticapi prints its progress and table; the table is logged below.
            with contextlib.redirect_stdout(io.StringIO()):
                pq_res = self._pq_compute(
                    gt_json, predictions_json, gt_folder=gt_folder, pred_folder=pred_dir
                )
        log_panoptic_table(pq_res)
        return OrderedDict({"panoptic_seg": pq_results_to_metrics(pq_res)})


def log_panoptic_table(pq_res: dict[str, Any]) -> None:
    """Log PQ / SQ / RQ and the category count of All / Things / Stuff as a table."""
    rows = [
        [group] + [100 * pq_res[group][k] for k in ("pq", "sq", "rq")] + [pq_res[group]["n"]]
        for group in ("All", "Things", "Stuff")
    ]
    table = tabulate(
        rows, headers=["", "PQ", "SQ", "RQ", "#categories"], tablefmt="pipe", floatfmt=".3f"
    )
    logger.info("Panoptic Evaluation Results:\n" + table)
