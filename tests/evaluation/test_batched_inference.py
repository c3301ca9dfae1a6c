"""Batched evaluation (TEST.IMS_PER_BATCH): batches of one original image size, every record
once, and batched outputs equal to one-image outputs."""

import pytest
import torch

from mask2former.data import DatasetCatalog, build_detection_test_loader
from mask2former.data.samplers import SameSizeInferenceBatchSampler
from mask2former.evaluation import DatasetEvaluator, inference_on_dataset
from mask2former.modeling import build_model
from tests.tiny_config import tiny_cfg

SIZES = [(40, 50), (64, 48), (40, 50), (40, 50), (64, 48), (40, 50), (48, 56)]
DATASET = "batched_inference_test_records"


def test_sampler_groups_by_original_size_in_first_index_order():
    records = [{"height": h, "width": w} for h, w in SIZES] + [{"file_name": "no_size.png"}]
    sampler = SameSizeInferenceBatchSampler(range(len(records)), records, batch_size=3)
    assert list(sampler) == [[0, 2, 3], [1, 4], [5], [6], [7]]
    assert len(sampler) == 5
    with pytest.raises(ValueError, match="batch_size must be >= 1"):
        SameSizeInferenceBatchSampler(range(3), records, batch_size=0)


class _Collect(DatasetEvaluator):
    def reset(self) -> None:
        self.outputs: dict[int, torch.Tensor] = {}

    def process(self, inputs: list[dict], outputs: list[dict]) -> None:
        for item, output in zip(inputs, outputs):
            self.outputs[item["image_id"]] = output["sem_seg"]

    def evaluate(self) -> dict:
        return {}


def _mapper(record: dict) -> dict:
    generator = torch.Generator().manual_seed(record["image_id"])
    image = torch.randint(0, 256, (3, record["height"], record["width"]), generator=generator)
    return {**record, "image": image.to(torch.uint8)}


def test_batched_evaluation_equals_one_image_at_a_time():
    records = [{"image_id": i, "height": h, "width": w} for i, (h, w) in enumerate(SIZES)]
    if DATASET not in DatasetCatalog:
        DatasetCatalog.register(DATASET, lambda: records)
    cfg = tiny_cfg(
        **{"MODEL.MASK_FORMER.TEST.PANOPTIC_ON": False, "MODEL.MASK_FORMER.TEST.INSTANCE_ON": False}
    )
    torch.manual_seed(0)
    model = build_model(cfg).eval()
    results = {}
    for batch_size in (1, 3):
        loader = build_detection_test_loader(cfg, DATASET, _mapper, batch_size=batch_size)
        assert all(len({(x["height"], x["width"]) for x in batch}) == 1 for batch in loader)
        evaluator = _Collect()
        inference_on_dataset(model, loader, evaluator)
        results[batch_size] = evaluator.outputs
    assert len(loader) == 4  # [0, 2, 3] [1, 4] [5] [6]
    assert sorted(results[3]) == list(range(len(SIZES)))
    for image_id, single in results[1].items():
        torch.testing.assert_close(results[3][image_id], single, rtol=0, atol=1e-5)
