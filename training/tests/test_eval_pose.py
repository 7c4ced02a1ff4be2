"""Feature matching and the relative-pose pipeline on synthetic and real 7-Scenes data."""

import dataclasses

import cv2
import numpy as np
import pytest

from training.data.correspondences import lens_distortion, TUM_FR1_DISTORTION
from training.eval.feature_matching import (dense_feature_points, mutual_nearest_neighbours,
                                            refine_dense_matches)
from training.eval.frames import seven_scenes_frame
from training.eval.pose_estimation import (backproject, estimate_relative_pose, Intrinsics,
                                           lookup_depth)
from training.eval.pose_protocol import (dense_extractor, evaluate_pair, frame_pairs,
                                         keypoint_extractor, recent_frames_memo,
                                         run_holdout_pose_protocol, sequence_gap)
from training.evaluate import check_pose_split


def test_mutual_nearest_neighbours_keeps_only_mutual_pairs():
    """Mutual nearest neighbours keep only mutual pairs."""
    a = np.array([[1.0, 0.0], [0.0, 1.0], [0.7, 0.7]], np.float32)
    b = np.array([[0.0, 1.0], [1.0, 0.05]], np.float32)
    matches = mutual_nearest_neighbours(a, b)
    # a2 is nearest to b1 but b1 prefers a0: only (0, 1) and (1, 0) are mutual.
    assert sorted(map(tuple, matches)) == [(0, 1), (1, 0)]


def test_dense_feature_points_patch_centres_and_unit_norm():
    """Dense features become patch centres with unit-norm descriptors."""
    features = np.arange(2 * 2 * 3, dtype=np.float32).reshape(2, 2, 3) + 1.0
    xy, descriptors = dense_feature_points(features, (28, 42))
    # 3 x 2 patches of 14 px: centres at 6.5, 20.5, 34.5 (x) and 6.5, 20.5 (y).
    np.testing.assert_allclose(xy[:3], [[6.5, 6.5], [20.5, 6.5], [34.5, 6.5]])
    np.testing.assert_allclose(xy[3], [6.5, 20.5])
    np.testing.assert_allclose(np.linalg.norm(descriptors, axis=1), 1.0, rtol=1e-6)
    np.testing.assert_allclose(descriptors[0] * np.linalg.norm([1.0, 7.0]), [1.0, 7.0],
                               rtol=1e-6)


def _smooth_descriptors(xy: np.ndarray, frequencies: np.ndarray) -> np.ndarray:
    """Return unit descriptors (N, 2F) smooth in the position (random Fourier features)."""
    phase = xy @ frequencies  # (N, F)
    features = np.concatenate([np.cos(phase), np.sin(phase)], axis=1)
    return features / np.linalg.norm(features, axis=1, keepdims=True)


def test_refine_dense_matches_moves_toward_the_true_position():
    """Between-cell refinement lands nearer the truth than the matched cell's centre."""
    rng = np.random.default_rng(0)
    grid, image = (12, 16), (120, 160)  # 10-pixel cells
    frequencies = rng.normal(0.0, 0.05, (2, 64))  # correlation length ~20 px
    centres, _ = dense_feature_points(np.ones((1, *grid)), image)  # (192, 2)
    map_b = _smooth_descriptors(centres, frequencies)  # (192, 128)
    truth = rng.uniform(15.0, 145.0, (200, 2)) * [1.0, 0.75]  # inside, away from the border
    anchors = _smooth_descriptors(truth, frequencies)
    cells = np.argmax(anchors @ map_b.T, axis=1)  # nearest cell of each true position
    refined = refine_dense_matches(anchors, map_b, centres, grid, cells, temperature=0.02)
    coarse_error = np.linalg.norm(centres[cells] - truth, axis=1)
    refined_error = np.linalg.norm(refined - truth, axis=1)
    assert np.median(refined_error) < 0.7 * np.median(coarse_error)
    # A very low temperature is the arg-max: the cell centre itself.
    np.testing.assert_allclose(
        refine_dense_matches(anchors, map_b, centres, grid, cells, temperature=1e-6),
        centres[cells], atol=1e-6)
    with pytest.raises(ValueError):
        refine_dense_matches(anchors, map_b, centres, grid, cells[:5], temperature=0.07)


