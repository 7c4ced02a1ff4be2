"""Alignment of the decoder's relative depth to the measured depth: global, then local.

The decoder predicts depth up to an unknown scale. ``global`` alignment fits one least-squares
scale (optionally a shift) over the pixels where both depths are valid. ``local`` alignment
then corrects what one scale cannot, as VI-Depth's global-then-dense scale alignment does: the
ratio measured / aligned prediction is taken at the valid measured pixels, interpolated
piecewise-linearly between them (:mod:`vd_ros.core.linear_fill`) and multiplied into the
prediction. With a constant prediction this is exactly the classical linear fill of the
measured depth; with a good prediction the shape between the measured pixels comes from it.

Sparse input (at most :data:`POINT_ANCHORS_MAX` valid pixels, e.g. VOID's 150 / 500 / 1500
points) is interpolated from the pixels themselves, on a grid of every
:data:`SPARSE_STEP`-th pixel. Dense sensor depth with holes is first averaged in cells of
about ``H * W / DENSE_CELLS`` pixels (8 x 8 at 640 x 480), so the triangulation stays small.
Either way the measured depth is kept exactly wherever it is valid.
"""

import cv2
import numpy as np

from vd_ros.core.linear_fill import interpolate_linear, upsample_grid

ALIGNMENTS = ('local', 'global')
POINT_ANCHORS_MAX = 4096
SPARSE_STEP = 2
DENSE_CELLS = 4800
_NEIGHBOURS = np.ones((3, 3), np.uint8)


def align_depth(pred_m: np.ndarray, measured_m: np.ndarray, fit_shift: bool = False,
                alignment: str = 'local') -> tuple:
    """Align predicted depth to measured depth and fill the holes of the measurement.

    The global fit uses the pixels where both are valid (measured finite and > 0, prediction
    finite and > 0) and minimises ``sum((scale * pred + shift - measured) ** 2)``. ``local``
    alignment then multiplies the globally aligned prediction by the interpolated ratio
    measured / aligned (see the module docstring). Measured depth is kept exactly wherever it
    is valid; the aligned prediction fills the rest.

    Bad input gives a defined result, never an exception: non-finite or non-positive
    measurements are holes; non-finite or non-positive predictions give NaN where nothing was
    measured; when no pixel has both (e.g. no valid measurement) ``scale = 1``, ``shift = 0``
    and the prediction is returned unscaled in both modes (for ``fit_shift`` the shift also
    needs two distinct predictions).

    Args:
        pred_m: (H, W) predicted depth in metres (may hold NaN / Inf / <= 0).
        measured_m: (H, W) measured depth in metres, 0 / NaN where invalid.
        fit_shift: Also fit an additive shift in the global step.
        alignment: ``'local'`` or ``'global'``.

    Returns:
        ``(completed, scale, shift)``: completed (H, W) float32, NaN where neither a valid
        measurement nor a valid (finite, > 0) aligned prediction exists; the global scale and
        shift as floats.

    Raises:
        ValueError: For arrays of different or non-2D shapes, or an unknown ``alignment``.
    """
    pred, measured = np.asarray(pred_m), np.asarray(measured_m)
    if pred.ndim != 2 or pred.shape != measured.shape:
        raise ValueError(f'pred {pred.shape} and measured {measured.shape} must be equal (H, W)')
    if alignment not in ALIGNMENTS:
        raise ValueError(f'alignment must be one of {ALIGNMENTS}, got {alignment!r}')
    with np.errstate(invalid='ignore'):
        measured_valid = np.isfinite(measured) & (measured > 0)
        pred_valid = np.isfinite(pred) & (pred > 0)
    scale, shift = _fit_global(pred, measured, measured_valid & pred_valid, fit_shift)
    completed = np.multiply(pred, np.float32(scale), dtype=np.float32)  # (H, W) aligned
    if shift:
        completed += np.float32(shift)
    with np.errstate(invalid='ignore', over='ignore'):
        aligned_valid = pred_valid & np.isfinite(completed) & (completed > 0)
        np.putmask(completed, ~aligned_valid, np.float32(np.nan))
        anchors = measured_valid & aligned_valid
        if alignment == 'local' and anchors.any():
            completed *= local_scale_field(completed, measured, anchors)
            np.putmask(completed, ~(np.isfinite(completed) & (completed > 0)),
                       np.float32(np.nan))
    np.copyto(completed, measured, where=measured_valid, casting='same_kind')
    return completed, scale, shift


