"""Sparsification curves: how well an uncertainty ranks the errors of a depth map.

Keep the most confident fraction f of the pixels (lowest uncertainty first) and take the RMSE
of what is kept; the oracle keeps the pixels of smallest true error. A useful uncertainty
gives a curve that falls as f shrinks; the area between the curve and the oracle's (AUSE, the
mean gap over the fractions) is 0 for a perfect ranking (Ilg et al. 2018, Poggi et al. 2020).
"""

import numpy as np

FRACTIONS = tuple(round(0.1 * k, 1) for k in range(1, 11))  # 0.1 .. 1.0


def kept_rmse(error: np.ndarray, order: np.ndarray, fractions=FRACTIONS) -> np.ndarray:
    """RMSE of the first ``fraction`` of the pixels in ``order``, per fraction.

    Args:
        error: (N,) signed errors.
        order: (N,) pixel indices, most trusted first.
        fractions: Shares kept, in (0, 1].

    Returns:
        (len(fractions),) RMSE in the unit of ``error``; at least one pixel is kept.
    """
    squared = np.cumsum(np.square(error[order], dtype=np.float64))  # (N,)
    counts = np.maximum(1, np.round(np.asarray(fractions) * error.size).astype(int))
    return np.sqrt(squared[counts - 1] / counts)


def sparsification(error: np.ndarray, uncertainty: np.ndarray,
                   fractions=FRACTIONS) -> dict:
    """Sparsification curve, oracle curve and AUSE of one set of pixels.

    Args:
        error: (N,) signed errors (prediction - truth), N >= 1.
        uncertainty: (N,) predicted uncertainty (higher = less trusted); ties keep the
            pixel order (a stable sort).
        fractions: Shares kept.

    Returns:
        ``curve`` and ``oracle`` (len(fractions),), ``ause`` (mean of curve - oracle),
        ``half_ratio`` (RMSE of the most confident half / RMSE of all).

    Raises:
        ValueError: Empty or mismatched inputs, or a non-finite uncertainty.
    """
    error, uncertainty = np.ravel(error), np.ravel(uncertainty)
    if error.size == 0 or error.shape != uncertainty.shape:
        raise ValueError(f'need as many errors as uncertainties, at least one: {error.shape}, '
                         f'{uncertainty.shape}')
    if not np.isfinite(uncertainty).all():
        raise ValueError(f'{int((~np.isfinite(uncertainty)).sum())} non-finite uncertainties')
    curve = kept_rmse(error, np.argsort(uncertainty, kind='stable'), fractions)
    oracle = kept_rmse(error, np.argsort(np.abs(error), kind='stable'), fractions)
    everything = float(np.sqrt(np.mean(np.square(error, dtype=np.float64))))
    half = float(kept_rmse(error, np.argsort(uncertainty, kind='stable'), (0.5,))[0])
    return {'curve': curve, 'oracle': oracle, 'ause': float(np.mean(curve - oracle)),
            'half_ratio': half / everything if everything > 0 else 1.0}
