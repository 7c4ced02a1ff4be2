"""Calibration of the completion head's uncertainty on held-out frames.

Every frame gets the inputs of the completion protocol (same masks and seeds,
``training.eval.completion_protocol``); the head's ``completed_depth`` and
``depth_uncertainty`` are mapped back to the camera as the node does, and on the filled pixels
(valid in the measured depth, not given as input) the errors are ranked two ways: by the
uncertainty in metres (the contract output) and by the node's confidence ``exp(-u / d)``
(``vd_ros.core.depth_confidence``); for reference also by the distance to the nearest input
pixel, the obvious heuristic a learned uncertainty has to beat. The same uncertainty also
ranks the errors of that depth after local alignment to the input (``depth.alignment:
local``, the node's default). Whether u is right in metres, not only in its ranking: the
share of filled pixels with |error| <= u (0.63 for a Laplace error of expected size u) and
mean |error| / mean u (1 when calibrated). Per frame: sparsification and
oracle curves, AUSE and the RMSE of the most confident half against all filled pixels;
averaged over frames per source
and pattern, and over all frames per pattern.
"""

from dataclasses import dataclass
import logging

import cv2
import numpy as np

from training.eval.completion_protocol import input_mask, InputPattern, pattern_seed
from training.eval.frames import RGBDFrame
from training.eval.sparsification import FRACTIONS, sparsification
from vd_ros.core.depth_alignment import align_depth
from vd_ros.core.depth_confidence import camera_confidence

_logger = logging.getLogger(__name__)
ALL_SOURCES = 'all sources'


@dataclass
class ConfidenceRecord:
    """One frame and pattern.

    Attributes:
        dataset: Source of the frame.
        pattern: Input pattern name.
        metres: ``sparsification`` ranked by the uncertainty in metres (RMSE in mm).
        relative: ``sparsification`` ranked by the node's confidence (RMSE in mm).
        distance: ``sparsification`` ranked by the distance to the nearest input pixel.
        local: ``sparsification`` of the locally aligned depth, ranked by the uncertainty.
        coverage: Share of the filled pixels with |error| <= u.
        scale: mean |error| / mean u over the filled pixels.
        finite: Every confidence is finite where the depth is.
        coverage_before: ``coverage`` of u / k, the uncertainty before a calibration by k.
        scale_before: ``scale`` of u / k.
    """

    dataset: str
    pattern: str
    metres: dict
    relative: dict
    distance: dict
    local: dict
    coverage: float
    scale: float
    finite: bool
    coverage_before: float = float('nan')
    scale_before: float = float('nan')


def score_frame(frame: RGBDFrame, pattern: InputPattern, seed: int, runner,
                calibration: float = 1.0) -> ConfidenceRecord | None:
    """Complete one frame's input with the head and score its uncertainty (None: no hole).

    ``calibration``: the factor k the head's uncertainty was multiplied by
    (``training.calibrate_uncertainty``); the ``_before`` figures score u / k.
    """
    mask = input_mask(frame.depth_m, pattern, seed)
    sparse = np.where(mask, frame.depth_m, 0.0).astype(np.float32)
    outputs, letterbox = runner.run(frame.rgb, sparse)
    if 'depth_uncertainty' not in outputs:
        raise ValueError('the completion head has no uncertainty branch (depth_uncertainty)')
    predicted = letterbox.restore(outputs['completed_depth'], 'linear')  # (h, w)
    uncertainty = letterbox.restore(outputs['depth_uncertainty'], 'linear')  # (h, w)
    completed = np.where(sparse > 0.0, sparse, predicted)
    confidence = camera_confidence(outputs['depth_uncertainty'], outputs['completed_depth'],
                                   letterbox, sparse)  # as the node computes it
    filled = (frame.depth_m > 0.0) & ~mask
    if not filled.any():
        return None
    error_mm = (completed[filled] - frame.depth_m[filled]) * 1000.0
    abs_mm, u_mm = np.abs(error_mm), 1000.0 * uncertainty[filled]
    finite = bool(np.isfinite(confidence[np.isfinite(completed)]).all())
    distance = cv2.distanceTransform((~mask).astype(np.uint8), cv2.DIST_L2, 5)  # (h, w) px
    aligned, _, _ = align_depth(predicted, sparse, False, 'local')  # (h, w)
    local_mm = (np.nan_to_num(aligned, nan=0.0)[filled] - frame.depth_m[filled]) * 1000.0
    return ConfidenceRecord(frame.dataset, pattern.name,
                            sparsification(error_mm, uncertainty[filled]),
                            sparsification(error_mm, -confidence[filled]),
                            sparsification(error_mm, distance[filled]),
                            sparsification(local_mm, uncertainty[filled]),
                            float(np.mean(abs_mm <= u_mm)),
                            float(np.mean(abs_mm) / max(1e-9, float(np.mean(u_mm)))),
                            finite,
                            float(np.mean(abs_mm <= u_mm / calibration)),
                            float(np.mean(abs_mm) /
                                  max(1e-9, float(np.mean(u_mm)) / calibration)))


