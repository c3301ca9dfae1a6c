"""The web demo's work, independent of the page's widgets: one image -> overlay, table and
status line; many images (a folder, a video's frames) -> batched predictions, a gallery and a
zip of overlays, PNG masks and COCO JSON."""

from __future__ import annotations

import functools
import os
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import Any

import cv2
import numpy as np

from mask2former.app.inputs import InputError, InputLimits, display_name, read_uploaded_image
from mask2former.app.results import ExportWriter, filter_instances, render, segment_rows
from mask2former.app.segmenter import Segmenter

__all__ = ["GALLERY_SIZE", "Pipeline", "folder_images"]

GALLERY_SIZE = 12
# progress((done, total), desc=..., unit=...) as gradio's gr.Progress takes it.
Progress = Callable[..., Any]


def _batches(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    batch: list[Any] = []
    for item in items:
        batch.append(item)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _video_writer(folder: str, shape: Sequence[int], fps: float) -> cv2.VideoWriter:
    path = os.path.join(folder, "overlay.mp4")
    video = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*"mp4v"), fps, (shape[1], shape[0]))
    if not video.isOpened():
        raise OSError(f"cv2.VideoWriter cannot write {path}")
    return video


def folder_images(
    paths: Sequence[str], limits: InputLimits, skipped: list[str]
) -> Iterator[tuple[str, np.ndarray]]:
    """Readable images of an uploaded folder as (unique file stem, RGB image); the others are
    reported in ``skipped`` (one readable reason each) and left out."""
    stems: set[str] = set()
    for path in paths:
        stem = os.path.splitext(os.path.basename(path))[0]
        try:
            image = read_uploaded_image(path, limits)
        except InputError as e:
            skipped.append(str(e))
            continue
        unique, n = stem, 1
        while unique in stems:
            unique, n = f"{stem}_{n}", n + 1
        stems.add(unique)
        yield unique, image


class Pipeline:
    """Runs a segmenter for the page (one instance per app).

    Args:
        segmenter: the model.
        limits: what uploads may be.
        batch_size: images per forward pass for many images.
        work_root: folder under which each run of many images writes its download.
    """

    def __init__(
        self, segmenter: Segmenter, limits: InputLimits, batch_size: int, work_root: str
    ) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.segmenter = segmenter
        self.limits = limits
        self.batch_size = batch_size
        self.work_root = work_root
        # Task and opacity changes redraw the last image's predictions without the network;
        # one entry only, since full-resolution masks of a large image take gigabytes.
        self._predict_file = functools.lru_cache(maxsize=1)(self._read_and_predict)

    def _read_and_predict(self, path: str, threshold: float) -> tuple[np.ndarray, dict]:
        image = read_uploaded_image(path, self.limits)
        return image, self.segmenter.predict([image], threshold)[0]

    def one_image(
        self, path: str, task: str, threshold: float, opacity: float
    ) -> tuple[np.ndarray, list[list], str]:
        """(overlay (H, W, 3) uint8 RGB, table rows, status line) of an uploaded image file."""
        start = time.perf_counter()
        image, predictions = self._predict_file(path, float(threshold))
        predictions = filter_instances(predictions, threshold)
        overlay = render(image, predictions, task, self.segmenter.metadata, opacity)
        rows = segment_rows(predictions, task, self.segmenter.metadata)
        height, width = image.shape[:2]
        status = (
            f"{len(rows)} {task} segment(s) in '{display_name(path)}' ({width} x {height}) "
            f"in {time.perf_counter() - start:.2f} s"
        )
        return overlay, rows, status

    def many_images(
        self,
        images: Iterable[tuple[str, np.ndarray]],
        total: int,
        task: str,
        threshold: float,
        opacity: float,
        progress: Progress,
        video_fps: float | None = None,
    ) -> tuple[list[str], str, int]:
        """Segment ``(stem, RGB image)`` pairs in batches.

        Args:
            images: the images, named by the file stem they get in the download.
            total: how many to expect (for the progress bar).
            task, threshold, opacity: the page's controls.
            progress: called with ``(done, total)`` before the first and after each batch.
            video_fps: also write the overlays as ``overlay.mp4`` at this frame rate.

        Returns:
            (paths of the first overlays for a gallery, path of the zip, images segmented).
        """
        writer = ExportWriter(
            tempfile.mkdtemp(prefix="run-", dir=self.work_root), self.segmenter.metadata
        )
        video = None
        gallery: list[str] = []
        done = 0
        progress((0, total), desc="Segmenting", unit="images")
        for batch in _batches(images, self.batch_size):
            outputs = self.segmenter.predict([image for _, image in batch], threshold)
            for (stem, image), predictions in zip(batch, outputs):
                predictions = filter_instances(predictions, threshold)
                overlay = render(image, predictions, task, self.segmenter.metadata, opacity)
                path = writer.add(stem, overlay, predictions)
                if len(gallery) < GALLERY_SIZE:
                    gallery.append(path)
                if video_fps is not None:
                    video = video or _video_writer(writer.content_dir, image.shape, video_fps)
                    video.write(np.ascontiguousarray(overlay[:, :, ::-1]))
            done += len(batch)
            progress((done, max(total, done)), desc="Segmenting", unit="images")
        if video is not None:
            video.release()
        return gallery, writer.close(), done
