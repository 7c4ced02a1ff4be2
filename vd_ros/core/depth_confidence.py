"""Per-pixel confidence of the published depth, from a model's ``depth_uncertainty``.

The model gives, beside its completed depth d, an uncertainty u in metres: the expected
absolute error of d, u = d * b for a Laplace error of scale b on log depth (contract v3). The
node publishes the confidence ``exp(-u / d) = exp(-b)`` in [0, 1]: a relative measure, so one
threshold means the same at 0.5 m and at 5 m (0.9 is an expected error of about 10 % of the
depth, 0.5 of about 70 %). Measured pixels have confidence 1. A pixel whose uncertainty is not
a finite number >= 0 (bad model output) has confidence 0, and so has a pixel without depth:
the confidence is never NaN. The node computes it on the model grid and maps it to the camera
(:func:`camera_confidence`): a linear interpolation of values in [0, 1] stays in [0, 1], and
it costs a fifteenth of the per-pixel work at VGA.
"""

import numpy as np

from vd_ros.core.preprocess import Letterbox


def confidence_from_uncertainty(uncertainty: np.ndarray, predicted: np.ndarray,
                                measured: np.ndarray) -> np.ndarray:
    """Return the confidence in [0, 1] of every pixel.

    Args:
        uncertainty: (h, w) expected absolute error of ``predicted``, metres.
        predicted: (h, w) the model's depth that ``uncertainty`` belongs to, metres.
        measured: (h, w) measured depth, metres, 0 where invalid.

    Returns:
        (h, w) float32: 1 where measured, ``exp(-uncertainty / predicted)`` where both are
        finite, ``predicted`` > 0 and ``uncertainty`` >= 0, 0 elsewhere.
    """
    with np.errstate(divide='ignore', invalid='ignore', over='ignore'):
        relative = uncertainty / predicted  # (h, w)
        usable = np.isfinite(relative) & np.isfinite(predicted) & (relative >= 0.0) & \
            (predicted > 0.0)
        confidence = np.where(usable, np.exp(-np.where(usable, relative, 0.0)), 0.0)
    confidence[measured > 0.0] = 1.0
    return confidence.astype(np.float32)


def camera_confidence(uncertainty: np.ndarray, predicted: np.ndarray, letterbox: Letterbox,
                      measured: np.ndarray) -> np.ndarray:
    """Return the confidence at camera resolution from the model-grid outputs.

    Args:
        uncertainty: (H, W) the model's ``depth_uncertainty``, metres.
        predicted: (H, W) its ``completed_depth``, metres.
        letterbox: Camera -> model input mapping.
        measured: (h, w) measured depth at the camera, metres, 0 where invalid.

    Returns:
        (h, w) float32 in [0, 1]: :func:`confidence_from_uncertainty` on the model grid,
        mapped to the camera (linear), 1 where measured.
    """
    grid = confidence_from_uncertainty(uncertainty, predicted, np.zeros_like(predicted))
    confidence = np.array(letterbox.restore(grid, 'linear'), dtype=np.float32, copy=False)
    np.putmask(confidence, measured > 0.0, np.float32(1.0))
    return confidence


def drop_unconfident(depth: np.ndarray, confidence: np.ndarray,
                     min_confidence: float) -> np.ndarray:
    """Return ``depth`` with NaN where ``confidence`` < ``min_confidence`` (0: unchanged)."""
    if min_confidence <= 0.0:
        return depth
    return np.where(confidence < min_confidence, np.float32(np.nan), depth).astype(depth.dtype)
