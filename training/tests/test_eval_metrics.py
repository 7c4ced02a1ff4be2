"""Depth-completion and segmentation metrics against hand-computed values."""

import numpy as np
import pytest

from training.eval.metrics import depth_completion_metrics, mean_metrics
from training.eval.segmentation_metrics import (confusion_matrix, mean_iou, per_class_iou,
                                                pixel_accuracy)


def test_depth_metrics_hand_computed():
    """Depth metrics equal hand-computed values (mm, 1/km)."""
    pred = np.array([[1.0, 2.0]])
    target = np.array([[1.0, 4.0]])
    mask = np.ones((1, 2), bool)
    metrics = depth_completion_metrics(pred, target, mask)
    # |1-1| = 0 m, |2-4| = 2 m -> MAE 1 m = 1000 mm; RMSE sqrt(4/2) m = 1414.21 mm.
    assert metrics['mae_mm'] == pytest.approx(1000.0)
    assert metrics['rmse_mm'] == pytest.approx(1000.0 * np.sqrt(2.0))
    # Inverse depths in 1/km: 1000/2 - 1000/4 = 250 -> iMAE 125, iRMSE sqrt(250^2/2).
    assert metrics['imae_1pkm'] == pytest.approx(125.0)
    assert metrics['irmse_1pkm'] == pytest.approx(250.0 / np.sqrt(2.0))
    assert metrics['abs_rel'] == pytest.approx(0.25)
    assert metrics['delta_1.25'] == pytest.approx(0.5)


def test_depth_metrics_only_count_the_mask():
    """Depth metrics count only the evaluation mask."""
    pred = np.array([[1.0, 100.0, 3.0]])
    target = np.array([[1.1, 1.0, 3.0]])
    mask = np.array([[True, False, True]])
    metrics = depth_completion_metrics(pred, target, mask)
    assert metrics['mae_mm'] == pytest.approx(50.0)
    assert metrics['delta_1.25'] == pytest.approx(1.0)


def test_depth_metrics_reject_bad_input():
    """Depth metrics reject bad input."""
    mask = np.ones((1, 2), bool)
    with pytest.raises(ValueError, match='not finite'):
        depth_completion_metrics(np.array([[1.0, np.nan]]), np.ones((1, 2)), mask)
    with pytest.raises(ValueError, match='non-positive'):
        depth_completion_metrics(np.ones((1, 2)), np.array([[1.0, 0.0]]), mask)
    with pytest.raises(ValueError, match='no pixel'):
        depth_completion_metrics(np.ones((1, 2)), np.ones((1, 2)), ~mask)


def test_mean_metrics_averages_per_frame():
    """The dataset summary is the mean of the per-frame values."""
    summary = mean_metrics([{'mae_mm': 1.0}, {'mae_mm': 3.0}])
    assert summary == {'mae_mm': 2.0}
    with pytest.raises(ValueError):
        mean_metrics([])


def test_confusion_matrix_miou_and_accuracy():
    """Confusion matrix, mIoU and pixel accuracy equal hand-computed values."""
    target = np.array([0, 0, 1, 1, 2, 255])
    pred = np.array([0, 1, 1, 1, 0, 2])
    matrix = confusion_matrix(pred, target, num_classes=3, ignore_index=255)
    np.testing.assert_array_equal(matrix, [[1, 1, 0], [0, 2, 0], [1, 0, 0]])
    # IoU: class 0 = 1/(2+2-1) = 1/3, class 1 = 2/(3+2-2)=2/3, class 2 = 0/(1+0-0) = 0.
    np.testing.assert_allclose(per_class_iou(matrix), [1 / 3, 2 / 3, 0.0])
    assert mean_iou(matrix) == pytest.approx(1 / 3)
    assert pixel_accuracy(matrix) == pytest.approx(3 / 5)


def test_miou_skips_absent_classes_and_rejects_bad_labels():
    """The mean IoU skips absent classes; labels out of range raise."""
    matrix = confusion_matrix(np.array([0, 1]), np.array([0, 1]), num_classes=4)
    assert mean_iou(matrix) == pytest.approx(1.0)
    with pytest.raises(ValueError, match='label 4'):
        confusion_matrix(np.array([4]), np.array([0]), num_classes=4)
    with pytest.raises(ValueError, match='empty'):
        pixel_accuracy(np.zeros((2, 2), int))
