"""The web demo in a real browser: ``demo/app.py`` served on 127.0.0.1, driven by headless
Chromium (Debian's ``chromium`` package) through Playwright, as a person would use it.

The model is the tiny test config with seeded random weights; the test lowers the page's
score threshold so that such a model's segments are kept.
"""

from __future__ import annotations

import io
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request

import numpy as np
import pytest
import torch
from PIL import Image

from mask2former.modeling import build_model
from tests.cli_helpers import REPO_ROOT, cli_env
from tests.optional import require_package
from tests.tiny_config import BASE_CONFIG, tiny_cfg, tiny_opts

require_package("gradio")
sync_api = require_package("playwright.sync_api", "playwright")

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
if CHROMIUM is None:
    pytest.skip(
        "no Chromium browser on PATH: install Debian's package (apt-get install -y chromium), "
        "as .ci/run does where apt is usable",
        allow_module_level=True,
    )

DEMO_CLASSES = {"circle", "square", "triangle", "sky", "ground"}
SERVER_START_S = 180
WAIT_MS = 90_000


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _wait_until_serving(url: str, process: subprocess.Popen, log_path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"demo/app.py exited with {process.returncode}:\n{log_path.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=5):
                return
        except (urllib.error.URLError, ConnectionError, TimeoutError):
            time.sleep(0.5)
    pytest.fail(f"demo/app.py did not serve {url} in {SERVER_START_S} s:\n{log_path.read_text()}")


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """``python demo/app.py`` on a free port with the tiny model; yields (url, tmp folder)."""
    root = tmp_path_factory.mktemp("web_demo")
    torch.manual_seed(0)
    weights = root / "tiny.pth"
    torch.save({"model": build_model(tiny_cfg()).state_dict()}, weights)
    port = _free_port()
    args = ["--config-file", BASE_CONFIG, "--port", str(port)]
    args += ["--examples-dir", str(root / "examples")]
    args += ["--opts", *tiny_opts(**{"MODEL.WEIGHTS": str(weights)})]
    # The PyTorch MSDeformAttn path: the compiled kernels have their own tests, and their
    # first-use build would dominate this test's time.
    env = cli_env(MASK2FORMER_MSDA_BACKEND="pytorch", DETECTRON2_DATASETS=str(root / "data"))
    log_path = root / "server.log"
    with open(log_path, "w") as log:  # a file, not a pipe: a full pipe would stall the server
        process = subprocess.Popen(
            [sys.executable, os.path.join(REPO_ROOT, "demo", "app.py"), *args],
            cwd=root,
            env=env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    url = f"http://127.0.0.1:{port}/"
    try:
        _wait_until_serving(url, process, log_path)
        yield url, root
    finally:
        process.terminate()
        process.wait(timeout=30)


def _table_rows(page) -> list[list[str]]:
    """The segment table's body rows as the page shows them (ARIA grid roles)."""
    rows = page.locator("#segments").get_by_role("row").filter(has=page.get_by_role("gridcell"))
    return [
        [text.strip() for text in row.get_by_role("gridcell").all_inner_texts()]
        for row in rows.all()
    ]


def _overlay(page) -> np.ndarray:
    source = page.locator("#overlay img").get_attribute("src")
    return np.asarray(Image.open(io.BytesIO(page.request.get(source).body())).convert("RGB"))


def _wait_for_status(page, text: str) -> str:
    status = page.locator("#image-status")
    status.filter(has_text=text).wait_for(timeout=WAIT_MS)
    return status.inner_text()


def _upload(page, path) -> None:
    """Put ``path`` into the image box, first clearing what it holds (as a person would)."""
    box = page.locator("#image-upload")
    clear = box.get_by_role("button", name="Clear")
    if clear.count():
        clear.click()
    box.locator("input[type=file]").set_input_files(str(path))


def test_page_segments_an_upload_switches_tasks_and_survives_a_corrupt_file(server, tmp_path):
    url, root = server
    example = sorted((root / "examples").rglob("images/val/*.png"))[0]
    original = np.asarray(Image.open(example).convert("RGB"))
    corrupt = tmp_path / "corrupt.png"
    corrupt.write_bytes(b"\x89PNG\r\n\x1a\n" + b"not really a png" * 8)

    with sync_api.sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 1000})
            page.goto(url)
            threshold = page.locator("#threshold input[type=number]")
            threshold.fill("0.1")
            threshold.press("Enter")

            _upload(page, example)
            _wait_for_status(page, "panoptic segment(s) in '000000.png'")
            panoptic_rows = _table_rows(page)
            assert panoptic_rows, "the table lists no panoptic segment"
            assert {row[0] for row in panoptic_rows} <= DEMO_CLASSES
            assert all(int(row[2]) > 0 for row in panoptic_rows)
            panoptic_overlay = _overlay(page)
            assert panoptic_overlay.shape == original.shape
            assert np.abs(panoptic_overlay.astype(int) - original).mean() > 1.0

            page.locator("#task").get_by_text("instance", exact=True).click()
            _wait_for_status(page, "instance segment(s)")
            instance_rows = _table_rows(page)
            assert instance_rows, "the table lists no instance"
            assert {row[0] for row in instance_rows} <= {"circle", "square", "triangle"}
            assert all(float(row[1]) >= 0.1 for row in instance_rows)
            assert not np.array_equal(_overlay(page), panoptic_overlay)

            page.locator("#task").get_by_text("semantic", exact=True).click()
            _wait_for_status(page, "semantic segment(s)")
            semantic_rows = _table_rows(page)
            assert (
                sum(int(row[2]) for row in semantic_rows) == original.shape[0] * original.shape[1]
            )

            _upload(page, corrupt)
            error = page.get_by_text("'corrupt.png' could not be read as an image")
            error.first.wait_for(timeout=WAIT_MS)
            assert "Traceback" not in page.content()

            # The server still serves: the next upload is segmented.
            second = sorted((root / "examples").rglob("images/val/*.png"))[1]
            _upload(page, second)
            _wait_for_status(page, f"semantic segment(s) in '{second.name}'")
            assert _table_rows(page)
            page.screenshot(path=str(tmp_path / "web_demo.png"), full_page=True)
        finally:
            browser.close()
    assert (tmp_path / "web_demo.png").stat().st_size > 0
