"""The folder / video tab's work without a browser: batches, progress, and the download's
overlays, PNG masks and COCO JSON (a fake model with known predictions)."""

from __future__ import annotations

import json
import zipfile

import cv2
import numpy as np
from PIL import Image

from mask2former.app.inputs import InputLimits
from mask2former.app.pipeline import Pipeline, folder_images
from mask2former.app.segmenter import Segmenter
from mask2former.data.datasets.demo import demo_metadata
from tests.app.test_app_inputs_results import _predictions


class _KnownSegmenter(Segmenter):
    """Returns ``_predictions()`` (a 4 x 5 scene) for every image and records its batches."""

    def __init__(self) -> None:
        super().__init__()
        self.metadata = demo_metadata()
        self.default_threshold = 0.8
        self.description = "known predictions"
        self.batches: list[int] = []

    def _predict(self, images, score_threshold):
        self.batches.append(len(images))
        return [_predictions() for _ in images]


def _recorder(calls: list):
    def progress(fraction, desc=None, unit="steps"):
        calls.append(fraction)

    return progress


def test_folder_download_has_overlays_masks_and_coco_json(tmp_path):
    folder = tmp_path / "upload"
    folder.mkdir()
    for name in ("a.png", "b.png", "c.jpg"):
        Image.fromarray(np.full((4, 5, 3), 120, np.uint8)).save(folder / name)
    (folder / "notes.txt").write_text("not an image")
    paths = sorted(str(p) for p in folder.iterdir())
    segmenter = _KnownSegmenter()
    pipeline = Pipeline(segmenter, InputLimits(), batch_size=2, work_root=str(tmp_path))
    skipped: list[str] = []
    calls: list = []
    gallery, archive, count = pipeline.many_images(
        folder_images(paths, InputLimits(), skipped), len(paths), "panoptic", 0.5, 0.5,
        _recorder(calls),
    )  # fmt: skip

    assert count == 3 and segmenter.batches == [2, 1]
    assert calls == [(0, 4), (2, 4), (3, 4)]
    assert len(skipped) == 1 and "'notes.txt' is not a supported image file" in skipped[0]
    assert [p.rsplit("/", 1)[1] for p in gallery] == ["a.png", "b.png", "c.png"]
    with zipfile.ZipFile(archive) as download:
        names = set(download.namelist())
        for stem in ("a", "b", "c"):
            assert {f"overlays/{stem}.png", f"panoptic/{stem}.png", f"sem_seg/{stem}.png"} <= names
        panoptic = json.loads(download.read("panoptic.json"))
        instances = json.loads(download.read("instances.json"))
        sem_seg = np.asarray(Image.open(download.open("sem_seg/a.png")))
    assert [len(a["segments_info"]) for a in panoptic["annotations"]] == [3, 3, 3]
    # Only the instance at or above the threshold (the circle, dataset id 1) is exported.
    assert [(r["image_id"], r["category_id"]) for r in instances] == [("a", 1), ("b", 1), ("c", 1)]
    np.testing.assert_array_equal(sem_seg, [[3] * 5, [3, 0, 0, 3, 3], [4, 0, 0, 4, 4], [4] * 5])


def test_video_download_has_one_overlay_per_frame(tmp_path):
    segmenter = _KnownSegmenter()
    pipeline = Pipeline(segmenter, InputLimits(), batch_size=4, work_root=str(tmp_path))
    frames = ((f"frame_{i:06d}", np.zeros((4, 5, 3), np.uint8)) for i in range(5))
    gallery, archive, count = pipeline.many_images(
        frames, 5, "semantic", 0.5, 1.0, _recorder([]), video_fps=5.0
    )
    assert count == 5 and segmenter.batches == [4, 1]
    with zipfile.ZipFile(archive) as download:
        download.extract("overlay.mp4", tmp_path / "out")
        first = np.asarray(Image.open(download.open("overlays/frame_000000.png")))
    video = cv2.VideoCapture(str(tmp_path / "out" / "overlay.mp4"))
    assert int(video.get(cv2.CAP_PROP_FRAME_COUNT)) == 5
    video.release()
    # The overlay, at the frame's size, is drawn over the black frame.
    assert first.shape == (4, 5, 3) and first.max() > 0
