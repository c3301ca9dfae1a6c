"""The one panoptic id <-> RGB encoding (``R + 256 G + 256^2 B``)."""

import numpy as np

from mask2former.data import detection_utils
from mask2former.utils.panoptic_ids import id2rgb, rgb2id


def test_encoding_and_round_trip():
    ids = np.array([[0, 1, 255], [256, 65536, 2**24 - 1]])
    rgb = id2rgb(ids)
    assert rgb.dtype == np.uint8 and rgb.shape == (2, 3, 3)
    assert rgb[1, 0].tolist() == [0, 1, 0] and rgb[1, 1].tolist() == [0, 0, 1]
    assert rgb[1, 2].tolist() == [255, 255, 255]
    np.testing.assert_array_equal(rgb2id(rgb), ids)
    assert rgb2id(rgb).dtype == np.int64


def test_dataset_code_uses_the_same_functions():
    assert detection_utils.rgb2id is rgb2id and detection_utils.id2rgb is id2rgb
