"""A few transformers ``Trainer`` steps on the demo dataset lower the loss."""

from __future__ import annotations

import torch

from mask2former.data.datasets.demo_files import generate_demo_dataset
from mask2former.hf import (
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    Mask2FormerImageProcessor,
)
from mask2former.hf.torch_dataset import DemoSemanticDataset, collate_segmentation_batch
from tests.hf.tiny_hf_config import tiny_config_dict
from tests.optional import require_package

transformers = require_package("transformers")
require_package("accelerate")


def _mean_loss(model, batch) -> float:
    model.eval()
    torch.manual_seed(0)
    with torch.no_grad():
        return model(**batch).loss.item()


def test_trainer_lowers_the_loss(tmp_path, monkeypatch):
    # The repository's datasets/ folder shadows the Hugging Face "datasets" package when tests
    # run from the repository root; Trainer only needs it for datasets.Dataset inputs.
    import transformers.trainer

    monkeypatch.setattr(transformers.trainer, "is_datasets_available", lambda: False)
    generate_demo_dataset(str(tmp_path / "demo"), num_train=4, num_val=1, seed=0)
    processor = Mask2FormerImageProcessor(
        size={"shortest_edge": 96, "longest_edge": 96}, ignore_index=255
    )
    dataset = DemoSemanticDataset(str(tmp_path / "demo"), "train", processor)
    torch.manual_seed(0)
    model = Mask2FormerForUniversalSegmentation(
        Mask2FormerConfig(**tiny_config_dict(5, decoder_layers=2, train_num_points=64))
    )
    batch = collate_segmentation_batch([dataset[i] for i in range(len(dataset))])
    before = _mean_loss(model, batch)
    args = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"),
        max_steps=6,
        per_device_train_batch_size=2,
        learning_rate=5e-4,
        report_to=[],
        save_strategy="no",
        logging_steps=2,
        remove_unused_columns=False,
        use_cpu=True,
        dataloader_num_workers=0,
        seed=0,
    )
    trainer = transformers.Trainer(
        model=model, args=args, train_dataset=dataset, data_collator=collate_segmentation_batch
    )
    trainer.train()
    after = _mean_loss(model, batch)
    assert after < before, (before, after)
