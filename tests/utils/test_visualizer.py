import numpy as np
import pytest

from mask2former.utils.visualizer import Segment, Visualizer, fallback_color


def _image(h=40, w=50, value=100):
    return np.full((h, w, 3), value, dtype=np.uint8)


def test_blend_exactly_inside_mask():
    mask = np.zeros((40, 50), bool)
    mask[10:20, 5:25] = True
    vis = Visualizer(_image(), alpha=0.5, draw_contours=False, draw_labels=False)
    out = vis.draw_segments([Segment(mask, (200, 0, 50))])
    assert (out[mask] == np.array([150, 50, 75])).all()
    assert (out[~mask] == 100).all()


def test_sem_seg_uses_metadata_colors_and_ignores_255():
    sem = np.full((40, 50), 255, np.int64)
    sem[:20] = 1
    meta = {"stuff_classes": ["a", "b"], "stuff_colors": [[0, 0, 0], [255, 255, 255]]}
    out = Visualizer(
        _image(), meta, alpha=1.0, draw_contours=False, draw_labels=False
    ).draw_sem_seg(sem)
    assert (out[:20] == 255).all() and (out[20:] == 100).all()


def test_panoptic_and_instances_with_labels_run_and_change_pixels():
    pan = np.zeros((60, 60), np.int32)
    pan[5:30, 5:30] = 1
    pan[30:, :] = 2
    infos = [
        {"id": 1, "category_id": 0, "isthing": True, "score": 0.9},
        {"id": 2, "category_id": 1, "isthing": False},
    ]
    out = Visualizer(_image(60, 60), None, draw_labels=False).draw_panoptic_seg(pan, infos)
    assert out.shape == (60, 60, 3) and (out[pan == 0] == 100).all()
    vis = Visualizer(_image(60, 60), None)
    assert (vis.draw_panoptic_seg(pan, infos) != out).any()  # labels drawn
    masks = np.stack([pan == 1, pan == 2])
    out2 = vis.draw_instances(masks, [0, 1], [0.5, 0.7])
    assert (out2[pan == 1] != 100).any()


def test_bad_image_raises():
    with pytest.raises(ValueError, match="uint8"):
        Visualizer(np.zeros((4, 4, 3), np.float32))


def test_fallback_colors_distinct():
    assert len({fallback_color(i) for i in range(20)}) == 20
