"""tools/train_net.py as a user runs it: train on the demo data, then --eval-only."""

import json
import os

from mask2former.data.datasets.demo_files import generate_demo_dataset
from tests.cli_helpers import run_cli
from tests.tiny_config import BASE_CONFIG, tiny_opts


def _opts(output_dir, **extra):
    return tiny_opts(
        **{
            "OUTPUT_DIR": str(output_dir),
            "SOLVER.MAX_ITER": 6,
            "SOLVER.IMS_PER_BATCH": 2,
            "SOLVER.CHECKPOINT_PERIOD": 3,
            "INPUT.MIN_SIZE_TRAIN": (64,),
            "INPUT.MAX_SIZE_TRAIN": 128,
            "INPUT.DATASET_MAPPER_NAME": "mask_former_panoptic",
            "MODEL.MASK_FORMER.TEST.PANOPTIC_ON": True,
            "MODEL.MASK_FORMER.TEST.INSTANCE_ON": True,
            "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.0,
            **extra,
        }
    )


def test_train_then_eval_only_reproduces_the_saved_metrics(tmp_path):
    data_root = tmp_path / "datasets"
    generate_demo_dataset(str(data_root / "demo_shapes"), num_train=6, num_val=3)
    env = {"DETECTRON2_DATASETS": str(data_root)}
    train_dir = tmp_path / "train"
    run_cli("tools/train_net.py", ["--config-file", BASE_CONFIG, *_opts(train_dir)], **env)

    for name in ("model_final.pth", "model_0000002.pth", "last_checkpoint", "metrics.json",
                 "config.yaml", "eval_results.json"):  # fmt: skip
        assert (train_dir / name).is_file(), name
    assert len(os.listdir(train_dir / "visualizations")) == 3
    with open(train_dir / "metrics.json") as f:
        iterations = [json.loads(line)["iteration"] for line in f if line.strip()]
    assert 5 in iterations  # the last training iteration (0-based) was logged
    trained = json.loads((train_dir / "eval_results.json").read_text())
    assert {"PQ", "SQ", "RQ"} <= set(trained["panoptic_seg"])
    assert "AP" in trained["segm"] and "mIoU" in trained["sem_seg"]

    eval_dir = tmp_path / "eval"
    weights = str(train_dir / "model_final.pth")
    args = ["--config-file", BASE_CONFIG, "--eval-only",
            *_opts(eval_dir, **{"MODEL.WEIGHTS": weights})]  # fmt: skip
    run_cli("tools/train_net.py", args, **env)
    assert json.loads((eval_dir / "eval_results.json").read_text()) == trained
