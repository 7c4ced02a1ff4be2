"""Relative-pose errors and the pose AUC used by SuperGlue-style evaluations."""

import numpy as np


def relative_pose_from_world(cam_to_world_a: np.ndarray,
                             cam_to_world_b: np.ndarray) -> np.ndarray:
    """Return the 4x4 transform mapping camera-B coordinates into camera-A coordinates.

    Args:
        cam_to_world_a: (4, 4) pose of camera A (camera-to-world, as in 7-Scenes pose.txt).
        cam_to_world_b: (4, 4) pose of camera B.

    Returns:
        (4, 4) ``inv(T_wa) @ T_wb``.
    """
    return np.linalg.inv(cam_to_world_a) @ cam_to_world_b


def rotation_error_deg(rotation_est: np.ndarray, rotation_gt: np.ndarray) -> float:
    """Return the geodesic angle between two rotations in degrees."""
    cosine = (np.trace(rotation_est.T @ rotation_gt) - 1.0) / 2.0
    return float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def translation_errors(translation_est: np.ndarray,
                       translation_gt: np.ndarray) -> tuple[float, float]:
    """Return the translation error as a distance (cm) and an angle between directions (deg).

    Args:
        translation_est: (3,) estimated translation in metres.
        translation_gt: (3,) ground-truth translation in metres.

    Returns:
        (distance in cm, angle in degrees); the angle is 0 when either vector is zero.
    """
    distance_cm = float(np.linalg.norm(translation_est - translation_gt) * 100.0)
    norms = np.linalg.norm(translation_est) * np.linalg.norm(translation_gt)
    if norms == 0.0:
        return distance_cm, 0.0
    cosine = float(translation_est @ translation_gt) / norms
    return distance_cm, float(np.degrees(np.arccos(np.clip(cosine, -1.0, 1.0))))


def pose_auc(errors_deg: np.ndarray, thresholds_deg: tuple[float, ...]) -> list[float]:
    """Area under the cumulative pose-error curve up to each threshold (SuperGlue).

    Failed estimates should be passed as ``inf``; they count as pairs that never become
    correct.

    Args:
        errors_deg: (N,) per-pair error, typically max(rotation error, translation angle).
        thresholds_deg: Upper integration limits in degrees.

    Returns:
        AUC per threshold as a fraction in [0, 1].

    Raises:
        ValueError: If ``errors_deg`` is empty.
    """
    errors = np.sort(np.asarray(errors_deg, np.float64))
    if errors.size == 0:
        raise ValueError('pose AUC needs at least one error')
    recall = (np.arange(errors.size) + 1) / errors.size
    errors = np.concatenate([[0.0], errors])
    recall = np.concatenate([[0.0], recall])
    aucs = []
    for threshold in thresholds_deg:
        last = np.searchsorted(errors, threshold)
        x = np.concatenate([errors[:last], [threshold]])
        y = np.concatenate([recall[:last], [recall[last - 1]]])
        aucs.append(float(np.trapezoid(y, x) / threshold))
    return aucs
