"""Relative-pose evaluation of local features on RGB-D frame pairs with ground-truth poses.

Two pair sets: without a test split, pairs (i, i + gap) drawn evenly from the 400 redkitchen
frames (``run_pose_protocol``, which a model may have trained on); with one
(``run_holdout_pose_protocol``), pairs inside each held-out sequence only (7-Scenes and TUM
ranges of ``holdout.sources``), gaps given in 30 Hz camera frames and converted to each
sequence's own frame rate (TUM's every-3rd-frame lists: 10 Hz). Every
method turns a frame into pixel positions with descriptors; mutual nearest neighbours are
back-projected with the measured depth and the intrinsics, and RANSAC + Kabsch in 3-D gives
``T_a_from_b``, compared with ``inv(T_wa) @ T_wb`` from pose.txt. Failures (too few matches or
no RANSAC model) count as infinite error in the AUC. Colour and depth of 7-Scenes come from
unregistered Kinect sensors, so every method sees the same small colour/depth misalignment.
"""

import dataclasses
import logging
from typing import Callable

import numpy as np

from training.eval.correlation_refinement import correlated_matches
from training.eval.feature_matching import (dense_feature_points, detect_keypoints,
                                            mutual_nearest_neighbours, refine_dense_matches)
from training.eval.frames import RGBDFrame, seven_scenes_frame, SEVEN_SCENES_NUM_FRAMES
from training.eval.pose_estimation import estimate_relative_pose
from training.eval.pose_metrics import (pose_auc, relative_pose_from_world, rotation_error_deg,
                                        translation_errors)

_logger = logging.getLogger(__name__)

POSE_GAPS = (5, 10, 20, 40)
HOLDOUT_POSE_GAPS = (5, 10, 20, 40, 60)
CAMERA_RATE_HZ = 30.0
AUC_THRESHOLDS_DEG = (5.0, 10.0, 20.0)


@dataclasses.dataclass
class FeatureSet:
    """Positions and descriptors of one frame.

    Attributes:
        xy: (N, 2) pixel positions in the original image.
        descriptors: (N, D) descriptors (uint8 for binary, float32 otherwise).
        depth_radius: Window half-size for reading the depth at each position.
        grid: (h, w) of a dense map whose cells the rows are (row-major), else None.
        subcell_temperature: With ``grid``: place this frame's matches between cells
            (``refine_dense_matches`` at this temperature) when it is frame B of a pair.
        correlation: With ``subcell_temperature``: then place them to a fraction of a camera
            pixel by correlation (``correlated_matches``), keep the placed ones and read
            their depth at the pixel.
    """

    xy: np.ndarray
    descriptors: np.ndarray
    depth_radius: int
    grid: tuple[int, int] | None = None
    subcell_temperature: float | None = None
    correlation: bool = False


FeatureExtractor = Callable[[RGBDFrame], FeatureSet]


def keypoint_extractor(method: str, max_keypoints: int = 2000) -> FeatureExtractor:
    """Return an extractor running OpenCV ORB or SIFT on the colour image."""
    def extract(frame: RGBDFrame) -> FeatureSet:
        xy, descriptors = detect_keypoints(frame.rgb, method, max_keypoints)
        return FeatureSet(xy, descriptors, depth_radius=0)
    return extract


def dense_extractor(features_fn: Callable[[RGBDFrame], np.ndarray],
                    subcell_temperature: float | None = None,
                    correlation: bool = False) -> FeatureExtractor:
    """Return an extractor over a dense (D, h, w) feature map, one descriptor per patch.

    Args:
        features_fn: Maps a frame to its dense features covering the whole image.
        subcell_temperature: Place matches between cells at this softmax temperature
            (``refine_dense_matches``); None keeps the cell centres.
        correlation: Then refine them by correlation (``FeatureSet.correlation``).
    """
    def extract(frame: RGBDFrame) -> FeatureSet:
        features = features_fn(frame)  # (D, h, w)
        height, width = frame.depth_m.shape
        xy, descriptors = dense_feature_points(features, (height, width))
        # Read the depth over half a patch around its centre (median of valid pixels).
        radius = max(int(0.25 * min(height / features.shape[1], width / features.shape[2])), 0)
        return FeatureSet(xy, descriptors, radius, features.shape[1:], subcell_temperature,
                          correlation)
    return extract