def run_confidence_protocol(frames: list[RGBDFrame], runner,
                            patterns: tuple[InputPattern, ...], seed: int = 0,
                            calibration: float = 1.0) -> list[ConfidenceRecord]:
    """Score every frame and pattern (the completion protocol's inputs; see score_frame)."""
    records = []
    for frame_index, frame in enumerate(frames):
        _logger.info('confidence frame %d/%d: %s', frame_index + 1, len(frames), frame.name)
        for pattern_index, pattern in enumerate(patterns):
            record = score_frame(frame, pattern, pattern_seed(seed, frame_index, pattern_index),
                                 runner, calibration)
            if record is not None:
                records.append(record)
    return records


def summarize_confidence(records: list[ConfidenceRecord]) -> list[dict]:
    """Average per (source, pattern) and per pattern over all sources, in first-seen order.

    Returns:
        Rows with ``dataset``, ``pattern``, ``frames``, ``rmse_all_mm``, ``rmse_half_mm``,
        ``half_ratio`` (of the mean RMSEs; ``_relative``: ranked by the node's confidence,
        ``distance_``: by the distance to the input, ``oracle_``: by the true error),
        ``ause_mm``, ``ause_relative_mm``, ``ause_distance_mm``, ``curve``, ``oracle`` (mean
        curves, mm), the locally aligned depth's ``rmse_all_local_mm``, ``local_half_ratio``
        and ``ause_local_mm``, ``coverage`` and ``scale`` (means over frames; ``_before``: of
        the uncertainty before its calibration), ``finite``.
    """
    groups: dict[tuple[str, str], list[ConfidenceRecord]] = {}
    for record in records:
        groups.setdefault((record.dataset, record.pattern), []).append(record)
        groups.setdefault((ALL_SOURCES, record.pattern), []).append(record)
    half = FRACTIONS.index(0.5)
    rows = []
    for (dataset, pattern), group in groups.items():
        curve = np.mean([r.metres['curve'] for r in group], axis=0)
        oracle = np.mean([r.metres['oracle'] for r in group], axis=0)
        relative = np.mean([r.relative['curve'] for r in group], axis=0)
        distance = np.mean([r.distance['curve'] for r in group], axis=0)
        local = np.mean([r.local['curve'] for r in group], axis=0)
        rows.append({'dataset': dataset, 'pattern': pattern, 'frames': len(group),
                     'rmse_all_mm': float(curve[-1]), 'rmse_half_mm': float(curve[half]),
                     'half_ratio': float(curve[half] / curve[-1]),
                     'half_ratio_relative': float(relative[half] / relative[-1]),
                     'oracle_half_ratio': float(oracle[half] / oracle[-1]),
                     'distance_half_ratio': float(distance[half] / distance[-1]),
                     'ause_distance_mm': float(np.mean([r.distance['ause'] for r in group])),
                     'rmse_all_local_mm': float(local[-1]),
                     'local_half_ratio': float(local[half] / local[-1]),
                     'ause_local_mm': float(np.mean([r.local['ause'] for r in group])),
                     'coverage': float(np.mean([r.coverage for r in group])),
                     'scale': float(np.mean([r.scale for r in group])),
                     'coverage_before': float(np.mean([r.coverage_before for r in group])),
                     'scale_before': float(np.mean([r.scale_before for r in group])),
                     'ause_mm': float(np.mean([r.metres['ause'] for r in group])),
                     'ause_relative_mm': float(np.mean([r.relative['ause'] for r in group])),
                     'curve': curve, 'oracle': oracle,
                     'finite': all(r.finite for r in group)})
    return sorted(rows, key=lambda row: row['dataset'] != ALL_SOURCES)
