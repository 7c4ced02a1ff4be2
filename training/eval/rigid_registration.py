"""Rigid 3-D registration: Kabsch (Umeyama without scale) and RANSAC around it."""

import dataclasses

import numpy as np


def kabsch(source: np.ndarray, target: np.ndarray,
           weights: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Least-squares rotation and translation with ``target ~ R @ source + t``.

    Args:
        source: (N, 3) points, N >= 3.
        target: (N, 3) corresponding points.
        weights: Optional non-negative (N,) weights.

    Returns:
        (R, t): proper rotation (3, 3) with det +1 and translation (3,).

    Raises:
        ValueError: On shape mismatch or fewer than 3 points.
    """
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise ValueError(f'expected two (N, 3) arrays, got {source.shape} and {target.shape}')
    if source.shape[0] < 3:
        raise ValueError(f'Kabsch needs at least 3 points, got {source.shape[0]}')
    w = np.ones(source.shape[0]) if weights is None else np.asarray(weights, np.float64)
    w = w / w.sum()
    mean_source = w @ source  # (3,)
    mean_target = w @ target  # (3,)
    covariance = (target - mean_target).T @ ((source - mean_source) * w[:, None])  # (3, 3)
    u, _, vt = np.linalg.svd(covariance)
    # Flip the smallest singular direction when needed so R is a rotation, not a reflection.
    sign = np.sign(np.linalg.det(u @ vt)) or 1.0
    rotation = u @ np.diag([1.0, 1.0, sign]) @ vt
    return rotation, mean_target - rotation @ mean_source


@dataclasses.dataclass
class RansacResult:
    """Outcome of ``ransac_kabsch``.

    Attributes:
        rotation: (3, 3) rotation, refit on all inliers.
        translation: (3,) translation.
        inliers: Boolean (N,) inlier mask of the final model.
    """

    rotation: np.ndarray
    translation: np.ndarray
    inliers: np.ndarray


def ransac_kabsch(source: np.ndarray, target: np.ndarray, inlier_threshold_m: float,
                  rng: np.random.Generator, iterations: int = 1000,
                  min_inliers: int = 3) -> RansacResult | None:
    """Robust rigid fit: 3-point Kabsch hypotheses, most inliers wins, refit on the inliers.

    Args:
        source: (N, 3) points in the source frame (metres).
        target: (N, 3) matched points in the target frame.
        inlier_threshold_m: A match is an inlier when ``|R s + t - t'|`` is below this.
        rng: Seeded generator for the minimal samples.
        iterations: Number of hypotheses.
        min_inliers: Fewer inliers than this counts as failure.

    Returns:
        The best model, or None when there are fewer than 3 matches or too few inliers.

    Raises:
        ValueError: On shape mismatch or a non-positive threshold.
    """
    if source.shape != target.shape or source.ndim != 2 or source.shape[1] != 3:
        raise ValueError(f'expected two (N, 3) arrays, got {source.shape} and {target.shape}')
    if inlier_threshold_m <= 0.0:
        raise ValueError(f'inlier threshold must be positive, got {inlier_threshold_m}')
    count = source.shape[0]
    if count < 3:
        return None
    samples = np.stack([rng.choice(count, 3, replace=False) for _ in range(iterations)])
    best = np.zeros(count, bool)
    for sample in samples:
        rotation, translation = kabsch(source[sample], target[sample])
        residual = np.linalg.norm(source @ rotation.T + translation - target, axis=1)
        inliers = residual < inlier_threshold_m
        if inliers.sum() > best.sum():
            best = inliers
    if best.sum() < max(min_inliers, 3):
        return None
    rotation, translation = kabsch(source[best], target[best])
    residual = np.linalg.norm(source @ rotation.T + translation - target, axis=1)
    return RansacResult(rotation, translation, residual < inlier_threshold_m)
