import numpy as np
import pytest
import torch

from data.classes import (
    CLASS_NAMES, COLOR_RGB, COLORS, NUM_CLASSES, PALETTE, class_id, class_parts, colorize,
)
from data.metric import SegmentationScore, ceiling_prediction, copy_last_input_prediction, jaccard


def test_id_table_matches_the_competition_ranges():
    assert NUM_CLASSES == 49 and CLASS_NAMES[0] == "background"
    ranges = {("cube", "metal"): (1, 8), ("cube", "rubber"): (9, 16), ("sphere", "metal"): (17, 24),
              ("sphere", "rubber"): (25, 32), ("cylinder", "metal"): (33, 40), ("cylinder", "rubber"): (41, 48)}
    for (shape, material), (lo, hi) in ranges.items():
        ids = [class_id(shape, material, c) for c in COLORS]
        assert ids == list(range(lo, hi + 1))
    # Examples read off the real samples: green metal sphere 20, gray rubber sphere 25, cyan rubber sphere 30.
    assert class_id("sphere", "metal", "green") == 20
    assert class_id("sphere", "rubber", "gray") == 25
    assert class_id("sphere", "rubber", "cyan") == 30


def test_class_parts_inverts_class_id_and_names_are_unique():
    for i in range(1, NUM_CLASSES):
        assert class_id(*class_parts(i)) == i
        shape, material, color = class_parts(i)
        assert CLASS_NAMES[i] == f"{material} {color} {shape}"
    assert len(set(CLASS_NAMES)) == NUM_CLASSES
    assert set(COLOR_RGB) == set(COLORS)


def test_bad_ids_and_names_raise():
    with pytest.raises(ValueError, match="pyramid"):
        class_id("pyramid", "metal", "red")
    for bad in (0, 49, -1):
        with pytest.raises(ValueError):
            class_parts(bad)


def test_colorize_uses_palette():
    mask = np.array([[0, 20], [48, 1]])
    rgb = colorize(mask)
    assert rgb.shape == (2, 2, 3) and rgb.dtype == np.uint8
    assert (rgb[0, 0] == 0).all() and (rgb[0, 1] == PALETTE[20]).all()
    assert len({tuple(c) for c in PALETTE}) == NUM_CLASSES  # every class drawn in its own color


def test_jaccard_hand_computed():
    # class 0: I=1 U=1; class 1: I=1 U=2; class 2: I=1 U=2; absent classes do not count.
    pred = np.array([[[0, 1], [1, 2]]], np.uint8)
    target = np.array([[[0, 1], [2, 2]]], np.uint8)
    assert jaccard(pred, target) == pytest.approx((1 + 0.5 + 0.5) / 3)
    iou = SegmentationScore()
    iou.update(pred, target)
    per = iou.per_class()
    assert per[:3].tolist() == pytest.approx([1.0, 0.5, 0.5])
    assert torch.isnan(per[3:]).all()
    assert "metal gray cube" in iou.table()


def test_jaccard_is_dataset_level_not_a_mean_of_videos():
    # Video A: class 1 right on 1 pixel. Video B: class 1 predicted on 3 pixels where it is background.
    a_pred, a_true = np.array([[1, 0, 0, 0]]), np.array([[1, 0, 0, 0]])
    b_pred, b_true = np.array([[1, 1, 1, 0]]), np.array([[0, 0, 0, 0]])
    score = SegmentationScore()
    score.update(a_pred[None], a_true[None])
    score.update(b_pred[None], b_true[None])
    # Pooled: class 0 I=4 U=7, class 1 I=1 U=4.
    expected = (4 / 7 + 1 / 4) / 2
    assert score.compute() == pytest.approx(expected)
    per_video = (jaccard(a_pred[None], a_true[None]) + jaccard(b_pred[None], b_true[None])) / 2
    assert per_video != pytest.approx(expected)


def test_metric_rejects_bad_predictions():
    score = SegmentationScore()
    with pytest.raises(ValueError, match="shape"):
        score.update(np.zeros((1, 2, 2)), np.zeros((1, 2, 3)))
    with pytest.raises(ValueError, match="0..48"):
        score.update(np.full((1, 2, 2), 49), np.zeros((1, 2, 2)))


def test_reference_predictions():
    masks = np.zeros((22, 2, 3), np.uint8)
    masks[10] = [[5, 5, 0], [7, 0, 0]]  # frame 11: objects 5 and 7
    masks[21] = [[0, 5, 9], [0, 0, 7]]  # frame 22: 5 and 7 moved, 9 entered
    assert (copy_last_input_prediction(masks) == masks[10]).all()
    ceiling = ceiling_prediction(masks)
    assert ceiling.tolist() == [[0, 5, 0], [0, 0, 7]]
    assert ceiling_prediction(torch.from_numpy(masks)).tolist() == ceiling.tolist()
