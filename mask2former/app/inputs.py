"""Read what a person uploads to the web demo, refusing bad files with a readable message.

Every refusal is an ``InputError`` whose text names the file (by the name the person gave it)
and says what was wrong and what is accepted; the page shows that text, never a traceback.
Bundled example images are generated from the demo dataset on first use.
"""

from __future__ import annotations

import logging
import os
import warnings
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import numpy as np
from filelock import FileLock
from PIL import Image, UnidentifiedImageError

from mask2former.data.datasets.demo_files import DONE_MARKER, generate_demo_dataset
from mask2former.data.detection_utils import read_image

logger = logging.getLogger(__name__)

__all__ = [
    "IMAGE_EXTENSIONS",
    "VIDEO_EXTENSIONS",
    "InputError",
    "InputLimits",
    "example_images",
    "read_uploaded_image",
    "video_frames",
]

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".tif", ".tiff", ".webp")
VIDEO_EXTENSIONS = (".mp4", ".avi", ".mov", ".mkv", ".webm")


class InputError(ValueError):
    """An upload the demo cannot use; the message is meant for the person who uploaded it."""


@dataclass(frozen=True)
class InputLimits:
    """What the demo accepts.

    Attributes:
        max_pixels: largest image or video frame (height * width); full-resolution masks cost
            about 4 bytes per pixel per query.
        max_video_frames: frames read from one video.
        max_files: images read from one folder.
    """

    max_pixels: int = 2048 * 2048
    max_video_frames: int = 300
    max_files: int = 200


def display_name(path: str, name: str | None = None) -> str:
    """The name to show for an upload: the person's own file name when known."""
    return name or os.path.basename(path)


def _check_pixels(height: int, width: int, what: str, limits: InputLimits) -> None:
    if height * width > limits.max_pixels:
        raise InputError(
            f"{what} is {width} x {height} pixels ({height * width / 1e6:.1f} MP); this demo "
            f"accepts at most {limits.max_pixels / 1e6:.1f} MP (--max-pixels). Downscale it "
            "and upload it again."
        )


def read_uploaded_image(path: str, limits: InputLimits, name: str | None = None) -> np.ndarray:
    """An uploaded image file as an (H, W, 3) uint8 RGB array.

    Raises:
        InputError: not an image file type, not decodable, or larger than ``max_pixels``.
    """
    shown = display_name(path, name)
    extension = os.path.splitext(shown)[1].lower()
    if extension not in IMAGE_EXTENSIONS:
        raise InputError(
            f"'{shown}' is not a supported image file; upload one of {', '.join(IMAGE_EXTENSIONS)}"
        )
    # The header gives the size without decoding, so a huge image is refused before it fills
    # the memory; PIL's own decompression-bomb guard is reported the same way.
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as header:
                width, height = header.size
    except (Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
        raise InputError(f"'{shown}' is too large to open safely ({e})") from e
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as e:
        raise InputError(f"'{shown}' could not be read as an image: the file is corrupt") from e
    _check_pixels(height, width, f"'{shown}'", limits)
    try:
        return read_image(path, format="RGB")
    except (OSError, ValueError) as e:
        raise InputError(f"'{shown}' could not be read as an image: the file is corrupt") from e


def video_frames(
    path: str, limits: InputLimits, name: str | None = None
) -> tuple[Iterator[np.ndarray], int, float]:
    """The RGB frames of an uploaded video (at most ``max_video_frames``).

    Returns:
        (iterator of (H, W, 3) uint8 RGB frames, number of frames to expect, frames/second).

    Raises:
        InputError: not a video file type, unreadable, or frames larger than ``max_pixels``.
    """
    shown = display_name(path, name)
    if os.path.splitext(shown)[1].lower() not in VIDEO_EXTENSIONS:
        raise InputError(
            f"'{shown}' is not a supported video file; upload one of {', '.join(VIDEO_EXTENSIONS)}"
        )
    capture = cv2.VideoCapture(path)
    ok, first = capture.read() if capture.isOpened() else (False, None)
    if not ok:
        capture.release()
        raise InputError(f"'{shown}' could not be read as a video: the file is corrupt")
    _check_pixels(first.shape[0], first.shape[1], f"A frame of '{shown}'", limits)
    count = int(capture.get(cv2.CAP_PROP_FRAME_COUNT)) or limits.max_video_frames
    fps = capture.get(cv2.CAP_PROP_FPS) or 10.0

    def frames() -> Iterator[np.ndarray]:
        try:
            frame, read = first, 1
            while True:
                yield np.ascontiguousarray(frame[:, :, ::-1])
                if read >= limits.max_video_frames:
                    return
                ok, frame = capture.read()
                if not ok:
                    return
                read += 1
        finally:
            capture.release()

    return frames(), min(count, limits.max_video_frames), float(fps)


def example_images(cache_dir: str, count: int = 4) -> list[str]:
    """Paths of ``count`` demo-dataset validation images, generated under ``cache_dir`` once."""
    root = os.path.join(os.path.abspath(cache_dir), "demo_shapes_examples")
    with FileLock(root + ".lock"):
        if not os.path.isfile(os.path.join(root, DONE_MARKER)):
            logger.info("Generating the demo's example images under %s", root)
            generate_demo_dataset(root, num_train=1, num_val=count)
    folder = os.path.join(root, "images", "val")
    return sorted(os.path.join(folder, name) for name in os.listdir(folder))[:count]
