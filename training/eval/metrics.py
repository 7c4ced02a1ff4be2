"""Depth-completion metrics in the VOID convention.

Depth is given in metres; the metrics are reported as in the VOID benchmark (Wong et al. 2020):
MAE and RMSE in millimetres, iMAE and iRMSE of the inverse depth in 1/km, plus the
monocular-depth metrics AbsRel and delta < 1.25. Every metric is computed per frame over the
evaluation mask only (pixels valid in the measured depth and not given to the method as input);
datasets are summarised by the mean of the per-frame values, as VOID does.
"""

import numpy as np

METRIC_NAMES = ('mae_mm', 'rmse_mm', 'imae_1pkm', 'irmse_1pkm', 'abs_rel', 'delta_1.25')
# Predictions are clipped to this floor before inversion so iMAE/iRMSE stay finite; VOID's own
# evaluation clips predictions to its evaluation range in the same way.
MIN_PREDICTED_DEPTH_M = 0.05


def depth_completion_metrics(pred_m: np.ndarray, target_m: np.ndarray,
                             eval_mask: np.ndarray) -> dict[str, float]:
    """Score a completed depth map against the held-out measured depth.

    Args:
        pred_m: Predicted depth in metres, (H, W); must be finite on ``eval_mask``. Values
            below ``MIN_PREDICTED_DEPTH_M`` are clipped to it.
        target_m: Measured depth in metres, (H, W); must be > 0 and finite on ``eval_mask``.
        eval_mask: Boolean (H, W), the pixels to score.

    Returns:
        Dict with the keys of ``METRIC_NAMES``: MAE/RMSE in mm, iMAE/iRMSE in 1/km, AbsRel
        (fraction) and delta < 1.25 (fraction of pixels).

    Raises:
        ValueError: On shape mismatch, an empty mask, non-finite predictions or invalid targets
            inside the mask.
    """
    if pred_m.shape != target_m.shape or eval_mask.shape != target_m.shape:
        raise ValueError(f'shape mismatch: pred {pred_m.shape}, target {target_m.shape}, '
                         f'mask {eval_mask.shape}')
    mask = eval_mask.astype(bool)
    count = int(mask.sum())
    if count == 0:
        raise ValueError('evaluation mask selects no pixel')
    pred = pred_m[mask].astype(np.float64)
    target = target_m[mask].astype(np.float64)
    if not np.all(np.isfinite(pred)):
        raise ValueError(f'{int((~np.isfinite(pred)).sum())} of {count} predicted depths are '
                         'not finite inside the evaluation mask')
    if not np.all(np.isfinite(target) & (target > 0.0)):
        raise ValueError(f'target depth has {int((~(target > 0.0)).sum())} non-positive or '
                         'non-finite values inside the evaluation mask')
    pred = np.maximum(pred, MIN_PREDICTED_DEPTH_M)
    error_m = pred - target
    # 1/km: an inverse depth of 1/d metres is 1000/d per kilometre.
    inverse_error = 1000.0 / pred - 1000.0 / target
    ratio = np.maximum(pred / target, target / pred)
    return {
        'mae_mm': float(np.mean(np.abs(error_m)) * 1000.0),
        'rmse_mm': float(np.sqrt(np.mean(error_m ** 2)) * 1000.0),
        'imae_1pkm': float(np.mean(np.abs(inverse_error))),
        'irmse_1pkm': float(np.sqrt(np.mean(inverse_error ** 2))),
        'abs_rel': float(np.mean(np.abs(error_m) / target)),
        'delta_1.25': float(np.mean(ratio < 1.25)),
    }


def mean_metrics(per_frame: list[dict[str, float]]) -> dict[str, float]:
    """Average per-frame metric dicts key by key (the VOID dataset summary).

    Args:
        per_frame: Non-empty list of dicts as returned by ``depth_completion_metrics``.

    Returns:
        Dict with the same keys holding the mean over frames.

    Raises:
        ValueError: If the list is empty or the dicts have different keys.
    """
    if not per_frame:
        raise ValueError('no per-frame metrics to average')
    keys = set(per_frame[0])
    for index, values in enumerate(per_frame):
        if set(values) != keys:
            raise ValueError(f'frame {index} has metric keys {sorted(values)}, '
                             f'expected {sorted(keys)}')
    return {key: float(np.mean([values[key] for values in per_frame])) for key in per_frame[0]}
