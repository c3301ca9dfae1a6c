"""demo/demo.py end to end (subprocess, tiny model) and its drawing / input helpers."""

import importlib.util
import json
import os

import cv2
import numpy as np
import pytest
import torch
from PIL import Image
from pycocotools import mask as mask_util

from mask2former.data.datasets.demo import demo_metadata
from mask2former.data.detection_utils import rgb2id
from mask2former.modeling import build_model
from mask2former.predictor import Predictor
from mask2former.structures import Instances
from tests.cli_helpers import REPO_ROOT, finish_cli, start_cli
from tests.tiny_config import tiny_cfg, tiny_opts

INPUT_SIZES = {"street.png": (70, 90), "field.png": (52, 76)}


def _load_demo_module():
    spec = importlib.util.spec_from_file_location("demo_script", f"{REPO_ROOT}/demo/demo.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


demo = _load_demo_module()


def _blend(image: np.ndarray, color, alpha: float = 0.5) -> np.ndarray:
    """What the visualizer must write at a mask pixel (float32 blend, round half to even)."""
    blended = image.astype(np.float32) * (1 - alpha) + np.asarray(color, np.float32) * alpha
    return np.round(blended).astype(np.uint8)


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory):
    """Run the demo script on two images."""
    root = tmp_path_factory.mktemp("demo")
    torch.manual_seed(0)
    weights = str(root / "tiny.pth")
    torch.save({"model": build_model(tiny_cfg()).state_dict()}, weights)
    rng = np.random.default_rng(0)
    os.makedirs(root / "in")
    for name, (h, w) in INPUT_SIZES.items():
        # Smooth images: the random model then predicts a few large segments.
        small = rng.integers(0, 256, (4, 4, 3), dtype=np.uint8)
        cv2.imwrite(str(root / "in" / name), cv2.resize(small, (w, h)))
    opts = tiny_opts(
        **{
            "MODEL.WEIGHTS": weights,
            "MODEL.MASK_FORMER.TEST.OBJECT_MASK_THRESHOLD": 0.0,
            "MODEL.MASK_FORMER.TEST.OVERLAP_THRESHOLD": 0.0,
        }
    )
    env = {"DETECTRON2_DATASETS": str(root / "datasets")}
    images = start_cli(
        "demo/demo.py",
        ["--input", str(root / "in" / "*.png"), "--output", str(root / "out"), "--task",
         "panoptic", "--no-contours", "--no-labels", "--save-raw", "--batch-size", "2",
         "--opts", *opts],
        **env,
    )  # fmt: skip
    finish_cli(images)
    return root


def test_images_show_mask_colors_exactly_where_segments_are(demo_run):
    meta = demo_metadata()
    out = demo_run / "out"
    with open(out / "panoptic.json") as f:
        panoptic = json.load(f)
    isthing = {c["id"]: c["isthing"] for c in panoptic["categories"]}
    annotations = {a["file_name"]: a for a in panoptic["annotations"]}
    num_segments = 0
    for name, (h, w) in INPUT_SIZES.items():
        image = np.asarray(Image.open(demo_run / "in" / name).convert("RGB"))
        vis = np.asarray(Image.open(out / name).convert("RGB"))
        assert vis.shape == (h, w, 3)
        ids = rgb2id(np.asarray(Image.open(out / "panoptic" / name)))
        expected = image.copy()
        for seg in annotations[name]["segments_info"]:
            mask = ids == seg["id"]
            assert mask.sum() == seg["area"] > 0
            if isthing[seg["category_id"]]:
                color = meta["thing_colors"][
                    meta["thing_dataset_id_to_contiguous_id"][seg["category_id"]]
                ]
            else:
                color = meta["stuff_colors"][
                    meta["stuff_dataset_id_to_contiguous_id"][seg["category_id"]]
                ]
            expected[mask] = _blend(image[mask], color)
            num_segments += 1
        np.testing.assert_array_equal(vis, expected)
        # Raw semantic and instance results are written too, at the input size.
        sem = np.asarray(Image.open(out / "sem_seg" / name))
        assert sem.shape == (h, w) and sem.max() < 5
    assert num_segments > 0, "the test needs at least one predicted segment"
    with open(out / "instances.json") as f:
        instances = json.load(f)
    assert {r["image_id"] for r in instances} == {"street", "field"}
    for r in instances:
        assert r["category_id"] in (1, 2, 3) and 0 <= r["score"] <= 1
        assert mask_util.decode(r["segmentation"]).shape == INPUT_SIZES[r["image_id"] + ".png"]


