"""Sparse input sampling and the classical completion baselines."""

import numpy as np
import pytest

from training.eval.completion_baselines import ip_basic_fill, linear_fill, nearest_fill
from training.eval.completion_protocol import input_mask, InputPattern
from training.eval.frames import ycbv_frame
from training.eval.metrics import depth_completion_metrics


def sample_sparse_points(valid, count, seed):
    """Keep ``count`` random valid pixels of a boolean mask through the protocol."""
    return input_mask(valid.astype(np.float32), InputPattern('points', count), seed)


def test_sparse_sampling_keeps_exactly_n_valid_points():
    """Sparse sampling keeps exactly N valid points, reproducibly per seed."""
    valid = np.random.default_rng(0).random((60, 80)) < 0.3
    for count in (1, 150, 500, int(valid.sum())):
        mask = sample_sparse_points(valid, count, count)
        assert mask.sum() == count
        assert not np.any(mask & ~valid)
    again = sample_sparse_points(valid, 150, 7)
    np.testing.assert_array_equal(again, sample_sparse_points(valid, 150, 7))
    assert not np.array_equal(again, sample_sparse_points(valid, 150, 8))
    with pytest.raises(ValueError, match='fewer than'):
        sample_sparse_points(valid, int(valid.sum()) + 1, 0)


def test_perlin_input_removes_the_asked_share_in_blobs():
    """Perlin holes remove about the asked share of valid pixels, as connected blobs."""
    depth = np.full((96, 128), 2.0, np.float32)
    depth[:, :8] = 0.0
    mask = input_mask(depth, InputPattern('perlin', 0.5), 3)
    valid = depth > 0.0
    assert not np.any(mask & ~valid)
    assert abs((valid & ~mask).sum() / valid.sum() - 0.5) < 0.01
    # Blobs, not salt-and-pepper: most removed pixels have a removed right neighbour.
    removed = valid & ~mask
    assert (removed[:, :-1] & removed[:, 1:]).sum() > 0.9 * removed[:, :-1].sum()


def test_nearest_fill_reproduces_piecewise_constant_map():
    """Nearest fill reproduces a piecewise-constant map exactly."""
    # Four constant quadrants, one seed at the centre of each: every pixel's nearest seed
    # lies in its own quadrant, so the fill is exact everywhere.
    truth = np.zeros((40, 40), np.float32)
    truth[:20, :20], truth[:20, 20:], truth[20:, :20], truth[20:, 20:] = 1.0, 2.0, 3.0, 4.0
    sparse = np.zeros_like(truth)
    for row, col in ((10, 10), (10, 30), (30, 10), (30, 30)):
        sparse[row, col] = truth[row, col]
    filled = nearest_fill(sparse)
    np.testing.assert_array_equal(filled[1:19, 1:19], 1.0)
    np.testing.assert_array_equal(filled[21:39, 21:39], 4.0)
    np.testing.assert_array_equal(filled[21:39, 1:19], 3.0)


def test_linear_fill_is_exact_on_a_plane_inside_the_hull():
    """Linear fill is exact on a plane inside the hull."""
    rows, cols = np.mgrid[0:48, 0:64]
    plane = (0.01 * cols + 0.02 * rows + 1.5).astype(np.float32)
    mask = sample_sparse_points(np.ones(plane.shape, bool), 60, 4)
    mask[[0, 0, -1, -1], [0, -1, 0, -1]] = True  # the corners put the whole image in the hull
    filled = linear_fill(np.where(mask, plane, 0.0))
    np.testing.assert_allclose(filled, plane, atol=1e-5)
    # Nearest fill is not exact on the same input, so the test can tell the two apart.
    assert np.abs(nearest_fill(np.where(mask, plane, 0.0)) - plane).max() > 0.02
    # Dense input with holes (triangulated from the hole borders only): still exact.
    holed = plane.copy()
    holed[10:30, 15:40] = 0.0
    holed[35:40, 50:52] = 0.0
    np.testing.assert_allclose(linear_fill(holed), plane, atol=1e-5)


def test_baselines_reject_empty_input():
    """Baselines reject empty input."""
    for fill in (nearest_fill, linear_fill, ip_basic_fill):
        with pytest.raises(ValueError, match='no valid input'):
            fill(np.zeros((8, 8), np.float32))


def test_ip_basic_prefers_near_surfaces_and_fills_everything():
    """IP-Basic fills every pixel and prefers near surfaces."""
    sparse = np.zeros((64, 64), np.float32)
    sparse[32, 20], sparse[32, 44] = 1.0, 3.0
    filled = ip_basic_fill(sparse)
    assert np.all(np.isfinite(filled) & (filled > 0.0))
    # Dilation on inverted depth: the pixel half-way between the points takes the near depth
    # (nearest fill would have to pick one side arbitrarily); inputs keep their value.
    assert filled[32, 32] == pytest.approx(1.0, abs=1e-4)
    assert filled[32, 44] == pytest.approx(3.0)


def test_ip_basic_on_a_real_frame(shared_data):
    """IP-Basic completes a real YCB-Video frame from 1500 points."""
    frame = ycbv_frame(shared_data, '0000', 1)
    valid = frame.depth_m > 0.0
    mask = sample_sparse_points(valid, 1500, 0)
    filled = ip_basic_fill(np.where(mask, frame.depth_m, 0.0))
    assert np.all(np.isfinite(filled) & (filled > 0.0))
    np.testing.assert_array_equal(filled[mask], frame.depth_m[mask])
    metrics = depth_completion_metrics(filled, frame.depth_m, valid & ~mask)
    # Objects on a table at 0.5-1.6 m: a working fill is within a few percent.
    assert metrics['abs_rel'] < 0.05
    assert metrics['delta_1.25'] > 0.95