def test_backproject_and_depth_lookup():
    """Back-projection and depth lookup follow the pinhole model."""
    intrinsics = Intrinsics(500.0, 400.0, 10.0, 20.0)
    points = backproject(np.array([[510.0, 420.0]]), np.array([2.0]), intrinsics)
    np.testing.assert_allclose(points, [[2.0, 2.0, 2.0]])
    depth = np.zeros((5, 5))
    depth[2, 3] = 1.5
    np.testing.assert_allclose(lookup_depth(depth, np.array([[3.2, 1.9], [2.0, 2.0]])),
                               [1.5, 0.0])
    assert lookup_depth(depth, np.array([[2.0, 2.0]]), radius=1)[0] == 1.5


TUM_CAMERA = Intrinsics(517.3, 516.5, 318.6, 255.3, TUM_FR1_DISTORTION)


def _project(points: np.ndarray, intrinsics: Intrinsics) -> np.ndarray:
    """Project camera points (N, 3) to pixels (N, 2) with OpenCV's distortion model."""
    matrix = np.array([[intrinsics.fx, 0.0, intrinsics.cx], [0.0, intrinsics.fy, intrinsics.cy],
                       [0.0, 0.0, 1.0]])
    pixels, _ = cv2.projectPoints(points, np.zeros(3), np.zeros(3), matrix,
                                  np.array(intrinsics.distortion))
    return pixels.reshape(-1, 2)


def test_backproject_undistorts_what_opencv_distorted():
    """Back-projection inverts OpenCV's distorted projection; the pinhole model misses by cm."""
    rng = np.random.default_rng(0)
    depth = rng.uniform(1.0, 4.0, 200)
    points = np.stack([rng.uniform(-0.6, 0.6, 200) * depth,
                       rng.uniform(-0.4, 0.4, 200) * depth, depth], axis=1)  # (N, 3)
    pixels = _project(points, TUM_CAMERA)
    assert pixels.min() > 0.0 and pixels[:, 0].max() < 640.0 and pixels[:, 1].max() < 480.0
    np.testing.assert_allclose(backproject(pixels, depth, TUM_CAMERA), points, atol=1e-9)
    pinhole = dataclasses.replace(TUM_CAMERA, distortion=())
    assert np.abs(backproject(pixels, depth, pinhole) - points).max() > 0.03
    assert lens_distortion({'type': 'tum', 'root': 'tum'}) == TUM_FR1_DISTORTION
    assert lens_distortion({'type': '7scenes', 'root': '7scenes'}) == ()


def test_relative_pose_of_a_distorted_camera_is_exact():
    """Depth read at the distorted pixel + undistorted back-projection give the true motion."""
    height, width = 480, 640
    rows, cols = np.mgrid[40:height - 40:20, 40:width - 40:20]
    xy_a = np.stack([cols.ravel(), rows.ravel()], axis=1).astype(np.float64)  # (N, 2)
    z_a = 2.0 + 0.5 * np.sin(xy_a[:, 0] / 97.0)
    points_a = backproject(xy_a, z_a, TUM_CAMERA)
    angle = np.deg2rad(3.0)
    rotation = np.array([[np.cos(angle), 0.0, np.sin(angle)], [0.0, 1.0, 0.0],
                         [-np.sin(angle), 0.0, np.cos(angle)]])
    translation = np.array([0.05, -0.02, 0.03])
    points_b = (points_a - translation) @ rotation  # X_b = R^T (X_a - t): T_a_from_b = (R, t)
    xy_b = _project(points_b, TUM_CAMERA)
    depth_a, depth_b = np.zeros((height, width)), np.zeros((height, width))
    depth_a[xy_a[:, 1].astype(int), xy_a[:, 0].astype(int)] = z_a
    depth_b[np.rint(xy_b[:, 1]).astype(int), np.rint(xy_b[:, 0]).astype(int)] = points_b[:, 2]
    estimate = estimate_relative_pose(xy_a, xy_b, depth_a, depth_b, TUM_CAMERA,
                                      np.random.default_rng(0), inlier_threshold_m=0.001)
    assert estimate.num_inliers == estimate.num_matches > 0.9 * len(xy_a)
    np.testing.assert_allclose(estimate.transform[:3, :3], rotation, atol=1e-6)
    np.testing.assert_allclose(estimate.transform[:3, 3], translation, atol=1e-6)