def test_video_keeps_frame_count_and_size(tmp_path):
    video = str(tmp_path / "clip.avi")
    writer = cv2.VideoWriter(video, cv2.VideoWriter_fourcc(*"MJPG"), 10.0, (64, 48), True)
    for i in range(5):
        writer.write(np.full((48, 64, 3), 40 * i, np.uint8))
    writer.release()
    out_dir = tmp_path / "out"
    out_dir.mkdir()
    args = demo.get_parser().parse_args(["--video-input", video, "--output", str(out_dir)])
    demo.run_on_stream(args, Predictor(tiny_cfg()), {}, cv2.VideoCapture(video))

    capture = cv2.VideoCapture(str(out_dir / "clip.avi"))
    frames = []
    while True:
        ok, frame = capture.read()
        if not ok:
            break
        frames.append(frame)
    capture.release()
    assert len(frames) == 5
    assert all(f.shape == (48, 64, 3) for f in frames)


def test_draw_semantic_exact_colors_and_instance_threshold():
    meta = demo_metadata()
    image = np.random.default_rng(1).integers(0, 256, (6, 8, 3), dtype=np.uint8)
    labels = np.zeros((6, 8), np.int64)
    labels[:, 4:] = 3
    scores = torch.full((5, 6, 8), -1.0)
    scores[0][labels == 0] = 1.0
    scores[3][labels == 3] = 1.0
    vis = demo.draw_predictions(
        image, {"sem_seg": scores}, meta, draw_contours=False, draw_labels=False, alpha=0.25
    )
    np.testing.assert_array_equal(vis[:, :4], _blend(image[:, :4], meta["stuff_colors"][0], 0.25))
    np.testing.assert_array_equal(vis[:, 4:], _blend(image[:, 4:], meta["stuff_colors"][3], 0.25))

    instances = Instances((6, 8))
    masks = torch.zeros(2, 6, 8)
    masks[0, :3] = 1
    masks[1, 3:] = 1
    instances.pred_masks = masks
    instances.scores = torch.tensor([0.9, 0.3])
    instances.pred_classes = torch.tensor([0, 2])
    vis = demo.draw_predictions(
        image, {"instances": instances}, meta, confidence_threshold=0.5, draw_contours=False,
        draw_labels=False,
    )  # fmt: skip
    np.testing.assert_array_equal(vis[:3], _blend(image[:3], meta["thing_colors"][0]))
    np.testing.assert_array_equal(vis[3:], image[3:])  # below the threshold: not drawn

    with pytest.raises(ValueError, match="panoptic"):
        demo.draw_predictions(image, {"sem_seg": scores}, meta, task="panoptic")


def test_expand_inputs(tmp_path):
    for name in ("b.png", "a.jpg", "notes.txt"):
        (tmp_path / name).write_bytes(b"")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "a.jpg").write_bytes(b"")
    assert demo.expand_inputs([str(tmp_path / "*.png")]) == [str(tmp_path / "b.png")]
    assert demo.expand_inputs([str(tmp_path)]) == [str(tmp_path / n) for n in ("a.jpg", "b.png")]
    with pytest.raises(FileNotFoundError, match="missing"):
        demo.expand_inputs([str(tmp_path / "missing*.png")])
    with pytest.raises(ValueError, match="a.jpg"):
        demo.expand_inputs([str(tmp_path / "a.jpg"), str(tmp_path / "sub" / "a.jpg")])


def test_image_files_are_read_and_resized_in_workers(tmp_path):
    from torch.utils.data import DataLoader

    from mask2former.data.detection_utils import read_image
    from mask2former.predictor import ImagePreprocessor

    paths = []
    for index, (h, w) in enumerate(INPUT_SIZES.values()):
        paths.append(str(tmp_path / f"{index}.png"))
        rng = np.random.default_rng(index)
        cv2.imwrite(paths[-1], rng.integers(0, 256, (h, w, 3), dtype=np.uint8))
    preprocessor = ImagePreprocessor(64, 128, input_format="BGR", model_format="RGB")
    files = demo._ImageFiles(paths, preprocessor)
    loader = DataLoader(files, batch_size=2, num_workers=1, collate_fn=demo._list_collate)
    (batch,) = list(loader)
    for (path, image, inputs), expected_path in zip(batch, paths):
        assert path == expected_path
        np.testing.assert_array_equal(image, read_image(path, format="BGR"))
        torch.testing.assert_close(inputs["image"], preprocessor(image)["image"], rtol=0, atol=0)
        assert inputs["image"].shape[-2:] != image.shape[:2]  # resized to the short side 64
    with pytest.raises(SystemExit, match="--num-workers must be >= 0"):
        demo.main(["--input", paths[0], "--num-workers", "-1"])
