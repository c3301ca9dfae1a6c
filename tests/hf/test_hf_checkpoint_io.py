"""transformers' loading conventions in the transformers door: Hub ids through huggingface_hub's
cache (offline, from a cache built here; never the network), ``torch_dtype`` / ``dtype``,
``device_map``, and save_pretrained without the safetensors package (an ImportError saying
what to install, before anything is written, as transformers)."""

import hashlib
import os
import shutil
import subprocess
import sys

import pytest
import torch

from mask2former.hf import (
    Mask2FormerConfig,
    Mask2FormerForUniversalSegmentation,
    Mask2FormerImageProcessor,
)
from tests.cli_helpers import REPO_ROOT, cli_env
from tests.hf.tiny_hf_config import tiny_config_dict
from tests.optional import require_package

REPO_ID = "testorg/tiny-mask2former"
COMMIT = "0123456789abcdef0123456789abcdef01234567"
# Any attempt to reach a server fails at once instead of touching the network.
NO_NETWORK = {"HF_ENDPOINT": "http://127.0.0.1:9", "HF_HUB_DISABLE_TELEMETRY": "1"}


@pytest.fixture(scope="module")
def saved(tmp_path_factory):
    """(model, its save_pretrained folder, which also holds an image processor's)."""
    torch.manual_seed(0)
    model = Mask2FormerForUniversalSegmentation(Mask2FormerConfig(**tiny_config_dict())).eval()
    folder = tmp_path_factory.mktemp("saved")
    model.save_pretrained(folder)
    Mask2FormerImageProcessor(size={"shortest_edge": 96}).save_pretrained(folder)
    return model, folder


def _build_hub_cache(cache, folder) -> None:
    """huggingface_hub's cache layout: blobs named by content hash, a snapshot folder per
    commit whose files link to them, and refs/main naming the commit."""
    repo = cache / f"models--{REPO_ID.replace('/', '--')}"
    (repo / "blobs").mkdir(parents=True)
    (repo / "snapshots" / COMMIT).mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for name in os.listdir(folder):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        shutil.copyfile(folder / name, repo / "blobs" / digest)
        os.symlink(os.path.join("..", "..", "blobs", digest), repo / "snapshots" / COMMIT / name)


def _assert_same_weights(model, expected) -> None:
    got, want = model.state_dict(), expected.state_dict()
    assert got.keys() == want.keys()
    for name in want:
        torch.testing.assert_close(got[name], want[name], rtol=0, atol=0, msg=name)


def test_hub_id_loads_offline_from_the_cache(saved, tmp_path):
    """As a user runs it: HF_HUB_OFFLINE=1 and HF_HUB_CACHE set in the environment."""
    require_package("huggingface_hub")
    model, folder = saved
    _build_hub_cache(tmp_path / "hub", folder)
    out = tmp_path / "loaded.pt"
    script = (
        "import sys, torch; from mask2former.hf import Mask2FormerForUniversalSegmentation; "
        f"m = Mask2FormerForUniversalSegmentation.from_pretrained({REPO_ID!r}); "
        "torch.save(m.state_dict(), sys.argv[1])"
    )
    env = cli_env(HF_HUB_OFFLINE="1", HF_HUB_CACHE=str(tmp_path / "hub"), **NO_NETWORK)
    result = subprocess.run(
        [sys.executable, "-c", script, str(out)],
        cwd=REPO_ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    loaded = torch.load(out, weights_only=True)
    want = model.state_dict()
    assert loaded.keys() == want.keys()
    assert all(torch.equal(loaded[name], want[name]) for name in want)


def test_hub_id_with_cache_dir_and_local_files_only(saved, tmp_path, monkeypatch):
    require_package("huggingface_hub")
    for name, value in NO_NETWORK.items():
        monkeypatch.setenv(name, value)
    model, folder = saved
    _build_hub_cache(tmp_path / "hub", folder)
    loaded = Mask2FormerForUniversalSegmentation.from_pretrained(
        REPO_ID, cache_dir=str(tmp_path / "hub"), local_files_only=True, revision="main"
    )
    _assert_same_weights(loaded, model)
    assert not loaded.training
    hub = {"cache_dir": str(tmp_path / "hub"), "local_files_only": True}
    assert Mask2FormerConfig.from_pretrained(REPO_ID, **hub) == model.config
    processor = Mask2FormerImageProcessor.from_pretrained(REPO_ID, **hub)
    assert processor.to_dict() == Mask2FormerImageProcessor.from_pretrained(folder).to_dict()
    assert processor.size == {"shortest_edge": 96}

    with pytest.raises(FileNotFoundError, match="not-cached.*HF_HUB_OFFLINE"):
        Mask2FormerForUniversalSegmentation.from_pretrained(
            "testorg/not-cached", cache_dir=str(tmp_path / "hub"), local_files_only=True
        )


def test_missing_local_path_is_not_sent_to_the_hub(tmp_path):
    with pytest.raises(FileNotFoundError, match="not a directory.*Hub model id"):
        Mask2FormerForUniversalSegmentation.from_pretrained(str(tmp_path / "no" / "such"))


def test_hub_id_without_huggingface_hub_says_what_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "huggingface_hub", None)  # import raises ImportError
    with pytest.raises(ImportError, match="pip install huggingface_hub"):
        Mask2FormerForUniversalSegmentation.from_pretrained(REPO_ID)


