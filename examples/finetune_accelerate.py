"""Fine-tune Mask2Former (transformers-style API) on the demo "shapes" dataset with Accelerate.

    python -m mask2former.data.datasets.demo_files --output demo_shapes
    python examples/finetune_accelerate.py --data demo_shapes --output runs/shapes
    # start from a save_pretrained directory (transformers' or ours) with new classes:
    python examples/finetune_accelerate.py --data demo_shapes --init path/to/model --steps 500

Multi-GPU: ``accelerate launch examples/finetune_accelerate.py ...``.
"""

from __future__ import annotations

import argparse
import itertools
import logging

import torch
from accelerate import Accelerator
from tqdm.auto import tqdm

from mask2former.data.datasets.demo_files import CATEGORIES
from mask2former.hf import (
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    Mask2FormerImageProcessor,
)
from mask2former.hf.torch_dataset import DemoSemanticDataset, collate_segmentation_batch

ID2LABEL = {index: category["name"] for index, category in enumerate(CATEGORIES)}


def build_model(init: str | None) -> Mask2FormerForUniversalSegmentation:
    if init:
        return Mask2FormerForUniversalSegmentation.from_pretrained(
            init,
            id2label=ID2LABEL,
            label2id={name: index for index, name in ID2LABEL.items()},
            ignore_mismatched_sizes=True,
        ).train()
    # A small Swin-based model from scratch (the demo task is easy).
    config = Mask2FormerConfig(
        backbone_config={
            "embed_dim": 48,
            "depths": [2, 2, 2, 2],
            "num_heads": [3, 6, 12, 24],
            "window_size": 7,
            "out_features": ["stage1", "stage2", "stage3", "stage4"],
        },
        feature_size=128,
        mask_feature_size=128,
        hidden_dim=128,
        encoder_layers=3,
        decoder_layers=7,
        num_queries=20,
        train_num_points=4096,
        id2label=ID2LABEL,
    )
    return Mask2FormerForUniversalSegmentation(config)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", required=True, help="demo dataset folder")
    parser.add_argument("--output", default="runs/shapes_hf", help="save_pretrained directory")
    parser.add_argument("--init", help="save_pretrained directory to start from")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--batch-size", type=int, default=4)
    parser.add_argument("--lr", type=float, default=1e-4)
    parser.add_argument("--image-size", type=int, default=160)
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")

    accelerator = Accelerator()
    processor = Mask2FormerImageProcessor(
        size={"shortest_edge": args.image_size, "longest_edge": args.image_size * 2},
        ignore_index=255,
    )
    dataset = DemoSemanticDataset(args.data, "train", processor)
    loader = torch.utils.data.DataLoader(
        dataset, batch_size=args.batch_size, shuffle=True, collate_fn=collate_segmentation_batch
    )
    model = build_model(args.init)
    optimizer = torch.optim.AdamW(model.parameters(), lr=args.lr, weight_decay=0.05)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda step: (1 - step / args.steps) ** 0.9
    )
    model, optimizer, loader, scheduler = accelerator.prepare(model, optimizer, loader, scheduler)

    model.train()
    batches = itertools.cycle(loader)
    progress = tqdm(range(args.steps), disable=not accelerator.is_local_main_process)
    for _ in progress:
        batch = next(batches)
        loss = model(**batch).loss
        accelerator.backward(loss)
        accelerator.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        scheduler.step()
        optimizer.zero_grad()
        progress.set_postfix(loss=f"{loss.item():.3f}")

    accelerator.wait_for_everyone()
    if accelerator.is_main_process:
        accelerator.unwrap_model(model).save_pretrained(args.output)
        processor.save_pretrained(args.output)
        print(f"saved model and processor to {args.output}")


if __name__ == "__main__":
    main()
