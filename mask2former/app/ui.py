"""The web demo page (gradio): one image with a table of segments, or a folder / short video
with the results as a download.

Controls shared by both tabs: the task (panoptic / instance / semantic), the score threshold
(panoptic: the minimum class probability of a kept query; instance: the minimum instance
score) and the overlay opacity. Changing any of them, or the image, redraws at once; the
network runs again only when the image or the threshold changes.
"""

from __future__ import annotations

import functools
import importlib
import logging
import tempfile
from collections.abc import Callable, Sequence
from types import ModuleType
from typing import TYPE_CHECKING, Any

from mask2former.app.inputs import (
    IMAGE_EXTENSIONS,
    InputError,
    InputLimits,
    display_name,
    video_frames,
)
from mask2former.app.pipeline import Pipeline, folder_images
from mask2former.app.results import PAGE_TASKS, TABLE_HEADERS
from mask2former.app.segmenter import Segmenter

if TYPE_CHECKING:
    import gradio

logger = logging.getLogger(__name__)

__all__ = ["build_app", "require_gradio"]


def require_gradio() -> ModuleType:
    """The ``gradio`` module (the optional ``app`` extra).

    Raises:
        ModuleNotFoundError: gradio is not installed; the message says how to install it.
    """
    try:
        return importlib.import_module("gradio")
    except ModuleNotFoundError as e:
        raise ModuleNotFoundError(
            f'the web demo needs gradio ({e}): pip install "mask2former[app]"', name="gradio"
        ) from e


def _readable_errors(gr: ModuleType, handler: Callable) -> Callable:
    """Show the errors a person can cause as a message on the page (``gr.Error``)."""

    @functools.wraps(handler)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return handler(*args, **kwargs)
        except (InputError, ValueError) as e:
            logger.info("Shown on the page: %s", e)
            raise gr.Error(str(e)) from e

    return wrapper


def build_app(
    segmenter: Segmenter,
    *,
    limits: InputLimits | None = None,
    examples: Sequence[str] = (),
    batch_size: int = 4,
    score_threshold: float | None = None,
    work_root: str | None = None,
) -> gradio.Blocks:
    """The demo page for ``segmenter``.

    Args:
        segmenter: the model.
        limits: largest image, video length and folder size accepted.
        examples: paths of example images offered under the upload box.
        batch_size: images per forward pass in the folder / video tab.
        score_threshold: the threshold's start value (default: the model's own).
        work_root: folder for the downloads (default: a new temporary folder).
    """
    gr = require_gradio()
    limits = limits or InputLimits()
    work_root = work_root or tempfile.mkdtemp(prefix="mask2former-app-")
    pipeline = Pipeline(segmenter, limits, batch_size, work_root)
    threshold_start = segmenter.default_threshold if score_threshold is None else score_threshold

    @functools.partial(_readable_errors, gr)
    def run_image(path, task, threshold, opacity):
        if path is None:  # a control moved before any upload (or a stale event): keep the page
            return gr.update(), gr.update(), gr.update()
        return pipeline.one_image(path, task, threshold, opacity)

    @functools.partial(_readable_errors, gr)
    def run_folder(paths, task, threshold, opacity, progress=gr.Progress()):  # noqa: B008
        if not paths:
            raise InputError("Upload a folder of images first.")
        if len(paths) > limits.max_files:
            raise InputError(
                f"the folder has {len(paths)} files; this demo takes at most {limits.max_files}"
            )
        skipped: list[str] = []
        images = folder_images(paths, limits, skipped)
        gallery, archive, count = pipeline.many_images(
            images, len(paths), task, threshold, opacity, progress
        )
        if count == 0:
            raise InputError(
                f"no image in the folder could be used ({'; '.join(skipped)}); accepted: "
                f"{', '.join(IMAGE_EXTENSIONS)}"
            )
        status = f"{count} image(s) segmented."
        if skipped:
            status += f" Skipped {len(skipped)}: " + "; ".join(skipped)
        return gallery, archive, status

    @functools.partial(_readable_errors, gr)
    def run_video(path, task, threshold, opacity, progress=gr.Progress()):  # noqa: B008
        if path is None:
            raise InputError("Upload a video first.")
        frames, total, fps = video_frames(path, limits)
        numbered = ((f"frame_{i:06d}", frame) for i, frame in enumerate(frames))
        gallery, archive, count = pipeline.many_images(
            numbered, total, task, threshold, opacity, progress, video_fps=fps
        )
        return gallery, archive, f"{count} frame(s) of '{display_name(path)}' segmented."

    # No usage statistics leave the machine: the demo is meant to run offline.
    with gr.Blocks(title="Mask2Former demo", analytics_enabled=False) as app:
        gr.Markdown(f"# Mask2Former\n{segmenter.description}")
        with gr.Row():
            task = gr.Radio(list(PAGE_TASKS), value="panoptic", label="Task", elem_id="task")
            threshold = gr.Slider(
                0.0,
                1.0,
                value=threshold_start,
                step=0.01,
                label="Score threshold",
                elem_id="threshold",
            )
            opacity = gr.Slider(0.0, 1.0, value=0.5, step=0.05, label="Overlay opacity")
        controls = [task, threshold, opacity]
        with gr.Tab("Image"):
            with gr.Row():
                with gr.Column():
                    image_file = gr.File(
                        label="Image", file_count="single", type="filepath", elem_id="image-upload"
                    )
                    if examples:
                        gr.Examples([[path] for path in examples], [image_file], label="Examples")
                    image_status = gr.Markdown(elem_id="image-status")
                with gr.Column():
                    # PNG keeps the segment edges and label text exact (the default is lossy WebP).
                    overlay = gr.Image(
                        label="Segments", type="numpy", format="png", elem_id="overlay"
                    )
            table = gr.Dataframe(
                headers=TABLE_HEADERS, interactive=False, label="Segments", elem_id="segments"
            )
            image_outputs = [overlay, table, image_status]
            for trigger in (image_file.change, task.change, threshold.change, opacity.change):
                trigger(run_image, [image_file, *controls], image_outputs)
            image_file.clear(lambda: (None, [], ""), None, image_outputs)
        with gr.Tab("Folder or video"):
            with gr.Row():
                folder = gr.File(
                    label="A folder of images", file_count="directory", elem_id="folder-upload"
                )
                video = gr.File(
                    label="A short video",
                    file_count="single",
                    type="filepath",
                    elem_id="video-upload",
                )
            with gr.Row():
                folder_button = gr.Button("Segment the folder")
                video_button = gr.Button("Segment the video")
            batch_status = gr.Markdown(elem_id="batch-status")
            gallery = gr.Gallery(label="Overlays (first images)", columns=4)
            archive = gr.File(
                label="Download: overlays, PNG masks and COCO JSON", elem_id="download"
            )
            batch_outputs = [gallery, archive, batch_status]
            folder_button.click(run_folder, [folder, *controls], batch_outputs)
            video_button.click(run_video, [video, *controls], batch_outputs)
    return app
