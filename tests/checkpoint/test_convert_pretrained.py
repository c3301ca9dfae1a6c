import pickle

import torch

from mask2former.checkpoint.convert_pretrained import convert_file, torchvision_resnet_name_to_d2


def test_torchvision_names():
    assert torchvision_resnet_name_to_d2("conv1.weight") == "stem.conv1.weight"
    assert torchvision_resnet_name_to_d2("bn1.running_mean") == "stem.conv1.norm.running_mean"
    assert torchvision_resnet_name_to_d2("layer1.0.bn2.weight") == "res2.0.conv2.norm.weight"
    assert torchvision_resnet_name_to_d2("layer4.0.downsample.0.weight") == "res5.0.shortcut.weight"
    assert (
        torchvision_resnet_name_to_d2("layer3.1.downsample.1.bias") == "res4.1.shortcut.norm.bias"
    )


def test_convert_files(tmp_path):
    src = tmp_path / "r.pth"
    torch.save({"conv1.weight": torch.ones(2, 3, 1, 1), "fc.weight": torch.ones(2, 2)}, src)
    out = tmp_path / "r.pkl"
    assert convert_file("torchvision", str(src), str(out)) == 1
    obj = pickle.load(open(out, "rb"))
    assert obj["matching_heuristics"] and list(obj["model"]) == ["stem.conv1.weight"]

    swin = tmp_path / "s.pth"
    torch.save(
        {"model": {"patch_embed.proj.weight": torch.ones(1), "head.weight": torch.ones(1)}}, swin
    )
    assert convert_file("swin", str(swin), str(out)) == 1
    assert list(pickle.load(open(out, "rb"))["model"]) == ["patch_embed.proj.weight"]
