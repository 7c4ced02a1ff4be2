"""Global and local alignment of predicted to measured depth, against known answers."""

import os

import cv2
import numpy as np
import pytest

from vd_ros.core.depth_alignment import align_depth, keep_measured


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
    # Within float32 resolution (6e-8), the precision of the float32 depth it scales.
    assert scale == pytest.approx(np.dot(p, m) / np.dot(p, p), rel=6e-8) and shift == 0.0
    np.testing.assert_array_equal(completed[valid], measured[valid])
    np.testing.assert_allclose(completed[~valid], scale * pred[~valid].astype(np.float64),
                               rtol=1e-6)


def smooth_scene(height=480, width=640):
    """Return (truth depth, prediction off by a factor 3 and a smooth scale field)."""
    rows, cols = np.mgrid[0:height, 0:width].astype(np.float32)
    truth = 2.0 + 0.8 * np.sin(cols / 90.0) * np.cos(rows / 70.0) + 0.002 * cols
    field = 0.6 + 0.5 * cols / width + 0.3 * (rows / height) ** 2
    return truth.astype(np.float32), (truth / (3.0 * field)).astype(np.float32)


def test_local_alignment_recovers_a_smooth_scale_field_in_holes_of_dense_depth():
    truth, pred = smooth_scene()
    measured = truth.copy()
    measured[100:220, 150:330] = 0.0  # a large hole
    measured[np.random.default_rng(0).random(truth.shape) < 0.2] = 0.0  # 20 % dropout
    measured[0, 0], measured[0, 1] = np.nan, np.inf
    holes = ~(measured > 0) | ~np.isfinite(measured)
    local, _, _ = align_depth(pred, measured)
    global_fill, _, _ = align_depth(pred, measured, alignment='global')
    np.testing.assert_array_equal(local[~holes], measured[~holes])
    error = np.where(holes, np.abs(local / truth - 1.0), 0.0)
    # The field is interpolated linearly between hole rims averaged in 8 px cells: within 1 %
    # of the truth here, where one global scale is off by up to ~50 %. Within a cell of the
    # image border the rim points' hull ends and the nearest point's field is used: 2 %.
    assert error[8:-8, 8:-8].max() < 0.01 and error.max() < 0.02
    assert np.abs(global_fill[holes] / truth[holes] - 1.0).max() > 0.3


@pytest.mark.parametrize('count', [150, 500, 1500])
def test_local_alignment_recovers_a_smooth_scale_field_from_points(count):
    truth, pred = smooth_scene()
    rng = np.random.default_rng(count)
    chosen = rng.choice(truth.size, count, replace=False)
    measured = np.zeros(truth.size, np.float32)
    measured[chosen] = truth.ravel()[chosen]
    measured = measured.reshape(truth.shape)
    local, _, _ = align_depth(pred, measured)
    rows, cols = np.divmod(chosen, truth.shape[1])
    hull = np.zeros(truth.shape, np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(np.stack([cols, rows], 1).astype(np.int32)), 1)
    inside = cv2.erode(hull, np.ones((7, 7), np.uint8)).view(bool)
    error = np.abs(local / truth - 1.0)
    # Inside the points' hull the error is that of linear interpolation of the field over
    # the triangles (largest for 150 points); outside it the field is the nearest point's.
    assert error[inside].max() < 0.03 and error[inside].mean() < 0.003
    assert np.isfinite(local).all() and (local > 0).all()
    global_fill, _, _ = align_depth(pred, measured, alignment='global')
    assert np.abs(global_fill / truth - 1.0).max() > 0.3


@pytest.mark.parametrize('alignment', ['local', 'global'])
@pytest.mark.parametrize('fit_shift', [False, True])
def test_measured_pixels_are_never_changed_whatever_the_prediction(alignment, fit_shift):
    rng = np.random.default_rng(1)
    measured = rng.uniform(0.2, 5.0, (120, 160)).astype(np.float32)
    measured[rng.random(measured.shape) < 0.3] = 0.0
    measured[rng.random(measured.shape) < 0.05] = np.nan
    measured[rng.random(measured.shape) < 0.05] = -1.0
    pred = rng.uniform(-1.0, 3.0, measured.shape).astype(np.float32)
    pred[rng.random(measured.shape) < 0.1] = np.nan
    pred[rng.random(measured.shape) < 0.1] = np.inf
    valid = measured > 0
    completed, _, _ = align_depth(pred, measured, fit_shift, alignment)
    np.testing.assert_array_equal(completed[valid], measured[valid])
    holes = completed[~valid]
    assert np.all(np.isnan(holes) | ((holes > 0) & np.isfinite(holes)))


@pytest.mark.parametrize('alignment', ['local', 'global'])
def test_non_finite_and_all_invalid_inputs_give_the_documented_result(alignment):
    rows, cols = np.mgrid[0:48, 0:64]
    pred = (1.0 + 0.01 * cols).astype(np.float32)
    measured = (2.0 * pred).astype(np.float32)
    measured[10:20, 10:20] = 0.0
    # No valid prediction: the measurement where valid, NaN elsewhere.
    completed, scale, _ = align_depth(np.full(pred.shape, np.nan, np.float32), measured,
                                      alignment=alignment)
    assert scale == 1.0
    np.testing.assert_array_equal(completed[measured > 0], measured[measured > 0])
    assert np.isnan(completed[10:20, 10:20]).all()
    # No valid measurement (NaN, Inf, 0, negative): the prediction, unscaled.
    for bad in (np.nan, np.inf, 0.0, -2.0):
        completed, scale, shift = align_depth(pred, np.full(pred.shape, bad, np.float32),
                                              alignment=alignment)
        assert (scale, shift) == (1.0, 0.0)
        np.testing.assert_array_equal(completed, pred)
    # An absurdly large prediction overflows to NaN, never to Inf.
    huge = pred.copy()
    huge[30:, :] = 3e38
    completed, _, _ = align_depth(huge, measured, alignment=alignment)
    assert not np.isinf(completed).any()
    np.testing.assert_array_equal(completed[measured > 0], measured[measured > 0])


def test_keep_measured_completes_metric_depth_without_aligning_it():
    depth = np.array([[1.0, np.nan], [-1.0, np.inf], [3.0, 4.0]], np.float32)
    measured = np.array([[0.0, 2.0], [0.0, np.nan], [5.0, 0.0]], np.float32)
    np.testing.assert_array_equal(keep_measured(depth, measured),
                                  [[1.0, 2.0], [np.nan, np.nan], [5.0, 4.0]])
    with pytest.raises(ValueError, match=r'\(3, 2\).*\(2, 3\)'):
        keep_measured(depth, measured.T)
