"""Kabsch, RANSAC and pose metrics against synthetic ground truth."""

import numpy as np
import pytest

from training.eval.pose_metrics import pose_auc, rotation_error_deg, translation_errors
from training.eval.rigid_registration import kabsch, ransac_kabsch


def _random_rotation(rng):
    q, r = np.linalg.qr(rng.normal(size=(3, 3)))
    q = q @ np.diag(np.sign(np.diag(r)))
    return q * np.sign(np.linalg.det(q))


def test_kabsch_recovers_rotation_and_translation():
    """Kabsch recovers rotation and translation."""
    rng = np.random.default_rng(1)
    rotation = _random_rotation(rng)
    translation = np.array([0.3, -1.2, 2.0])
    source = rng.uniform(-2, 2, size=(50, 3))
    estimated_r, estimated_t = kabsch(source, source @ rotation.T + translation)
    np.testing.assert_allclose(estimated_r, rotation, atol=1e-10)
    np.testing.assert_allclose(estimated_t, translation, atol=1e-10)
    assert np.linalg.det(estimated_r) == pytest.approx(1.0)


def test_kabsch_returns_rotation_not_reflection():
    """Kabsch returns a rotation, never a reflection."""
    source = np.random.default_rng(2).normal(size=(20, 3))
    mirrored = source * np.array([1.0, 1.0, -1.0])
    rotation, _ = kabsch(source, mirrored)
    assert np.linalg.det(rotation) == pytest.approx(1.0)


def test_ransac_with_30_percent_outliers():
    """RANSAC recovers the pose with 30 % outliers where plain Kabsch fails."""
    rng = np.random.default_rng(3)
    rotation = _random_rotation(rng)
    translation = np.array([-0.5, 0.1, 0.7])
    source = rng.uniform(-2, 2, size=(200, 3))
    target = source @ rotation.T + translation + rng.normal(scale=0.002, size=(200, 3))
    outliers = rng.choice(200, 60, replace=False)
    target[outliers] = rng.uniform(-3, 3, size=(60, 3))
    # A plain least-squares fit is pulled away by the outliers...
    plain_r, _ = kabsch(source, target)
    assert rotation_error_deg(plain_r, rotation) > 1.0
    # ...RANSAC is not.
    result = ransac_kabsch(source, target, 0.02, np.random.default_rng(0), iterations=300)
    assert rotation_error_deg(result.rotation, rotation) < 0.2
    assert np.linalg.norm(result.translation - translation) < 0.005
    inlier_truth = np.ones(200, bool)
    inlier_truth[outliers] = False
    assert (result.inliers == inlier_truth).mean() > 0.99


def test_ransac_fails_cleanly_with_too_few_points():
    """RANSAC returns None with fewer than 3 points."""
    points = np.zeros((2, 3))
    assert ransac_kabsch(points, points, 0.05, np.random.default_rng(0)) is None


def test_pose_errors_and_auc():
    """Rotation/translation errors and pose AUC equal hand-computed values."""
    about_z = np.array([[0.0, -1.0, 0.0], [1.0, 0.0, 0.0], [0.0, 0.0, 1.0]])
    assert rotation_error_deg(about_z, np.eye(3)) == pytest.approx(90.0)
    distance_cm, angle = translation_errors(np.array([1.0, 0.0, 0.0]), np.array([0.0, 1.0, 0.0]))
    assert distance_cm == pytest.approx(100.0 * np.sqrt(2.0))
    assert angle == pytest.approx(90.0)
    # Errors 0 and inf (a failure): recall is 0.5 from 0 deg on, so AUC@5 = 0.5.
    assert pose_auc(np.array([0.0, np.inf]), (5.0,)) == pytest.approx([0.5])
    # One pair with error 5: recall 0 below 5 deg and 1 from 5 deg on; trapezoid on
    # (0, 0) -> (5, 1) -> (10, 1) gives (2.5 + 5) / 10.
    assert pose_auc(np.array([5.0]), (10.0,)) == pytest.approx([0.75])