def _fit_global(pred: np.ndarray, measured: np.ndarray, both: np.ndarray,
                fit_shift: bool) -> tuple:
    """Return the least-squares (scale, shift) of pred to measured over ``both``."""
    # The sums run in float64 over the valid pixels only, with numpy's pairwise sum rather than
    # BLAS dot (whose thread pool stalls for ~20 ms on a loaded CPU next to ONNX Runtime).
    p, m = pred[both].astype(np.float64), measured[both].astype(np.float64)
    if fit_shift and p.size >= 2 and np.ptp(p) > 0:
        p_mean, m_mean = p.mean(), m.mean()
        p -= p_mean
        scale = float(np.sum(p * (m - m_mean)) / np.sum(p * p))
        return scale, float(m_mean - scale * p_mean)
    if not fit_shift and p.size:
        return float(np.sum(p * m) / np.sum(p * p)), 0.0
    return 1.0, 0.0


def local_scale_field(aligned: np.ndarray, measured: np.ndarray,
                      anchors: np.ndarray) -> np.ndarray:
    """Interpolate the ratio measured / aligned from the anchor pixels to every pixel.

    Args:
        aligned: (H, W) globally aligned prediction, finite and > 0 at the anchors.
        measured: (H, W) measured depth, finite and > 0 at the anchors.
        anchors: (H, W) bool, at least one True: the pixels where both are valid.

    Returns:
        float32 (H, W) correction field, positive wherever the ratios are.
    """
    shape = anchors.shape
    count = int(np.count_nonzero(anchors))
    if count <= POINT_ANCHORS_MAX:
        rows, cols = np.nonzero(anchors)
        ratio = measured[rows, cols].astype(np.float64) / aligned[rows, cols]
        return interpolate_linear(np.stack([cols, rows], axis=1), ratio, shape, SPARSE_STEP)
    cell = max(1, round(np.sqrt(shape[0] * shape[1] / DENSE_CELLS)))
    grid = (-(-shape[0] // cell), -(-shape[1] // cell))
    ratio = np.zeros(shape, np.float32)
    np.divide(measured, aligned, out=ratio, where=anchors, casting='unsafe')
    pad = ((0, grid[0] * cell - shape[0]), (0, grid[1] * cell - shape[1]))
    # INTER_AREA at an integer factor is the exact mean over each cell.
    cell_sum = cv2.resize(np.pad(ratio, pad), grid[::-1], interpolation=cv2.INTER_AREA)
    cell_count = cv2.resize(np.pad(anchors.astype(np.float32), pad), grid[::-1],
                            interpolation=cv2.INTER_AREA)  # (h, w) share of anchor pixels
    known = cell_count > 0
    cell_ratio = np.divide(cell_sum, cell_count, out=np.zeros_like(cell_sum), where=known)
    # Cells without anchors are interpolated from the known cells that border them.
    border = known & ~cv2.erode(known.view(np.uint8), _NEIGHBOURS, borderType=cv2.BORDER_CONSTANT,
                                borderValue=0).view(bool)
    rows, cols = np.nonzero(border)
    if rows.size and not known.all():
        filled = interpolate_linear(np.stack([cols, rows], axis=1), cell_ratio[rows, cols], grid)
        cell_ratio = np.where(known, cell_ratio, filled)
    return upsample_grid(cell_ratio, cell, shape, cv2.INTER_LINEAR)
