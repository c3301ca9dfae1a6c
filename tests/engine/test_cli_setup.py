import logging

import pytest
import torch

from mask2former.config import get_cfg
from mask2former.engine.defaults import default_argument_parser, default_setup
from mask2former.engine.launch import launch, launched_by_torchrun


def test_parser_accepts_detectron2_flags_and_trailing_overrides():
    args = default_argument_parser().parse_args(
        [
            "--config-file",
            "a.yaml",
            "--resume",
            "--num-gpus",
            "2",
            "--num-machines",
            "3",
            "--machine-rank",
            "1",
            "--dist-url",
            "tcp://10.0.0.1:1234",
            "SOLVER.BASE_LR",
            "0.5",
            "OUTPUT_DIR",
            "x",
        ]
    )
    assert args.config_file == "a.yaml" and args.resume and not args.eval_only
    assert (args.num_gpus, args.num_machines, args.machine_rank) == (2, 3, 1)
    assert args.dist_url == "tcp://10.0.0.1:1234"
    assert args.opts == ["SOLVER.BASE_LR", "0.5", "OUTPUT_DIR", "x"]
    assert default_argument_parser().parse_args(["--eval-only"]).eval_only


@pytest.fixture
def restore_loggers():
    """default_setup configures package loggers; put them back for the other tests."""
    loggers = [logging.getLogger(name) for name in ("mask2former", "fvcore")]
    saved = [(log.handlers[:], log.propagate, log.level) for log in loggers]
    yield
    for log, (handlers, propagate, level) in zip(loggers, saved):
        for handler in log.handlers:
            if handler not in handlers:
                handler.close()
        log.handlers[:] = handlers
        log.propagate, log.level = propagate, level


def test_default_setup_writes_config_log_and_seeds(tmp_path, restore_loggers):
    cfg = get_cfg()
    cfg.OUTPUT_DIR = str(tmp_path / "out")
    cfg.SEED = 5
    cfg.merge_from_list(["SOLVER.BASE_LR", "0.123"])
    args = default_argument_parser().parse_args([])
    default_setup(cfg, args)
    first = torch.rand(3)
    default_setup(cfg, args)
    assert torch.equal(torch.rand(3), first)  # SEED + rank seeds every generator
    saved = get_cfg()
    saved.merge_from_file(str(tmp_path / "out" / "config.yaml"))
    assert saved.SOLVER.BASE_LR == pytest.approx(0.123)
    logging.getLogger("mask2former.test").info("hello log file")
    for handler in logging.getLogger("mask2former").handlers:
        handler.flush()
    assert "hello log file" in (tmp_path / "out" / "log.txt").read_text()


def test_single_process_launch_runs_in_process_and_returns():
    assert launch(lambda x: x + 1, 1, args=(1,)) == 2


def test_torchrun_environment_is_detected(monkeypatch):
    for key in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR"):
        monkeypatch.delenv(key, raising=False)
    assert not launched_by_torchrun()
    env = {"RANK": "0", "WORLD_SIZE": "1", "LOCAL_RANK": "0", "MASTER_ADDR": "127.0.0.1"}
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert launched_by_torchrun()


def test_multi_machine_needs_an_explicit_url():
    with pytest.raises(ValueError, match="--dist-url"):
        launch(lambda: None, 1, num_machines=2, dist_url="auto")