def recent_frames_memo(features_fn: Callable[[RGBDFrame], np.ndarray],
                       size: int = 2) -> Callable[[RGBDFrame], np.ndarray]:
    """Wrap ``features_fn`` so that the last ``size`` frames it saw are not computed again.

    The protocols visit the methods of a pair one after the other, so several methods on one
    dense map (cell centres, sub-cell, correlated) share one run of the model per frame.
    Frames are recognised by identity: an equal copy is a new frame.
    """
    recent: list[tuple[RGBDFrame, np.ndarray]] = []

    def features(frame: RGBDFrame) -> np.ndarray:
        for seen, result in recent:
            if seen is frame:
                return result
        result = features_fn(frame)
        recent.append((frame, result))
        del recent[:-size]
        return result
    return features


def frame_pairs(gap: int, pairs_per_gap: int,
                num_frames: int = SEVEN_SCENES_NUM_FRAMES) -> list[tuple[int, int]]:
    """Evenly spaced index pairs (i, i + gap) of a sequence, each start at most once.

    Args:
        gap: Frame gap (in the sequence's frames).
        pairs_per_gap: Number of pairs (fewer when the sequence has fewer distinct starts).
        num_frames: Frames in the sequence (default: the 400 of 7-Scenes).

    Returns:
        List of (i, i + gap).

    Raises:
        ValueError: If the gap leaves no room or the count is not positive.
    """
    last_start = num_frames - 1 - gap
    if gap <= 0 or last_start < 0 or pairs_per_gap <= 0:
        raise ValueError(f'cannot draw {pairs_per_gap} pairs at gap {gap} from '
                         f'{num_frames} frames')
    starts = np.unique(np.linspace(0, last_start, pairs_per_gap).round().astype(int))
    return [(int(start), int(start) + gap) for start in starts]


@dataclasses.dataclass
class PairResult:
    """Pose errors of one method on one frame pair (errors are inf on failure).

    Attributes:
        method: Method name.
        gap: Frame gap.
        pair: (index A, index B).
        rotation_error_deg: Geodesic rotation error.
        translation_error_cm: Euclidean translation error.
        translation_angle_deg: Angle between estimated and true translation directions.
        num_matches: Mutual-NN matches with valid depth in both frames.
        num_inliers: RANSAC inliers.
        dataset: Sequence the pair comes from.
    """

    method: str
    gap: int
    pair: tuple[int, int]
    rotation_error_deg: float
    translation_error_cm: float
    translation_angle_deg: float
    num_matches: int
    num_inliers: int
    dataset: str = '7scenes'

    @property
    def pose_error_deg(self) -> float:
        """The AUC error: max(rotation error, translation angle)."""
        return max(self.rotation_error_deg, self.translation_angle_deg)