def test_frame_pairs_stay_inside_the_sequence():
    """Frame pairs stay inside the sequence."""
    pairs = frame_pairs(40, 5)
    assert pairs[0] == (0, 40) and pairs[-1] == (359, 399)


def test_orb_and_sift_pose_on_a_real_pair(shared_data):
    """ORB and SIFT recover the pose of a real 7-Scenes pair at gap 5."""
    frame_a = seven_scenes_frame(shared_data, 100)
    frame_b = seven_scenes_frame(shared_data, 105)
    truth_rotation_deg = np.degrees(np.arccos(np.clip(
        (np.trace(frame_a.cam_to_world[:3, :3].T @ frame_b.cam_to_world[:3, :3]) - 1) / 2,
        -1, 1)))
    for method in ('orb', 'sift'):
        extract = keypoint_extractor(method)
        rotation_error, translation_cm, _, matches, inliers = evaluate_pair(
            frame_a, frame_b, extract(frame_a), extract(frame_b), np.random.default_rng(0))
        # Measured on this pair: about 0.3 deg and 0.7 cm for both methods.
        assert rotation_error < 2.0, method
        assert translation_cm < 3.0, method
        assert inliers >= 50 and matches >= inliers, method
    # The bound is informative: the camera really rotates between the two frames.
    assert truth_rotation_deg > 0.5


def test_holdout_pairs_use_each_start_once_and_convert_gaps():
    """Short held-out ranges give fewer pairs, not repeated ones; gaps follow the frame rate."""
    assert frame_pairs(40, 10, 50) == [(i, i + 40) for i in range(10)]
    assert frame_pairs(45, 10, 50) == [(i, i + 45) for i in range(5)]
    assert [sequence_gap(gap, 10.0) for gap in (5, 10, 20, 40, 60)] == [2, 3, 7, 13, 20]
    assert sequence_gap(5, 30.0) == 5


def test_recent_frames_memo_runs_once_per_frame_in_the_protocol(shared_data):
    """Three rows on one dense map run the model once per frame of the protocol, not thrice."""
    frames = [seven_scenes_frame(shared_data, index) for index in range(7)]
    rng = np.random.default_rng(0)
    calls = []

    def features(frame):
        calls.append(frame)
        return rng.standard_normal((8, 9, 12)).astype(np.float32)  # (D, h, w)

    shared = recent_frames_memo(features)
    extractors = {'cells': dense_extractor(shared), 'sub-cell': dense_extractor(shared, 0.07),
                  'correlated': dense_extractor(shared, 0.07, correlation=True)}
    results = run_holdout_pose_protocol({'seq': frames}, {'seq': 30.0}, extractors, gaps=(5,),
                                        pairs_per_gap=2)
    assert len(results) == 6  # 2 pairs x 3 rows
    assert [frames.index(frame) for frame in calls] == [0, 5, 1, 6]


def test_recent_frames_memo_keeps_only_the_last_frames():
    """A frame older than the memo's size, or an equal copy, is computed again."""
    calls = []
    memo = recent_frames_memo(lambda frame: calls.append(frame) or len(calls), size=2)
    first, second, third = [1.0], [2.0], [3.0]
    assert [memo(first), memo(second), memo(first), memo(second)] == [1, 2, 1, 2]
    assert memo(third) == 3 and memo(second) == 2
    assert memo(first) == 4  # pushed out by the third
    assert memo([3.0]) == 5  # equal to the third, but another frame
    assert len(calls) == 5


def test_pose_split_refuses_test_frames_near_training_frames():
    """A held-out range closer than MIN_SPLIT_FRAMES to a training range stops the run."""
    test = [{'type': 'tum', 'root': 't', 'select': [150, None]}]
    close = {'data': {'sources': [{'type': 'tum', 'root': 't', 'select': [0, 120]}]}}
    with pytest.raises(ValueError, match='within 50 frames'):
        check_pose_split(close, test, None)
    far = {'data': {'sources': [{'type': 'tum', 'root': 't', 'select': [0, 100]}]}}
    assert check_pose_split(far, test, None) == 't 51'
    head = {'training_sources': [{'type': 'tum', 'root': 't', 'select': [140, 150]}]}
    with pytest.raises(ValueError):
        check_pose_split(far, test, head)
