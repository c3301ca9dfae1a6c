"""A run that really diverges stops with the iteration named (issue 12, item 2): predictions
turn non-finite before any loss exists, so the matcher's guard has to speak, not scipy."""

from __future__ import annotations

import pytest
import torch

from mask2former.data.datasets.demo_files import generate_demo_dataset
from tests.cli_helpers import start_cli
from tests.tiny_config import BASE_CONFIG, tiny_opts


@pytest.mark.slow
def test_diverging_learning_rate_stops_with_the_iteration_and_keeps_the_checkpoint(tmp_path):
    data_root = tmp_path / "datasets"
    generate_demo_dataset(str(data_root / "demo_shapes"), num_train=4, num_val=1)
    out = tmp_path / "out"
    opts = tiny_opts(
        **{
            "OUTPUT_DIR": str(out),
            "SOLVER.MAX_ITER": 8,
            "SOLVER.IMS_PER_BATCH": 2,
            "SOLVER.CHECKPOINT_PERIOD": 1,
            "SOLVER.BASE_LR": 1e8,  # AdamW moves every weight by ~1e8 in one step
            "SOLVER.WARMUP_ITERS": 0,
            "INPUT.MIN_SIZE_TRAIN": (64,),
            "INPUT.MAX_SIZE_TRAIN": 128,
            "INPUT.DATASET_MAPPER_NAME": "mask_former_panoptic",
        }
    )
    process = start_cli(
        "tools/train_net.py",
        ["--config-file", BASE_CONFIG, *opts],
        DETECTRON2_DATASETS=str(data_root),
    )
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 1, output[-3000:]
    last = "\n".join(output.strip().splitlines()[-2:])
    assert "FloatingPointError: Non-finite predictions at iteration=1, before the losses" in last
    assert "The matching cost of image 0 is NaN or infinite" in last
    assert "invalid numeric entries" not in output  # scipy's message never surfaces
    # The checkpoint written before the failing iteration is complete and loadable.
    assert (out / "last_checkpoint").read_text() == "model_0000000.pth"
    assert not (out / "model_final.pth").exists()
    state = torch.load(out / "model_0000000.pth", map_location="cpu", weights_only=True)
    assert state["iteration"] == 0
    assert all(t.isfinite().all() for t in state["model"].values() if t.is_floating_point())