def evaluate_pair(frame_a: RGBDFrame, frame_b: RGBDFrame, features_a: FeatureSet,
                  features_b: FeatureSet, rng: np.random.Generator,
                  inlier_threshold_m: float = 0.05) -> tuple[float, float, float, int, int]:
    """Match two frames' features, estimate the relative pose and score it.

    Args:
        frame_a: Frame A with ``cam_to_world``.
        frame_b: Frame B with ``cam_to_world``.
        features_a: Features of A.
        features_b: Features of B.
        rng: Seeded generator for RANSAC.
        inlier_threshold_m: RANSAC 3-D inlier distance.

    Returns:
        (rotation error deg, translation error cm, translation angle deg, matches, inliers);
        the three errors are inf when no pose could be estimated.

    Raises:
        ValueError: If a frame has no ground-truth pose.
    """
    if frame_a.cam_to_world is None or frame_b.cam_to_world is None:
        raise ValueError(f'frames {frame_a.name}, {frame_b.name} need ground-truth poses')
    matches = mutual_nearest_neighbours(features_a.descriptors, features_b.descriptors)
    xy_a, xy_b = features_a.xy[matches[:, 0]], features_b.xy[matches[:, 1]]  # (M, 2) each
    depth_radius = features_a.depth_radius
    if features_b.subcell_temperature is not None and len(matches):
        xy_b = refine_dense_matches(features_a.descriptors[matches[:, 0]],
                                    features_b.descriptors, features_b.xy, features_b.grid,
                                    matches[:, 1], features_b.subcell_temperature)
        if features_b.correlation:
            xy_a, xy_b, placed = correlated_matches(frame_a.rgb, frame_b.rgb, xy_a, xy_b)
            depth_radius = 0 if placed else depth_radius  # at the pixel, as a keypoint's
    estimate = estimate_relative_pose(xy_a, xy_b, frame_a.depth_m, frame_b.depth_m,
                                      frame_a.intrinsics, rng, inlier_threshold_m,
                                      depth_radius=depth_radius)
    if estimate.transform is None:
        return np.inf, np.inf, np.inf, estimate.num_matches, 0
    truth = relative_pose_from_world(frame_a.cam_to_world, frame_b.cam_to_world)
    rotation_error = rotation_error_deg(estimate.transform[:3, :3], truth[:3, :3])
    distance_cm, angle_deg = translation_errors(estimate.transform[:3, 3], truth[:3, 3])
    return rotation_error, distance_cm, angle_deg, estimate.num_matches, estimate.num_inliers


def run_pose_protocol(data_root: str, extractors: dict[str, FeatureExtractor],
                      gaps: tuple[int, ...] = POSE_GAPS, pairs_per_gap: int = 10,
                      seed: int = 0) -> list[PairResult]:
    """Evaluate every method on the same 7-Scenes pairs.

    Args:
        data_root: The ../shared/data folder.
        extractors: Method name -> feature extractor.
        gaps: Frame gaps.
        pairs_per_gap: Pairs per gap.
        seed: RANSAC seed (the same for every method and pair).

    Returns:
        One ``PairResult`` per method, gap and pair.
    """
    frames: dict[int, RGBDFrame] = {}
    features: dict[tuple[str, int], FeatureSet] = {}

    def cached(method: str, index: int) -> tuple[RGBDFrame, FeatureSet]:
        if index not in frames:
            frames[index] = seven_scenes_frame(data_root, index)
        if (method, index) not in features:
            features[method, index] = extractors[method](frames[index])
        return frames[index], features[method, index]

    results = []
    for gap in gaps:
        _logger.info('pose: gap %d, %d pairs', gap, pairs_per_gap)
        for pair in frame_pairs(gap, pairs_per_gap):
            for method in extractors:
                frame_a, features_a = cached(method, pair[0])
                frame_b, features_b = cached(method, pair[1])
                errors = evaluate_pair(frame_a, frame_b, features_a, features_b,
                                       np.random.default_rng(seed))
                results.append(PairResult(method, gap, pair, *errors))
    return results


def sequence_gap(gap: int, sequence_rate_hz: float) -> int:
    """Convert a gap in 30 Hz camera frames to a sequence's frames (rounded, at least 1)."""
    return max(1, int(round(gap * sequence_rate_hz / CAMERA_RATE_HZ)))


