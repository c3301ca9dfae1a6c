"""DetectionCheckpointer: round trips, atomic saves, resume, model-zoo formats, errors."""

import logging
import os
import pickle

import numpy as np
import pytest
import torch
from torch import nn

from mask2former.checkpoint import DetectionCheckpointer, resolve_weights_path


class _FrozenNorm(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        for name in ("weight", "bias", "running_mean", "running_var"):
            self.register_buffer(name, torch.rand(channels))


class _ConvNorm(nn.Conv2d):
    def __init__(self, cin: int, cout: int) -> None:
        super().__init__(cin, cout, 1, bias=False)
        self.norm = _FrozenNorm(cout)


class _Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv1, self.conv2, self.shortcut = _ConvNorm(4, 2), _ConvNorm(2, 4), _ConvNorm(4, 4)


class _Backbone(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Module()
        self.stem.conv1 = _ConvNorm(3, 4)
        self.res2 = nn.ModuleList([_Block()])


class _TinyModel(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.backbone = _Backbone()
        self.sem_seg_head = nn.Linear(4, 2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.sem_seg_head(self.backbone.stem.conv1(x).mean(dim=(2, 3)))


def _state_equal(a: nn.Module, b: nn.Module) -> bool:
    sa, sb = a.state_dict(), b.state_dict()
    return sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)


def _trained_setup(seed: int):
    torch.manual_seed(seed)
    model = _TinyModel()
    optimizer = torch.optim.AdamW(model.parameters(), lr=0.1)
    scheduler = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
    scaler = torch.amp.GradScaler("cpu", init_scale=8.0)
    model(torch.rand(2, 3, 4, 4)).sum().backward()
    optimizer.step()
    scheduler.step()
    return model, optimizer, scheduler, scaler


def test_pth_round_trip_with_checkpointables(tmp_path):
    model, optimizer, scheduler, scaler = _trained_setup(0)
    DetectionCheckpointer(
        model, str(tmp_path), optimizer=optimizer, scheduler=scheduler, scaler=scaler
    ).save("model_0000009", iteration=9)
    assert (tmp_path / "model_0000009.pth").is_file()
    assert (tmp_path / "last_checkpoint").read_text() == "model_0000009.pth"

    fresh, fresh_opt, fresh_sched, fresh_scaler = _trained_setup(1)
    checkpointer = DetectionCheckpointer(
        fresh, str(tmp_path), optimizer=fresh_opt, scheduler=fresh_sched, scaler=fresh_scaler
    )
    extra = checkpointer.load(str(tmp_path / "model_0000009.pth"))
    assert extra == {"iteration": 9}
    assert _state_equal(model, fresh)
    assert fresh_sched.state_dict() == scheduler.state_dict()
    assert fresh_scaler.state_dict() == scaler.state_dict()
    state, fresh_state = optimizer.state_dict()["state"], fresh_opt.state_dict()["state"]
    assert all(torch.equal(state[0][k], fresh_state[0][k]) for k in ("exp_avg", "exp_avg_sq"))
    report = checkpointer.incompatible_keys
    assert report.missing_keys == [] and report.unexpected_keys == []
    assert len(report.matched) == len(model.state_dict())


def test_pkl_round_trip_numpy(tmp_path):
    torch.manual_seed(0)
    model = _TinyModel()
    arrays = {k: v.numpy().copy() for k, v in model.state_dict().items()}
    path = tmp_path / "model_final.pkl"
    path.write_bytes(pickle.dumps({"model": arrays, "__author__": "test"}))

    torch.manual_seed(1)
    fresh = _TinyModel()
    checkpointer = DetectionCheckpointer(fresh)
    extra = checkpointer.load(str(path))
    assert extra == {"__author__": "test"}
    assert _state_equal(model, fresh)
    assert checkpointer.incompatible_keys.missing_keys == []
    assert checkpointer.incompatible_keys.unexpected_keys == []


@pytest.mark.parametrize("suffix", [".pth", ".pkl"])
def test_bare_state_dict_and_module_prefix(tmp_path, suffix):
    torch.manual_seed(0)
    model = _TinyModel()
    wrapped = {"module." + k: v for k, v in model.state_dict().items()}
    path = tmp_path / f"bare{suffix}"
    if suffix == ".pth":
        torch.save(wrapped, path)
    else:
        path.write_bytes(pickle.dumps({k: v.numpy() for k, v in wrapped.items()}))
    fresh = _TinyModel()
    checkpointer = DetectionCheckpointer(fresh)
    checkpointer.load(str(path))
    assert _state_equal(model, fresh)
    assert checkpointer.incompatible_keys.unexpected_keys == []


def test_shape_mismatch_is_skipped_with_warning(tmp_path, caplog):
    torch.manual_seed(0)
    state = _TinyModel().state_dict()
    state["sem_seg_head.weight"] = torch.zeros(5, 4)
    state["extra.weight"] = torch.zeros(1)
    torch.save({"model": state}, tmp_path / "w.pth")
    fresh = _TinyModel()
    before = fresh.sem_seg_head.weight.detach().clone()
    checkpointer = DetectionCheckpointer(fresh)
    with caplog.at_level(logging.WARNING):
        checkpointer.load(str(tmp_path / "w.pth"))
    assert torch.equal(fresh.sem_seg_head.weight, before)
    report = checkpointer.incompatible_keys
    assert report.incorrect_shapes == [("sem_seg_head.weight", (5, 4), (2, 4))]
    assert report.missing_keys == ["sem_seg_head.weight"]
    assert report.unexpected_keys == ["extra.weight"]
    assert "sem_seg_head.weight" in caplog.text and "(5, 4)" in caplog.text
    assert "(2, 4)" in caplog.text and "extra.weight" in caplog.text


def test_save_is_atomic(tmp_path, monkeypatch):
    model = _TinyModel()
    checkpointer = DetectionCheckpointer(model, str(tmp_path))
    checkpointer.save("model_a")
    good = (tmp_path / "model_a.pth").read_bytes()

    def failing_save(obj, f, *args, **kwargs):
        f.write(b"partial bytes")
        raise RuntimeError("disk full")

    monkeypatch.setattr(torch, "save", failing_save)
    with pytest.raises(RuntimeError, match="disk full"):
        checkpointer.save("model_b")
    with pytest.raises(RuntimeError, match="disk full"):
        checkpointer.save("model_a")
    assert sorted(os.listdir(tmp_path)) == ["last_checkpoint", "model_a.pth"]
    assert (tmp_path / "model_a.pth").read_bytes() == good
    assert checkpointer.get_checkpoint_file() == str(tmp_path / "model_a.pth")


def test_resume_picks_last_checkpoint(tmp_path):
    model, optimizer, _, _ = _trained_setup(0)
    checkpointer = DetectionCheckpointer(model, str(tmp_path), optimizer=optimizer)
    checkpointer.save("model_0000001", iteration=1)
    with torch.no_grad():
        model.sem_seg_head.bias.add_(1.0)
    checkpointer.save("model_0000002", iteration=2)

    fresh, fresh_opt, _, _ = _trained_setup(1)
    resumer = DetectionCheckpointer(fresh, str(tmp_path), optimizer=fresh_opt)
    assert resumer.has_checkpoint()
    assert resumer.get_checkpoint_file() == str(tmp_path / "model_0000002.pth")
    assert resumer.resume_or_load("unused.pth", resume=True) == {"iteration": 2}
    assert _state_equal(model, fresh)

    # resume=False loads only the model from the given path; optimizer state comes back.
    other, other_opt, _, _ = _trained_setup(2)
    extra = DetectionCheckpointer(other, str(tmp_path), optimizer=other_opt).resume_or_load(
        str(tmp_path / "model_0000001.pth"), resume=False
    )
    assert extra["iteration"] == 1 and "optimizer" in extra
    assert not torch.equal(other.sem_seg_head.bias, model.sem_seg_head.bias)


def test_resume_without_checkpoint_and_empty_path(tmp_path):
    checkpointer = DetectionCheckpointer(_TinyModel(), str(tmp_path / "empty"))
    assert not checkpointer.has_checkpoint()
    assert checkpointer.get_checkpoint_file() == ""
    assert checkpointer.resume_or_load("", resume=True) == {}


def test_caffe2_imagenet_pkl_loads_into_backbone(tmp_path):
    torch.manual_seed(0)
    reference = _TinyModel()
    state = reference.backbone.state_dict()
    c2_names = {
        "stem.conv1.weight": "conv1_w",
        "stem.conv1.norm.weight": "res_conv1_bn_s",
        "stem.conv1.norm.bias": "res_conv1_bn_b",
        "stem.conv1.norm.running_mean": "res_conv1_bn_rm",
        "stem.conv1.norm.running_var": "res_conv1_bn_riv",
    }
    for d2_conv, c2_conv in [("conv1", "branch2a"), ("conv2", "branch2b"), ("shortcut", "branch1")]:
        c2_names[f"res2.0.{d2_conv}.weight"] = f"res2_0_{c2_conv}_w"
        for leaf, c2_leaf in [("weight", "s"), ("bias", "b"), ("running_mean", "rm")]:
            c2_names[f"res2.0.{d2_conv}.norm.{leaf}"] = f"res2_0_{c2_conv}_bn_{c2_leaf}"
        c2_names[f"res2.0.{d2_conv}.norm.running_var"] = f"res2_0_{c2_conv}_bn_riv"
    blobs = {c2: state[d2].numpy() for d2, c2 in c2_names.items()}
    blobs["fc1000_w"] = np.zeros((10, 4), dtype=np.float32)
    blobs["conv1_w_momentum"] = np.zeros(1, dtype=np.float32)
    (tmp_path / "R-tiny.pkl").write_bytes(pickle.dumps(blobs))

    fresh = _TinyModel()
    checkpointer = DetectionCheckpointer(fresh)
    checkpointer.load(str(tmp_path / "R-tiny.pkl"))
    assert _state_equal(reference.backbone, fresh.backbone)
    report = checkpointer.incompatible_keys
    assert report.missing_keys == ["sem_seg_head.bias", "sem_seg_head.weight"]
    assert report.unexpected_keys == ["fc1000.weight"]
    assert report.matched["backbone.res2.0.shortcut.norm.running_var"] == "res2_0_branch1_bn_riv"


def test_converted_swin_style_pkl_loads_with_heuristics(tmp_path):
    torch.manual_seed(0)
    reference = _TinyModel()
    # like convert-pretrained-swin-model-to-d2: torch tensors, no "backbone." prefix
    tensors = dict(reference.backbone.state_dict())
    tensors["head.weight"] = torch.zeros(1000, 4)
    payload = {"model": tensors, "__author__": "third_party", "matching_heuristics": True}
    (tmp_path / "swin.pkl").write_bytes(pickle.dumps(payload))
    fresh = _TinyModel()
    checkpointer = DetectionCheckpointer(fresh)
    checkpointer.load(str(tmp_path / "swin.pkl"))
    assert _state_equal(reference.backbone, fresh.backbone)
    assert checkpointer.incompatible_keys.unexpected_keys == ["head.weight"]


def test_missing_file_names_path(tmp_path):
    path = str(tmp_path / "nope.pth")
    with pytest.raises(FileNotFoundError, match="nope.pth"):
        DetectionCheckpointer(_TinyModel()).load(path)


@pytest.mark.parametrize(
    ("name", "content", "found"),
    [
        ("list.pth", [1, 2, 3], "list"),
        ("strings.pth", {"model": {"a": "b"}}, "str"),
        ("text.pkl", "hello", "str"),
    ],
)
def test_non_checkpoint_file_is_rejected(tmp_path, name, content, found):
    path = tmp_path / name
    if name.endswith(".pth"):
        torch.save(content, path)
    else:
        path.write_bytes(pickle.dumps(content))
    with pytest.raises(ValueError, match=found) as info:
        DetectionCheckpointer(_TinyModel()).load(str(path))
    assert name in str(info.value)


def test_unknown_checkpointable_and_bad_object():
    with pytest.raises(TypeError, match="state_dict"):
        DetectionCheckpointer(_TinyModel(), optimizer=object())
    with pytest.raises(KeyError, match="scheduler"):
        DetectionCheckpointer(_TinyModel()).load("x.pth", checkpointables=["scheduler"])


def test_ddp_style_wrapper_is_unwrapped():
    model = _TinyModel()
    assert DetectionCheckpointer(nn.DataParallel(model)).model is model


def test_config_built_buffers_are_not_reported_missing(tmp_path):
    model = _TinyModel()
    model.register_buffer("pixel_mean", torch.zeros(3, 1, 1))
    state = {k: v for k, v in model.state_dict().items() if k != "pixel_mean"}
    torch.save({"model": state}, tmp_path / "w.pth")
    checkpointer = DetectionCheckpointer(model)
    checkpointer.load(str(tmp_path / "w.pth"))
    assert checkpointer.incompatible_keys.missing_keys == []


def test_resolve_weights_path_maps_detectron2_prefix(monkeypatch):
    from iopath.common.file_io import PathManager

    requested = []
    monkeypatch.setattr(
        PathManager, "get_local_path", lambda self, path, **kw: requested.append(path) or "/c"
    )
    assert resolve_weights_path("/local/R-50.pkl") == "/local/R-50.pkl"
    assert resolve_weights_path("detectron2://ImageNetPretrained/torchvision/R-50.pkl") == "/c"
    assert requested == [
        "https://dl.fbaipublicfiles.com/detectron2/ImageNetPretrained/torchvision/R-50.pkl"
    ]
