"""Bad inputs that no other test feeds (issue 12, "a separate list of bad inputs that the
project has not seen"): each ends in a clear error naming the culprit, through the Python API
(exception type and words) and through the command line (exit status and last line)."""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from mask2former.checkpoint.file_io import read_checkpoint
from mask2former.config import ConfigError, get_cfg
from mask2former.data.datasets import load_coco_json
from mask2former.data.datasets.demo_files import generate_demo_dataset
from mask2former.data.detection_utils import read_image
from mask2former.predictor import Predictor
from tests.cli_helpers import start_cli
from tests.tiny_config import BASE_CONFIG, ensure_tiny_metadata, tiny_cfg, tiny_opts

# --------------------------------------------------------------------------- bad files


def _yaml_base_is_a_directory(tmp: Path) -> Path:
    (tmp / "configs").mkdir()
    path = tmp / "child.yaml"
    path.write_text("_BASE_: configs\nSEED: 1\n")
    return path


def _yaml_not_utf8(tmp: Path) -> Path:
    path = tmp / "latin1.yaml"
    path.write_bytes("SEED: 1\nOUTPUT_DIR: ./caf\xe9\n".encode("latin-1"))
    return path


def _yaml_scalar_for_a_section(tmp: Path) -> Path:
    path = tmp / "section.yaml"
    path.write_text("SOLVER: 0.01\n")
    return path


def _yaml_str_for_a_list(tmp: Path) -> Path:
    path = tmp / "datasets.yaml"
    path.write_text("DATASETS:\n  TRAIN: coco_2017_train_panoptic\n")
    return path


def _weights_that_are_json(tmp: Path) -> Path:
    path = tmp / "model_final.pth"
    path.write_text(json.dumps({"model": {"backbone.conv1.weight": [0.1, 0.2]}}))
    return path


def _empty_image(tmp: Path) -> Path:
    path = tmp / "empty.jpg"
    path.touch()
    return path


def _video_as_image(tmp: Path) -> Path:
    path = tmp / "clip.mp4"
    path.write_bytes(b"\x00\x00\x00\x18ftypmp42\x00\x00\x00\x00mp42isom" + bytes(64))
    return path


# ------------------------------------------------------------------------------ Python API
def _config_error(make: Callable[[Path], Path]) -> Callable[[Path], None]:
    return lambda tmp: get_cfg().merge_from_file(str(make(tmp)))


_API_CASES = [
    (
        "yaml _BASE_ is a directory",
        _config_error(_yaml_base_is_a_directory),
        IsADirectoryError,
        ["child.yaml", "_BASE_", "configs, which is a directory; expected a YAML file"],
    ),
    (
        "config file is a directory",
        lambda tmp: get_cfg().merge_from_file(str(tmp)),
        IsADirectoryError,
        ["is a directory; expected a YAML file"],
    ),
    (
        "yaml not UTF-8",
        _config_error(_yaml_not_utf8),
        ConfigError,
        ["latin1.yaml, line 2: byte 0xe9 is not UTF-8", "save the file as UTF-8"],
    ),
    (
        "number for a config section",
        _config_error(_yaml_scalar_for_a_section),
        ConfigError,
        ["Config key SOLVER is a section with keys", "got 0.01, a float", "SOLVER.AMP"],
    ),
    (
        "str for a list-valued key",
        _config_error(_yaml_str_for_a_list),
        ConfigError,
        ["DATASETS.TRAIN expects a tuple", "got 'coco_2017_train_panoptic', a str"],
    ),
    (
        "weights file that is JSON",
        lambda tmp: read_checkpoint(str(_weights_that_are_json(tmp))),
        ValueError,
        ["model_final.pth", "is not a checkpoint: it holds JSON text"],
    ),
    (
        "zero-byte image",
        lambda tmp: read_image(str(_empty_image(tmp)), "RGB"),
        OSError,
        ["empty.jpg", "the file is empty (0 bytes)"],
    ),
    (
        "video given as an image",
        lambda tmp: read_image(str(_video_as_image(tmp)), "RGB"),
        OSError,
        ["clip.mp4", "it is a video", "--video-input"],
    ),
    (
        "negative test size",
        lambda tmp: Predictor(tiny_cfg(**{"INPUT.MIN_SIZE_TEST": -1})),
        ValueError,
        ["short_edge_length (-1, -1) must be >= 0", "INPUT.MIN_SIZE_TRAIN / MIN_SIZE_TEST"],
    ),
    (
        "zero object queries",
        lambda tmp: Predictor(tiny_cfg(**{"MODEL.MASK_FORMER.NUM_OBJECT_QUERIES": 0})),
        ValueError,
        ["num_queries 0 (MODEL.MASK_FORMER.NUM_OBJECT_QUERIES)", "must be at least 1"],
    ),
    (
        "negative detections per image",
        lambda tmp: Predictor(tiny_cfg(**{"TEST.DETECTIONS_PER_IMAGE": -1})),
        ValueError,
        ["test_topk_per_image -1 (TEST.DETECTIONS_PER_IMAGE)"],
    ),
]


