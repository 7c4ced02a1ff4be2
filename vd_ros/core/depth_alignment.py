"""Alignment of the decoder's relative depth to the measured depth: global, then local.

The decoder predicts depth up to an unknown scale. ``global`` alignment fits one least-squares
scale (optionally a shift) over the pixels where both depths are valid. ``local`` alignment
then corrects what one scale cannot, as VI-Depth's global-then-dense scale alignment does: the
ratio measured / aligned prediction is taken at the valid measured pixels, interpolated
piecewise-linearly between them (:mod:`vd_ros.core.linear_fill`) and multiplied into the
prediction. With a constant prediction this is the classical linear fill of the measured
depth; with a good prediction the shape between the measured pixels comes from the model.

Sparse input (at most :data:`POINT_ANCHORS_MAX` valid pixels, e.g. VOID's 150 / 500 / 1500
points) is interpolated from the pixels themselves, evaluated on every :data:`POINT_STEP`-th
pixel and upsampled bilinearly. In dense sensor depth only the rims of the holes shape the
fill, so their pixels are merged per :data:`RIM_CELL_PX` square cell (mean position, mean
ratio) to keep the triangulation small, and the interpolant is evaluated on every
:data:`RIM_STEP`-th pixel: ~2 ms at 640x480 on a 2-core CPU (``make bench``). On the held-out
frames with Perlin holes 16 px cells on an 8 px grid changed the RMSE by -2 to +1.4 % against
8 px cells on a 4 px grid, which took twice as long (``docs/results/completion.md``). Either
way the measured depth is kept exactly wherever it is valid.
"""

import cv2
import numpy as np

from vd_ros.core.linear_fill import interpolate_linear

ALIGNMENTS = ('local', 'global')
POINT_ANCHORS_MAX = 4096
POINT_STEP = 4
RIM_CELL_PX = 16
RIM_STEP = 8
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
    with np.errstate(over='ignore'):  # float64 beyond float32 becomes Inf: invalid
        pred = np.ascontiguousarray(pred, dtype=np.float32)
        measured = np.ascontiguousarray(measured, dtype=np.float32)
    # Full-image work goes through comparisons, OpenCV masks and sums: numpy's boolean
    # indexing and where() cost ~1-2 ms each on a 640x480 frame, OpenCV's masked ops ~0.1 ms.
    measured_valid, pred_valid = _valid(measured), _valid(pred)
    scale, shift = _fit_global(pred, measured, measured_valid & pred_valid, fit_shift)
    if not (np.isfinite(scale) and np.isfinite(shift)):  # sums overflowed: absurd input
        scale, shift = 1.0, 0.0
    with np.errstate(invalid='ignore', over='ignore'):  # Inf * 0 (a zero-slope fit) is NaN
        completed = pred * np.float32(scale)  # (H, W) aligned
        if shift:
            completed += np.float32(shift)
    aligned_valid = pred_valid & (completed > 0) & (completed < np.inf)
    anchors = measured_valid & aligned_valid
    if alignment == 'local' and anchors.any():
        with np.errstate(over='ignore'):
            completed *= local_scale_field(completed, measured, anchors)
        aligned_valid &= completed < np.inf  # an absurd prediction times a large ratio
    return _merge(completed, aligned_valid, measured, measured_valid), scale, shift


def keep_measured(depth_m: np.ndarray, measured_m: np.ndarray) -> np.ndarray:
    """Complete metric depth (e.g. a completion head's) with the measurement, unaligned.

    Args:
        depth_m: (H, W) depth in metres (may hold NaN / Inf / <= 0).
        measured_m: (H, W) measured depth in metres, 0 / NaN where invalid.

    Returns:
        float32 (H, W): the measured depth where it is valid (finite, > 0), else ``depth_m``
        where that is valid, else NaN.

    Raises:
        ValueError: For arrays of different or non-2D shapes.
    """
    depth, measured = np.asarray(depth_m), np.asarray(measured_m)
    if depth.ndim != 2 or depth.shape != measured.shape:
        raise ValueError(f'depth {depth.shape} and measured {measured.shape} must be equal '
                         '(H, W)')
    with np.errstate(over='ignore'):  # float64 beyond float32 becomes Inf: invalid
        depth = np.array(depth, dtype=np.float32)  # a copy: the result is written in place
        measured = np.ascontiguousarray(measured, dtype=np.float32)
    return _merge(depth, _valid(depth), measured, _valid(measured))


def _valid(depth: np.ndarray) -> np.ndarray:
    """Return the finite, positive pixels (comparisons: False for NaN)."""
    return (depth > 0) & (depth < np.inf)


