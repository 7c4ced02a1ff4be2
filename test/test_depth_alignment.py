"""Global and local alignment of predicted to measured depth, against known answers."""

import os

import cv2
import numpy as np
import pytest

from vd_ros.core.depth_alignment import align_depth


@pytest.fixture
def measured():
    """Return a 60x80 measured depth ramp (1..4 m) with holes: zeros and NaN."""
    depth = np.linspace(1.0, 4.0, 60 * 80, dtype=np.float32).reshape(60, 80)
    depth[10:20, 10:30] = 0.0
    depth[40:45, :] = np.nan
    return depth


@pytest.mark.parametrize('alignment', ['global', 'local'])
def test_align_depth_recovers_scale_and_keeps_measurements(measured, alignment):
    valid = measured > 0
    truth = np.linspace(1.0, 4.0, 60 * 80, dtype=np.float32).reshape(60, 80)
    pred = truth / 2.0
    pred[0, :5] = np.nan  # invalid predictions at measured pixels are ignored by the fit
    pred[1, :5] = np.inf
    pred[12, 12] = np.nan  # neither measured nor predicted -> NaN
    completed, scale, shift = align_depth(pred, measured, alignment=alignment)
    assert scale == pytest.approx(2.0, rel=1e-6) and shift == 0.0
    assert completed.dtype == np.float32
    np.testing.assert_array_equal(completed[valid], measured[valid])  # exactly the measurement
    holes = ~valid
    holes[12, 12] = False
    np.testing.assert_allclose(completed[holes], truth[holes], rtol=1e-5)
    assert np.isnan(completed[12, 12]) and np.isfinite(np.delete(completed.ravel(), 12 * 80 + 12)
                                                       ).all()


def test_align_depth_with_shift(measured):
    truth = np.linspace(1.0, 4.0, 60 * 80).reshape(60, 80)
    pred = (truth - 0.3) / 1.5
    completed, scale, shift = align_depth(pred, measured, fit_shift=True, alignment='global')
    assert scale == pytest.approx(1.5, rel=1e-6) and shift == pytest.approx(0.3, abs=1e-6)
    np.testing.assert_allclose(completed[10:20, 10:30], truth[10:20, 10:30], rtol=1e-6)


@pytest.mark.parametrize('alignment', ['global', 'local'])
def test_align_depth_without_measurement_returns_prediction(alignment):
    pred = np.array([[1.0, 2.0], [-1.0, np.nan]], np.float32)
    completed, scale, shift = align_depth(pred, np.zeros((2, 2), np.float32),
                                          alignment=alignment)
    assert (scale, shift) == (1.0, 0.0)
    np.testing.assert_array_equal(completed, [[1.0, 2.0], [np.nan, np.nan]])
    with pytest.raises(ValueError, match=r'\(2, 2\).*\(2, 3\)'):
        align_depth(pred, np.zeros((2, 3)), alignment=alignment)


def test_align_depth_rejects_unknown_alignment():
    with pytest.raises(ValueError, match="'affine'"):
        align_depth(np.ones((2, 2)), np.ones((2, 2)), alignment='affine')


def test_global_alignment_matches_float64_least_squares_on_real_frame(shared_data):
    folder = os.path.join(shared_data, '7scenes_redkitchen')
    raw = cv2.imread(os.path.join(folder, 'frame-000040.depth.png'), cv2.IMREAD_UNCHANGED)
    measured = np.where(raw == 65535, 0, raw).astype(np.float32) / np.float32(1000.0)
    valid = measured > 0
    assert 0.5 < valid.mean() < 1.0
    rows, cols = np.mgrid[0:480, 0:640]
    pred = (0.8 + 0.002 * cols + 0.001 * rows).astype(np.float32)  # a plane, > 0 everywhere
    completed, scale, shift = align_depth(pred, measured, alignment='global')
    p, m = pred[valid].astype(np.float64), measured[valid].astype(np.float64)
    assert scale == pytest.approx(np.dot(p, m) / np.dot(p, p), rel=1e-12) and shift == 0.0
    np.testing.assert_array_equal(completed[valid], measured[valid])
    np.testing.assert_allclose(completed[~valid], scale * pred[~valid].astype(np.float64),
                               rtol=1e-6)