@pytest.mark.parametrize(
    ("make_error", "error_type", "words"),
    [case[1:] for case in _API_CASES],
    ids=[case[0] for case in _API_CASES],
)
def test_python_api_names_the_culprit(tmp_path, make_error, error_type, words):
    ensure_tiny_metadata()
    with pytest.raises(error_type) as info:
        make_error(tmp_path)
    message = str(info.value)
    for word in words:
        assert word in message, message


@pytest.fixture(scope="module")
def coco_instances(tmp_path_factory) -> dict:
    root = tmp_path_factory.mktemp("unseen") / "demo_shapes"
    generate_demo_dataset(str(root), num_train=1, num_val=1)
    return json.loads((root / "annotations" / "instances_train.json").read_text())


def _set_segmentation(value):
    return lambda data: data["annotations"][0].__setitem__("segmentation", value)


_COCO_CASES = [
    (
        "segmentation a flat list",
        _set_segmentation([10.0, 10.0, 20.0, 10.0, 20.0, 20.0]),
        "segmentation is a list of 6; expected polygons",
    ),
    ("segmentation a number", _set_segmentation(7), "segmentation is 7 (int); expected polygons"),
    (
        "RLE of another size",
        _set_segmentation({"size": [3, 3], "counts": "abc"}),
        "RLE segmentation with size [3, 3]",
    ),
    (
        "bbox of two numbers",
        lambda data: data["annotations"][0].__setitem__("bbox", [1, 2]),
        "bbox is a list of 2; expected [x, y, w, h]",
    ),
    (
        "negative image width",
        lambda data: data["images"][0].__setitem__("width", -5),
        "has width -5; expected a positive integer",
    ),
    (
        "annotations not a list",
        lambda data: data.__setitem__("annotations", {"0": {}}),
        "'annotations' is a dict of 1; expected a list",
    ),
    (
        "annotation without image_id",
        lambda data: data["annotations"][0].pop("image_id"),
        "an annotation lacks 'image_id'",
    ),
]


@pytest.mark.parametrize(
    ("mutate", "words"), [case[1:] for case in _COCO_CASES], ids=[c[0] for c in _COCO_CASES]
)
def test_malformed_coco_json_names_file_and_entry(tmp_path, coco_instances, mutate, words):
    data = copy.deepcopy(coco_instances)
    mutate(data)
    path = tmp_path / "instances.json"
    path.write_text(json.dumps(data))
    with pytest.raises(ValueError) as info:
        load_coco_json(str(path), str(tmp_path))
    message = str(info.value)
    assert message.startswith(str(path)) and words in message, message


# ---------------------------------------------------------------------------- command line
_CLI_CASES = [
    ("config file is a directory", lambda tmp: ["--config-file", str(tmp)], "is a directory"),
    (
        "yaml not UTF-8",
        lambda tmp: ["--config-file", str(_yaml_not_utf8(tmp))],
        "ConfigError: Config file",
    ),
    (
        "str for a list-valued key",
        lambda tmp: ["--config-file", BASE_CONFIG, "DATASETS.TEST", "coco_2017_val_panoptic"],
        "DATASETS.TEST expects a tuple",
    ),
    (
        "weights file that is JSON",
        lambda tmp: [
            "--config-file",
            BASE_CONFIG,
            "--eval-only",
            *tiny_opts(**{"MODEL.WEIGHTS": str(_weights_that_are_json(tmp))}),
        ],  # fmt: skip
        "is not a checkpoint: it holds JSON text",
    ),
    (
        "negative test size",
        lambda tmp: [
            "--config-file",
            BASE_CONFIG,
            "--eval-only",
            *tiny_opts(**{"INPUT.MIN_SIZE_TEST": -1, "OUTPUT_DIR": str(tmp / "out")}),
        ],  # fmt: skip
        "short_edge_length (-1, -1) must be >= 0",
    ),
]


@pytest.mark.slow
def test_command_line_ends_with_the_culprit(tmp_path):
    # Started together (each run imports torch), then collected.
    runs = []
    for index, (name, make_args, words) in enumerate(_CLI_CASES):
        case_dir = tmp_path / f"case{index}"
        case_dir.mkdir()
        args = [*make_args(case_dir), "OUTPUT_DIR", str(case_dir / "out")]
        env = {"DETECTRON2_DATASETS": str(tmp_path / "datasets")}
        runs.append((name, words, start_cli("tools/train_net.py", args, **env)))
    for name, words, process in runs:
        output, _ = process.communicate(timeout=600)
        last_line = output.strip().splitlines()[-2]  # the last is the traceback hint
        assert process.returncode == 1, (name, output[-2000:])
        assert last_line.startswith("Error: ") and words in last_line, (name, output[-2000:])
        assert "Traceback" not in output, (name, output[-2000:])
