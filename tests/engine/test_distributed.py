import json

import pytest
import torch
from engine_toys import ddp_worker

from mask2former.engine.launch import launch


@pytest.mark.slow
def test_two_process_gloo_matches_single_process(tmp_path):
    single, double = tmp_path / "single", tmp_path / "double"
    single.mkdir()
    double.mkdir()
    launch(ddp_worker, 1, args=(str(single),))
    launch(ddp_worker, 2, dist_url="auto", args=(str(double),))

    losses_1 = json.loads((single / "losses.json").read_text())
    losses_2 = json.loads((double / "losses.json").read_text())
    for name in ("total_loss", "loss_mse", "loss_l1"):
        assert len(losses_1[name]) == len(losses_2[name]) == 5
        assert losses_2[name] == pytest.approx(losses_1[name], abs=1e-4), name
    # The losses move (the models train), so equal curves are not trivially equal.
    assert losses_1["total_loss"][0] != pytest.approx(losses_1["total_loss"][-1], abs=1e-3)

    weights_1 = torch.load(single / "model_final.pth", weights_only=True)["model"]
    weights_2 = torch.load(double / "model_final.pth", weights_only=True)["model"]
    for key in weights_1:
        torch.testing.assert_close(weights_2[key], weights_1[key], rtol=0, atol=1e-5)

    collectives = json.loads((double / "collectives.json").read_text())
    assert collectives["all_gather"] == [0, 1]
    assert collectives["gather"] == [{"rank": 0}, {"rank": 1}]
    assert collectives["reduce_dict"] == {"a": 1.5}
    assert collectives["seeds"][0] == collectives["seeds"][1]
    assert collectives["local_rank"] == [0, 1]