def run_holdout_pose_protocol(sequences: dict[str, list[RGBDFrame]],
                              rates_hz: dict[str, float],
                              extractors: dict[str, FeatureExtractor],
                              gaps: tuple[int, ...] = HOLDOUT_POSE_GAPS,
                              pairs_per_gap: int = 10, seed: int = 0) -> list[PairResult]:
    """Evaluate every method on the same pairs inside each held-out sequence.

    Args:
        sequences: Sequence name -> its consecutive frames (with poses and intrinsics).
        rates_hz: Sequence name -> frame rate of its frame list.
        extractors: Method name -> feature extractor.
        gaps: Gaps in 30 Hz camera frames; a gap the sequence cannot hold is left out.
        pairs_per_gap: Pairs per gap and sequence (at most one per start frame).
        seed: RANSAC seed (the same for every method and pair).

    Returns:
        One ``PairResult`` per sequence, method, gap and pair (``gap`` in camera frames).
    """
    results = []
    for name, frames in sequences.items():
        features: dict[tuple[str, int], FeatureSet] = {}
        for gap in gaps:
            step = sequence_gap(gap, rates_hz[name])
            if step >= len(frames):
                _logger.info('pose: %s has %d frames, no room for gap %d', name, len(frames),
                             gap)
                continue
            pairs = frame_pairs(step, pairs_per_gap, len(frames))
            _logger.info('pose: %s gap %d (%d of its frames), %d pairs', name, gap, step,
                         len(pairs))
            for pair in pairs:
                for method, extract in extractors.items():
                    for index in pair:
                        if (method, index) not in features:
                            features[method, index] = extract(frames[index])
                    errors = evaluate_pair(frames[pair[0]], frames[pair[1]],
                                           features[method, pair[0]],
                                           features[method, pair[1]],
                                           np.random.default_rng(seed))
                    results.append(PairResult(method, gap, pair, *errors, dataset=name))
    return results


def summarize_pose(results: list[PairResult]) -> list[dict]:
    """Aggregate pair results per (dataset, method, gap), plus an 'all' gap row per method.

    Args:
        results: Output of ``run_pose_protocol``.

    Returns:
        Rows with keys dataset, method, gap, pairs, failures, median rotation/translation errors,
        median matches/inliers, ``accuracy_5cm_5deg`` (share of pairs within 5 cm and 5 deg,
        the usual 7-Scenes criterion) and ``auc@T`` for each threshold in
        ``AUC_THRESHOLDS_DEG``.
    """
    rows = []
    for dataset in dict.fromkeys(result.dataset for result in results):
        rows += _summarize_dataset([r for r in results if r.dataset == dataset], dataset)
    return rows


def _summarize_dataset(results: list[PairResult], dataset: str) -> list[dict]:
    """Rows of ``summarize_pose`` for the pairs of one dataset."""
    rows = []
    methods = list(dict.fromkeys(result.method for result in results))
    gaps = list(dict.fromkeys(result.gap for result in results))
    for method in methods:
        for gap in gaps + ['all']:
            group = [r for r in results if r.method == method and gap in ('all', r.gap)]
            if not group:
                continue
            aucs = pose_auc(np.array([r.pose_error_deg for r in group]), AUC_THRESHOLDS_DEG)
            row = {
                'dataset': dataset, 'method': method, 'gap': gap, 'pairs': len(group),
                'failures': sum(not np.isfinite(r.rotation_error_deg) for r in group),
                'median_rot_deg': float(np.median([r.rotation_error_deg for r in group])),
                'median_trans_cm': float(np.median([r.translation_error_cm for r in group])),
                'median_trans_angle_deg': float(np.median(
                    [r.translation_angle_deg for r in group])),
                'median_matches': float(np.median([r.num_matches for r in group])),
                'median_inliers': float(np.median([r.num_inliers for r in group])),
                'accuracy_5cm_5deg': float(np.mean(
                    [r.rotation_error_deg < 5.0 and r.translation_error_cm < 5.0
                     for r in group])),
            }
            row.update({f'auc@{int(t)}': auc for t, auc in zip(AUC_THRESHOLDS_DEG, aucs)})
            rows.append(row)
    return rows
