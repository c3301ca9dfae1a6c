"""The training CLI on bad input ends with a non-zero exit and the error as its last lines;
MODEL.DEVICE "cuda" on a CPU-only machine runs on the CPU (issue 12, item 1)."""

from __future__ import annotations

import logging

import pytest
import torch

import mask2former.utils.device as device_module
from mask2former.data.datasets.demo_files import generate_demo_dataset
from mask2former.engine import cli
from mask2former.utils.device import resolve_device
from tests.cli_helpers import start_cli
from tests.tiny_config import BASE_CONFIG, tiny_opts

no_cuda = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def _last_lines(text: str, count: int = 2) -> str:
    return "\n".join(text.strip().splitlines()[-count:])


def _main_fails(capsys, argv: list[str]) -> str:
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 1
    return _last_lines(capsys.readouterr().err)


def test_unknown_key_exits_non_zero_with_the_message_last(tmp_path):
    args = ["--config-file", BASE_CONFIG, *tiny_opts(OUTPUT_DIR=str(tmp_path))]
    args += ["SOLVER.BASE_LRR", "0.1"]
    process = start_cli("tools/train_net.py", args)
    output, _ = process.communicate(timeout=300)
    assert process.returncode == 1
    last = _last_lines(output)
    assert "ConfigKeyError: Config key 'SOLVER.BASE_LRR' does not exist" in last
    assert "Did you mean SOLVER.BASE_LR" in last and "MASK2FORMER_TRACEBACK=1" in last
    assert "Traceback" not in output


def test_yaml_syntax_error_on_the_command_line(tmp_path, capsys):
    path = tmp_path / "broken.yaml"
    path.write_text(f"_BASE_: {BASE_CONFIG}\nSOLVER: [1,\n")
    last = _main_fails(capsys, ["--config-file", str(path)])
    assert f"Error: ConfigError: Config file {path}" in last and "invalid YAML" in last


def test_missing_weights_on_the_command_line(tmp_path, capsys):
    weights = str(tmp_path / "model_final.pth")
    argv = ["--config-file", BASE_CONFIG, "--eval-only"]
    argv += tiny_opts(OUTPUT_DIR=str(tmp_path / "out"), **{"MODEL.WEIGHTS": weights})
    last = _main_fails(capsys, argv)
    assert f"Error: FileNotFoundError: Checkpoint file {weights} does not exist." in last


def test_corrupt_weights_on_the_command_line(tmp_path, capsys):
    weights = tmp_path / "model_final.pth"
    weights.write_bytes(b"PK\x03\x04 not really a zip archive")
    argv = ["--config-file", BASE_CONFIG, "--eval-only"]
    argv += tiny_opts(OUTPUT_DIR=str(tmp_path / "out"), **{"MODEL.WEIGHTS": str(weights)})
    last = _main_fails(capsys, argv)
    assert f"Error: ValueError: {weights}" in last and "truncated or corrupt" in last


def test_absent_cuda_index_is_a_clear_error(tmp_path, capsys):
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    argv = ["--config-file", BASE_CONFIG]
    argv += tiny_opts(OUTPUT_DIR=str(tmp_path), **{"MODEL.DEVICE": f"cuda:{count + 2}"})
    last = _main_fails(capsys, argv)
    assert f"MODEL.DEVICE='cuda:{count + 2}' does not exist: this machine has" in last


def test_not_a_device_names_the_setting():
    with pytest.raises(ValueError, match="MODEL.DEVICE='gpu' is not a device"):
        resolve_device("gpu")


@no_cuda
def test_plain_cuda_falls_back_to_cpu_with_one_warning(monkeypatch):
    monkeypatch.setattr(device_module, "_warned", set())
    # Own handler: the CLI's logging set-up may stop propagation to pytest's root handler.
    records: list[logging.LogRecord] = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = records.append
    device_logger = logging.getLogger("mask2former.utils.device")
    device_logger.addHandler(handler)
    try:
        assert resolve_device("cuda") == torch.device("cpu")
        assert resolve_device("cuda") == torch.device("cpu")
    finally:
        device_logger.removeHandler(handler)
    assert len(records) == 1
    message = records[0].getMessage()
    assert "'cuda' but CUDA is not available" in message and "on the CPU" in message


@no_cuda
def test_original_device_and_eval_only_without_weights_run_with_loud_warnings(tmp_path):
    """An original config (MODEL.DEVICE cuda) evaluates on the CPU; no weights is loud."""
    data_root = tmp_path / "datasets"
    generate_demo_dataset(str(data_root / "demo_shapes"), num_train=1, num_val=2)
    opts = tiny_opts(OUTPUT_DIR=str(tmp_path / "out"), **{"MODEL.DEVICE": "cuda"})
    args = ["--config-file", BASE_CONFIG, "--eval-only", *opts]
    process = start_cli("tools/train_net.py", args, DETECTRON2_DATASETS=str(data_root))
    output, _ = process.communicate(timeout=600)
    assert process.returncode == 0, output[-3000:]
    assert output.count("CUDA is not available on this machine; running on the CPU") == 1
    assert "EVALUATING A RANDOMLY INITIALISED MODEL" in output
    assert (tmp_path / "out" / "eval_results.json").is_file()
