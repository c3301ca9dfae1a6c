"""Bad and unusual images (issue 12, item 1): real files, and arrays of the wrong kind for the
Predictor, the image processor and the model."""

from __future__ import annotations

import struct
import zlib

import numpy as np
import pytest
import torch
from PIL import Image, ImageOps

from mask2former.data.detection_utils import read_image
from mask2former.hf.image_processing import Mask2FormerImageProcessor
from mask2former.modeling import build_model
from mask2former.predictor import Predictor
from tests.tiny_config import tiny_cfg


def _photo(height: int = 6, width: int = 10) -> np.ndarray:
    rng = np.random.default_rng(0)
    return rng.integers(0, 256, (height, width, 3), dtype=np.uint8)


def _png_with_size(width: int, height: int) -> bytes:
    def chunk(kind: bytes, data: bytes) -> bytes:
        crc = zlib.crc32(kind + data) & 0xFFFFFFFF
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)

    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(b""))
        + chunk(b"IEND", b"")
    )


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_truncated_image_names_the_file(tmp_path, suffix):
    path = tmp_path / f"cut{suffix}"
    Image.fromarray(_photo(64, 64)).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    with pytest.raises(OSError, match=f"Cannot read image file {path}"):
        read_image(str(path), "RGB")


def test_corrupt_and_empty_images_name_the_file(tmp_path):
    garbage = tmp_path / "garbage.jpg"
    garbage.write_bytes(b"\xff\xd8 this is not a JPEG")
    with pytest.raises(OSError, match="garbage.jpg"):
        read_image(str(garbage), "RGB")
    zero = tmp_path / "zero_pixels.png"
    zero.write_bytes(_png_with_size(0, 5))
    with pytest.raises(OSError, match="zero_pixels.png"):
        read_image(str(zero), "RGB")


@pytest.mark.parametrize("mode", ["L", "LA", "RGBA", "P", "1", "CMYK"])
def test_modes_convert_as_pil_convert_does(tmp_path, mode):
    """detectron2's read_image is ``Image.convert(format)`` after the EXIF transpose."""
    source = Image.fromarray(_photo()).convert(mode)
    path = tmp_path / f"image_{mode}.{'jpg' if mode == 'CMYK' else 'png'}"
    source.save(path)
    expected = np.asarray(Image.open(path).convert("RGB"))
    rgb = read_image(str(path), "RGB")
    assert rgb.dtype == np.uint8 and rgb.shape == (6, 10, 3)
    np.testing.assert_array_equal(rgb, expected)
    np.testing.assert_array_equal(read_image(str(path), "BGR"), expected[:, :, ::-1])


# detectron2's read_image on these files (Pillow 12.3, recorded by running
# detectron2.data.detection_utils.read_image): 16- and 32-bit pixels are clipped to 0..255,
# not rescaled; the same for "RGB", "BGR" and "L", every channel equal.
_UINT16 = [[0, 1, 128, 255], [256, 1000, 32768, 65535]]
_INT32 = [[-70000, -1, 0, 200], [255, 256, 70000, 2**31 - 1]]
_DETECTRON2_UINT16 = [[0, 1, 128, 255], [255, 255, 255, 255]]
_DETECTRON2_INT32 = [[0, 0, 0, 200], [255, 255, 255, 255]]


@pytest.mark.parametrize(
    "values, dtype, suffix, expected",
    [
        (_UINT16, np.uint16, ".png", _DETECTRON2_UINT16),  # PIL mode "I;16"
        (_INT32, np.int32, ".tif", _DETECTRON2_INT32),  # PIL mode "I"
    ],
)
def test_high_bit_depth_images_read_as_detectron2_does(tmp_path, values, dtype, suffix, expected):
    path = tmp_path / f"deep{suffix}"
    Image.fromarray(np.array(values, dtype=dtype)).save(path)
    assert Image.open(path).mode == ("I;16" if dtype == np.uint16 else "I")
    for fmt, channels in (("RGB", 3), ("BGR", 3), ("L", 1)):
        array = read_image(str(path), fmt)
        assert array.dtype == np.uint8 and array.shape == (2, 4, channels), fmt
        for channel in range(channels):
            assert array[..., channel].tolist() == expected, (fmt, channel)
    assert read_image(str(path)).tolist() == values  # format=None: the stored values


@pytest.mark.parametrize("orientation", range(1, 9))
def test_exif_orientation_matches_pillows_transpose(tmp_path, orientation):
    exif = Image.Exif()
    exif[274] = orientation
    path = tmp_path / f"oriented_{orientation}.png"
    Image.fromarray(_photo()).save(path, exif=exif)
    expected = np.asarray(ImageOps.exif_transpose(Image.open(path)).convert("RGB"))
    np.testing.assert_array_equal(read_image(str(path), "RGB"), expected)


@pytest.fixture(scope="module")
def tiny_model_cfg():
    return tiny_cfg()


@pytest.mark.parametrize(
    ("array", "words"),
    [
        (np.zeros((3, 8, 8), np.uint8), "got ndarray of shape (3, 8, 8)"),
        (np.zeros((8, 8), np.uint8), "got ndarray of shape (8, 8)"),
        (np.zeros((0, 8, 3), np.uint8), "at least one pixel, got shape (0, 8, 3)"),
        (np.zeros((8, 8, 3), bool), "dtype bool"),
        (torch.zeros(8, 8, 3), "got a Tensor of shape (8, 8, 3)"),
    ],
)
def test_predictor_says_what_it_got_and_expects(tiny_model_cfg, array, words):
    predictor = Predictor(tiny_model_cfg)
    with pytest.raises(ValueError) as err:
        predictor(array)
    message = str(err.value)
    assert "Predictor expects (H, W, 3)" in message and words in message


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (np.zeros((0, 8, 3), np.uint8), "empty image of shape (3, 0, 8)"),
        (np.zeros((8, 8, 3), bool), "dtype torch.bool; expected uint8 or float"),
        (np.zeros((8, 8, 8, 8, 8)), "expected PIL images, numpy arrays or torch tensors"),
    ],
)
def test_image_processor_says_what_it_got_and_expects(image, words):
    with pytest.raises(ValueError) as err:
        Mask2FormerImageProcessor()(image, return_tensors="pt")
    assert words in str(err.value)


@pytest.mark.parametrize(
    ("image", "words"),
    [
        (torch.zeros(3, 0, 32), "with at least one pixel, got shape (3, 0, 32)"),
        (torch.zeros(32, 32, 3), "(channels first), got shape (32, 32, 3)"),
        (torch.zeros(3, 32, 32, dtype=torch.int32), "got dtype torch.int32"),
    ],
)
def test_model_says_what_it_got_and_expects(tiny_model_cfg, image, words):
    model = build_model(tiny_model_cfg).eval()
    with pytest.raises(ValueError) as err, torch.no_grad():
        model([{"image": image}])
    message = str(err.value)
    assert "batched_inputs[0]['image'] must be a (3, H, W)" in message and words in message