def _merge(completed: np.ndarray, valid: np.ndarray, measured: np.ndarray,
           measured_valid: np.ndarray) -> np.ndarray:
    """Set ``completed`` to NaN where not ``valid``, then copy in the valid measurement."""
    if not valid.all():
        np.putmask(completed, ~valid, np.float32(np.nan))
    return cv2.copyTo(measured, measured_valid.view(np.uint8), completed)


def _fit_global(pred: np.ndarray, measured: np.ndarray, both: np.ndarray,
                fit_shift: bool) -> tuple:
    """Return the least-squares (scale, shift) of pred to measured over ``both``."""
    count = int(np.count_nonzero(both))
    if not count or (fit_shift and count < 2):
        return 1.0, 0.0
    # Masked OpenCV reductions accumulate float32 in float64 and allocate nothing (full-size
    # temporaries cost ~0.3 ms each in page faults); no BLAS dot (its thread pool stalls ~20 ms
    # on a loaded CPU next to ONNX Runtime), no boolean indexing. sum(p * m) comes from
    # sum((p - m) ** 2) = sum(p ** 2) + sum(m ** 2) - 2 sum(p * m), all in float64.
    mask = both.view(np.uint8)
    sum_pp = cv2.norm(pred, cv2.NORM_L2SQR, mask)
    sum_mm = cv2.norm(measured, cv2.NORM_L2SQR, mask)
    sum_pm = (sum_pp + sum_mm - cv2.norm(pred, measured, cv2.NORM_L2SQR, mask)) / 2.0
    if not fit_shift:
        return sum_pm / sum_pp, 0.0
    mean_p, mean_m = cv2.mean(pred, mask)[0], cv2.mean(measured, mask)[0]
    variance_p = sum_pp / count - mean_p * mean_p
    if variance_p <= 1e-12 * mean_p * mean_p:  # (nearly) one predicted value: no shift
        return 1.0, 0.0
    scale = (sum_pm / count - mean_p * mean_m) / variance_p
    return scale, mean_m - scale * mean_p


def local_scale_field(aligned: np.ndarray, measured: np.ndarray,
                      anchors: np.ndarray) -> np.ndarray:
    """Interpolate the ratio measured / aligned from the anchor pixels to every pixel.

    Args:
        aligned: (H, W) float32 globally aligned prediction, finite and > 0 at the anchors.
        measured: (H, W) float32 measured depth, finite and > 0 at the anchors.
        anchors: (H, W) bool, at least one True: the pixels where both are valid.

    Returns:
        float32 (H, W) correction field, positive (the anchors' ratios are).
    """
    if np.count_nonzero(anchors) <= POINT_ANCHORS_MAX:
        index = np.flatnonzero(anchors)  # (N,); 2-D np.nonzero is ~10x slower
        ratio = measured.ravel()[index].astype(np.float64) / aligned.ravel()[index]
        rows, cols = np.divmod(index, anchors.shape[1])
        points, step = np.stack([cols, rows], axis=1), POINT_STEP
    else:
        (points, ratio), step = _rim_cells(aligned, measured, anchors), RIM_STEP
    return interpolate_linear(points, ratio, anchors.shape, step)


def _rim_cells(aligned: np.ndarray, measured: np.ndarray, anchors: np.ndarray) -> tuple:
    """Return (points (N, 2) x, y, ratios (N,)): the rims of the holes, averaged per cell.

    Between the anchors only the ones on the rim of a hole (or of the image) shape the
    interpolant in the holes, as in the linear fill; a dense frame has thousands, so the rim
    pixels of each :data:`RIM_CELL_PX` square cell are merged into one point at their mean
    position with their mean ratio.
    """
    width = anchors.shape[1]
    rim = anchors & ~cv2.erode(anchors.view(np.uint8), _NEIGHBOURS,
                               borderType=cv2.BORDER_CONSTANT, borderValue=0).view(bool)
    index = np.flatnonzero(rim)  # (R,) a few % of the pixels: no full-size float images
    rows, cols = np.divmod(index, width)
    ratio = measured.ravel()[index].astype(np.float64) / aligned.ravel()[index]
    cell = (rows // RIM_CELL_PX) * (-(-width // RIM_CELL_PX)) + cols // RIM_CELL_PX  # (R,)
    count = np.bincount(cell)  # (cells,) a few thousand: no sort of the rim pixels
    used = np.flatnonzero(count)  # (N,)
    means = [np.bincount(cell, weights=values)[used] / count[used]
             for values in (cols, rows, ratio)]
    return np.stack(means[:2], axis=1), means[2]
