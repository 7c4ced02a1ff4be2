"""Piecewise-linear interpolation of scattered points against facts known by hand."""

import cv2
import numpy as np
import pytest

from vd_ros.core.linear_fill import interpolate_linear


def plane(x, y):
    """Return a plane; linear interpolation reproduces it exactly."""
    return 0.5 + 0.01 * x - 0.02 * y + 10.0


@pytest.mark.parametrize('step', [1, 2, 3])
def test_a_plane_is_reproduced_inside_the_hull_and_points_keep_their_values(step):
    rng = np.random.default_rng(step)
    points = np.stack([rng.integers(0, 160, 300), rng.integers(0, 120, 300)], 1)
    points = np.unique(points, axis=0).astype(np.float64)  # (N, 2) x, y
    filled = interpolate_linear(points, plane(points[:, 0], points[:, 1]), (120, 160), step)
    assert filled.shape == (120, 160) and filled.dtype == np.float32
    hull = np.zeros((120, 160), np.uint8)
    cv2.fillConvexPoly(hull, cv2.convexHull(points.astype(np.int32)), 1)
    # fillConvexPoly also marks pixels its outline touches; and upsampled from every step-th
    # pixel, bilinear upsampling within 2 step pixels of the hull's edge also reads the ring
    # of grid pixels just outside it (first-order values): compare 2 step + 1 pixels inside.
    inside = cv2.erode(hull, np.ones((4 * step + 3,) * 2, np.uint8),
                       borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)
    rows, cols = np.mgrid[0:120, 0:160]
    np.testing.assert_allclose(filled[inside], plane(cols, rows)[inside], atol=1e-4)
    if step == 1:
        x, y = points.astype(int).T
        np.testing.assert_allclose(filled[y, x], plane(x, y), atol=1e-5)


@pytest.mark.parametrize('step', [1, 3])
def test_outside_the_hull_pixels_take_the_nearest_point(step):
    points = np.array([[60.0, 40.0], [100.0, 40.0], [80.0, 80.0]])
    filled = interpolate_linear(points, [1.0, 2.0, 3.0], (120, 160), step)
    assert filled[0, 0] == 1.0 and filled[0, 159] == 2.0 and filled[119, 80] == 3.0
    assert filled[40, 20] == 1.0 and filled[40, 140] == 2.0
    # Inside, at (80, 50): a quarter of the way from (80, 40) (1.5, mid A-B) to C (3).
    assert filled[50, 80] == pytest.approx(1.5 + 0.25 * 1.5, abs=1e-4)


def test_collinear_or_too_few_points_fill_by_nearest():
    filled = interpolate_linear([[10.0, 10.0], [50.0, 10.0]], [1.0, 5.0], (20, 60))
    assert filled[10, 0] == 1.0 and filled[0, 59] == 5.0 and set(np.unique(filled)) == {1, 5}
    line = interpolate_linear([[0.0, 5.0], [10.0, 5.0], [20.0, 5.0]], [1.0, 2.0, 3.0], (10, 21))
    assert set(np.unique(line)) == {1.0, 2.0, 3.0}


def test_bad_arguments_are_refused():
    with pytest.raises(ValueError, match='at least one point'):
        interpolate_linear(np.zeros((0, 2)), [], (4, 4))
    with pytest.raises(ValueError, match='2 points and 3 values'):
        interpolate_linear([[0.0, 0.0], [1.0, 1.0]], [1.0, 2.0, 3.0], (4, 4))
    with pytest.raises(ValueError, match='step must be >= 1'):
        interpolate_linear([[0.0, 0.0]], [1.0], (4, 4), step=0)
