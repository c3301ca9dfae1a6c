"""The web demo's model-side parts without a browser: reading uploads (and refusing bad ones
readably), the segment table, and the command line's model choice."""

from __future__ import annotations

import argparse

import cv2
import numpy as np
import pytest
import torch
from PIL import Image

from mask2former.app.cli import get_parser, load_segmenter
from mask2former.app.inputs import InputError, InputLimits, read_uploaded_image, video_frames
from mask2former.app.results import check_task, filter_instances, segment_rows
from mask2former.data.datasets.demo import demo_metadata
from mask2former.modeling import build_model
from mask2former.structures import Instances
from tests.tiny_config import BASE_CONFIG, tiny_cfg, tiny_opts


def test_uploaded_image_is_rgb_as_written(tmp_path):
    rgb = np.zeros((6, 9, 3), np.uint8)
    rgb[..., 0] = 200  # red: a BGR mix-up would make it blue
    rgb[2:4, 3:5] = (10, 120, 30)
    Image.fromarray(rgb).save(tmp_path / "x.png")
    np.testing.assert_array_equal(read_uploaded_image(str(tmp_path / "x.png"), InputLimits()), rgb)


@pytest.mark.parametrize(
    "name, content, limits, message",
    [
        ("notes.txt", b"hello", InputLimits(), "'notes.txt' is not a supported image file"),
        ("broken.png", b"\x89PNG\r\n\x1a\n" + b"x" * 64, InputLimits(), "the file is corrupt"),
        ("big.png", None, InputLimits(max_pixels=10 * 10), "is 12 x 11 pixels"),
    ],
)
def test_bad_uploads_are_refused_readably(tmp_path, name, content, limits, message):
    path = tmp_path / name
    if content is None:
        Image.fromarray(np.zeros((11, 12, 3), np.uint8)).save(path)
    else:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message) as caught:
        read_uploaded_image(str(path), limits)
    assert str(tmp_path) not in str(caught.value)  # the person's file name, no server path
    if content is None:
        assert "--max-pixels" in str(caught.value)


def test_video_frames_are_rgb_and_capped(tmp_path):
    path = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"MJPG"), 5.0, (32, 24))
    for _ in range(6):
        writer.write(np.full((24, 32, 3), (255, 0, 0), np.uint8))  # BGR blue
    writer.release()
    frames, expected, fps = video_frames(path, InputLimits(max_video_frames=4))
    frames = list(frames)
    assert (len(frames), expected, fps) == (4, 4, 5.0)
    assert frames[0].shape == (24, 32, 3)
    assert frames[0][..., 2].mean() > 200 and frames[0][..., 0].mean() < 50  # RGB blue

    (tmp_path / "fake.mp4").write_bytes(b"not a video")
    with pytest.raises(InputError, match="'fake.mp4' could not be read as a video"):
        video_frames(str(tmp_path / "fake.mp4"), InputLimits())
    with pytest.raises(InputError, match="not a supported video file"):
        video_frames(str(tmp_path / "clip.gif"), InputLimits())


def _predictions() -> dict:
    """A 4 x 5 image: sky on top, ground below, one circle (id 3) over both."""
    panoptic = torch.tensor(
        [[1, 1, 1, 1, 1], [1, 3, 3, 1, 1], [2, 3, 3, 2, 2], [2, 2, 2, 2, 2]], dtype=torch.int32
    )
    segments_info = [
        {"id": 1, "category_id": 3, "isthing": False},
        {"id": 2, "category_id": 4, "isthing": False},
        {"id": 3, "category_id": 0, "isthing": True},
    ]
    sem_seg = torch.zeros(5, 4, 5)
    for segment_id, category in ((1, 3), (2, 4), (3, 0)):
        sem_seg[category][panoptic == segment_id] = 0.9
    sem_seg[1] = 0.1  # the rest of the score goes to "square"
    instances = Instances((4, 5))
    instances.pred_masks = torch.stack([panoptic == 3, panoptic == 2]).float()
    instances.scores = torch.tensor([0.9, 0.3])
    instances.pred_classes = torch.tensor([0, 2])
    return {"panoptic_seg": (panoptic, segments_info), "sem_seg": sem_seg, "instances": instances}


def test_segment_rows_per_task():
    metadata = demo_metadata()
    predictions = _predictions()
    assert segment_rows(predictions, "panoptic", metadata) == [
        ["sky", "0.90", 8],
        ["ground", "0.90", 8],
        ["circle", "0.90", 4],
    ]
    assert segment_rows(predictions, "semantic", metadata) == [
        ["sky", "0.90", 8],
        ["ground", "0.90", 8],
        ["circle", "0.90", 4],
    ]
    kept = filter_instances(predictions, 0.5)
    assert segment_rows(kept, "instance", metadata) == [["circle", "0.90", 4]]
    assert len(segment_rows(filter_instances(predictions, 0.2), "instance", metadata)) == 2


def test_a_task_the_model_does_not_predict_is_named():
    predictions = _predictions()
    del predictions["instances"]
    with pytest.raises(ValueError, match="does not predict instance.*INSTANCE_ON"):
        check_task(predictions, "instance")


def test_without_a_model_the_command_says_how_to_get_one(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # no output/demo/model_final.pth here
    with pytest.raises(SystemExit, match="tools/train_net.py --config-file configs/demo"):
        load_segmenter(get_parser().parse_args([]))
    args = argparse.Namespace(hf_model=str(tmp_path), opts=["MODEL.WEIGHTS", "x"])
    with pytest.raises(SystemExit, match="--opts applies to --config-file"):
        load_segmenter(args)


def test_command_line_config_opts_and_bfloat16(tmp_path):
    weights = tmp_path / "tiny.pth"
    torch.save({"model": build_model(tiny_cfg()).state_dict()}, weights)
    opts = tiny_opts(**{"MODEL.WEIGHTS": str(weights)})
    args = get_parser().parse_args(["--config-file", BASE_CONFIG, "--bfloat16", "--opts", *opts])
    segmenter = load_segmenter(args)
    cfg = segmenter.predictor.cfg
    assert cfg.MODEL.WEIGHTS == str(weights) and cfg.MODEL.SEM_SEG_HEAD.NUM_CLASSES == 5
    assert cfg.TEST.AMP.ENABLED and cfg.TEST.AMP.DTYPE == "bfloat16"
    assert segmenter.description.endswith(str(weights))