@pytest.mark.parametrize(
    "kwargs, dtype",
    [
        ({}, torch.float32),
        ({"torch_dtype": torch.bfloat16}, torch.bfloat16),
        ({"torch_dtype": "float16"}, torch.float16),
        ({"dtype": torch.bfloat16}, torch.bfloat16),  # transformers 5's name
        ({"torch_dtype": "auto"}, torch.float32),  # the checkpoint's dtype
    ],
)
def test_torch_dtype(saved, kwargs, dtype):
    model, folder = saved
    loaded = Mask2FormerForUniversalSegmentation.from_pretrained(folder, **kwargs)
    assert {p.dtype for p in loaded.parameters()} == {dtype}
    assert not hasattr(loaded.config, "torch_dtype")  # a loading keyword, not a config field
    first = next(iter(model.state_dict()))
    torch.testing.assert_close(loaded.state_dict()[first], model.state_dict()[first].to(dtype))


def test_torch_dtype_auto_reads_the_config_then_the_weights(saved, tmp_path):
    model, folder = saved
    model.to(torch.bfloat16).save_pretrained(tmp_path / "bf16")
    model.float()
    auto = Mask2FormerForUniversalSegmentation.from_pretrained(
        tmp_path / "bf16", torch_dtype="auto"
    )
    assert {p.dtype for p in auto.parameters()} == {torch.bfloat16}
    # A transformers-written config.json names the dtype; "auto" follows it.
    config = Mask2FormerConfig.from_pretrained(folder, torch_dtype="float16")
    auto = Mask2FormerForUniversalSegmentation.from_pretrained(
        folder, config=config, torch_dtype="auto"
    )
    assert {p.dtype for p in auto.parameters()} == {torch.float16}


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"torch_dtype": "float33"}, "torch_dtype: expected"),
        ({"torch_dtype": torch.float16, "dtype": torch.float16}, "not both"),
        ({"device_map": "auto"}, "device_map='auto' lets accelerate split"),
        ({"device_map": {"backbone": "cpu", "sem_seg_head": "cpu"}}, "per-module map"),
        ({"device_map": "nowhere"}, "device_map: expected a device"),
    ],
)
def test_unsupported_loading_keywords_are_refused(saved, kwargs, match):
    with pytest.raises(ValueError, match=match):
        Mask2FormerForUniversalSegmentation.from_pretrained(saved[1], **kwargs)


@pytest.mark.parametrize("device_map", ["cpu", {"": "cpu"}, torch.device("cpu")])
def test_single_device_map(saved, device_map):
    loaded = Mask2FormerForUniversalSegmentation.from_pretrained(saved[1], device_map=device_map)
    assert {p.device.type for p in loaded.parameters()} == {"cpu"}


def test_save_pretrained_without_safetensors(saved, tmp_path, monkeypatch):
    model, _ = saved
    monkeypatch.setitem(sys.modules, "safetensors", None)
    monkeypatch.setitem(sys.modules, "safetensors.torch", None)
    with pytest.raises(ImportError, match="pip install safetensors.*safe_serialization=False"):
        model.save_pretrained(tmp_path / "safe")
    assert not (tmp_path / "safe").exists()  # nothing half-written

    model.save_pretrained(tmp_path / "bin", safe_serialization=False)
    assert sorted(os.listdir(tmp_path / "bin")) == ["config.json", "pytorch_model.bin"]
    _assert_same_weights(
        Mask2FormerForUniversalSegmentation.from_pretrained(tmp_path / "bin"), model
    )
